"""Convolution's memory-bound passes, compiled: im2col and its adjoint col2im, padding fused.

Both read or write the *unpadded* channel-major image (C, N, H, W) and the GEMM-ready columns
(C, kH, kW, N, H', W') (a view of (C*kH*kW, N*H'*W')), so no padded copy is ever made: a tap
that falls in the padding reads as zero (im2col) or is dropped (col2im). The geometry is the
stride (sH, sW), dilation (dH, dW) and the padding's (top, left); bottom and right padding
follow from H' and W' in the columns' shape. Output position (y, x) and tap (i, j) read input
pixel (y*sH + i*dH - top, x*sW + j*dW - left).

The innermost loops run along the contiguous output width, and stride 1 gets its own: a
plain contiguous copy or add that LLVM vectorises (with the stride as a runtime multiplier it
does not).

References: `im2col_reference` and `col2im_reference`, one strided copy (or add) per tap on a
padded copy.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _taps_in_image(size, out_size, stride, offset):
    """The output positions [lo, hi) whose tap at ``offset`` (i*d - pad_before) lies in 0..size-1."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(out_size, -((offset - size) // stride))  # ceil((size - offset) / stride)
    return lo, max(lo, hi)


@njit(cache=True, nogil=True)
def _output_row_tapping(row, i, top, dilation, stride, out_size):
    """The output row y whose tap i reads input ``row`` (y*stride + i*dilation - top = row), or -1
    when none does: what a gather over input rows (col2im) asks of each tap."""
    t = row + top - i * dilation
    return t // stride if t >= 0 and t % stride == 0 and t // stride < out_size else -1


@njit(cache=True, nogil=True, parallel=True)
def im2col(image, stride, dilation, top_left, columns):
    """image: channel-major (C, N, H, W) -> columns: (C, kH, kW, N, H', W'), written in full.

    columns[c, i, j, n, y, x] = image[c, n, y*sH + i*dH - top, x*sW + j*dW - left], or 0 where
    that pixel is in the padding. stride, dilation, top_left: pairs of ints.
    """
    c_count, n_count, h, w = image.shape
    kh, kw, out_h, out_w = columns.shape[1], columns.shape[2], columns.shape[4], columns.shape[5]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    # The threads share out (channel, run of images) blocks: a first layer's single channel is
    # split into runs of images so that it still keeps every thread busy. (A fixed count of 8:
    # asking Numba for its thread count here would stop the kernel from being cached.)
    runs = min(n_count, 8) if c_count < 8 else 1
    per_run = (n_count + runs - 1) // runs
    for block_index in prange(c_count * runs):
        c = block_index // runs
        first, end = (block_index % runs) * per_run, min(n_count, (block_index % runs + 1) * per_run)
        # Tap by tap, so the writes are one stream of N*H'*W' values (measured 1.5x faster than
        # image by image, which interleaves kH*kW short streams); one channel stays in cache.
        for i in range(kh):
            row_offset = i * dh - top
            y_lo, y_hi = _taps_in_image(h, out_h, sh, row_offset)
            for j in range(kw):
                col_offset = j * dw - left
                x_lo, x_hi = _taps_in_image(w, out_w, sw, col_offset)
                start = x_lo * sw + col_offset
                for n in range(first, end):
                    block = columns[c, i, j, n]
                    for y in range(out_h):
                        row = block[y]
                        if y < y_lo or y >= y_hi:
                            for x in range(out_w):
                                row[x] = 0
                            continue
                        for x in range(x_lo):
                            row[x] = 0
                        for x in range(x_hi, out_w):
                            row[x] = 0
                    # The stride test is outside the row loops: inside them it kept LLVM from
                    # vectorising the stride-1 copy (measured 2x slower).
                    if sw == 1:
                        for y in range(y_lo, y_hi):
                            dst, src = block[y, x_lo:], image[c, n, y * sh + row_offset, start:]
                            for x in range(x_hi - x_lo):
                                dst[x] = src[x]
                    else:
                        for y in range(y_lo, y_hi):
                            dst, src = block[y, x_lo:], image[c, n, y * sh + row_offset, start:]
                            for x in range(x_hi - x_lo):
                                dst[x] = src[x * sw]


