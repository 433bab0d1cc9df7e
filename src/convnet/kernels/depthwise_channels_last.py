"""Depthwise convolution (groups == in_channels == out_channels) with channels innermost: issue
30's layout for kernels/depthwise.py's convolution.

Images are channels-last (N, H, W, C), the weight (kH, kW, C) (PyTorch's (C, 1, kH, kW)
rearranged), the output (N, H', W', C), all C-contiguous. With stride (sH, sW), dilation
(dH, dW) and the padding's (top, left) (bottom and right follow from H' and W'):

    out[n, y, x, c]  = sum_{i, j} weight[i, j, c] * image[n, y*sH + i*dH - top, x*sW + j*dW - left, c]
    grad_image[n, p, q, c] = sum of weight[i, j, c] * grad_out[n, y, x, c]
                             over the (i, j, y, x) with y*sH + i*dH - top = p, x*sW + j*dW - left = q
    grad_weight[i, j, c] = sum_{n, y, x} grad_out[n, y, x, c] * image[n, y*sH + i*dH - top, x*sW + j*dW - left, c]

with pixels in the padding read as zero. Every tap is one multiply-add of two contiguous runs of C
values into a third, which LLVM vectorises across the channels; the channel-major kernels instead
run along rows of 7..32 pixels whose windows overlap. Taps in the padding are skipped, not read as
zeros, so no padded copy is made.

The forward and the input gradient are shared out by rows: the forward's output rows (n, y), the
input gradient's image rows (n, p), each gathered from the output-gradient rows whose taps land
on it, so no two threads write the same place and each sum adds its taps in a fixed order. The
weight gradient is summed in float64 over a fixed number of row blocks, each block's partial
sums added in block order, so the result does not depend on the thread count.

kernels/convolution.py runs these for a depthwise convolution whose input (or, for the input
gradient, output gradient) is channels-last memory, and hands the output on channels-last;
any other input runs kernels/depthwise.py. Forward and forward+backward of F.conv2d, 3x3 pad 1
on 64 channels at 32x32, batch 16 and 64, on a 2-core AMD EPYC shared with other work (so
rough; medians of 10 interleaved rounds in one process, issue 30): on channels-last input
0.22-0.38x (forward) and 0.38-0.48x (forward+backward) of the time of copying it to
channel-major for kernels/depthwise.py; on channel-major or (N, C, H, W)-contiguous input,
copying it to channels-last for these took 1.5-3.4x the time of the channel-major kernels
(NumPy's transposing copy to channels-last costs about as much as the convolution itself,
the copy to channel-major moves whole planes).

References, with the kernels' arguments: `forward_reference`, `input_grad_reference` and
`weight_grad_reference`, the defining sums as one strided view of a padded copy per tap.
"""

import numpy as np
from numba import njit, prange

from .columns import _output_row_tapping, _taps_in_image

# The weight gradient's row blocks: a fixed count (not the thread count, which would change the
# summation order and stop the kernel from being cached), enough to keep a few threads busy.
WEIGHT_GRAD_BLOCKS = 16

# These helpers are this module's own (not kernels/columns.py's): Numba's on-disk cache keys a
# kernel on its own file only, so a changed helper from another file would leave stale kernels.


