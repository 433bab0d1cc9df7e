"""Batch normalisation over (N, C) or (N, C, H, W), with PyTorch's running statistics."""

import numpy as np

from .. import _checks, kernels
from ..errors import InvalidValue
from ..kernels.convolution import channel_major, channels_last, is_channels_last
from ..tensor import Function, Tensor


def channel_rows(x, channels_innermost=None):
    """(N, C) or (N, C, H, W) -> (C, M) rows, one per channel, M = N*H*W, as a view of x when it can be.

    The rows' memory is channel-major (each row contiguous) or, with ``channels_innermost``,
    channels-last (rows.T is a contiguous (M, C) array: (N, H, W, C) or (N, C) memory). None
    takes x's own memory when it is either (channel-major where it is both: one channel, a batch
    of one), and copies into channel-major otherwise.
    """
    channels = x.shape[1]
    if channels_innermost is None:
        major = x.T if x.ndim == 2 else x.transpose(1, 0, 2, 3)
        channels_innermost = not major.flags.c_contiguous and (
            x.flags.c_contiguous if x.ndim == 2 else is_channels_last(x))
    if channels_innermost:
        return (np.ascontiguousarray(x) if x.ndim == 2 else channels_last(x)).reshape(-1, channels).T
    return (np.ascontiguousarray(x.T) if x.ndim == 2 else channel_major(x)).reshape(channels, -1)


def from_channel_rows(rows, shape):
    """Inverse of `channel_rows`: a view of ``rows`` with the original (N, C[, H, W]) shape, in
    rows' memory order (splitting the M axis never copies)."""
    if len(shape) == 2:
        return rows.T
    return rows.reshape(shape[1], shape[0], *shape[2:]).transpose(1, 0, 2, 3)


def channels_innermost(rows):
    """Whether (C, M) rows from `channel_rows` lie channels-last (as (M, C) rows) in memory."""
    return not rows.flags.c_contiguous


def update_running_statistics(running_mean, running_var, mean, var, count, momentum):
    """PyTorch's rule, in place: running = (1 - momentum) * running + momentum * batch, where the
    batch's mean and biased var: (C,) come from ``count`` values and the *unbiased* var is stored."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += momentum * var * count / (count - 1)


class BatchNorm(Function):
    """x: (N, C) or (N, C, H, W); weight, bias: (C,) or None -> out: x's shape.

    out = (x - mean) / sqrt(var + eps) * weight + bias, per channel. Training: mean and biased
    variance of the batch (over every axis but C), and the running statistics are updated in
    place with the unbiased variance. Evaluation: the running statistics.
    Works on channel rows (C, M) in x's memory order (`channel_rows`), and hands on its output
    and the input's gradient in that order. The mean is summed in float64, whose rounding does
    not depend on the memory order (NumPy sums float32 along a strided axis one by one).
    """

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        rows = channel_rows(x)
        self.channels_innermost = channels_innermost(rows)
        if training:
            mean, centered, var, self.count = self.batch_statistics(rows)
            update_running_statistics(running_mean, running_var, mean, var, self.count, momentum)
        else:
            mean, var = running_mean, running_var
            centered = rows - mean[:, None].astype(rows.dtype)
        inv_std = (1 / np.sqrt(var + eps)).astype(rows.dtype)
        scale = inv_std if weight is None else inv_std * weight
        out = centered * scale[:, None]
        if bias is not None:
            out += bias[:, None]
        self.centered, self.inv_std, self.scale, self.training = centered, inv_std, scale, training
        return from_channel_rows(out, x.shape)

    def batch_statistics(self, rows):
        """(mean, rows - mean, biased variance, count) of the batch's channel rows."""
        count = rows.shape[1]
        mean = rows.mean(axis=1, dtype=np.float64).astype(rows.dtype)
        centered = rows - mean[:, None]
        return mean, centered, np.vecdot(centered, centered) / count, count

    def whole_batch(self, grad_bias, projection):
        """The batch's sums of the gradient and of its projection on x - mean: this one's."""
        return grad_bias, projection

    def backward(self, grad):
        rows = channel_rows(grad, self.channels_innermost)
        grad_bias = rows.sum(axis=1)
        projection = np.vecdot(rows, self.centered)  # sum of grad * (x - mean), per channel
        grad_rows = rows * self.scale[:, None]
        if self.training:
            # The batch statistics depend on x too: remove the gradient's mean and its
            # projection on x_hat = (x - mean) * inv_std.
            whole_bias, whole_projection = self.whole_batch(grad_bias, projection)
            grad_rows -= (self.scale * whole_bias / self.count)[:, None]
            grad_rows -= (self.scale * whole_projection * self.inv_std ** 2 / self.count)[:, None] * self.centered
        grad_weight = projection * self.inv_std if self.needs_input_grad[1] else None
        return from_channel_rows(grad_rows, grad.shape), grad_weight, grad_bias if self.needs_input_grad[2] else None


class SynchronisedBatchNorm(BatchNorm):
    """`BatchNorm` in training whose statistics span the processes of a data-parallel job: each
    holds a share of the batch, and ``sum_across(array)`` sums a float64 array over them in place.
    The mean, the variance and, in backward, the two sums the input's gradient needs are the
    whole batch's, so every process computes what one process would for its share; the weight's
    and bias's gradients are this share's terms (the job sums parameter gradients itself).
    """

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, sum_across):
        self.sum_across = sum_across
        return super().forward(x, weight, bias, running_mean, running_var, True, momentum, eps)

    def batch_statistics(self, rows):
        totals = np.append(rows.sum(axis=1, dtype=np.float64), rows.shape[1])
        self.sum_across(totals)
        count = totals[-1]
        mean = totals[:-1] / count
        centered = rows - mean[:, None].astype(rows.dtype)
        squares = np.vecdot(centered, centered).astype(np.float64)
        self.sum_across(squares)
        return mean.astype(rows.dtype), centered, (squares / count).astype(rows.dtype), count

    def whole_batch(self, grad_bias, projection):
        whole = np.concatenate([grad_bias, projection]).astype(np.float64)
        self.sum_across(whole)
        return whole[:len(grad_bias)].astype(grad_bias.dtype), whole[len(grad_bias):].astype(projection.dtype)