@njit(cache=True, nogil=True, parallel=True)
def col2im(columns, stride, dilation, top_left, image):
    """Adjoint of `im2col`: columns (C, kH, kW, N, H', W') -> image: channel-major (C, N, H, W),
    overwritten with the sums.

    image[c, n, p, q] = sum of columns[c, i, j, n, y, x] over the taps with
    y*sH + i*dH - top = p and x*sW + j*dW - left = q, added in (i, j) order, so the result is
    bit-identical to the reference's tap-by-tap sum; taps in the padding are dropped.
    """
    c_count, n_count, h, w = image.shape
    kh, kw, out_h, out_w = columns.shape[1], columns.shape[2], columns.shape[4], columns.shape[5]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    # Image by image, so the H*W sums being built stay in L1 while kH*kW column rows stream in
    # (measured 2x faster than tap by tap over the whole channel); the threads share out images.
    for image_index in prange(c_count * n_count):
        c, n = image_index // n_count, image_index % n_count
        dst_image = image[c, n]
        dst_image[:] = 0
        for i in range(kh):
            row_offset = i * dh - top
            y_lo, y_hi = _taps_in_image(h, out_h, sh, row_offset)
            for j in range(kw):
                col_offset = j * dw - left
                x_lo, x_hi = _taps_in_image(w, out_w, sw, col_offset)
                width, start = x_hi - x_lo, x_lo * sw + col_offset
                for y in range(y_lo, y_hi):
                    # Slices that start at the first valid tap, so the indices below count
                    # from 0 and LLVM vectorises the stride-1 add.
                    src = columns[c, i, j, n, y, x_lo:]
                    dst = dst_image[y * sh + row_offset, start:]
                    if sw == 1:
                        for x in range(width):
                            dst[x] += src[x]
                    else:
                        for x in range(width):
                            dst[x * sw] += src[x]


# ------------------------------------------------------------------ NumPy references
def _padded_hw(image_hw, kernel, stride, dilation, top_left, out_hw):
    """A padded image's (Hp, Wp) that holds every tap of every output and the whole image."""
    return tuple(max((o - 1) * s + d * (k - 1) + 1, before + size)
                 for size, k, s, d, before, o in zip(image_hw, kernel, stride, dilation, top_left, out_hw))


def _tap_view(padded, i, j, stride, dilation, out_hw):
    """The (C, N, H', W') view of ``padded`` under tap (i, j) at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return padded[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


def im2col_reference(image, stride, dilation, top_left, columns):
    """`im2col` in NumPy: one strided copy per tap from a padded copy of the image."""
    (c, n, h, w), (top, left) = image.shape, top_left
    kh, kw, out_hw = columns.shape[1], columns.shape[2], columns.shape[4:]
    padded = np.zeros((c, n) + _padded_hw((h, w), (kh, kw), stride, dilation, top_left, out_hw), dtype=image.dtype)
    padded[:, :, top:top + h, left:left + w] = image
    for i in range(kh):
        for j in range(kw):
            columns[:, i, j] = _tap_view(padded, i, j, stride, dilation, out_hw)


def col2im_reference(columns, stride, dilation, top_left, image):
    """`col2im` in NumPy: one strided add per tap, in (i, j) order, into a padded image, whose
    interior is then the result (never ``np.add.at``, an order of magnitude slower)."""
    (c, n, h, w), (top, left) = image.shape, top_left
    kh, kw, out_hw = columns.shape[1], columns.shape[2], columns.shape[4:]
    padded = np.zeros((c, n) + _padded_hw((h, w), (kh, kw), stride, dilation, top_left, out_hw), dtype=image.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap_view(padded, i, j, stride, dilation, out_hw)[...] += columns[:, i, j]
    image[...] = padded[:, :, top:top + h, left:left + w]
