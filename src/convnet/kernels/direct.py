"""Direct convolution for one input channel (a network's first layer), compiled: no columns, no GEMM.

With one input channel im2col's GEMM has only kH*kW rows, which BLAS runs far below its peak,
and the columns cost kH*kW times the input's memory (195 MB for a 10x10 kernel on 8 256x256
images). Here each output plane is summed tap by tap straight from the image.

Stride 1, any dilation and padding. Output position (y, x) and tap (i, j) read input pixel
(y + i*dH - top, x + j*dW - left), zero outside the image. Each image is first copied into a
zeroed scratch laid out as its padded image, Hs x Ws with Ws = W' + dW*(kW-1); then, flattened,
output (y, x) and tap (i, j) read scratch element (y*Ws + x) + (i*dH*Ws + j*dW): every tap is a
shift of one contiguous run of L = (H'-1)*Ws + W' elements. The loops run over that run (811
long for a 28x28 image) instead of over rows of W' (28), which LLVM vectorises far better; the
Ws - W' positions between output rows are computed and dropped.

References, with the kernels' arguments: `forward_reference` and `weight_grad_reference`, the
defining sums as one shifted slice of the padded image per tap.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _scratch_hw(out_hw, kernel, dilation):
    """The padded image's (Hs, Ws) that every tap of every output reads from."""
    return (out_hw[0] + dilation[0] * (kernel[0] - 1), out_hw[1] + dilation[1] * (kernel[1] - 1))


@njit(cache=True, nogil=True)
def _pad_into(image, top, left, padded):
    """image: (H, W) -> padded: (Hs, Ws) whose border is already 0: copies the part of the image
    that lands inside (an image may reach past it when only the first H' x W' outputs are wanted)."""
    hs, ws = padded.shape
    h, w = image.shape
    x_lo, x_hi = max(0, -left), min(w, ws - left)
    for y in range(max(0, -top), min(h, hs - top)):
        dst, src = padded[y + top], image[y]
        for x in range(x_lo, x_hi):
            dst[x + left] = src[x]


@njit(cache=True, nogil=True)
def _tap_offsets(kh, kw, dilation, ws):
    """(kH*kW,): where tap (i, j)'s run starts in the flattened scratch, i*dH*Ws + j*dW, in (i, j) order."""
    offsets = np.empty(kh * kw, dtype=np.intp)
    for i in range(kh):
        for j in range(kw):
            offsets[i * kw + j] = i * dilation[0] * ws + j * dilation[1]
    return offsets


# fastmath 'contract' only: lets LLVM fuse each multiply-add into one FMA. Each output is still the
# same sum in the same tap order; only its rounding moves (within the tests' tolerances).
@njit(cache=True, nogil=True, fastmath={"contract"})
def forward(image, weight, dilation, top_left, out):
    """image: channel-major (1, N, H, W), weight: (O, 1, kH, kW) -> out: channel-major (O, N, H', W'),
    written in full.

    out[o, n, y, x] = sum_{i, j} weight[o, 0, i, j] * image[0, n, y + i*dH - top, x + j*dW - left],
    taps in (i, j) order. dilation, top_left: pairs of ints.
    """
    n_count, h, w = image.shape[1:]
    o_count, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    hs, ws = _scratch_hw((out_h, out_w), (kh, kw), dilation)
    length = (out_h - 1) * ws + out_w
    padded = np.zeros((hs, ws), dtype=image.dtype)
    # The output planes, as wide as the scratch, one image at a time: a plane stays in L1 (or L2)
    # while its kH*kW shifted runs of the scratch are added to it.
    wide = np.empty((o_count, out_h * ws), dtype=out.dtype)
    flat = padded.reshape(hs * ws)
    offsets = _tap_offsets(kh, kw, dilation, ws)
    taps = weight.reshape(o_count, kh * kw)
    for n in range(n_count):
        _pad_into(image[0, n], top_left[0], top_left[1], padded)
        for o in range(o_count):
            acc = wide[o]
            for p in range(length):
                acc[p] = 0
            # Four taps per pass over the plane: one load and store of each sum per four
            # multiply-adds instead of per one (measured 2x); added in tap order all the same.
            k = 0
            while k + 4 <= kh * kw:
                t0, t1, t2, t3 = taps[o, k], taps[o, k + 1], taps[o, k + 2], taps[o, k + 3]
                s0, s1 = flat[offsets[k]:], flat[offsets[k + 1]:]
                s2, s3 = flat[offsets[k + 2]:], flat[offsets[k + 3]:]
                for p in range(length):
                    acc[p] = acc[p] + t0 * s0[p] + t1 * s1[p] + t2 * s2[p] + t3 * s3[p]
                k += 4
            for tap in range(k, kh * kw):  # the last kH*kW % 4 taps
                t0, s0 = taps[o, tap], flat[offsets[tap]:]
                for p in range(length):
                    acc[p] += t0 * s0[p]
            for y in range(out_h):
                dst, row = out[o, n, y], acc[y * ws:]
                for x in range(out_w):
                    dst[x] = row[x]