class CompiledBatchNorm(Function):
    """`BatchNorm` on the compiled kernels; same arguments. Channel rows (C, M) in channel-major
    memory run kernels/normalization.py's kernels, channels-last ones (contiguous (M, C): (N, H,
    W, C) or (N, C) memory) their twins in kernels/normalization_channels_last.py, so neither
    layout is copied, and the output and the input's gradient keep the input's layout.

    Keeps the input's channel rows, the mean and 1/sqrt(var + eps) for backward, which recomputes
    x - mean instead of storing it: the forward writes one array, the output.
    """

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        rows = channel_rows(x)
        channels, count = rows.shape
        weight = np.ones(channels, rows.dtype) if weight is None else np.ascontiguousarray(weight, rows.dtype)
        bias = np.zeros(channels, rows.dtype) if bias is None else np.ascontiguousarray(bias, rows.dtype)
        out = np.empty_like(rows)  # rows' memory order
        if training:
            mean, var = np.empty(channels), np.empty(channels)
            kernel, view = _kernel_for("batch_norm_train_forward", rows)
            kernel(view(rows), weight, bias, float(eps), view(out), mean, var)
            update_running_statistics(running_mean, running_var, mean.astype(rows.dtype), var.astype(rows.dtype),
                                      count, momentum)
            inv_std = 1 / np.sqrt(var + eps)  # the kernel's, bit for bit
        else:
            mean, inv_std = running_mean.astype(np.float64), 1 / np.sqrt(running_var.astype(np.float64) + eps)
            kernel, view = _kernel_for("batch_norm_eval_forward", rows)
            kernel(view(rows), mean.astype(rows.dtype), (inv_std * weight).astype(rows.dtype), bias, view(out))
        self.rows, self.mean, self.inv_std, self.weight, self.training = rows, mean, inv_std, weight, training
        return from_channel_rows(out, x.shape)

    def backward(self, grad):
        grad_rows = channel_rows(grad, channels_innermost(self.rows)).astype(self.rows.dtype, copy=False)
        channels = grad_rows.shape[0]
        grad_input = np.empty_like(self.rows)
        grad_sum, projection = np.empty(channels), np.empty(channels)
        kernel, view = _kernel_for("batch_norm_backward", self.rows)
        kernel(view(grad_rows), view(self.rows), self.mean, self.inv_std, self.weight, self.training,
               view(grad_input), grad_sum, projection)
        dtype = grad_rows.dtype
        grad_weight = (projection * self.inv_std).astype(dtype) if self.needs_input_grad[1] else None
        grad_bias = grad_sum.astype(dtype) if self.needs_input_grad[2] else None
        return from_channel_rows(grad_input, grad.shape), grad_weight, grad_bias


def _kernel_for(name, rows):
    """The compiled kernel ``name`` for (C, M) rows in their memory order, and what to hand it for
    each (C, M) array: the channel-row kernel takes them as they are, its (M, C) twin transposed."""
    if channels_innermost(rows):
        return getattr(kernels, name + "_channels_last"), np.transpose
    return getattr(kernels, name), np.asarray


# The op on the kernels or, in the reference mode, in NumPy: two Functions with the same arguments.
_BATCH_NORM = kernels.Kernel(CompiledBatchNorm.apply, BatchNorm.apply)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               sum_across=None):
    """Batch normalisation, like ``torch.nn.functional.batch_norm``.

    input: (N, C) or (N, C, H, W); running_mean, running_var, weight, bias: (C,).
    When ``training``, normalises with batch statistics and updates the running statistics in
    place: running = (1 - momentum) * running + momentum * batch, with the *unbiased* variance
    stored (the biased one normalises). Otherwise normalises with the running statistics.
    ``sum_across``: in a data-parallel job whose processes each hold a share of the batch, a
    function summing a float64 array over them in place; the training statistics are then the
    whole batch's (`SynchronisedBatchNorm`, like ``torch.nn.SyncBatchNorm``).
    """
    op = "batch_norm"
    input = _checks.as_tensor(op, "input", input)
    if input.ndim not in (2, 4):
        raise InvalidValue(f"{op}: expected input of shape (N, C) or (N, C, H, W), got {input.shape}")
    channels = input.shape[1]
    for name, value in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and tuple(np.shape(value.data if isinstance(value, Tensor) else value)) != (channels,):
            raise InvalidValue(f"{op}: expected {name} of shape ({channels},), got {np.shape(value)}")
    running = [value.data if isinstance(value, Tensor) else value for value in (running_mean, running_var)]
    if training and input.data.size // channels < 2:
        raise InvalidValue(f"{op}: expected more than 1 value per channel when training, got input of shape "
                         f"{input.shape}")
    if not training and any(value is None for value in running):
        raise InvalidValue(f"{op}: running_mean and running_var are needed when not training")
    if training and sum_across is not None:
        return SynchronisedBatchNorm.apply(input, weight, bias, *running, momentum=momentum, eps=eps,
                                           sum_across=sum_across)
    # The kernels are compiled for float32 and float64; other dtypes take the NumPy implementation.
    apply = _BATCH_NORM if input.dtype in (np.float32, np.float64) else BatchNorm.apply
    return apply(input, weight, bias, *running, training=bool(training), momentum=momentum, eps=eps)
