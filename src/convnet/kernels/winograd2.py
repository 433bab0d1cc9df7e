"""Winograd F(2x2, 3x3)'s six transforms (and `output_transform_fused`, the output transform with an
inference epilogue: nn/fusion.py), compiled, and their NumPy references (``reference``).

kernels/winograd.py describes the algorithm and runs the convolution; this file holds the
transforms for 2x2 output tiles from 4x4 input patches (16 planes), from the matrices

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

That is 16 multiplies per 4 outputs where the direct sum takes 36: 2.25x fewer. The output is cut
into 2x2 tiles (ceil(H'/2) x ceil(W'/2) per image, the last row or column of tiles ragged when H'
or W' is odd); a 4x4 patch may reach one row or column past the padded image then, and those
rows only feed the ragged outputs, which are dropped. Tiles are indexed (16, channels, N,
tiles_h, tiles_w), entry (r, s) of a tile in plane 4r + s.
"""

import numpy as np
from numba import njit, prange

from .activation import bias_relu_max_pool_reference
from .winograd import References

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
PLANES = 16  # the element-wise products per tile: one per entry of the 4x4 input patch


# ------------------------------------------------------------------ 1-D transforms (scalars in, tuple out)
@njit(cache=True, nogil=True, inline="always")
def _b_t(d0, d1, d2, d3):
    """B^T d for a 4-vector d."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, nogil=True, inline="always")
def _b(v0, v1, v2, v3):
    """B v for a 4-vector v: the adjoint of `_b_t`."""
    return v0, v1 - v2 + v3, v2 + v1 - v0, -v3


@njit(cache=True, nogil=True, inline="always")
def _a_t(m0, m1, m2, m3):
    """A^T m for a 4-vector m -> 2 values."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True, nogil=True, inline="always")
def _a(y0, y1):
    """A y for a 2-vector y -> 4 values: the adjoint of `_a_t`."""
    return y0, y0 + y1, y0 - y1, -y1


# The inference epilogue's steps as kernels/activation.py has them (copied: see kernels/winograd.py
# on why compiled files share no helpers).
@njit(cache=True, nogil=True, inline="always")
def _larger(a, b):
    """max(a, b), NaN if either is."""
    return a if a > b or a != a else b


@njit(cache=True, nogil=True, inline="always")
def _finish(value, floor):
    """ReLU where ``floor`` is 0, the identity where it is -inf; NaN stays NaN. (A select on a floor
    the caller sets once: a test of the flag here kept the loops 1.4x slower, issue 30.)"""
    return floor if value <= floor else value


# ------------------------------------------------------------------ forward
@njit(cache=True, nogil=True)
def _scratch_hw(h, w, top, left, th, tw):
    """The padded image's size that holds every tile's 4x4 patch and the whole image: the image
    may reach past the last patch when only the first H' x W' outputs are wanted (a transposed
    convolution's output_padding)."""
    return max(2 * th + 2, top + h), max(2 * tw + 2, left + w)


@njit(cache=True, nogil=True, parallel=True)
def input_transform(image, top_left, tiles):
    """image: channel-major (C, N, H, W) -> tiles: (16, C, N, tiles_h, tiles_w), written in full.

    tiles[4r + s, c, n, ty, tx] = (B^T d B)[r, s] with d = padded image[c, n, 2ty:2ty+4, 2tx:2tx+4],
    padded by (top, left) = top_left and zeros beyond the image's bottom and right edges.
    """
    c_count, n_count, h, w = image.shape
    th, tw = tiles.shape[3], tiles.shape[4]
    top, left = top_left
    for c in prange(c_count):
        # The padded image, one (c, n) at a time; only the interior is rewritten, the border stays 0.
        padded = np.zeros(_scratch_hw(h, w, top, left, th, tw), dtype=image.dtype)
        for n in range(n_count):
            for y in range(h):
                padded[y + top, left:left + w] = image[c, n, y]
            for ty in range(th):
                rows = padded[2 * ty:2 * ty + 4]
                for tx in range(tw):
                    _transform_patch(rows, 2 * tx, tiles, c, n, ty, tx)


