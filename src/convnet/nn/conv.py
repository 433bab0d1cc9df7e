"""Convolution layers: ``out_channels`` learnable kernels, each producing one feature map, and
the transposed convolution that upsamples with them."""

import numpy as np

from .. import _checks
from .. import functional as F
from .init import default_init_
from .module import Module, Parameter
from .padding import conv_padding, pool_padding
from ..errors import InvalidValue


class Conv2d(Module):
    """2-D convolution (cross-correlation) layer, like ``torch.nn.Conv2d``.

    Args:
        in_channels, out_channels: C and O; ``out_channels`` kernels give as many feature maps.
        kernel_size, stride, dilation: int or pair.
        padding: int, pair (pH, pW), four sides (top, bottom, left, right), 'same' or 'valid';
            resolved once, to ``resolved_padding`` (top, bottom, left, right). ``padding`` shows
            it as PyTorch does: (pH, pW) where opposite sides agree, or the string given.
        groups: splits channels into independent groups (groups=C: depthwise).

    Shapes: input (N, C, H, W) -> output (N, O, H', W'), H' = (H + top + bottom - d(k-1) - 1) // s + 1.
    Parameters: weight (O, C/groups, kH, kW), bias (O,).

    >>> import convnet
    >>> from convnet import nn
    >>> nn.Conv2d(1, 100, kernel_size=10)(convnet.zeros(1, 1, 256, 256)).shape
    (1, 100, 247, 247)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        name = "Conv2d"
        _set_shared_arguments(self, name, in_channels, out_channels, kernel_size, stride, dilation, groups)
        self.padding, self.resolved_padding = conv_padding(name, padding, self.kernel_size, self.stride,
                                                           self.dilation)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None
        default_init_(self.weight, self.bias)

    def forward(self, x):
        _check_input(self, x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.resolved_padding, self.dilation, self.groups)

    def describe(self):
        return _describe(self)

    def extra_repr(self):
        return _extra_repr(self)


class ConvTranspose2d(Module):
    """2-D transposed convolution layer, like ``torch.nn.ConvTranspose2d``: the gradient of a
    convolution with respect to its input, which spreads each input value over a kernel-sized
    patch of a larger output (learned upsampling, as in decoders and GAN generators).

    Args:
        in_channels, out_channels: C_in and C_out.
        kernel_size, stride, dilation: int or pair.
        padding: int, pair (pH, pW) or four sides (top, bottom, left, right), cut from those sides of
            the output; resolved once, to ``resolved_padding``, and shown as in `Conv2d`.
        output_padding: int or pair, smaller than stride or dilation: added to one side of the output.
        groups: splits channels into independent groups.

    Shapes: input (N, C_in, H, W) -> output (N, C_out, H_out, W_out),
    H_out = (H - 1)*s - top - bottom + d(k-1) + output_padding + 1.
    Parameters: weight (C_in, C_out/groups, kH, kW), bias (C_out,).

    >>> import convnet
    >>> from convnet import nn
    >>> nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)(convnet.zeros(1, 16, 7, 7)).shape
    (1, 8, 14, 14)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1):
        super().__init__()
        name = "ConvTranspose2d"
        _set_shared_arguments(self, name, in_channels, out_channels, kernel_size, stride, dilation, groups)
        # A transposed convolution's padding is a pooling layer's kind: numbers only, no 'same'.
        self.padding, self.resolved_padding = pool_padding(name, padding)
        self.output_padding = _checks.pair(name, "output_padding", output_padding, minimum=0)
        _checks.output_padding_fits(name, self.output_padding, self.stride, self.dilation)
        self.weight = Parameter(np.empty((in_channels, out_channels // groups) + self.kernel_size, dtype=np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None
        default_init_(self.weight, self.bias)

    def forward(self, x):
        _check_input(self, x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.resolved_padding, self.output_padding,
                                  self.groups, self.dilation)

    def describe(self):
        return _describe(self)

    def extra_repr(self):
        return _extra_repr(self, self.output_padding)


def _set_shared_arguments(layer, name, in_channels, out_channels, kernel_size, stride, dilation, groups):
    """Check and store the arguments both convolution layers share."""
    layer.in_channels = _checks.positive_int(name, "in_channels", in_channels)
    layer.out_channels = _checks.positive_int(name, "out_channels", out_channels)
    layer.kernel_size = _checks.pair(name, "kernel_size", kernel_size, minimum=1)
    layer.stride = _checks.pair(name, "stride", stride, minimum=1)
    layer.dilation = _checks.pair(name, "dilation", dilation, minimum=1)
    layer.groups = _checks.positive_int(name, "groups", groups)
    _checks.groups_divide_channels(name, layer.groups, layer.in_channels, layer.out_channels)


def _check_input(layer, x):
    if x.ndim != 4 or x.shape[1] != layer.in_channels:
        raise InvalidValue(f"expected input of shape (N, {layer.in_channels}, H, W), got {tuple(x.shape)}")


def _describe(layer):
    k = layer.kernel_size
    kernel = k[0] if k[0] == k[1] else k
    return f"{type(layer).__name__}({layer.in_channels}, {layer.out_channels}, kernel_size={kernel})"


def _extra_repr(layer, output_padding=(0, 0)):
    """PyTorch's repr: the arguments that differ from their defaults, in its order."""
    text = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    if layer.padding not in ((0, 0), "valid"):
        text += f", padding={layer.padding!r}" if isinstance(layer.padding, str) else f", padding={layer.padding}"
    if layer.dilation != (1, 1):
        text += f", dilation={layer.dilation}"
    if output_padding != (0, 0):
        text += f", output_padding={output_padding}"
    if layer.groups != 1:
        text += f", groups={layer.groups}"
    return text + ("" if layer.bias is not None else ", bias=False")
