"""Pooling layers: shrink each feature map by summarising local neighbourhoods.

Shapes: (N, C, H, W) -> (N, C, H', W'), H' = (H + top + bottom - d*(kH-1) - 1) // sH + 1 (floor, as
PyTorch), or rounded up with ``ceil_mode=True`` (see `convnet.functional.pooling_modes`).
"""

import numpy as np

from .. import _checks
from .. import functional as F
from ..errors import InvalidType
from .module import Module
from .padding import pool_padding


class _Pool2d(Module):
    """``stride`` defaults to ``kernel_size``; ``padding``: an int, (pH, pW) or four sides (top,
    bottom, left, right), each at most half the kernel; resolved once, to ``resolved_padding``.
    ``ceil_mode``: round the output size up, as PyTorch does."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _checks.pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else _checks.pair(name, "stride", stride, minimum=1)
        self.padding, self.resolved_padding = pool_padding(name, padding)
        if not isinstance(ceil_mode, (bool, np.bool_)):
            raise InvalidType(f"{name}: expected ceil_mode to be True or False, got {ceil_mode!r}")
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Keeps the maximum of each kernel_size window, like ``torch.nn.MaxPool2d``; padding adds
    -inf; ``dilation`` spaces the window's taps. (``ceil_mode`` is keyword-only: PyTorch's
    ``return_indices``, which comes before it there, is not offered.)

    >>> from convnet import nn
    >>> nn.MaxPool2d(3, 2, ceil_mode=True)
    MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(0, 0), ceil_mode=True)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, *, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = _checks.pair("MaxPool2d", "dilation", dilation, minimum=1)

    def forward(self, x, rectify_input=False):
        """``rectify_input``: pool relu(x), as `F.relu_max_pool2d` (what `nn.Sequential` asks for
        when a ReLU comes first)."""
        pool = F.relu_max_pool2d if rectify_input else F.max_pool2d
        return pool(x, self.kernel_size, self.stride, self.resolved_padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        """PyTorch's, less the arguments left at their defaults (as the convolutions print)."""
        return (super().extra_repr() + ("" if self.dilation == (1, 1) else f", dilation={self.dilation}")
                + (", ceil_mode=True" if self.ceil_mode else ""))


class AvgPool2d(_Pool2d):
    """Averages each kernel_size window, like ``torch.nn.AvgPool2d``; padding adds zeros, which
    count in the mean unless ``count_include_pad=False`` (then each window averages only the
    input pixels it covers, as ONNX's default count_include_pad=0 does).

    >>> import convnet
    >>> from convnet import nn
    >>> x = convnet.ones(1, 1, 2, 2)  # each 2x2 window of the padded input covers one pixel
    >>> nn.AvgPool2d(2, padding=1)(x).numpy().ravel().tolist()
    [0.25, 0.25, 0.25, 0.25]
    >>> nn.AvgPool2d(2, padding=1, count_include_pad=False)(x).numpy().ravel().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = (None if divisor_override is None
                                 else _checks.positive_int("AvgPool2d", "divisor_override", divisor_override))

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.resolved_padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return (super().extra_repr() + (", ceil_mode=True" if self.ceil_mode else "")
                + ("" if self.count_include_pad else ", count_include_pad=False")
                + ("" if self.divisor_override is None else f", divisor_override={self.divisor_override}"))


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size); output_size=1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _checks.pair("AdaptiveAvgPool2d", "output_size", output_size, minimum=1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