@njit(cache=True, nogil=True, inline="always")
def _transform_patch(rows, x, tiles, c, n, ty, tx):
    """tiles[:, c, n, ty, tx] = B^T d B for the 4x4 patch d = rows[0:4, x:x + 4]."""
    # Columns first: B^T applied down each of the patch's 4 columns.
    a0, a1, a2, a3 = _b_t(rows[0, x], rows[1, x], rows[2, x], rows[3, x])
    b0, b1, b2, b3 = _b_t(rows[0, x + 1], rows[1, x + 1], rows[2, x + 1], rows[3, x + 1])
    c0, c1, c2, c3 = _b_t(rows[0, x + 2], rows[1, x + 2], rows[2, x + 2], rows[3, x + 2])
    e0, e1, e2, e3 = _b_t(rows[0, x + 3], rows[1, x + 3], rows[2, x + 3], rows[3, x + 3])
    # Then B along each row of that result.
    _put_row(tiles, 0, c, n, ty, tx, _b_t(a0, b0, c0, e0))
    _put_row(tiles, 4, c, n, ty, tx, _b_t(a1, b1, c1, e1))
    _put_row(tiles, 8, c, n, ty, tx, _b_t(a2, b2, c2, e2))
    _put_row(tiles, 12, c, n, ty, tx, _b_t(a3, b3, c3, e3))


@njit(cache=True, nogil=True, inline="always")
def _put_row(planes, first, c, n, ty, tx, values):
    """planes[first:first + 4, c, n, ty, tx] = values, a 4-tuple."""
    planes[first, c, n, ty, tx] = values[0]
    planes[first + 1, c, n, ty, tx] = values[1]
    planes[first + 2, c, n, ty, tx] = values[2]
    planes[first + 3, c, n, ty, tx] = values[3]


CHANNEL_BLOCK = 16  # channels per job of the channels-last kernels: 64-byte reads of float32


