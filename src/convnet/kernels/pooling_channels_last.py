"""Max pooling over channels-last images (N, H, W, C), the channel loop innermost.

Each output pixel's channels are one contiguous vector, so a window's maximum is a
compare-and-select over whole vectors, tap by tap, which LLVM vectorises; the channel-major
kernels in kernels/pooling.py run along a plane's rows instead, where windows overlap and the
argmax needs branches. The semantics are theirs: the winner of every window is recorded as its
flat index iy*W + ix within the image, padding counts as -inf (a window never picks a padded
position, and a window whose values are all -inf picks its first real position), ties go to the
first maximum in row-major window order and NaN wins (the last NaN, if several), as in PyTorch.

The backward gives each input pixel the sum of the gradients of the windows that chose it,
added in decreasing output position, the order in which the channel-major backward's scatter
adds them, so both layouts give the same floats. With many channels each input pixel gathers
them from the windows that cover it, vectorised across channels, and is written once, by one
thread; with few, each image scatters its outputs' gradients, a thread per image. Either way
no two threads write the same place, and the caller need not zero anything.

Few channels make the channel loop too short to vectorise: below WIDE_CHANNELS the kernels take
one channel at a time, its window's maximum or its gradient's sum in a register.

Each kernel's NumPy reference follows it: the forward tap by tap over every output at once, the
backward as a scatter, output by output, last to first.
"""

import numpy as np
from numba import njit, prange

# From this many channels up the kernels run the channel loop innermost (measured for issue 30,
# batch 128: at 3 channels the per-channel forms took 0.2-0.7x the vectorised ones' time, at 8
# the vectorised forward 0.1-0.15x and the gather 0.7-1.2x the scatter's; from 16 the gather
# 0.2-0.8x).
WIDE_CHANNELS = 8


