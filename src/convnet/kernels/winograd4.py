"""Winograd F(4x4, 3x3)'s six transforms, compiled, and their NumPy references (``reference``).

kernels/winograd.py describes the algorithm and runs the convolution; this file holds the
transforms for 4x4 output tiles from 6x6 input patches (36 planes), the sibling of winograd2.py's
F(2x2, 3x3) with the same functions, signatures and layouts. Tile (ty, tx) of output channel o is

    Y = A^T [ sum_c (G g_oc G^T) * (B^T d_ct B) ] A        (* element-wise on 6x6)

with d_ct the 6x6 patch of the padded input at rows 4ty.., columns 4tx.. (neighbouring patches
overlap by 2) and, from the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016),

    B^T = [[4,  0, -5,  0, 1, 0],        G = [[ 1/4,     0,    0],     A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],             [-1/6,  -1/6, -1/6],            [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],             [-1/6,   1/6, -1/6],            [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],             [1/24,  1/12,  1/6],            [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],             [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]             [   0,     0,    1]]

so, with U = G g G^T as (36, O, C) and V = B^T d B as (36, C, T), the 36 positions of the 6x6 tile
are 36 independent matrix products M = U @ V, (36, O, C) @ (36, C, T), done by `np.matmul`. That
is 36 multiplies per 16 outputs, 2.25 per output, where F(2x2) takes 16 per 4 (4 per output) and
the direct sum 9: 1.78x fewer than F(2x2), 4x fewer than the direct sum. The transformed arrays
shrink with them (36 values per 16 outputs instead of 16 per 4), so the memory-bound transforms
move less data per output, though they compute more: B^T on a 6-vector takes 6 multiplies and 12
adds, 13.5 flops per output for the input transform where F(2x2)'s takes 8.

The price is accuracy: the points +-2 put 4, 5 and 8 into B^T and A^T and 1/24 into G, so the 36
products are larger than the outputs they cancel down to, and float32 rounding grows with them.
Measured against float64 (values ~N(0, 1), seeds 0..2, tests/test_kernels_winograd4.py), max
error / the result's max |value|, forward / input gradient / weight gradient, padding 1:

    (N, C, H, W) -> O          forward   input grad  weight grad
    (128, 32, 14, 14) -> 64    5.6e-6    4.0e-6      7.1e-6
    (8, 128, 7, 7) -> 128      7.5e-6    4.9e-6      2.6e-6
    (16, 32, 28, 28) -> 32     5.4e-6    3.7e-6      4.3e-6

and 1.1e-6..3.2e-6 at small odd shapes; F(2x2)'s is 0.8e-7..8.2e-7, about 9x smaller. In float64
the error is ~1e-14 of the scale.

The output is cut into 4x4 tiles (ceil(H'/4) x ceil(W'/4) per image); a 6x6 patch may reach up
to 3 rows or columns past the padded image when H' or W' is not a multiple of 4, and those only
feed the ragged outputs, which are dropped. Tiles are indexed (36, channels, N, tiles_h, tiles_w),
entry (r, s) of a tile in plane 6r + s.
"""

import numpy as np
from numba import njit, prange

from .winograd import References

B_T = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
               dtype=np.float64)
PLANES = 36  # the element-wise products per tile: one per entry of the 6x6 input patch


# ------------------------------------------------------------------ 1-D transforms (scalars in, tuple out)
# Each takes its constants in its arguments' own type (`real`): a bare 4 is an integer, and an
# integer times a float32 is a float64 in Numba, which would double the work of every float32 tile.
# Rows 1, 2 of B^T and G (columns 1, 2 of A^T) belong to the points +1 and -1, rows 3, 4 (columns
# 3, 4) to +2 and -2. Each such pair of outputs is one even part plus or minus one odd part, and
# each such pair of inputs enters through its sum and its difference: both computed once.
@njit(cache=True, nogil=True, inline="always")
def _b_t(d0, d1, d2, d3, d4, d5):
    """B^T d for a 6-vector d."""
    real = type(d0)
    two, four, five = real(2), real(4), real(5)
    even_1, odd_1 = d4 - four * d2, d3 - four * d1
    even_2, odd_2 = d4 - d2, two * (d3 - d1)
    return (four * d0 - five * d2 + d4, even_1 + odd_1, even_1 - odd_1,
            even_2 + odd_2, even_2 - odd_2, four * d1 - five * d3 + d5)


