"""Depthwise convolution (groups == in_channels == out_channels), compiled: each channel filtered
by its own kH x kW kernel, the sum tap by tap, no columns, no GEMM.

MobileNet's per-channel spatial filter: a depthwise kH x kW convolution mixes neighbouring
pixels within each channel, and a 1x1 convolution after it mixes the channels. As im2col and a
GEMM per group it would be C matrix products of one row each, (1, kH*kW) @ (kH*kW, N*H'*W'),
which BLAS runs at 1-2% of its peak, after writing columns kH*kW times the input's size. Here
each output plane is summed straight from its padded image.

Images are channel-major, as in kernels/columns.py: image (C, N, H, W), weight (C, kH, kW),
output (C, N, H', W'). With stride (sH, sW), dilation (dH, dW) and the padding's (top, left)
(bottom and right follow from H' and W'), cross-correlation as in PyTorch's conv2d with
groups=C:

    out[c, n, y, x]  = sum_{i, j} weight[c, i, j] * image[c, n, y*sH + i*dH - top, x*sW + j*dW - left]
    grad_image[c, n, p, q] = sum of weight[c, i, j] * grad_out[c, n, y, x]
                             over the (i, j, y, x) with y*sH + i*dH - top = p, x*sW + j*dW - left = q
    grad_weight[c, i, j] = sum_{n, y, x} grad_out[c, n, y, x] * image[c, n, y*sH + i*dH - top, x*sW + j*dW - left]

with pixels in the padding read as zero. As in kernels/direct.py, each image is first copied into
a zeroed scratch laid out as its padded image, Hs x Ws, so the tap loops need no bounds tests;
flattened, output (y, x) and tap (i, j) read scratch element (y*sH*Ws + x*sW) + (i*dH*Ws + j*dW).
With stride 1 every tap is then a shift of one contiguous run of (H'-1)*Ws + W' elements, which
the loops run over whole (the Ws - W' positions between output rows computed and dropped): LLVM
vectorises a run of hundreds far better than rows of 7..32. Other strides go row by row.

The input gradient with stride 1 is the same correlation of the padded output gradient with the
kernel flipped; with other strides it is scattered tap by tap into a padded scratch instead.

References, with the kernels' arguments: `forward_reference`, `input_grad_reference` and
`weight_grad_reference`, the defining sums as one strided view of a padded copy per tap.
"""

import numpy as np
from numba import njit, prange

# These helpers resemble kernels/direct.py's but are this module's own: Numba's on-disk cache
# keys a kernel on its own file only, so a change to a helper imported from another file would
# leave the cached kernels running the old one.


