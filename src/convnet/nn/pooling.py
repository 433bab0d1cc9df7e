"""Pooling layers: shrink each feature map by summarising local neighbourhoods."""

from .. import _checks
from .. import functional as F
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _checks.pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else _checks.pair(name, "stride", stride, minimum=1)
        self.padding = _checks.pair(name, "padding", padding, minimum=0)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Keeps the maximum of each kernel_size window, like ``torch.nn.MaxPool2d`` (stride defaults
    to kernel_size): (N, C, H, W) -> (N, C, (H + 2p - k) // s + 1, ...)."""

    def forward(self, x, rectify_input=False):
        """``rectify_input``: pool relu(x), as `F.relu_max_pool2d` (what `nn.Sequential` asks for
        when a ReLU comes first)."""
        pool = F.relu_max_pool2d if rectify_input else F.max_pool2d
        return pool(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Averages each kernel_size window, like ``torch.nn.AvgPool2d``."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, *output_size); output_size=1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _checks.pair("AdaptiveAvgPool2d", "output_size", output_size, minimum=1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