@njit(cache=True, nogil=True, inline="always")
def _b(v0, v1, v2, v3, v4, v5):
    """B v for a 6-vector v: the adjoint of `_b_t`."""
    real = type(v0)
    two, four, five = real(2), real(4), real(5)
    sum_1, difference_1 = v1 + v2, v1 - v2
    sum_2, difference_2 = v3 + v4, v3 - v4
    return (four * v0, four * (v5 - difference_1) - two * difference_2, -five * v0 - four * sum_1 - sum_2,
            difference_1 + two * difference_2 - five * v5, v0 + sum_1 + sum_2, v5)


@njit(cache=True, nogil=True, inline="always")
def _a_t(m0, m1, m2, m3, m4, m5):
    """A^T m for a 6-vector m -> 4 values."""
    real = type(m0)
    two, four, eight = real(2), real(4), real(8)
    sum_1, difference_1 = m1 + m2, m1 - m2
    sum_2, difference_2 = m3 + m4, m3 - m4
    return (m0 + sum_1 + sum_2, difference_1 + two * difference_2, sum_1 + four * sum_2,
            difference_1 + eight * difference_2 + m5)


@njit(cache=True, nogil=True, inline="always")
def _a(y0, y1, y2, y3):
    """A y for a 4-vector y -> 6 values: the adjoint of `_a_t`."""
    real = type(y0)
    two, four, eight = real(2), real(4), real(8)
    even_1, odd_1 = y0 + y2, y1 + y3
    even_2, odd_2 = y0 + four * y2, two * y1 + eight * y3
    return y0, even_1 + odd_1, even_1 - odd_1, even_2 + odd_2, even_2 - odd_2, y3


@njit(cache=True, nogil=True, inline="always")
def _g(g0, g1, g2):
    """G g for a 3-vector g -> 6 values."""
    real = type(g0)
    sixth = real(1 / 6)
    even_1, odd_1 = -(g0 + g2) * sixth, -g1 * sixth
    even_2, odd_2 = g0 * real(1 / 24) + g2 * sixth, g1 * real(1 / 12)
    return g0 * real(1 / 4), even_1 + odd_1, even_1 - odd_1, even_2 + odd_2, even_2 - odd_2, g2


@njit(cache=True, nogil=True, inline="always")
def _g_t(u0, u1, u2, u3, u4, u5):
    """G^T u for a 6-vector u -> 3 values: the adjoint of `_g`."""
    real = type(u0)
    sixth = real(1 / 6)
    sum_1, sum_2 = u1 + u2, u3 + u4
    return (u0 * real(1 / 4) - sum_1 * sixth + sum_2 * real(1 / 24),
            (u2 - u1) * sixth + (u3 - u4) * real(1 / 12), (sum_2 - sum_1) * sixth + u5)


# ------------------------------------------------------------------ one tile's rows and columns
# rows: 6 rows of the padded image (a patch) or 4 of the output (a tile); planes: the 36 planes of
# one (channel, n), entry (r, s) of tile (ty, tx) at planes[6r + s, ty, tx].
@njit(cache=True, nogil=True, inline="always")
def _b_t_of_patch_column(rows, x):
    """B^T rows[0:6, x] -> 6 values."""
    return _b_t(rows[0, x], rows[1, x], rows[2, x], rows[3, x], rows[4, x], rows[5, x])


@njit(cache=True, nogil=True, inline="always")
def _add_patch_column(rows, x, d):
    """rows[0:6, x] += d, a 6-tuple."""
    rows[0, x] += d[0]
    rows[1, x] += d[1]
    rows[2, x] += d[2]
    rows[3, x] += d[3]
    rows[4, x] += d[4]
    rows[5, x] += d[5]


@njit(cache=True, nogil=True, inline="always")
def _a_of_output_column(rows, x):
    """A rows[0:4, x] -> 6 values."""
    return _a(rows[0, x], rows[1, x], rows[2, x], rows[3, x])


@njit(cache=True, nogil=True, inline="always")
def _set_output_row(rows, a, x, y):
    """rows[a, x:x + 4] = y, a 4-tuple."""
    rows[a, x] = y[0]
    rows[a, x + 1] = y[1]
    rows[a, x + 2] = y[2]
    rows[a, x + 3] = y[3]


