"""Pooling layers: shrink each feature map by summarising local neighbourhoods.

Shapes: (N, C, H, W) -> (N, C, H', W'), H' = (H + top + bottom - kH) // sH + 1 (floor, as PyTorch).
"""

from .. import _checks
from .. import functional as F
from .module import Module
from .padding import pool_padding


class _Pool2d(Module):
    """``stride`` defaults to ``kernel_size``; ``padding``: an int, (pH, pW) or four sides (top,
    bottom, left, right), each at most half the kernel; resolved once, to ``resolved_padding``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _checks.pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else _checks.pair(name, "stride", stride, minimum=1)
        self.padding, self.resolved_padding = pool_padding(name, padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Keeps the maximum of each kernel_size window, like ``torch.nn.MaxPool2d``; padding adds -inf."""

    def forward(self, x, rectify_input=False):
        """``rectify_input``: pool relu(x), as `F.relu_max_pool2d` (what `nn.Sequential` asks for
        when a ReLU comes first)."""
        pool = F.relu_max_pool2d if rectify_input else F.max_pool2d
        return pool(x, self.kernel_size, self.stride, self.resolved_padding)


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

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.resolved_padding, self.count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size); output_size=1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _checks.pair("AdaptiveAvgPool2d", "output_size", output_size, minimum=1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
