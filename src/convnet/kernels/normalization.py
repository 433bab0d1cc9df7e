"""Batch normalisation over channel rows (C, M), M = N*H*W: per channel, one pass for the
statistics and one to write the result, while the channel's row is still in cache.

Channel-major activations (what convolution hands on) are these rows without a copy. Sums run
in float64 whatever the data's dtype. The batch variance is the sum of squares about a shift,
the row's first value: unlike E[x^2] - E[x]^2 it does not cancel when the mean is large
compared with the spread (a channel offset by 1e3), and it needs one pass instead of two.

Each kernel's NumPy reference follows it, with the same arguments and the same float64 sums.
(`convnet.functional.normalization.BatchNorm` is the op's NumPy implementation, which the
reference mode runs instead of the kernels.)
"""

import numpy as np
from numba import njit, prange


# fastmath: only 'reassoc', so that LLVM may split the sums into vector lanes (5x here). It
# changes float64 roundings only, ~1e-16 relative, far below the float32 results tests compare.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sums_about(row, shift):
    """row: (M,) -> (sum of row - shift, sum of (row - shift)^2), both float64."""
    total, squares = 0.0, 0.0
    for i in range(row.shape[0]):
        d = row[i] - shift
        total += d
        squares += d * d
    return total, squares


@njit(cache=True, nogil=True, fastmath={"reassoc"})  # 'reassoc' for vector lanes, as in `_sums_about`
def _grad_sums(grad_row, row, mean):
    """grad_row, row: (M,) -> (sum of grad, sum of grad * (row - mean)), both float64."""
    total, projection = 0.0, 0.0
    for i in range(row.shape[0]):
        g = np.float64(grad_row[i])
        total += g
        projection += g * (row[i] - mean)
    return total, projection


# error_model="numpy" here and in the backward: 1 / sqrt(0) is inf, as in the NumPy reference
# (a constant channel with eps=0), not Python's ZeroDivisionError.
@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def batch_norm_train_forward(rows, weight, bias, eps, out, mean, var):
    """rows: (C, M) with M >= 2; weight, bias: (C,) in rows' dtype -> out: (C, M), mean, var: (C,) float64.

    mean and the biased var are the batch's, per channel; out = (rows - mean) / sqrt(var + eps)
    * weight + bias, computed in rows' dtype like the reference.
    """
    channels, count = rows.shape
    for c in prange(channels):
        row = rows[c]
        shift = np.float64(row[0])
        total, squares = _sums_about(row, shift)
        offset = total / count
        mean[c] = shift + offset
        var[c] = max(squares / count - offset * offset, 0.0)
        inv_std = 1.0 / np.sqrt(var[c] + eps)
        mu, scale, b = rows.dtype.type(mean[c]), rows.dtype.type(inv_std * weight[c]), bias[c]
        for i in range(count):
            out[c, i] = (row[i] - mu) * scale + b


def batch_norm_train_forward_reference(rows, weight, bias, eps, out, mean, var):
    """`batch_norm_train_forward` in NumPy."""
    wide = rows.astype(np.float64)
    mean[:] = wide.mean(axis=1)
    var[:] = np.maximum(((wide - mean[:, None]) ** 2).mean(axis=1), 0.0)
    scale = (1.0 / np.sqrt(var + eps) * weight).astype(rows.dtype)
    out[...] = (rows - mean.astype(rows.dtype)[:, None]) * scale[:, None] + bias[:, None]


@njit(cache=True, nogil=True, parallel=True)
def batch_norm_eval_forward(rows, mean, scale, bias, out):
    """rows: (C, M); mean, scale, bias: (C,) in rows' dtype -> out: (C, M) = (rows - mean) * scale + bias.

    With the running statistics, scale = weight / sqrt(running_var + eps).
    """
    channels, count = rows.shape
    for c in prange(channels):
        mu, s, b = mean[c], scale[c], bias[c]
        for i in range(count):
            out[c, i] = (rows[c, i] - mu) * s + b


def batch_norm_eval_forward_reference(rows, mean, scale, bias, out):
    """`batch_norm_eval_forward` in NumPy."""
    out[...] = (rows - mean[:, None]) * scale[:, None] + bias[:, None]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def batch_norm_backward(grad_rows, rows, mean, inv_std, weight, training, grad_input, grad_sum, projection):
    """grad_rows, rows: (C, M); mean, inv_std: (C,) float64; weight: (C,) in rows' dtype ->
    grad_input: (C, M), grad_sum, projection: (C,) float64.

    grad_sum = sum of grad (the bias's gradient) and projection = sum of grad * (x - mean) (times
    inv_std, the weight's gradient), per channel. grad_input = grad * scale, scale = inv_std *
    weight; when ``training`` the batch statistics depend on x too, so the gradient's mean and
    its projection on x_hat = (x - mean) * inv_std are removed first.
    """
    channels, count = rows.shape
    for c in prange(channels):
        grad_sum[c], projection[c] = _grad_sums(grad_rows[c], rows[c], mean[c])
        scale = inv_std[c] * weight[c]
        s = rows.dtype.type(scale)
        if training:
            shift = rows.dtype.type(-scale * grad_sum[c] / count)
            slope = rows.dtype.type(scale * projection[c] * inv_std[c] * inv_std[c] / count)
            mu = rows.dtype.type(mean[c])
            for i in range(count):
                grad_input[c, i] = grad_rows[c, i] * s + shift - (rows[c, i] - mu) * slope
        else:
            for i in range(count):
                grad_input[c, i] = grad_rows[c, i] * s


def batch_norm_backward_reference(grad_rows, rows, mean, inv_std, weight, training, grad_input, grad_sum, projection):
    """`batch_norm_backward` in NumPy."""
    count, dtype = rows.shape[1], rows.dtype.type
    grad_wide = grad_rows.astype(np.float64)
    grad_sum[:] = grad_wide.sum(axis=1)
    projection[:] = (grad_wide * (rows - mean[:, None])).sum(axis=1)
    scale = inv_std * weight
    grad_input[...] = grad_rows * scale.astype(dtype)[:, None]
    if training:
        shift = (-scale * grad_sum / count).astype(dtype)
        slope = (scale * projection * inv_std * inv_std / count).astype(dtype)
        grad_input += shift[:, None]
        grad_input -= (rows - mean.astype(dtype)[:, None]) * slope[:, None]