@njit(cache=True, nogil=True, inline="always")
def _b_of_plane_row(planes, r, ty, tx):
    """B applied to row r of tile (ty, tx), planes[6r:6r + 6, ty, tx] -> 6 values."""
    k = 6 * r
    return _b(planes[k, ty, tx], planes[k + 1, ty, tx], planes[k + 2, ty, tx],
              planes[k + 3, ty, tx], planes[k + 4, ty, tx], planes[k + 5, ty, tx])


@njit(cache=True, nogil=True, inline="always")
def _a_t_of_plane_column(planes, s, ty, tx):
    """A^T applied to column s of tile (ty, tx), planes[s::6, ty, tx] -> 4 values."""
    return _a_t(planes[s, ty, tx], planes[s + 6, ty, tx], planes[s + 12, ty, tx],
                planes[s + 18, ty, tx], planes[s + 24, ty, tx], planes[s + 30, ty, tx])


@njit(cache=True, nogil=True, inline="always")
def _set_plane_row(planes, r, ty, tx, v):
    """Row r of tile (ty, tx): planes[6r:6r + 6, ty, tx] = v, a 6-tuple."""
    k = 6 * r
    planes[k, ty, tx] = v[0]
    planes[k + 1, ty, tx] = v[1]
    planes[k + 2, ty, tx] = v[2]
    planes[k + 3, ty, tx] = v[3]
    planes[k + 4, ty, tx] = v[4]
    planes[k + 5, ty, tx] = v[5]


# ------------------------------------------------------------------ forward
@njit(cache=True, nogil=True)
def _scratch_hw(h, w, top, left, th, tw):
    """The padded image's size that holds every tile's 6x6 patch and the whole image: the image
    may reach past the last patch when only the first H' x W' outputs are wanted (a transposed
    convolution's output_padding)."""
    return max(4 * th + 2, top + h), max(4 * tw + 2, left + w)