@njit(cache=True, nogil=True)
def _outputs_covering(position, out_size, kernel, stride, pad):
    """The outputs [first, last] whose windows [o*stride - pad, o*stride - pad + kernel) hold
    input ``position`` (first > last when none does)."""
    return max(0, -((kernel - 1 - position - pad) // stride)), min(out_size - 1, (position + pad) // stride)


@njit(cache=True, nogil=True, parallel=True)
def max_pool_forward(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out, argmax):
    """x: (N, H, W, C) -> out: (N, H', W', C) window maxima, argmax: (N, H', W', C) int32 flat
    indices iy*W + ix; the caller allocates both.

    H' = (H + top + bottom - kernel_h) // stride_h + 1 (likewise W'), pad_h and pad_w being the
    top and left padding (ceil_mode's last windows, reaching past the bottom and right padding,
    are a larger H' and W'). Windows are clipped to the image, which is what -inf padding amounts
    to; each must hold a pixel.
    Threads take whole output rows. (No slices in the loops: each would count references to the
    array atomically, which threads contend for.)
    """
    images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in prange(images * out_h):
        n, oy = row // out_h, row % out_h
        top = oy * stride_h - pad_h
        y0, y1 = max(top, 0), min(top + kernel_h, height)
        for ox in range(out_w):
            left = ox * stride_w - pad_w
            x0, x1 = max(left, 0), min(left + kernel_w, width)
            first = y0 * width + x0
            if channels < WIDE_CHANNELS:
                for c in range(channels):
                    value, winner = x[n, y0, x0, c], first
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            candidate = x[n, iy, ix, c]
                            if candidate > value or candidate != candidate:
                                value, winner = candidate, iy * width + ix
                    out[n, oy, ox, c], argmax[n, oy, ox, c] = value, winner
                continue
            for c in range(channels):
                out[n, oy, ox, c] = x[n, y0, x0, c]
                argmax[n, oy, ox, c] = first
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    at = iy * width + ix
                    for c in range(channels):
                        candidate, value = x[n, iy, ix, c], out[n, oy, ox, c]
                        # strictly greater keeps the first of ties
                        take = (candidate > value) | (candidate != candidate)
                        out[n, oy, ox, c] = candidate if take else value
                        argmax[n, oy, ox, c] = at if take else argmax[n, oy, ox, c]


def max_pool_forward_reference(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out, argmax):
    """`max_pool_forward` in NumPy: the window's taps in row-major order, a tap taking the window
    when it is the window's first real position, greater than the best so far, or NaN."""
    images, height, width, channels = x.shape
    out_h, out_w = out.shape[1:3]
    rows = np.arange(out_h)[:, None] * stride_h - pad_h
    cols = np.arange(out_w)[None, :] * stride_w - pad_w
    best = np.zeros(out.shape, dtype=x.dtype)
    where = np.full(out.shape, -1, dtype=np.int64)
    pixels = x.reshape(images, height * width, channels)
    for i in range(kernel_h):
        for j in range(kernel_w):
            y, x_ = rows + i, cols + j
            real = ((y >= 0) & (y < height) & (x_ >= 0) & (x_ < width))[None, :, :, None]
            flat = np.clip(y, 0, height - 1) * width + np.clip(x_, 0, width - 1)
            value = pixels[:, flat, :]
            take = real & ((where < 0) | (value > best) | np.isnan(value))
            best = np.where(take, value, best)
            where = np.where(take, flat[None, :, :, None], where)
    out[...] = best
    argmax[...] = where


@njit(cache=True, nogil=True, parallel=True)
def max_pool_backward(grad_out, argmax, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, grad_in):
    """grad_out, argmax: (N, H', W', C) -> grad_in: (N, H, W, C), every element written.

    Each input pixel gets the sum of the gradients of the windows that chose it, added in
    decreasing output position (the geometry as in `max_pool_forward`). From WIDE_CHANNELS
    channels up each input pixel gathers them from the windows that cover it, vectorised across
    channels, threads taking whole input rows; below, each image scatters its outputs' gradients,
    a thread per image (the gather's per-pixel work then outweighs its few channels: 20-30x
    slower at 2 channels; the scatter 1.2-1.5x slower at 8, 1.8x at 130).
    """
    images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    zero = grad_in.dtype.type(0)
    if channels < WIDE_CHANNELS:
        for n in prange(images):
            for iy in range(height):
                for ix in range(width):
                    for c in range(channels):
                        grad_in[n, iy, ix, c] = zero
            for oy in range(out_h - 1, -1, -1):
                for ox in range(out_w - 1, -1, -1):
                    for c in range(channels):
                        at = argmax[n, oy, ox, c]
                        grad_in[n, at // width, at % width, c] += grad_out[n, oy, ox, c]
    else:
        for row in prange(images * height):
            n, iy = row // height, row % height
            oy_first, oy_last = _outputs_covering(iy, out_h, kernel_h, stride_h, pad_h)
            for ix in range(width):
                ox_first, ox_last = _outputs_covering(ix, out_w, kernel_w, stride_w, pad_w)
                at = iy * width + ix
                for c in range(channels):
                    grad_in[n, iy, ix, c] = zero
                for oy in range(oy_last, oy_first - 1, -1):
                    for ox in range(ox_last, ox_first - 1, -1):
                        for c in range(channels):
                            grad = grad_out[n, oy, ox, c] if argmax[n, oy, ox, c] == at else zero
                            grad_in[n, iy, ix, c] += grad


def max_pool_backward_reference(grad_out, argmax, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, grad_in):
    """`max_pool_backward` in NumPy, as a scatter: one output position at a time, last to first,
    each adding its gradient at its winners in every image and channel at once."""
    images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1:3]
    flat = np.zeros((images, height * width, channels), dtype=grad_in.dtype)
    image, channel = np.arange(images)[:, None], np.arange(channels)[None, :]
    for o in range(out_h * out_w - 1, -1, -1):
        oy, ox = divmod(o, out_w)
        flat[image, argmax[:, oy, ox, :], channel] += grad_out[:, oy, ox, :]
    grad_in[...] = flat.reshape(grad_in.shape)


@njit(cache=True, nogil=True, parallel=True)
def max_pool_2x2_forward(x, out, argmax):
    """`max_pool_forward` for kernel 2, stride 2, no padding: x: (N, H, W, C) -> out, argmax:
    (N, H//2, W//2, C).

    The four taps are unrolled into selects within one pass over the channels, so the running
    maximum stays in registers instead of going through ``out`` tap by tap.
    """
    images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in prange(images * out_h):
        n, oy = row // out_h, row % out_h
        y = 2 * oy
        for ox in range(out_w):
            at, x0 = y * width + 2 * ox, 2 * ox
            for c in range(channels):
                value, winner = x[n, y, x0, c], at
                candidate = x[n, y, x0 + 1, c]
                take = (candidate > value) | (candidate != candidate)
                value, winner = (candidate, at + 1) if take else (value, winner)
                candidate = x[n, y + 1, x0, c]
                take = (candidate > value) | (candidate != candidate)
                value, winner = (candidate, at + width) if take else (value, winner)
                candidate = x[n, y + 1, x0 + 1, c]
                take = (candidate > value) | (candidate != candidate)
                value, winner = (candidate, at + width + 1) if take else (value, winner)
                out[n, oy, ox, c], argmax[n, oy, ox, c] = value, winner


def max_pool_2x2_forward_reference(x, out, argmax):
    """`max_pool_2x2_forward` in NumPy."""
    max_pool_forward_reference(x, 2, 2, 2, 2, 0, 0, out, argmax)


@njit(cache=True, nogil=True, parallel=True)
def max_pool_2x2_backward(grad_out, argmax, grad_in):
    """`max_pool_backward` for kernel 2, stride 2, no padding: grad_out, argmax: (N, H', W', C) ->
    grad_in: (N, H, W, C), every element written (an odd last row or column, which no window
    covers, with zeros). Threads take whole output rows, that is pairs of input rows.

    From WIDE_CHANNELS channels up each input pixel is written in one pass over its channels
    (one store stream); below, each output's four pixels are written in one pass, sharing its
    loads and loop overhead (measured: the one-stream form 2-5x faster at 16-130 channels, the
    four-stream form 2-4x faster at 1-3).
    """
    images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    zero = grad_in.dtype.type(0)
    for row in prange(images * out_h):
        n, oy = row // out_h, row % out_h
        if channels >= WIDE_CHANNELS:
            for iy in range(2 * oy, 2 * oy + 2):
                for ix in range(2 * out_w):
                    at, ox = iy * width + ix, ix // 2
                    for c in range(channels):
                        grad_in[n, iy, ix, c] = grad_out[n, oy, ox, c] if argmax[n, oy, ox, c] == at else zero
        else:
            for ox in range(out_w):
                at = 2 * oy * width + 2 * ox
                for c in range(channels):
                    grad, winner = grad_out[n, oy, ox, c], argmax[n, oy, ox, c]
                    grad_in[n, 2 * oy, 2 * ox, c] = grad if winner == at else zero
                    grad_in[n, 2 * oy, 2 * ox + 1, c] = grad if winner == at + 1 else zero
                    grad_in[n, 2 * oy + 1, 2 * ox, c] = grad if winner == at + width else zero
                    grad_in[n, 2 * oy + 1, 2 * ox + 1, c] = grad if winner == at + width + 1 else zero
        grad_in[n, 2 * oy:2 * oy + 2, 2 * out_w:] = zero
    for n in range(images):
        grad_in[n, 2 * out_h:] = zero


def max_pool_2x2_backward_reference(grad_out, argmax, grad_in):
    """`max_pool_2x2_backward` in NumPy."""
    max_pool_backward_reference(grad_out, argmax, 2, 2, 2, 2, 0, 0, grad_in)


@njit(cache=True, nogil=True, parallel=True)
def window_sum(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out):
    """x: (N, H, W, C) -> out: (N, H', W', C), each window's sum, its taps added in row-major
    order (padding adds nothing): average pooling's numerator. The geometry as in
    `max_pool_forward`; threads take whole output rows."""
    images, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    zero = out.dtype.type(0)
    for row in prange(images * out_h):
        n, oy = row // out_h, row % out_h
        top = oy * stride_h - pad_h
        for ox in range(out_w):
            left = ox * stride_w - pad_w
            for c in range(channels):
                out[n, oy, ox, c] = zero
            for iy in range(max(top, 0), min(top + kernel_h, height)):
                for ix in range(max(left, 0), min(left + kernel_w, width)):
                    for c in range(channels):
                        out[n, oy, ox, c] += x[n, iy, ix, c]


def window_sum_reference(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out):
    """`window_sum` in NumPy: the zero-padded input's strided view under each tap, added in turn."""
    images, height, width, channels = x.shape
    out_h, out_w = out.shape[1:3]
    padded = np.zeros((images, max(height + pad_h, (out_h - 1) * stride_h + kernel_h),
                       max(width + pad_w, (out_w - 1) * stride_w + kernel_w), channels), dtype=x.dtype)
    padded[:, pad_h:pad_h + height, pad_w:pad_w + width] = x
    out[...] = 0
    for i in range(kernel_h):
        for j in range(kernel_w):
            out += padded[:, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]


@njit(cache=True, nogil=True, parallel=True)
def window_sum_backward(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, grad_in):
    """The adjoint of `window_sum`: grad_out: (N, H', W', C) -> grad_in: (N, H, W, C), every
    element written with the sum of the gradients of the windows that cover it, added in
    decreasing output position (as `max_pool_backward` adds, and the channel-major average
    pooling's tap-by-tap scatter). Threads take whole input rows."""
    images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    zero = grad_in.dtype.type(0)
    for row in prange(images * height):
        n, iy = row // height, row % height
        oy_first, oy_last = _outputs_covering(iy, out_h, kernel_h, stride_h, pad_h)
        for ix in range(width):
            ox_first, ox_last = _outputs_covering(ix, out_w, kernel_w, stride_w, pad_w)
            for c in range(channels):
                grad_in[n, iy, ix, c] = zero
            for oy in range(oy_last, oy_first - 1, -1):
                for ox in range(ox_last, ox_first - 1, -1):
                    for c in range(channels):
                        grad_in[n, iy, ix, c] += grad_out[n, oy, ox, c]


def window_sum_backward_reference(grad_out, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, grad_in):
    """`window_sum_backward` in NumPy: each tap's gradients added to its strided view of a padded
    array, the taps in row-major order (that is, each position's windows in decreasing order)."""
    images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1:3]
    padded = np.zeros((images, max(height + pad_h, (out_h - 1) * stride_h + kernel_h),
                       max(width + pad_w, (out_w - 1) * stride_w + kernel_w), channels), dtype=grad_in.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            padded[:, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w] += grad_out
    grad_in[...] = padded[:, pad_h:pad_h + height, pad_w:pad_w + width]