@njit(cache=True, nogil=True)
def _scratch_hw(out_hw, kernel, stride, dilation):
    """The padded image's (Hs, Ws) that every tap of every output reads from."""
    return ((out_hw[0] - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1,
            (out_hw[1] - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1)


@njit(cache=True, nogil=True)
def _tap_offsets(kh, kw, dilation, ws):
    """(kH*kW,): where tap (i, j) starts in the flattened scratch, i*dH*Ws + j*dW, in (i, j) order."""
    offsets = np.empty(kh * kw, dtype=np.intp)
    for i in range(kh):
        for j in range(kw):
            offsets[i * kw + j] = i * dilation[0] * ws + j * dilation[1]
    return offsets


@njit(cache=True, nogil=True)
def _blocks(c_count, n_count):
    """(blocks, runs, images per run): the threads share out (channel, run of images) blocks, so
    that a few channels still keep every thread busy. (A fixed count of 8, as in columns.py: asking
    Numba for its thread count would stop the kernels from being cached.)"""
    runs = min(n_count, 8) if c_count < 8 else 1
    return c_count * runs, runs, (n_count + runs - 1) // runs


@njit(cache=True, nogil=True)
def _pad_into(plane, top, left, padded):
    """plane: (H, W) -> padded: (Hs, Ws) whose border is already 0, at rows top.., columns left..;
    copies only what lands inside (top or left may be negative, and the plane may reach past)."""
    hs, ws = padded.shape
    h, w = plane.shape
    x_lo, x_hi = max(0, -left), min(w, ws - left)
    for y in range(max(0, -top), min(h, hs - top)):
        dst, src = padded[y + top], plane[y]
        for x in range(x_lo, x_hi):
            dst[x + left] = src[x]


# fastmath 'contract' only: lets LLVM fuse each multiply-add into one FMA. Each output is still the
# same sum in the same tap order; only its rounding moves (within the tests' tolerances).
@njit(cache=True, nogil=True, fastmath={"contract"})
def _tap_sums(flat, start, step, taps, offsets, dst):
    """dst[p] = sum_k taps[k] * flat[start + offsets[k] + p*step] over p < len(dst), written in
    full, taps in order."""
    length, count = dst.shape[0], taps.shape[0]
    for p in range(length):
        dst[p] = 0
    # Four taps per pass: one load and store of each sum per four multiply-adds instead of per one
    # (measured 2x in kernels/direct.py); still added in tap order.
    k = 0
    while k + 4 <= count:
        t0, t1, t2, t3 = taps[k], taps[k + 1], taps[k + 2], taps[k + 3]
        s0, s1 = flat[start + offsets[k]:], flat[start + offsets[k + 1]:]
        s2, s3 = flat[start + offsets[k + 2]:], flat[start + offsets[k + 3]:]
        if step == 1:
            for p in range(length):
                dst[p] = dst[p] + t0 * s0[p] + t1 * s1[p] + t2 * s2[p] + t3 * s3[p]
        else:
            for p in range(length):
                q = p * step
                dst[p] = dst[p] + t0 * s0[q] + t1 * s1[q] + t2 * s2[q] + t3 * s3[q]
        k += 4
    for tap in range(k, count):  # the last count % 4 taps
        t0, s0 = taps[tap], flat[start + offsets[tap]:]
        if step == 1:
            for p in range(length):
                dst[p] += t0 * s0[p]
        else:
            for p in range(length):
                dst[p] += t0 * s0[p * step]


@njit(cache=True, nogil=True)
def _correlate(plane, top_left, taps, offsets, stride, padded, wide, out):
    """out: (H', W'), written in full, = the correlation of plane (padded by top_left into padded,
    a scratch with a zero border) with the taps at offsets; wide: (H'*Ws,) scratch for stride 1."""
    _pad_into(plane, top_left[0], top_left[1], padded)
    hs, ws = padded.shape
    flat = padded.reshape(hs * ws)
    out_h, out_w = out.shape
    if stride[0] == 1 and stride[1] == 1:
        _tap_sums(flat, 0, 1, taps, offsets, wide[:(out_h - 1) * ws + out_w])
        for y in range(out_h):
            dst, row = out[y], wide[y * ws:]
            for x in range(out_w):
                dst[x] = row[x]
    else:
        for y in range(out_h):
            _tap_sums(flat, y * stride[0] * ws, stride[1], taps, offsets, out[y])


@njit(cache=True, nogil=True, parallel=True)
def forward(image, weight, stride, dilation, top_left, out):
    """image: channel-major (C, N, H, W), weight: (C, kH, kW) -> out: channel-major (C, N, H', W'),
    written in full.

    out[c, n, y, x] = sum_{i, j} weight[c, i, j] * image[c, n, y*sH + i*dH - top, x*sW + j*dW - left],
    taps in (i, j) order, zero in the padding. stride, dilation, top_left: pairs of ints. No bias.
    """
    c_count, n_count = image.shape[0], image.shape[1]
    kh, kw = weight.shape[1], weight.shape[2]
    out_h, out_w = out.shape[2], out.shape[3]
    hs, ws = _scratch_hw((out_h, out_w), (kh, kw), stride, dilation)
    offsets = _tap_offsets(kh, kw, dilation, ws)
    wide_size = out_h * ws if stride[0] == 1 and stride[1] == 1 else 0
    block_count, runs, per_run = _blocks(c_count, n_count)
    for block in prange(block_count):
        c, run = block // runs, block % runs
        taps = np.empty(kh * kw, dtype=weight.dtype)
        for i in range(kh):
            for j in range(kw):
                taps[i * kw + j] = weight[c, i, j]
        # Each image rewrites the same interior of the scratch, so its border stays 0.
        padded = np.zeros((hs, ws), dtype=image.dtype)
        wide = np.empty(wide_size, dtype=out.dtype)
        for n in range(run * per_run, min(n_count, (run + 1) * per_run)):
            _correlate(image[c, n], top_left, taps, offsets, stride, padded, wide, out[c, n])


@njit(cache=True, nogil=True, parallel=True)
def input_grad(grad_out, weight, stride, dilation, top_left, grad_image):
    """grad_out: channel-major (C, N, H', W'), weight: (C, kH, kW) -> grad_image: channel-major
    (C, N, H, W), overwritten: the adjoint of `forward`.

    grad_image[c, n, p, q] = sum of weight[c, i, j] * grad_out[c, n, y, x] over the (i, j, y, x)
    with y*sH + i*dH - top = p and x*sW + j*dW - left = q.
    """
    c_count, n_count, h, w = grad_image.shape
    kh, kw = weight.shape[1], weight.shape[2]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    (sh, sw), (dh, dw), (top, left) = stride, dilation, top_left
    unit_stride = sh == 1 and sw == 1
    if unit_stride:
        # grad_image[p, q] = sum_{i, j} weight[i, j] * grad_out[p + top - i*dH, q + left - j*dW]: a
        # stride-1 correlation with the kernel flipped, of grad_out padded by the span less the padding.
        hs, ws = _scratch_hw((h, w), (kh, kw), stride, dilation)
        grad_top_left = (dh * (kh - 1) - top, dw * (kw - 1) - left)
    else:
        # Big enough for every tap's writes and for the image it is cropped to.
        span_h, span_w = _scratch_hw((out_h, out_w), (kh, kw), stride, dilation)
        hs, ws = max(span_h, top + h), max(span_w, left + w)
        grad_top_left = (0, 0)
    offsets = _tap_offsets(kh, kw, dilation, ws)
    block_count, runs, per_run = _blocks(c_count, n_count)
    for block in prange(block_count):
        c, run = block // runs, block % runs
        taps = np.empty(kh * kw, dtype=weight.dtype)
        for k in range(kh * kw):
            # Stride 1 runs the kernel flipped (above), so its taps in reverse.
            taps[kh * kw - 1 - k if unit_stride else k] = weight[c, k // kw, k % kw]
        padded = np.zeros((hs, ws), dtype=grad_image.dtype)
        flat = padded.reshape(hs * ws)
        wide = np.empty(h * ws if unit_stride else 0, dtype=grad_image.dtype)
        for n in range(run * per_run, min(n_count, (run + 1) * per_run)):
            if unit_stride:
                _correlate(grad_out[c, n], grad_top_left, taps, offsets, stride, padded, wide, grad_image[c, n])
                continue
            padded[:] = 0
            for y in range(out_h):
                src = grad_out[c, n, y]
                for k in range(kh * kw):
                    t, dst = taps[k], flat[y * sh * ws + offsets[k]:]
                    if sw == 1:
                        for x in range(out_w):
                            dst[x] += t * src[x]
                    else:
                        for x in range(out_w):
                            dst[x * sw] += t * src[x]
            for p in range(h):
                dst, row = grad_image[c, n, p], padded[p + top, left:]
                for q in range(w):
                    dst[q] = row[q]


# fastmath 'reassoc' (and 'contract'): lets LLVM split each dot product into vector lanes; without
# it the sum runs one element at a time. The order is still fixed by the code, not the threads.
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _tap_dots(flat, start, step, grad, offsets, sums):
    """sums[k] += sum_p grad[p] * flat[start + offsets[k] + p*step] over p < len(grad), each product
    in the arrays' dtype, the sums in float64."""
    length, count = grad.shape[0], offsets.shape[0]
    k = 0
    while k + 4 <= count:  # four taps' dot products per pass (one load of the gradient per four)
        s0, s1 = flat[start + offsets[k]:], flat[start + offsets[k + 1]:]
        s2, s3 = flat[start + offsets[k + 2]:], flat[start + offsets[k + 3]:]
        d0 = d1 = d2 = d3 = 0.0
        if step == 1:
            for p in range(length):
                g = grad[p]
                d0 += g * s0[p]
                d1 += g * s1[p]
                d2 += g * s2[p]
                d3 += g * s3[p]
        else:
            for p in range(length):
                g, q = grad[p], p * step
                d0 += g * s0[q]
                d1 += g * s1[q]
                d2 += g * s2[q]
                d3 += g * s3[q]
        sums[k] += d0
        sums[k + 1] += d1
        sums[k + 2] += d2
        sums[k + 3] += d3
        k += 4
    for tap in range(k, count):  # the last count % 4 taps
        s0, d0 = flat[start + offsets[tap]:], 0.0
        if step == 1:
            for p in range(length):
                d0 += grad[p] * s0[p]
        else:
            for p in range(length):
                d0 += grad[p] * s0[p * step]
        sums[tap] += d0


@njit(cache=True, nogil=True, parallel=True)
def weight_grad(grad_out, image, stride, dilation, top_left, grad_weight):
    """grad_out: channel-major (C, N, H', W'), image: channel-major (C, N, H, W) -> grad_weight:
    (C, kH, kW), written in full.

    grad_weight[c, i, j] = sum_{n, y, x} grad_out[c, n, y, x] * image[c, n, y*sH + i*dH - top, x*sW + j*dW - left],
    the products in the arrays' dtype, summed in float64 in a fixed order: one thread per channel,
    nothing reduced across threads, so the result does not depend on the thread count.
    """
    c_count, n_count, out_h, out_w = grad_out.shape
    kh, kw = grad_weight.shape[1], grad_weight.shape[2]
    sh, sw = stride
    hs, ws = _scratch_hw((out_h, out_w), (kh, kw), stride, dilation)
    offsets = _tap_offsets(kh, kw, dilation, ws)
    unit_stride = sh == 1 and sw == 1
    for c in prange(c_count):
        padded = np.zeros((hs, ws), dtype=image.dtype)
        flat = padded.reshape(hs * ws)
        # The gradient plane as wide as the scratch, for stride 1; columns W'..Ws-1 of each row stay 0.
        wide = np.zeros((out_h - 1) * ws + out_w if unit_stride else 0, dtype=grad_out.dtype)
        sums = np.zeros(kh * kw, dtype=np.float64)
        for n in range(n_count):
            _pad_into(image[c, n], top_left[0], top_left[1], padded)
            if unit_stride:
                for y in range(out_h):
                    dst, row = wide[y * ws:], grad_out[c, n, y]
                    for x in range(out_w):
                        dst[x] = row[x]
                _tap_dots(flat, 0, 1, wide, offsets, sums)
            else:
                for y in range(out_h):
                    _tap_dots(flat, y * sh * ws, sw, grad_out[c, n, y], offsets, sums)
        for i in range(kh):
            for j in range(kw):
                grad_weight[c, i, j] = sums[i * kw + j]


# ------------------------------------------------------------------ NumPy references
def _padded(image, kernel, stride, dilation, top_left, out_hw):
    """image: (C, N, H, W) -> a zeroed (C, N, Hs, Ws) copy with the image at (top, left), big enough
    for every tap and for the whole image."""
    c, n, h, w = image.shape
    (kh, kw), (sh, sw), (dh, dw), (top, left), (oh, ow) = kernel, stride, dilation, top_left, out_hw
    hs, ws = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
    padded = np.zeros((c, n, max(hs, top + h), max(ws, left + w)), dtype=image.dtype)
    padded[:, :, top:top + h, left:left + w] = image
    return padded


def _tap_views(padded, kernel, stride, dilation, out_hw):
    """The (C, N, H', W') strided view of padded under each tap (i, j), in (i, j) order."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    return [padded[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kh) for j in range(kw)]


def forward_reference(image, weight, stride, dilation, top_left, out):
    """`forward` in NumPy: image (C, N, H, W), weight (C, kH, kW) -> out (C, N, H', W')."""
    kernel, out_hw = weight.shape[1:], out.shape[2:]
    padded = _padded(image, kernel, stride, dilation, top_left, out_hw)
    out[...] = 0
    taps = weight.reshape(weight.shape[0], -1).T
    for tap, view in zip(taps, _tap_views(padded, kernel, stride, dilation, out_hw)):
        out += tap[:, None, None, None] * view


def input_grad_reference(grad_out, weight, stride, dilation, top_left, grad_image):
    """`input_grad` in NumPy: grad_out (C, N, H', W'), weight (C, kH, kW) -> grad_image (C, N, H, W)."""
    kernel, out_hw = weight.shape[1:], grad_out.shape[2:]
    (top, left), image_hw = top_left, grad_image.shape[2:]
    h, w = image_hw
    padded = _padded(np.zeros(grad_out.shape[:2] + tuple(image_hw), dtype=grad_out.dtype), kernel, stride,
                     dilation, top_left, out_hw)
    taps = weight.reshape(weight.shape[0], -1).T
    for tap, view in zip(taps, _tap_views(padded, kernel, stride, dilation, out_hw)):
        view += tap[:, None, None, None] * grad_out
    grad_image[...] = padded[:, :, top:top + h, left:left + w]


def weight_grad_reference(grad_out, image, stride, dilation, top_left, grad_weight):
    """`weight_grad` in NumPy: grad_out (C, N, H', W'), image (C, N, H, W) -> grad_weight (C, kH, kW),
    the products in the arrays' dtype, summed in float64."""
    out_hw, kernel = grad_out.shape[2:], grad_weight.shape[1:]
    padded = _padded(image, kernel, stride, dilation, top_left, out_hw)
    sums = [(grad_out * view).sum(axis=(1, 2, 3), dtype=np.float64)
            for view in _tap_views(padded, kernel, stride, dilation, out_hw)]
    grad_weight[...] = np.stack(sums, axis=1).reshape(grad_weight.shape)
