"""Optimizers and learning-rate schedules (``convnet.optim``), following ``torch.optim``."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .averaging import ExponentialMovingAverage, update_bn
from .groups import batch_norm_groups, muon_groups
from .lookahead import Lookahead
from .muon import Muon
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "ExponentialMovingAverage", "update_bn",
           "Lookahead", "batch_norm_groups", "Muon", "muon_groups"]
