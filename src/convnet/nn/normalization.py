"""Batch normalisation layers with PyTorch's parameters and buffers."""

import numpy as np

from .. import _checks
from .. import functional as F
from .module import Module, Parameter
from ..errors import InvalidValue


class _BatchNorm(Module):
    expected_input = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _checks.positive_int(name, "num_features", num_features)
        if momentum is not None and not 0 <= momentum <= 1:
            raise InvalidValue(f"{name}: expected momentum between 0 and 1 or None, got {momentum!r}")
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.track_running_stats = track_running_stats
        # In a data-parallel job, what sums the batch statistics over its processes (see
        # `F.batch_norm`); set by `convnet.distributed.synchronise_batch_norm`.
        self.sum_across = None
        self.weight = Parameter(np.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x):
        if x.ndim not in self.accepted_ndims or x.shape[1] != self.num_features:
            raise InvalidValue(f"expected input of shape {self.expected_input.format(C=self.num_features)}, "
                             f"got {tuple(x.shape)}")
        use_batch_statistics = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:  # a cumulative average over every batch seen so far
                momentum = 1.0 / float(self.num_batches_tracked.data)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return F.batch_norm(x, *running, self.weight, self.bias, use_batch_statistics, momentum or 0.0, self.eps,
                            self.sum_across)

    def describe(self):
        return f"{type(self).__name__}({self.num_features})"

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Normalises each feature of (N, C) inputs over the batch, like ``torch.nn.BatchNorm1d``."""

    accepted_ndims = (2,)
    expected_input = "(N, {C})"


class BatchNorm2d(_BatchNorm):
    """Normalises each channel of (N, C, H, W) inputs over N, H and W, like ``torch.nn.BatchNorm2d``.

    Parameters weight, bias (C,); buffers running_mean, running_var (C,), num_batches_tracked ().
    """

    accepted_ndims = (4,)
    expected_input = "(N, {C}, H, W)"
