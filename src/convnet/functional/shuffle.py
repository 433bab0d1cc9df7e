"""Channel shuffle (ShuffleNet's): the channels of g groups interleaved, so the next grouped
convolution sees channels from every group."""

import numbers

import numpy as np

from .. import _checks
from ..errors import InvalidValue
from ..tensor import Function


def shuffled_channels(channels, groups):
    """The input channel each output channel takes: output i * groups + j <- input j * (channels / groups) + i,
    as torch's reshape to (groups, channels / groups), transpose and flatten."""
    return np.arange(channels).reshape(groups, channels // groups).T.ravel()


class ChannelShuffle(Function):
    """x: (N, C, *) -> out: (N, C, *), out[:, k] = x[:, order[k]] (`shuffled_channels`); the gradient
    goes back through the inverse order. Output and gradient keep x's memory order (x is kept for
    that, not copied)."""

    def forward(self, x, groups):
        self.x, self.order = x, shuffled_channels(x.shape[1], groups)
        return np.take(x, self.order, axis=1, out=np.empty_like(x))

    def backward(self, grad):
        return np.take(grad, np.argsort(self.order), axis=1, out=np.empty_like(self.x, dtype=grad.dtype))


def channel_shuffle(input, groups):
    """Interleave the channels of ``groups`` groups, like ``torch.nn.functional.channel_shuffle``:
    input: (N, C, *) with C divisible by groups -> same shape."""
    op = "channel_shuffle"
    input = _checks.as_tensor(op, "input", input)
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise InvalidValue(f"{op}: expected groups to be a positive int, got {groups!r}")
    if input.ndim < 3:
        raise InvalidValue(f"{op}: expected input of shape (N, C, *) with at least 3 dimensions, got {input.shape}")
    if input.shape[1] % groups:
        raise InvalidValue(f"{op}: expected groups to divide the {input.shape[1]} channels, got groups={groups}")
    return ChannelShuffle.apply(input, groups=int(groups))
