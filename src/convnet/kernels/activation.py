"""ReLU as single passes over flat arrays.

NumPy's ``np.maximum(x, 0)`` and ``grad * (out > 0)`` cost two passes and a boolean temporary
for the backward; one compiled loop does each in one. The arrays are flat views of memory laid
out alike (the op hands over ``ravel(order='K')`` of arrays with equal strides). Each has its
NumPy reference after it.

At inference (nn/fusion.py) the same passes finish a convolution: `add_relu` ends a residual
block, and `bias_relu_max_pool` (channel-major) or `bias_relu_max_pool_last` (channels-last) adds
the bias that batch norm was folded into, rectifies and pools 2x2 in one pass over the output.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def relu_forward(x, out):
    """x: (M,) -> out: (M,) = max(x, 0); NaN stays NaN, as in torch.relu."""
    for i in prange(x.shape[0]):
        value = x[i]
        out[i] = 0 if value <= 0 else value


def relu_forward_reference(x, out):
    """`relu_forward` in NumPy."""
    np.copyto(out, np.where(x <= 0, 0, x))


@njit(cache=True, nogil=True, parallel=True)
def relu_backward(grad, out, grad_in):
    """grad, out: (M,) -> grad_in: (M,) = 0 where out <= 0 (even for an infinite grad), else grad
    (NaN outputs pass their gradient, as in torch's threshold_backward)."""
    for i in prange(grad.shape[0]):
        grad_in[i] = 0 if out[i] <= 0 else grad[i]


@njit(cache=True, nogil=True, parallel=True)
def add_relu(x, residual, out):
    """x, residual: (M,) -> out: (M,) = max(x + residual, 0), NaN staying NaN: a residual block's
    sum and ReLU in one pass (out may be x)."""
    for i in prange(x.shape[0]):
        value = x[i] + residual[i]
        out[i] = 0 if value <= 0 else value


def add_relu_reference(x, residual, out):
    """`add_relu` in NumPy."""
    value = x + residual
    np.copyto(out, np.where(value <= 0, 0, value))


def relu_backward_reference(grad, out, grad_in):
    """`relu_backward` in NumPy."""
    np.copyto(grad_in, np.where(out <= 0, 0, grad))


# ------------------------------------------------------------------ a convolution's inference epilogue
# What follows a convolution at inference, in the one pass that reads its output: the bias (batch
# norm folded into it), ReLU, and 2x2 max pooling with stride 2 (floor: an odd last row or column
# dropped). Pooling first, then the bias, is exact: adding one number to each of four values
# keeps their order, and rounding keeps it too. A NaN wins the window, as in torch.max_pool2d.
@njit(cache=True, nogil=True, inline="always")
def _larger(a, b):
    """max(a, b), NaN if either is (a NaN in a window wins, as in PyTorch's max pooling)."""
    return a if a > b or a != a else b


@njit(cache=True, nogil=True, inline="always")
def _finish(value, floor):
    """ReLU where ``floor`` is 0, the identity where it is -inf; NaN stays NaN. (A select on a floor
    the caller sets once: a test of the flag here kept the loops 1.4x slower, issue 30.)"""
    return floor if value <= floor else value


@njit(cache=True, nogil=True, parallel=True)
def bias_relu_max_pool(x, bias, relu, pool, out):
    """x: channel-major (O, N, H, W), bias: (O,) -> out: (O, N, H'', W''), any strides, written in full:
    out[o, n] = act(x[o, n] + bias[o]), act ReLU when ``relu`` else the identity; with ``pool`` each
    2x2 window's maximum, H'' = H // 2, W'' = W // 2 (else H'' = H, W'' = W). One plane per job."""
    o_count, n_count = x.shape[:2]
    out_h, out_w = out.shape[2:]
    floor = np.full(1, 0 if relu else -np.inf, out.dtype)[0]
    for job in prange(o_count * n_count):
        o, n = job // n_count, job % n_count
        b, source, target = bias[o], x[o, n], out[o, n]
        for y in range(out_h):
            row = target[y]
            if pool:
                upper, lower = source[2 * y], source[2 * y + 1]
                for column in range(out_w):
                    left = _larger(upper[2 * column], lower[2 * column])
                    right = _larger(upper[2 * column + 1], lower[2 * column + 1])
                    row[column] = _finish(_larger(left, right) + b, floor)
            else:
                line = source[y]
                for column in range(out_w):
                    row[column] = _finish(line[column] + b, floor)


@njit(cache=True, nogil=True, parallel=True)
def bias_relu_max_pool_last(x, bias, relu, pool, out):
    """`bias_relu_max_pool` channels innermost: x: (N, H, W, O), bias: (O,) -> out: (N, H'', W'', O),
    any strides, written in full. One output row per job; the inner loop runs along the channels."""
    n_count, out_h, out_w, o_count = out.shape
    floor = np.full(1, 0 if relu else -np.inf, out.dtype)[0]
    for job in prange(n_count * out_h):
        n, y = job // out_h, job % out_h
        for column in range(out_w):
            target = out[n, y, column]
            if pool:
                a, b = x[n, 2 * y, 2 * column], x[n, 2 * y, 2 * column + 1]
                c, d = x[n, 2 * y + 1, 2 * column], x[n, 2 * y + 1, 2 * column + 1]
                for k in range(o_count):
                    target[k] = _finish(_larger(_larger(a[k], b[k]), _larger(c[k], d[k])) + bias[k], floor)
            else:
                source = x[n, y, column]
                for k in range(o_count):
                    target[k] = _finish(source[k] + bias[k], floor)


def bias_relu_max_pool_reference(x, bias, relu, pool, out):
    """`bias_relu_max_pool` in NumPy: the bias, ReLU, then each 2x2 window's maximum."""
    value = x + bias.reshape(-1, 1, 1, 1)
    if relu:
        value = np.where(value <= 0, 0, value)
    if pool:
        o, n, out_h, out_w = out.shape
        value = value[:, :, :2 * out_h, :2 * out_w].reshape(o, n, out_h, 2, out_w, 2).max(axis=(3, 5))
    out[...] = value


def bias_relu_max_pool_last_reference(x, bias, relu, pool, out):
    """`bias_relu_max_pool_last` in NumPy, through the channel-major reference."""
    bias_relu_max_pool_reference(x.transpose(3, 0, 1, 2), bias, relu, pool, out.transpose(3, 0, 1, 2))
