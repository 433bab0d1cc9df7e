"""im2col and col2im with channels innermost, padding fused: issue 30's layout.

Both read or write the *unpadded* channels-last image (N, H, W, C) and the GEMM-ready columns
(N, H', W', kH, kW, C), a view of (N*H'*W', kH*kW*C): one row per output position, holding the
window's taps in (i, j) order, each tap a contiguous run of the C channels. Multiplied by the
weight as (kH*kW*C, O), the rows give (N*H'*W', O), which is the (N, H', W', O) output itself.
The geometry is as in kernels/columns.py: stride (sH, sW), dilation (dH, dW), the padding's
(top, left); output position (y, x) and tap (i, j) read input pixel
(y*sH + i*dH - top, x*sW + j*dW - left), zero (im2col) or dropped (col2im) in the padding.

With dilation 1 along the width, a window row's taps are one contiguous run of kW*C values in
the image, so im2col copies whole runs (for a first layer's 3 channels, runs of 3*C to 7*C
values rather than C). col2im adds C-runs tap by tap, to keep the reference's order.

References: `im2col_reference` and `col2im_reference`, one strided copy (or add) per tap on a
padded copy, as in kernels/columns.py.
"""

import numpy as np
from numba import njit, prange

from .columns import _output_row_tapping, _padded_hw, _taps_in_image


@njit(cache=True, nogil=True, parallel=True)
def im2col(image, stride, dilation, top_left, columns):
    """image: channels-last (N, H, W, C), C-contiguous -> columns: (N, H', W', kH, kW, C),
    C-contiguous, written in full.

    columns[n, y, x, i, j, c] = image[n, y*sH + i*dH - top, x*sW + j*dW - left, c], or 0 where
    that pixel is in the padding. stride, dilation, top_left: pairs of ints.
    """
    n_count, h, w, c = image.shape
    out_h, out_w, kh, kw = columns.shape[1], columns.shape[2], columns.shape[3], columns.shape[4]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    pixels = image.reshape(n_count, h, w * c)
    rows = columns.reshape(n_count, out_h, out_w, kh, kw * c)
    # The threads share out output rows (n, y): each writes its own W'*kH*kW*C values.
    for row_index in prange(n_count * out_h):
        n, y = row_index // out_h, row_index % out_h
        for x in range(out_w):
            col_offset = x * sw - left
            j_lo, j_hi = _taps_in_image(w, kw, dw, col_offset)
            for i in range(kh):
                dst = rows[n, y, x, i]
                r = y * sh + i * dh - top
                if r < 0 or r >= h:
                    for k in range(kw * c):
                        dst[k] = 0
                    continue
                for k in range(j_lo * c):
                    dst[k] = 0
                for k in range(j_hi * c, kw * c):
                    dst[k] = 0
                src = pixels[n, r]
                if dw == 1:  # the taps j_lo..j_hi-1 are one contiguous run of the image's row
                    start = (col_offset + j_lo) * c
                    run = dst[j_lo * c:]
                    for k in range((j_hi - j_lo) * c):
                        run[k] = src[start + k]
                else:
                    for j in range(j_lo, j_hi):
                        start = (col_offset + j * dw) * c
                        for k in range(c):
                            dst[j * c + k] = src[start + k]


@njit(cache=True, nogil=True, parallel=True)
def col2im(columns, stride, dilation, top_left, image):
    """Adjoint of `im2col`: columns (N, H', W', kH, kW, C), C-contiguous -> image: channels-last
    (N, H, W, C), C-contiguous, overwritten with the sums.

    image[n, p, q, c] = sum of columns[n, y, x, i, j, c] over the taps with
    y*sH + i*dH - top = p and x*sW + j*dW - left = q, added in (i, j) order (each tap adds at
    most one term to a pixel), so the result is bit-identical to the reference's tap-by-tap sum
    and does not depend on the thread count; taps in the padding are dropped.
    """
    n_count, h, w, c = image.shape
    out_h, out_w, kh, kw = columns.shape[1], columns.shape[2], columns.shape[3], columns.shape[4]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    # The threads share out image rows (n, p): each builds its own W*C sums, in cache, from the
    # output rows y whose taps land on it.
    for row_index in prange(n_count * h):
        n, p = row_index // h, row_index % h
        dst = image[n, p]
        dst[:] = 0
        for i in range(kh):
            y = _output_row_tapping(p, i, top, dh, sh, out_h)
            if y < 0:
                continue
            for j in range(kw):
                col_offset = j * dw - left
                x_lo, x_hi = _taps_in_image(w, out_w, sw, col_offset)
                # One (W', C) view per tap, not one per output position: 0.75-0.9x the time on
                # 16-64 channels (1 thread; issue 30).
                src = columns[n, y, :, i, j]
                for x in range(x_lo, x_hi):
                    q = x * sw + col_offset
                    for k in range(c):
                        dst[q, k] += src[x, k]


# ------------------------------------------------------------------ NumPy references
def _tap_view(padded, i, j, stride, dilation, out_hw):
    """The (N, H', W', C) view of the padded channels-last image under tap (i, j) at every output
    position."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return padded[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


def im2col_reference(image, stride, dilation, top_left, columns):
    """`im2col` in NumPy: one strided copy per tap from a padded copy of the image."""
    (n, h, w, c), (top, left) = image.shape, top_left
    out_hw, (kh, kw) = columns.shape[1:3], columns.shape[3:5]
    padded = np.zeros((n,) + _padded_hw((h, w), (kh, kw), stride, dilation, top_left, out_hw) + (c,),
                      dtype=image.dtype)
    padded[:, top:top + h, left:left + w] = image
    for i in range(kh):
        for j in range(kw):
            columns[:, :, :, i, j] = _tap_view(padded, i, j, stride, dilation, out_hw)


def col2im_reference(columns, stride, dilation, top_left, image):
    """`col2im` in NumPy: one strided add per tap, in (i, j) order, into a padded image, whose
    interior is then the result."""
    (n, h, w, c), (top, left) = image.shape, top_left
    out_hw, (kh, kw) = columns.shape[1:3], columns.shape[3:5]
    padded = np.zeros((n,) + _padded_hw((h, w), (kh, kw), stride, dilation, top_left, out_hw) + (c,),
                      dtype=image.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap_view(padded, i, j, stride, dilation, out_hw)[...] += columns[:, :, :, i, j]
    image[...] = padded[:, top:top + h, left:left + w]
