"""Stochastic depth: whole residual branches dropped at random while training (EfficientNet, ConvNeXt)."""

import numpy as np

from .. import _checks
from .. import random as _random
from ..errors import InvalidValue
from ..tensor import Function


class ScaleRows(Function):
    """x: (N, ...), scale: (N, 1, ..., 1) or (1, ..., 1), a constant -> out = x * scale: x's shape and
    memory order; the gradient is scaled alike, into x's memory order (x is kept for that, not copied)."""

    def forward(self, x, scale):
        self.x, self.scale = x, scale
        return np.multiply(x, scale, out=np.empty_like(x))  # out=: a broadcast operand would reorder it

    def backward(self, grad):
        return np.multiply(grad, self.scale, out=np.empty_like(self.x, dtype=grad.dtype)), None


def stochastic_depth(input, p, mode, training=True, generator=None):
    """Zero whole rows of ``input`` (mode 'row': each of the N samples independently, with probability
    ``p``) or all of it (mode 'batch') while ``training``, scaling what survives by 1/(1 - p), like
    ``torchvision.ops.stochastic_depth``. input: (N, ...) -> same shape and memory order.

    The draws come from ``generator`` or the default one (`convnet.manual_seed`), so a seed repeats them.
    """
    op = "stochastic_depth"
    input = _checks.as_tensor(op, "input", input)
    p = _checks.probability(op, "p", p)
    if mode not in ("row", "batch"):
        raise InvalidValue(f"{op}: expected mode 'row' or 'batch', got {mode!r}")
    if input.ndim == 0:
        raise InvalidValue(f"{op}: expected input of shape (N, ...), got a scalar")
    if not training or p == 0:
        return input
    survival = 1.0 - p
    size = (input.shape[0],) + (1,) * (input.ndim - 1) if mode == "row" else (1,) * input.ndim
    keep = _random.resolve(generator).random(size) < survival
    scale = keep.astype(input.dtype) / survival if survival > 0 else keep.astype(input.dtype)
    return ScaleRows.apply(input, scale)