@njit(cache=True, nogil=True, parallel=True)
def input_transform(image, top_left, tiles):
    """image: channel-major (C, N, H, W) -> tiles: (36, C, N, tiles_h, tiles_w), written in full.

    tiles[6r + s, c, n, ty, tx] = (B^T d B)[r, s] with d = padded image[c, n, 4ty:4ty+6, 4tx:4tx+6],
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
            t = tiles[:, c, n]
            for ty in range(th):
                rows = padded[4 * ty:4 * ty + 6]
                for tx in range(tw):
                    x = 4 * tx
                    # Columns first: B^T applied down each of the patch's 6 columns.
                    col0 = _b_t_of_patch_column(rows, x)
                    col1 = _b_t_of_patch_column(rows, x + 1)
                    col2 = _b_t_of_patch_column(rows, x + 2)
                    col3 = _b_t_of_patch_column(rows, x + 3)
                    col4 = _b_t_of_patch_column(rows, x + 4)
                    col5 = _b_t_of_patch_column(rows, x + 5)
                    # Then B along each row of that result (B^T on the row as a vector).
                    _set_plane_row(t, 0, ty, tx, _b_t(col0[0], col1[0], col2[0], col3[0], col4[0], col5[0]))
                    _set_plane_row(t, 1, ty, tx, _b_t(col0[1], col1[1], col2[1], col3[1], col4[1], col5[1]))
                    _set_plane_row(t, 2, ty, tx, _b_t(col0[2], col1[2], col2[2], col3[2], col4[2], col5[2]))
                    _set_plane_row(t, 3, ty, tx, _b_t(col0[3], col1[3], col2[3], col3[3], col4[3], col5[3]))
                    _set_plane_row(t, 4, ty, tx, _b_t(col0[4], col1[4], col2[4], col3[4], col4[4], col5[4]))
                    _set_plane_row(t, 5, ty, tx, _b_t(col0[5], col1[5], col2[5], col3[5], col4[5], col5[5]))


@njit(cache=True, nogil=True, parallel=True)
def weight_transform(weight, transformed):
    """weight: (O, C, 3, 3) -> transformed: (36, O, C), transformed[6r + s, o, c] = (G g G^T)[r, s]
    with g = weight[o, c]."""
    o_count, c_count = weight.shape[:2]
    for o in prange(o_count):
        rows = np.empty((6, 3), dtype=weight.dtype)
        for c in range(c_count):
            g = weight[o, c]
            # G down each column of g (3 -> 6 rows), then along each row (3 -> 6 columns).
            for j in range(3):
                rows[0, j], rows[1, j], rows[2, j], rows[3, j], rows[4, j], rows[5, j] = _g(g[0, j], g[1, j], g[2, j])
            for r in range(6):
                k = 6 * r
                (transformed[k, o, c], transformed[k + 1, o, c], transformed[k + 2, o, c], transformed[k + 3, o, c],
                 transformed[k + 4, o, c], transformed[k + 5, o, c]) = _g(rows[r, 0], rows[r, 1], rows[r, 2])


@njit(cache=True, nogil=True, parallel=True)
def output_transform(products, out):
    """products: (36, O, N, tiles_h, tiles_w) -> out: channel-major (O, N, H', W'), written in full.

    out[o, n, 4ty + a, 4tx + b] = (A^T m A)[a, b] with m[r, s] = products[6r + s, o, n, ty, tx];
    a ragged last tile writes only the outputs that exist.
    """
    o_count, n_count, out_h, out_w = out.shape
    th, tw = products.shape[3], products.shape[4]
    for o in prange(o_count):
        # Whole tiles, one (o, n) at a time, then the outputs that exist copied out: with up to 3
        # missing rows and columns per ragged tile, this keeps tests out of the tile loop.
        whole = np.empty((4 * th, 4 * tw), dtype=out.dtype)
        for n in range(n_count):
            m = products[:, o, n]
            for ty in range(th):
                rows = whole[4 * ty:4 * ty + 4]
                for tx in range(tw):
                    # A^T down each column of m (6 -> 4 rows), then A along each row (6 -> 4 columns).
                    col0 = _a_t_of_plane_column(m, 0, ty, tx)
                    col1 = _a_t_of_plane_column(m, 1, ty, tx)
                    col2 = _a_t_of_plane_column(m, 2, ty, tx)
                    col3 = _a_t_of_plane_column(m, 3, ty, tx)
                    col4 = _a_t_of_plane_column(m, 4, ty, tx)
                    col5 = _a_t_of_plane_column(m, 5, ty, tx)
                    x = 4 * tx
                    _set_output_row(rows, 0, x, _a_t(col0[0], col1[0], col2[0], col3[0], col4[0], col5[0]))
                    _set_output_row(rows, 1, x, _a_t(col0[1], col1[1], col2[1], col3[1], col4[1], col5[1]))
                    _set_output_row(rows, 2, x, _a_t(col0[2], col1[2], col2[2], col3[2], col4[2], col5[2]))
                    _set_output_row(rows, 3, x, _a_t(col0[3], col1[3], col2[3], col3[3], col4[3], col5[3]))
            for y in range(out_h):
                out[o, n, y] = whole[y, :out_w]


# ------------------------------------------------------------------ backward
@njit(cache=True, nogil=True, parallel=True)
def output_grad_transform(grad_out, transformed):
    """grad_out: channel-major (O, N, H', W') -> transformed: (36, O, N, tiles_h, tiles_w), written
    in full: transformed[6r + s, o, n, ty, tx] = (A dY A^T)[r, s], dY = grad_out[o, n, 4ty:4ty+4,
    4tx:4tx+4] with zeros for a ragged tile's missing outputs (the adjoint of `output_transform`)."""
    o_count, n_count, out_h, out_w = grad_out.shape
    th, tw = transformed.shape[3], transformed.shape[4]
    for o in prange(o_count):
        # One (o, n) image at a time, zero-extended to whole tiles, so the tile loop has no tests.
        whole = np.zeros((4 * th, 4 * tw), dtype=grad_out.dtype)
        for n in range(n_count):
            whole[:out_h, :out_w] = grad_out[o, n]
            t = transformed[:, o, n]
            for ty in range(th):
                rows = whole[4 * ty:4 * ty + 4]
                for tx in range(tw):
                    x = 4 * tx
                    # A down each column of dY (4 -> 6 rows), then A^T along each row (4 -> 6 columns).
                    col0 = _a_of_output_column(rows, x)
                    col1 = _a_of_output_column(rows, x + 1)
                    col2 = _a_of_output_column(rows, x + 2)
                    col3 = _a_of_output_column(rows, x + 3)
                    _set_plane_row(t, 0, ty, tx, _a(col0[0], col1[0], col2[0], col3[0]))
                    _set_plane_row(t, 1, ty, tx, _a(col0[1], col1[1], col2[1], col3[1]))
                    _set_plane_row(t, 2, ty, tx, _a(col0[2], col1[2], col2[2], col3[2]))
                    _set_plane_row(t, 3, ty, tx, _a(col0[3], col1[3], col2[3], col3[3]))
                    _set_plane_row(t, 4, ty, tx, _a(col0[4], col1[4], col2[4], col3[4]))
                    _set_plane_row(t, 5, ty, tx, _a(col0[5], col1[5], col2[5], col3[5]))


