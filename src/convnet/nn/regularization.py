"""Stochastic depth as a layer (torchvision.ops.StochasticDepth), for the residual blocks of EfficientNet
and ConvNeXt."""

from .. import _checks
from .. import functional as F
from ..errors import InvalidValue
from .module import Module


class StochasticDepth(Module):
    """Drops each sample's whole input (mode 'row') or the whole batch's (mode 'batch') with probability
    p while training, scaling the rest by 1/(1 - p); the identity in evaluation. (N, ...) -> same shape.

    Draws from convnet's default generator, as `nn.Dropout` does, so `convnet.manual_seed` repeats them.
    """

    def __init__(self, p, mode):
        super().__init__()
        self.p = _checks.probability("StochasticDepth", "p", p)
        if mode not in ("row", "batch"):
            raise InvalidValue(f"StochasticDepth: expected mode 'row' or 'batch', got {mode!r}")
        self.mode = mode

    def forward(self, x):
        return F.stochastic_depth(x, self.p, self.mode, self.training)

    def __repr__(self):
        return f"StochasticDepth(p={self.p}, mode={self.mode})"  # torchvision's, the mode unquoted