# fastmath 'contract' only: lets LLVM fuse each multiply-add into one FMA. Each sum still adds its
# taps in order; only the rounding moves (within the tests' tolerances).
@njit(cache=True, nogil=True, fastmath={"contract"})
def _pass(dst, dst_at, weights, src, src_at, c_count, j0, count, p_lo, p_hi):
    """For positions p_lo <= p < p_hi: dst[d_base + p*d_step + j0*d_tap + c] += sum over the taps
    j0 <= j < j0 + count (1 to 3, added in order; d_tap 0 when count > 1) of
    weights[j*C + c] * src[s_base + p*s_step + j*s_tap + c], c < C = c_count;
    dst_at, src_at: (base, step, tap) each. (One slice per tap, indexed from 0: an index that
    might be negative would make Numba test it for wrapping, and LLVM then not vectorise.)

    Where the next position's taps are this one's shifted by one (s_step == s_tap: stride =
    dilation along the row), three taps run two positions at a time, sharing two of the four
    image loads and all three weight loads."""
    (d_base, d_step, d_tap), (s_base, s_step, s_tap) = dst_at, src_at
    w0, w1, w2 = weights[j0 * c_count:], weights[(j0 + 1) * c_count:], weights[(j0 + 2) * c_count:]
    p = p_lo
    if count == 3 and s_step == s_tap:
        while p + 2 <= p_hi:
            d0, d1 = dst[d_base + p * d_step:], dst[d_base + (p + 1) * d_step:]
            s = s_base + (p + j0) * s_step
            x0, x1, x2, x3 = src[s:], src[s + s_step:], src[s + 2 * s_step:], src[s + 3 * s_step:]
            for c in range(c_count):
                a1, a2 = x1[c], x2[c]
                d0[c] = d0[c] + w0[c] * x0[c] + w1[c] * a1 + w2[c] * a2
                d1[c] = d1[c] + w0[c] * a1 + w1[c] * a2 + w2[c] * x3[c]
            p += 2
    for p in range(p, p_hi):
        d = dst[d_base + p * d_step + j0 * d_tap:]
        s = s_base + p * s_step + j0 * s_tap
        x0, x1, x2 = src[s:], src[s + s_tap:] if count > 1 else src, src[s + 2 * s_tap:] if count > 2 else src
        if count == 1:
            for c in range(c_count):
                d[c] += w0[c] * x0[c]
        elif count == 2:
            for c in range(c_count):
                d[c] = d[c] + w0[c] * x0[c] + w1[c] * x1[c]
        else:
            for c in range(c_count):
                d[c] = d[c] + w0[c] * x0[c] + w1[c] * x1[c] + w2[c] * x2[c]


@njit(cache=True, nogil=True)
def _add_row(dst, dst_at, weights, src, src_at, lo, hi, group):
    """One kernel row's taps into one row of sums: for every tap j < kW = len(lo), in order, and
    position lo[j] <= p < hi[j], dst[d_base + p*d_step + j*d_tap + c] += weights[j*C + c] *
    src[s_base + p*s_step + j*s_tap + c] over c < C = len(weights) // kW. Up to ``group`` taps at
    a time where the positions they share allow (one load and store of the sums per three
    multiply-adds rather than per one); each position still gets its taps in order."""
    kw = lo.shape[0]
    c = weights.shape[0] // kw
    for j0 in range(0, kw, group):
        j1 = min(kw, j0 + group)
        shared_lo, shared_hi = lo[j0], hi[j0]
        for j in range(j0 + 1, j1):
            shared_lo, shared_hi = max(shared_lo, lo[j]), min(shared_hi, hi[j])
        if shared_lo >= shared_hi:  # nothing shared: every tap on its own over all its positions
            shared_lo = shared_hi = hi.max()
        for j in range(j0, j1):  # the positions before the shared run, tap by tap
            _pass(dst, dst_at, weights, src, src_at, c, j, 1, lo[j], min(hi[j], shared_lo))
        _pass(dst, dst_at, weights, src, src_at, c, j0, j1 - j0, shared_lo, shared_hi)
        for j in range(j0, j1):  # and after it
            _pass(dst, dst_at, weights, src, src_at, c, j, 1, max(lo[j], shared_hi), hi[j])


@njit(cache=True, nogil=True)
def _tap_ranges(kw, size, out_size, stride, dilation, left):
    """(kW,) each: the output columns [lo[j], hi[j]) whose tap j reads an image column inside 0..size-1."""
    lo, hi = np.empty(kw, dtype=np.intp), np.empty(kw, dtype=np.intp)
    for j in range(kw):
        lo[j], hi[j] = _taps_in_image(size, out_size, stride, j * dilation - left)
    return lo, hi


@njit(cache=True, nogil=True, parallel=True)
def forward(image, weight, stride, dilation, top_left, out):
    """image: channels-last (N, H, W, C), weight: (kH, kW, C) -> out: channels-last (N, H', W', C),
    written in full.

    out[n, y, x, c] = sum_{i, j} weight[i, j, c] * image[n, y*sH + i*dH - top, x*sW + j*dW - left, c],
    taps in (i, j) order, those in the padding skipped. stride, dilation, top_left: pairs of ints.
    """
    n_count, h, w, c = image.shape
    kh, kw = weight.shape[0], weight.shape[1]
    out_h, out_w = out.shape[1], out.shape[2]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    lo, hi = _tap_ranges(kw, w, out_w, sw, dw, left)
    pixels, taps, rows = image.reshape(n_count, h, w * c), weight.reshape(kh, kw * c), out.reshape(n_count, out_h, -1)
    for row_index in prange(n_count * out_h):  # the threads share out output rows (n, y)
        n, y = row_index // out_h, row_index % out_h
        dst = rows[n, y]
        dst[:] = 0
        for i in range(kh):
            r = y * sh + i * dh - top
            if 0 <= r < h:  # output x, tap j read image column x*sW + j*dW - left
                _add_row(dst, (0, c, 0), taps[i], pixels[n, r], (-left * c, sw * c, dw * c), lo, hi, 3)


