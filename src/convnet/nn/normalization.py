"""Normalisation layers with PyTorch's parameters and buffers: batch norm, layer norm (and torchvision's
LayerNorm2d over channels)."""

import numpy as np

from .. import _checks
from .. import functional as F
from ..errors import InvalidValue
from ..functional.layer_norm import check_eps, normalized_shape_tuple
from .module import Module, Parameter


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


class LayerNorm(Module):
    """Normalises each input over its last dimensions, like ``torch.nn.LayerNorm``:
    (*, *normalized_shape) -> same shape.

    Parameters weight (ones), bias (zeros): normalized_shape, when ``elementwise_affine`` (bias only
    with ``bias``); no buffers, so training and evaluation agree.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        name = type(self).__name__
        self.normalized_shape = normalized_shape_tuple(name, normalized_shape)
        self.eps = check_eps(name, eps)
        for flag, value in (("elementwise_affine", elementwise_affine), ("bias", bias)):
            if not isinstance(value, bool):
                raise InvalidValue(f"{name}: expected {flag} to be True or False, got {value!r}")
        self.elementwise_affine = elementwise_affine
        affine_bias = elementwise_affine and bias
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32)) if affine_bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of (N, C, H, W) inputs, like torchvision's
    ``models.convnext.LayerNorm2d`` (ConvNeXt's downsampling norms): (N, C, H, W) -> same shape, each
    pixel's C values normalised. Parameters weight, bias: (C,), so torchvision's state_dict loads.

    Permutes to (N, H, W, C) views and back, as torchvision does; a channels-last input then
    normalises contiguous rows and its output stays channels-last.
    """

    def forward(self, x):
        if x.ndim != 4 or (x.shape[1],) != self.normalized_shape:
            raise InvalidValue(f"expected input of shape (N, {self.normalized_shape[0]}, H, W), got {tuple(x.shape)}")
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)
