"""The convolution layer: ``out_channels`` learnable kernels, each producing one feature map."""

import math

import numpy as np

from .. import _checks
from .. import functional as F
from . import init
from .module import Module, Parameter


def default_init_(weight, bias):
    """PyTorch's default for Conv2d and Linear: kaiming_uniform_(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)),
    for the weight and U(+-1/sqrt(fan_in)) for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(init.fan_in_and_fan_out(weight)[0])
        init.uniform_(bias, -bound, bound)


class Conv2d(Module):
    """2-D convolution (cross-correlation) layer, like ``torch.nn.Conv2d``.

    Args:
        in_channels, out_channels: C and O; ``out_channels`` kernels give as many feature maps.
        kernel_size, stride, dilation: int or pair. padding: int, pair, 'same' or 'valid'.
        groups: splits channels into independent groups (groups=C: depthwise).

    Shapes: input (N, C, H, W) -> output (N, O, H', W'), H' = (H + 2p - d(k-1) - 1) // s + 1.
    Parameters: weight (O, C/groups, kH, kW), bias (O,).

    >>> import convnet
    >>> from convnet import nn
    >>> nn.Conv2d(1, 100, kernel_size=10)(convnet.zeros(1, 1, 256, 256)).shape
    (1, 100, 247, 247)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        name = "Conv2d"
        self.in_channels = _checks.positive_int(name, "in_channels", in_channels)
        self.out_channels = _checks.positive_int(name, "out_channels", out_channels)
        self.kernel_size = _checks.pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = _checks.pair(name, "stride", stride, minimum=1)
        self.dilation = _checks.pair(name, "dilation", dilation, minimum=1)
        self.groups = _checks.positive_int(name, "groups", groups)
        self.padding = padding if isinstance(padding, str) else _checks.pair(name, "padding", padding, minimum=0)
        F.conv.resolve_padding(name, self.padding, self.kernel_size, self.stride, self.dilation)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups must divide in_channels and out_channels. Received: groups={groups}, "
                             f"in_channels={in_channels}, out_channels={out_channels}")
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None
        default_init_(self.weight, self.bias)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def describe(self):
        k = self.kernel_size
        return f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={k[0] if k[0] == k[1] else k})"

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            text += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")