@njit(cache=True, nogil=True, parallel=True)
def input_grad(grad_out, weight, stride, dilation, top_left, grad_image):
    """grad_out: channels-last (N, H', W', C), weight: (kH, kW, C) -> grad_image: channels-last
    (N, H, W, C), overwritten: the adjoint of `forward`.

    grad_image[n, p, q, c] = sum of weight[i, j, c] * grad_out[n, y, x, c] over the (i, j, y, x)
    with y*sH + i*dH - top = p and x*sW + j*dW - left = q, added in (i, j) order, or with stride 1
    along the row in (i, kW-1-j) order.
    """
    n_count, h, w, c = grad_image.shape
    kh, kw = weight.shape[0], weight.shape[1]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    if sw == 1:
        # Gathered per pixel q as a correlation with each kernel row reversed: tap j' = kW-1-j
        # reads output column q + left - (kW-1)*dW + j'*dW, so the taps step forward as in `forward`.
        taps = np.ascontiguousarray(weight[:, ::-1]).reshape(kh, kw * c)
        lo, hi = _tap_ranges(kw, out_w, w, 1, dw, (kw - 1) * dw - left)
        group, dst_at, src_at = 3, (0, c, 0), ((left - (kw - 1) * dw) * c, c, dw * c)
    else:  # per output column x, tap j adding to pixel x*sW + j*dW - left (each pixel once per tap)
        taps = weight.reshape(kh, kw * c)
        lo, hi = _tap_ranges(kw, w, out_w, sw, dw, left)
        group, dst_at, src_at = 1, (-left * c, sw * c, dw * c), (0, c, 0)
    grads, rows = grad_out.reshape(n_count, out_h, -1), grad_image.reshape(n_count, h, -1)
    # The threads share out image rows (n, p), each gathered from the output rows whose taps land on it.
    for row_index in prange(n_count * h):
        n, p = row_index // h, row_index % h
        dst = rows[n, p]
        dst[:] = 0
        for i in range(kh):
            y = _output_row_tapping(p, i, top, dh, sh, out_h)
            if y >= 0:
                _add_row(dst, dst_at, taps[i], grads[n, y], src_at, lo, hi, group)


@njit(cache=True, nogil=True)
def _tap_products(acc, grad, src, count, step):
    """One tap's share of a row: acc[c] += grad[x*C + c] * src[x*step + c] over x < count, in
    order, C = len(acc); the products in the arrays' dtype, the sums in acc's float64, four
    columns per pass (one load and store of acc per four)."""
    c_count, x = acc.shape[0], 0
    while x + 4 <= count:
        g0, g1 = grad[x * c_count:], grad[(x + 1) * c_count:]
        g2, g3 = grad[(x + 2) * c_count:], grad[(x + 3) * c_count:]
        s0, s1, s2, s3 = src[x * step:], src[(x + 1) * step:], src[(x + 2) * step:], src[(x + 3) * step:]
        for c in range(c_count):
            acc[c] = acc[c] + g0[c] * s0[c] + g1[c] * s1[c] + g2[c] * s2[c] + g3[c] * s3[c]
        x += 4
    while x < count:
        g0, s0 = grad[x * c_count:], src[x * step:]
        for c in range(c_count):
            acc[c] += g0[c] * s0[c]
        x += 1


