"""Layers (``convnet.nn``), named and shaped like ``torch.nn``'s so state_dicts carry over."""

from . import init
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2d, ConvTranspose2d
from .inspect import LayerOutput, record_outputs
from .linear import Dropout, Flatten, Identity, Linear
from .mirror import logits
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .residual import BasicBlock
from .sequential import Sequential
from .summary import summary, summary_rows

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "Linear", "Flatten", "Dropout", "Identity",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax",
           "LogSoftmax", "BatchNorm1d", "BatchNorm2d", "BasicBlock", "init", "summary", "summary_rows",
           "record_outputs", "LayerOutput", "logits"]
