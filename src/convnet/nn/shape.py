"""Layers that only move elements: Permute (torchvision.ops.misc.Permute) and ChannelShuffle."""

import numbers

from .. import functional as F
from ..errors import InvalidValue
from .module import Module


class Permute(Module):
    """x.permute(dims), like torchvision's ``ops.misc.Permute`` (ConvNeXt's (N, C, H, W) <-> (N, H, W, C)):
    a view, no copy. Its repr is torchvision's, ``Permute()``."""

    def __init__(self, dims):
        super().__init__()
        if (not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(len(dims)))
                or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims)):
            raise InvalidValue(f"Permute: expected dims to be a permutation of 0..n-1, got {dims!r}")
        self.dims = list(dims)

    def forward(self, x):
        if x.ndim != len(self.dims):
            raise InvalidValue(f"expected an input with {len(self.dims)} dimensions, got shape {tuple(x.shape)}")
        return x.permute(*self.dims)


class ChannelShuffle(Module):
    """Interleaves the channels of ``groups`` groups, like ``torch.nn.ChannelShuffle``: (N, C, *) -> same."""

    def __init__(self, groups):
        super().__init__()
        if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
            raise InvalidValue(f"ChannelShuffle: expected groups to be a positive int, got {groups!r}")
        self.groups = int(groups)

    def forward(self, x):
        return F.channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"