@njit(cache=True, nogil=True, parallel=True)
def weight_grad(grad_out, image, stride, dilation, top_left, grad_weight):
    """grad_out: channels-last (N, H', W', C), image: channels-last (N, H, W, C) -> grad_weight:
    (kH, kW, C), written in full.

    grad_weight[i, j, c] = sum_{n, y, x} grad_out[n, y, x, c] * image[n, y*sH + i*dH - top, x*sW + j*dW - left, c],
    the products in the arrays' dtype, summed in float64: each of WEIGHT_GRAD_BLOCKS runs of output
    rows (n, y) into its own partial sums, rows and columns in order, then the partials added in
    block order, so the result does not depend on the thread count.
    """
    n_count, h, w, c = image.shape
    kh, kw = grad_weight.shape[0], grad_weight.shape[1]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    lo, hi = _tap_ranges(kw, w, out_w, sw, dw, left)
    row_count = n_count * out_h
    blocks = min(WEIGHT_GRAD_BLOCKS, row_count)
    per_block = (row_count + blocks - 1) // blocks
    partials = np.zeros((blocks, kh, kw * c), dtype=np.float64)
    pixels, grads = image.reshape(n_count, h, w * c), grad_out.reshape(n_count, out_h, out_w * c)
    for block in prange(blocks):
        sums = partials[block]
        for row_index in range(block * per_block, min(row_count, (block + 1) * per_block)):
            n, y = row_index // out_h, row_index % out_h
            for i in range(kh):
                r = y * sh + i * dh - top
                if r < 0 or r >= h:
                    continue
                for j in range(kw):
                    if lo[j] < hi[j]:
                        _tap_products(sums[i, j * c:(j + 1) * c], grads[n, y, lo[j] * c:],
                                      pixels[n, r, (lo[j] * sw + j * dw - left) * c:], hi[j] - lo[j], sw * c)
    flat = grad_weight.reshape(kh * kw * c)
    totals = partials.reshape(blocks, kh * kw * c)
    for k in range(kh * kw * c):
        total = 0.0
        for block in range(blocks):
            total += totals[block, k]
        flat[k] = total


# ------------------------------------------------------------------ NumPy references
def _padded(image, kernel, stride, dilation, top_left, out_hw):
    """image: (N, H, W, C) -> a zeroed (N, Hs, Ws, C) copy with the image at (top, left), big enough
    for every tap and for the whole image."""
    n, h, w, c = image.shape
    (kh, kw), (sh, sw), (dh, dw), (top, left), (oh, ow) = kernel, stride, dilation, top_left, out_hw
    hs, ws = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
    padded = np.zeros((n, max(hs, top + h), max(ws, left + w), c), dtype=image.dtype)
    padded[:, top:top + h, left:left + w] = image
    return padded


def _tap_views(padded, kernel, stride, dilation, out_hw):
    """The (N, H', W', C) strided view of padded under each tap (i, j), in (i, j) order."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    return [padded[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kh) for j in range(kw)]


def forward_reference(image, weight, stride, dilation, top_left, out):
    """`forward` in NumPy: image (N, H, W, C), weight (kH, kW, C) -> out (N, H', W', C)."""
    kernel, out_hw = weight.shape[:2], out.shape[1:3]
    padded = _padded(image, kernel, stride, dilation, top_left, out_hw)
    out[...] = 0
    for tap, view in zip(weight.reshape(-1, weight.shape[2]), _tap_views(padded, kernel, stride, dilation, out_hw)):
        out += tap * view


def input_grad_reference(grad_out, weight, stride, dilation, top_left, grad_image):
    """`input_grad` in NumPy: grad_out (N, H', W', C), weight (kH, kW, C) -> grad_image (N, H, W, C)."""
    kernel, out_hw = weight.shape[:2], grad_out.shape[1:3]
    (top, left), (h, w) = top_left, grad_image.shape[1:3]
    padded = _padded(np.zeros_like(grad_image), kernel, stride, dilation, top_left, out_hw)
    for tap, view in zip(weight.reshape(-1, weight.shape[2]), _tap_views(padded, kernel, stride, dilation, out_hw)):
        view += tap * grad_out
    grad_image[...] = padded[:, top:top + h, left:left + w]


def weight_grad_reference(grad_out, image, stride, dilation, top_left, grad_weight):
    """`weight_grad` in NumPy: grad_out (N, H', W', C), image (N, H, W, C) -> grad_weight (kH, kW, C),
    the products in the arrays' dtype, summed in float64."""
    kernel, out_hw = grad_weight.shape[:2], grad_out.shape[1:3]
    padded = _padded(image, kernel, stride, dilation, top_left, out_hw)
    sums = [(grad_out * view).sum(axis=(0, 1, 2), dtype=np.float64)
            for view in _tap_views(padded, kernel, stride, dilation, out_hw)]
    grad_weight[...] = np.stack(sums).reshape(grad_weight.shape)