# fastmath 'reassoc' (and 'contract'): lets LLVM split each per-image dot product into vector
# lanes; without it the sum runs one element at a time. The sums over images are float64.
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def weight_grad(grad, image, dilation, top_left, grad_weight):
    """grad: channel-major (O, N, H', W'), image: channel-major (1, N, H, W)
    -> grad_weight: (O, 1, kH, kW), written in full.

    grad_weight[o, 0, i, j] = sum_{n, y, x} grad[o, n, y, x] * image[0, n, y + i*dH - top, x + j*dW - left].
    Per image, each tap's sum is one dot product of the gradient plane (widened to the scratch's
    rows, zeros between them) with the tap's shifted run, in the arrays' dtype; those are added
    over the images in float64, so a float32 sum's error grows with one image's H'*W' terms rather
    than N*H'*W' of them.
    """
    o_count, n_count, out_h, out_w = grad.shape
    kh, kw = grad_weight.shape[2], grad_weight.shape[3]
    hs, ws = _scratch_hw((out_h, out_w), (kh, kw), dilation)
    length = (out_h - 1) * ws + out_w
    padded = np.zeros((hs, ws), dtype=image.dtype)
    flat = padded.reshape(hs * ws)
    wide = np.zeros(out_h * ws, dtype=grad.dtype)  # columns W'..Ws-1 of each row stay 0
    sums = np.zeros((o_count, kh * kw), dtype=np.float64)
    offsets = _tap_offsets(kh, kw, dilation, ws)
    for n in range(n_count):
        _pad_into(image[0, n], top_left[0], top_left[1], padded)
        for o in range(o_count):
            for y in range(out_h):
                dst, row = wide[y * ws:], grad[o, n, y]
                for x in range(out_w):
                    dst[x] = row[x]
            # Four taps' dot products per pass over the plane (one load of the gradient per four).
            k = 0
            while k + 4 <= kh * kw:
                s0, s1 = flat[offsets[k]:], flat[offsets[k + 1]:]
                s2, s3 = flat[offsets[k + 2]:], flat[offsets[k + 3]:]
                d0 = d1 = d2 = d3 = wide[0] * 0
                for p in range(length):
                    g = wide[p]
                    d0 += g * s0[p]
                    d1 += g * s1[p]
                    d2 += g * s2[p]
                    d3 += g * s3[p]
                sums[o, k] += d0
                sums[o, k + 1] += d1
                sums[o, k + 2] += d2
                sums[o, k + 3] += d3
                k += 4
            for tap in range(k, kh * kw):  # the last kH*kW % 4 taps
                s0, d0 = flat[offsets[tap]:], wide[0] * 0
                for p in range(length):
                    d0 += wide[p] * s0[p]
                sums[o, tap] += d0
    for o in range(o_count):
        for i in range(kh):
            for j in range(kw):
                grad_weight[o, 0, i, j] = sums[o, i * kw + j]


# ------------------------------------------------------------------ NumPy references
def _padded_taps(image, kernel, dilation, top_left, out_hw):
    """image: (1, N, H, W) -> the (N, H', W') view of its padded copy under each tap (i, j), in (i, j) order."""
    (kh, kw), (dh, dw), (top, left), (oh, ow) = kernel, dilation, top_left, out_hw
    n, h, w = image.shape[1:]
    hs, ws = oh + dh * (kh - 1), ow + dw * (kw - 1)
    padded = np.zeros((n, max(hs, top + h), max(ws, left + w)), dtype=image.dtype)
    padded[:, top:top + h, left:left + w] = image[0]
    return [padded[:, i * dh:i * dh + oh, j * dw:j * dw + ow] for i in range(kh) for j in range(kw)]


def forward_reference(image, weight, dilation, top_left, out):
    """`forward` in NumPy: the defining sum, one shifted slice of the padded image per tap."""
    kernel, out_hw = weight.shape[2:], out.shape[2:]
    out[...] = 0
    for tap, view in zip(weight.reshape(weight.shape[0], -1).T, _padded_taps(image, kernel, dilation, top_left,
                                                                             out_hw)):
        out += tap[:, None, None, None] * view


def weight_grad_reference(grad, image, dilation, top_left, grad_weight):
    """`weight_grad` in NumPy: one dot product per tap."""
    kernel = grad_weight.shape[2:]
    taps = _padded_taps(image, kernel, dilation, top_left, grad.shape[2:])
    sums = [np.tensordot(grad, view, axes=([1, 2, 3], [0, 1, 2])) for view in taps]
    grad_weight[...] = np.stack(sums, axis=1).reshape(grad_weight.shape)
