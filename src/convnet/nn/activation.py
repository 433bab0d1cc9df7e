"""Activation layers: thin Modules over the functions in ``convnet.functional``.

``inplace`` is accepted where PyTorch has it, so model code carries over; convnet's layers always
return a new tensor (autograd keeps their input), and show ``inplace=True`` in their repr as torch does.
"""

from .. import functional as F
from ..functional.activation import check_hardtanh_range, check_inplace
from .module import Module


class _InplaceFlag(Module):
    def __init__(self, inplace=False):
        super().__init__()
        check_inplace(type(self).__name__, inplace)
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceFlag):
    def forward(self, x):
        return F.relu(x)


class ReLU6(_InplaceFlag):
    """min(max(x, 0), 6), like ``torch.nn.ReLU6``."""

    def forward(self, x):
        return F.relu6(x)


class Hardtanh(_InplaceFlag):
    """clip(x, min_val, max_val), like ``torch.nn.Hardtanh``."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__(inplace)
        check_hardtanh_range("Hardtanh", min_val, max_val)
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class Hardsigmoid(_InplaceFlag):
    """relu6(x + 3) / 6, like ``torch.nn.Hardsigmoid`` (whose repr never shows inplace)."""

    def forward(self, x):
        return F.hardsigmoid(x)

    def extra_repr(self):
        return ""


class Hardswish(Hardsigmoid):
    """x * relu6(x + 3) / 6, like ``torch.nn.Hardswish``."""

    def forward(self, x):
        return F.hardswish(x)


class SiLU(_InplaceFlag):
    """x * sigmoid(x), like ``torch.nn.SiLU``."""

    def forward(self, x):
        return F.silu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)
