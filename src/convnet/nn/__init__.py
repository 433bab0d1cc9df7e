"""Layers (``convnet.nn``), named and shaped like ``torch.nn``'s so state_dicts carry over."""

from . import init
from .activation import (GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, SiLU,
                         Softmax, Tanh)
from .conv import Conv2d, ConvTranspose2d
from .fusion import FusedConv2d, fuse_for_inference
from .inspect import LayerOutput, record_outputs
from .linear import Dropout, Flatten, Identity, Linear
from .mirror import logits
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LayerNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .regularization import StochasticDepth
from .residual import BasicBlock
from .sequential import Sequential
from .shape import ChannelShuffle, Permute
from .summary import summary, summary_rows

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "Linear", "Flatten", "Dropout", "Identity",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish",
           "SiLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "BatchNorm1d", "BatchNorm2d",
           "LayerNorm", "LayerNorm2d", "BasicBlock", "StochasticDepth", "Permute", "ChannelShuffle", "init", "summary",
           "summary_rows", "record_outputs", "LayerOutput", "logits", "fuse_for_inference", "FusedConv2d"]