@njit(cache=True, nogil=True, parallel=True)
def input_grad_transform(tiles_grad, top_left, grad_image):
    """tiles_grad: (36, C, N, tiles_h, tiles_w) -> grad_image: channel-major (C, N, H, W),
    overwritten: the adjoint of `input_transform`.

    Each tile's dd = B dV B^T (dV[r, s] = tiles_grad[6r + s, ...]) is added onto the padded
    image at rows 4ty.., columns 4tx.. (neighbouring patches overlap by 2); the padding is dropped.
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
                rows = padded[4 * ty:4 * ty + 6]
                for tx in range(tw):
                    # B along each row of dV (B^T's adjoint on the right), then B down each column.
                    row0 = _b_of_plane_row(v, 0, ty, tx)
                    row1 = _b_of_plane_row(v, 1, ty, tx)
                    row2 = _b_of_plane_row(v, 2, ty, tx)
                    row3 = _b_of_plane_row(v, 3, ty, tx)
                    row4 = _b_of_plane_row(v, 4, ty, tx)
                    row5 = _b_of_plane_row(v, 5, ty, tx)
                    x = 4 * tx
                    _add_patch_column(rows, x, _b(row0[0], row1[0], row2[0], row3[0], row4[0], row5[0]))
                    _add_patch_column(rows, x + 1, _b(row0[1], row1[1], row2[1], row3[1], row4[1], row5[1]))
                    _add_patch_column(rows, x + 2, _b(row0[2], row1[2], row2[2], row3[2], row4[2], row5[2]))
                    _add_patch_column(rows, x + 3, _b(row0[3], row1[3], row2[3], row3[3], row4[3], row5[3]))
                    _add_patch_column(rows, x + 4, _b(row0[4], row1[4], row2[4], row3[4], row4[4], row5[4]))
                    _add_patch_column(rows, x + 5, _b(row0[5], row1[5], row2[5], row3[5], row4[5], row5[5]))
            for y in range(h):
                grad_image[c, n, y] = padded[y + top, left:left + w]


@njit(cache=True, nogil=True, parallel=True)
def weight_grad_transform(transformed_grad, grad_weight):
    """transformed_grad: (36, O, C) -> grad_weight: (O, C, 3, 3), grad_weight[o, c] = G^T dU G with
    dU[r, s] = transformed_grad[6r + s, o, c] (the adjoint of `weight_transform`)."""
    o_count, c_count = grad_weight.shape[:2]
    for o in prange(o_count):
        rows = np.empty((6, 3), dtype=grad_weight.dtype)
        for c in range(c_count):
            u = transformed_grad[:, o, c]
            # G^T along each row of dU (6 -> 3 columns), then down each column (6 -> 3 rows).
            for r in range(6):
                k = 6 * r
                rows[r, 0], rows[r, 1], rows[r, 2] = _g_t(u[k], u[k + 1], u[k + 2], u[k + 3], u[k + 4], u[k + 5])
            for j in range(3):
                grad_weight[o, c, 0, j], grad_weight[o, c, 1, j], grad_weight[o, c, 2, j] = _g_t(
                    rows[0, j], rows[1, j], rows[2, j], rows[3, j], rows[4, j], rows[5, j])


# ------------------------------------------------------------------ NumPy references, from the matrices
reference = References(B_T, G, A_T)  # the NumPy reference of every transform above