@njit(cache=True, nogil=True, parallel=True)
def input_transform_last(image, top_left, tiles):
    """image: channels-last (N, H, W, C) -> tiles: (16, C, N, tiles_h, tiles_w), written in full,
    the same floats as `input_transform` on the same image (same arithmetic per element).

    One (n, block of 16 channels) at a time: the block's padded image is copied into a zeroed
    channel-major (16, H_padded, W_padded) scratch that stays in cache (a pixel's 16 channels are
    one 64-byte line of the input), and transformed from there as `input_transform` does, each
    plane's tiles written in sequence. (Channels innermost in the transform itself scatters every
    store across 16*C tile rows: measured up to 1.33x slower than copying the whole image to
    channel-major first, issue 30.)
    """
    n_count, h, w, c_count = image.shape
    th, tw = tiles.shape[3], tiles.shape[4]
    top, left = top_left
    blocks = -(-c_count // CHANNEL_BLOCK)
    for job in prange(n_count * blocks):
        padded = np.zeros((CHANNEL_BLOCK,) + _scratch_hw(h, w, top, left, th, tw), dtype=image.dtype)
        _input_block_last(image, top, left, job // blocks, job % blocks * CHANNEL_BLOCK, padded, tiles)


@njit(cache=True, nogil=True)
def _input_block_last(image, top, left, n, first, padded, tiles):
    """`input_transform_last` for image n's channels first.. first + 16 (fewer at the end)."""
    h, w, c_count = image.shape[1:]
    th, tw = tiles.shape[3], tiles.shape[4]
    count = min(CHANNEL_BLOCK, c_count - first)
    for y in range(h):  # reads along rows of channels in L1; writes in sequence (measured fastest)
        for k in range(count):
            row = padded[k, y + top]
            for x in range(w):
                row[x + left] = image[n, y, x, first + k]
    for k in range(count):
        c = first + k
        for ty in range(th):
            rows = padded[k, 2 * ty:2 * ty + 4]
            for tx in range(tw):
                _transform_patch(rows, 2 * tx, tiles, c, n, ty, tx)


@njit(cache=True, nogil=True, parallel=True)
def weight_transform(weight, transformed):
    """weight: (O, C, 3, 3) -> transformed: (16, O, C), transformed[4r + s, o, c] = (G g G^T)[r, s]
    with g = weight[o, c]."""
    o_count, c_count = weight.shape[:2]
    for o in prange(o_count):
        rows = np.empty((4, 3), dtype=weight.dtype)
        for c in range(c_count):
            g = weight[o, c]
            # G down each column of g (3 -> 4 rows), then along each row (3 -> 4 columns).
            for j in range(3):
                rows[0, j] = g[0, j]
                rows[1, j] = 0.5 * (g[0, j] + g[1, j] + g[2, j])
                rows[2, j] = 0.5 * (g[0, j] - g[1, j] + g[2, j])
                rows[3, j] = g[2, j]
            for r in range(4):
                transformed[4 * r, o, c] = rows[r, 0]
                transformed[4 * r + 1, o, c] = 0.5 * (rows[r, 0] + rows[r, 1] + rows[r, 2])
                transformed[4 * r + 2, o, c] = 0.5 * (rows[r, 0] - rows[r, 1] + rows[r, 2])
                transformed[4 * r + 3, o, c] = rows[r, 2]


@njit(cache=True, nogil=True, inline="always")
def _tile(m, ty, tx):
    """(A^T m A) for tile (ty, tx) of the 16 planes m (m[4r + s] holds entry (r, s)): y00, y01, y10, y11."""
    # A^T down each column of m (4 -> 2 rows), then A along each row.
    p0, q0 = _a_t(m[0, ty, tx], m[4, ty, tx], m[8, ty, tx], m[12, ty, tx])
    p1, q1 = _a_t(m[1, ty, tx], m[5, ty, tx], m[9, ty, tx], m[13, ty, tx])
    p2, q2 = _a_t(m[2, ty, tx], m[6, ty, tx], m[10, ty, tx], m[14, ty, tx])
    p3, q3 = _a_t(m[3, ty, tx], m[7, ty, tx], m[11, ty, tx], m[15, ty, tx])
    y00, y01 = _a_t(p0, p1, p2, p3)
    y10, y11 = _a_t(q0, q1, q2, q3)
    return y00, y01, y10, y11


@njit(cache=True, nogil=True, parallel=True)
def output_transform(products, out):
    """products: (16, O, N, tiles_h, tiles_w) -> out: channel-major (O, N, H', W'), written in full.

    out[o, n, 2ty + a, 2tx + b] = (A^T m A)[a, b] with m[r, s] = products[4r + s, o, n, ty, tx];
    a ragged last tile writes only the outputs that exist.
    """
    o_count, n_count, out_h, out_w = out.shape
    th, tw = products.shape[3], products.shape[4]
    for o in prange(o_count):
        for n in range(n_count):
            m = products[:, o, n]
            for ty in range(th):
                y = 2 * ty
                for tx in range(tw):
                    y00, y01, y10, y11 = _tile(m, ty, tx)
                    x = 2 * tx
                    out[o, n, y, x] = y00
                    if x + 1 < out_w:
                        out[o, n, y, x + 1] = y01
                    if y + 1 < out_h:
                        out[o, n, y + 1, x] = y10
                        if x + 1 < out_w:
                            out[o, n, y + 1, x + 1] = y11


@njit(cache=True, nogil=True, parallel=True)
def output_transform_fused(products, bias, relu, pool, out):
    """`output_transform` with an inference epilogue: products (16, O, N, tiles_h, tiles_w), bias (O,)
    -> out (O, N, H'', W''), any strides, written in full: out[o, n] = act(Y + bias[o]), act ReLU when
    ``relu``; with ``pool`` each 2x2 window's maximum, H'' = H' // 2 (then a window is a tile, and
    the 2x2 outputs are never stored); else H'' = H'. The same arithmetic as `output_transform`
    then kernels/activation.py's `bias_relu_max_pool`, so the same floats."""
    floor = np.full(1, 0 if relu else -np.inf, out.dtype)[0]
    for o in prange(out.shape[0]):
        b = bias[o]
        for n in range(out.shape[1]):
            m, target = products[:, o, n], out[o, n]
            out_h, out_w = target.shape
            if pool:  # the window's maximum, as `bias_relu_max_pool` takes it
                for ty in range(out_h):
                    for tx in range(out_w):
                        y00, y01, y10, y11 = _tile(m, ty, tx)
                        target[ty, tx] = _finish(_larger(_larger(y00, y10), _larger(y01, y11)) + b, floor)
                continue
            for ty in range(m.shape[1]):  # every tile, a ragged last one writing the outputs that exist
                for tx in range(m.shape[2]):
                    y00, y01, y10, y11 = _tile(m, ty, tx)
                    y, x = 2 * ty, 2 * tx
                    target[y, x] = _finish(y00 + b, floor)
                    if x + 1 < out_w:
                        target[y, x + 1] = _finish(y01 + b, floor)
                    if y + 1 < out_h:
                        target[y + 1, x] = _finish(y10 + b, floor)
                        if x + 1 < out_w:
                            target[y + 1, x + 1] = _finish(y11 + b, floor)


def output_transform_fused_reference(products, bias, relu, pool, out):
    """`output_transform_fused` in NumPy: the reference output transform, then the epilogue's reference."""
    o_count, n_count, out_h, out_w = out.shape
    full = np.empty((o_count, n_count) + ((2 * out_h, 2 * out_w) if pool else (out_h, out_w)), dtype=products.dtype)
    reference.output_transform(products, full)
    bias_relu_max_pool_reference(full, bias, relu, pool, out)


# ------------------------------------------------------------------ backward
@njit(cache=True, nogil=True, parallel=True)
def output_grad_transform(grad_out, transformed):
    """grad_out: channel-major (O, N, H', W') -> transformed: (16, O, N, tiles_h, tiles_w), written
    in full: transformed[4r + s, o, n, ty, tx] = (A dY A^T)[r, s], dY = grad_out[o, n, 2ty:2ty+2,
    2tx:2tx+2] with zeros for a ragged tile's missing outputs (the adjoint of `output_transform`)."""
    o_count, n_count, out_h, out_w = grad_out.shape
    th, tw = transformed.shape[3], transformed.shape[4]
    for o in prange(o_count):
        # One (o, n) image at a time, zero-extended to whole tiles, so the tile loop has no tests.
        whole = np.zeros((2 * th, 2 * tw), dtype=grad_out.dtype)
        for n in range(n_count):
            whole[:out_h, :out_w] = grad_out[o, n]
            t = transformed[:, o, n]
            for ty in range(th):
                y = 2 * ty
                for tx in range(tw):
                    x = 2 * tx
                    # A down each column of dY (2 -> 4 rows), then A^T along each row (2 -> 4 columns).
                    r0, r1, r2, r3 = _a(whole[y, x], whole[y + 1, x])
                    s0, s1, s2, s3 = _a(whole[y, x + 1], whole[y + 1, x + 1])
                    t[0, ty, tx], t[1, ty, tx], t[2, ty, tx], t[3, ty, tx] = _a(r0, s0)
                    t[4, ty, tx], t[5, ty, tx], t[6, ty, tx], t[7, ty, tx] = _a(r1, s1)
                    t[8, ty, tx], t[9, ty, tx], t[10, ty, tx], t[11, ty, tx] = _a(r2, s2)
                    t[12, ty, tx], t[13, ty, tx], t[14, ty, tx], t[15, ty, tx] = _a(r3, s3)


@njit(cache=True, nogil=True, parallel=True)
def output_grad_transform_last(grad_out, transformed):
    """grad_out: channels-last (N, H', W', O) -> transformed: (16, O, N, tiles_h, tiles_w), written
    in full, the same floats as `output_grad_transform` on the same gradient. One (n, block of 16
    output channels) at a time, through a zeroed channel-major (16, 2*tiles_h, 2*tiles_w) scratch
    (whole tiles, so the tile loop has no tests), as `input_transform_last`."""
    n_count, out_h, out_w, o_count = grad_out.shape
    th, tw = transformed.shape[3], transformed.shape[4]
    blocks = -(-o_count // CHANNEL_BLOCK)
    for job in prange(n_count * blocks):
        whole = np.zeros((CHANNEL_BLOCK, 2 * th, 2 * tw), dtype=grad_out.dtype)
        _output_grad_block_last(grad_out, job // blocks, job % blocks * CHANNEL_BLOCK, whole, transformed)


@njit(cache=True, nogil=True)
def _output_grad_block_last(grad_out, n, first, whole, transformed):
    """`output_grad_transform_last` for image n's output channels first.. first + 16 (fewer at the end)."""
    out_h, out_w, o_count = grad_out.shape[1:]
    th, tw = transformed.shape[3], transformed.shape[4]
    count = min(CHANNEL_BLOCK, o_count - first)
    for y in range(out_h):
        for k in range(count):
            row = whole[k, y]
            for x in range(out_w):
                row[x] = grad_out[n, y, x, first + k]
    for k in range(count):
        o = first + k
        for ty in range(th):
            y = 2 * ty
            for tx in range(tw):
                x = 2 * tx
                r0, r1, r2, r3 = _a(whole[k, y, x], whole[k, y + 1, x])
                s0, s1, s2, s3 = _a(whole[k, y, x + 1], whole[k, y + 1, x + 1])
                _put_row(transformed, 0, o, n, ty, tx, _a(r0, s0))
                _put_row(transformed, 4, o, n, ty, tx, _a(r1, s1))
                _put_row(transformed, 8, o, n, ty, tx, _a(r2, s2))
                _put_row(transformed, 12, o, n, ty, tx, _a(r3, s3))


@njit(cache=True, nogil=True, inline="always")
def _add_column(rows, x, d):
    """rows[0:4, x] += d, a 4-tuple."""
    rows[0, x] += d[0]
    rows[1, x] += d[1]
    rows[2, x] += d[2]
    rows[3, x] += d[3]


@njit(cache=True, nogil=True, parallel=True)
def input_grad_transform(tiles_grad, top_left, grad_image):
    """tiles_grad: (16, C, N, tiles_h, tiles_w) -> grad_image: channel-major (C, N, H, W),
    overwritten: the adjoint of `input_transform`.

    Each tile's dd = B dV B^T (dV[r, s] = tiles_grad[4r + s, ...]) is added onto the padded
    image at rows 2ty.., columns 2tx.. (neighbouring tiles overlap by 2); the padding is dropped.
    """
    c_count, n_count, h, w = grad_image.shape
    th, tw = tiles_grad.shape[3], tiles_grad.shape[4]
    top, left = top_left
    for c in prange(c_count):
        padded = np.empty(_scratch_hw(h, w, top, left, th, tw), dtype=grad_image.dtype)
        for n in range(n_count):
            padded[:] = 0
            v = tiles_grad[:, c, n]
            for ty in range(th):
                rows = padded[2 * ty:2 * ty + 4]
                for tx in range(tw):
                    # B along each row of dV (B^T's adjoint on the right), then B down each column.
                    a0, b0, c0, e0 = _b(v[0, ty, tx], v[1, ty, tx], v[2, ty, tx], v[3, ty, tx])
                    a1, b1, c1, e1 = _b(v[4, ty, tx], v[5, ty, tx], v[6, ty, tx], v[7, ty, tx])
                    a2, b2, c2, e2 = _b(v[8, ty, tx], v[9, ty, tx], v[10, ty, tx], v[11, ty, tx])
                    a3, b3, c3, e3 = _b(v[12, ty, tx], v[13, ty, tx], v[14, ty, tx], v[15, ty, tx])
                    x = 2 * tx
                    _add_column(rows, x, _b(a0, a1, a2, a3))
                    _add_column(rows, x + 1, _b(b0, b1, b2, b3))
                    _add_column(rows, x + 2, _b(c0, c1, c2, c3))
                    _add_column(rows, x + 3, _b(e0, e1, e2, e3))
            for y in range(h):
                grad_image[c, n, y] = padded[y + top, left:left + w]


@njit(cache=True, nogil=True, parallel=True)
def weight_grad_transform(transformed_grad, grad_weight):
    """transformed_grad: (16, O, C) -> grad_weight: (O, C, 3, 3), grad_weight[o, c] = G^T dU G with
    dU[r, s] = transformed_grad[4r + s, o, c] (the adjoint of `weight_transform`)."""
    o_count, c_count = grad_weight.shape[:2]
    for o in prange(o_count):
        rows = np.empty((4, 3), dtype=grad_weight.dtype)
        for c in range(c_count):
            u = transformed_grad[:, o, c]
            # G^T along each row of dU (4 -> 3 columns), then down each column (4 -> 3 rows).
            for r in range(4):
                u0, u1, u2, u3 = u[4 * r], u[4 * r + 1], u[4 * r + 2], u[4 * r + 3]
                rows[r, 0] = u0 + 0.5 * (u1 + u2)
                rows[r, 1] = 0.5 * (u1 - u2)
                rows[r, 2] = 0.5 * (u1 + u2) + u3
            for j in range(3):
                grad_weight[o, c, 0, j] = rows[0, j] + 0.5 * (rows[1, j] + rows[2, j])
                grad_weight[o, c, 1, j] = 0.5 * (rows[1, j] - rows[2, j])
                grad_weight[o, c, 2, j] = 0.5 * (rows[1, j] + rows[2, j]) + rows[3, j]


# ------------------------------------------------------------------ NumPy references, from the matrices
reference = References(B_T, G, A_T)  # the NumPy reference of every transform above
