"""Differentiable CNN operations on Tensors (``import convnet.functional as F``).

Each op is a `Function` with its backward next to its forward; the public function checks its
arguments and says what it expected. Names and arguments follow ``torch.nn.functional``.
"""

from ._windows import resolve_padding
from .activation import (gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, relu, relu6, sigmoid, silu,
                         softmax, tanh)
from .conv import conv2d, conv_transpose2d
from .layer_norm import layer_norm
from .linear import dropout, linear
from .loss import cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d, relu_max_pool2d
from .regularization import stochastic_depth
from .shuffle import channel_shuffle
from .special import erf

__all__ = ["conv2d", "conv_transpose2d", "resolve_padding", "max_pool2d", "relu_max_pool2d", "avg_pool2d",
           "adaptive_avg_pool2d", "linear", "dropout", "relu", "relu6", "hardtanh", "hardsigmoid", "hardswish", "silu",
           "leaky_relu", "sigmoid", "tanh", "gelu", "erf", "softmax", "log_softmax", "batch_norm", "layer_norm",
           "stochastic_depth", "channel_shuffle", "cross_entropy", "nll_loss", "mse_loss"]
