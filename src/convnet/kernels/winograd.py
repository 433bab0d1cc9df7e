"""Winograd convolution F(m x m, 3x3) for stride-1 3x3 kernels: the transforms compiled, the products in BLAS.

One implementation for both tile sizes, `Winograd`, bound to the transforms of F(2x2, 3x3)
(kernels/winograd2.py: 2x2 output tiles from 4x4 patches) or F(4x4, 3x3) (kernels/winograd4.py:
4x4 tiles from 6x6 patches). The output is cut into m x m tiles (T = N * ceil(H'/m) * ceil(W'/m)
of them, the last row or column ragged when m does not divide H' or W'). Tile (ty, tx) of output
channel o is

    Y = A^T [ sum_c (G g_oc G^T) * (B^T d_ct B) ] A        (* element-wise on p x p, p = m + 2)

with d_ct the p x p patch of the padded input at rows m*ty.., columns m*tx.. (neighbouring patches
overlap by 2). With U = G g G^T as (P, O, C) and V = B^T d B as (P, C, T), P = p*p planes (16 or
36), the P positions of the patch are P independent matrix products M = U @ V,
(P, O, C) @ (P, C, T), done by kernels/microkernel.py's register-blocked kernel.

The gradients run the same chain backwards (each map's adjoint, in reverse):
    dM = A dY A^T                                  `output_grad_transform`
    dV = U^T @ dM   (P, C, O) @ (P, O, T)          then  dd = B dV B^T, scatter-added  `input_grad_transform`
    dU = dM @ V^T   (P, O, T) @ (P, T, C)          then  dg = G^T dU G                 `weight_grad_transform`

Images are channel-major (C, N, H, W), as in kernels/columns.py, and read unpadded: the kernels
copy one (n, c) image at a time into a small zeroed scratch laid out as the padded image, so the
tile loops need no bounds tests. F(2x2, 3x3) also reads channels-last (N, H, W, C) input and
output gradients (`reads_channels_last`: `input_transform_last`, `output_grad_transform_last`),
copying a block of channels at a time into such a scratch, so they need no whole transposing
copy. Tiles are indexed (P, channels, N, tiles_h, tiles_w), tile index t = (n, ty, tx). Each transform file binds `References`, the NumPy references written from its
matrices alone, with the kernels' arguments.

The compiled transforms stay one file per tile size, with no helper shared between the files:
their loops are unrolled for their patch, and Numba's on-disk cache keys a kernel on its own
file only, so a shared helper that changed would leave the other file's cached kernels running
the old one.
"""

import numpy as np

from . import Kernel
from .microkernel import BLOCK_COLUMNS, BLOCK_ROWS, batched_matmul, batched_matmul_reference, streams

TRANSFORMS = ("input_transform", "weight_transform", "output_transform", "output_grad_transform",
              "input_grad_transform", "weight_grad_transform")
# Transforms that read channels-last (N, H, W, C) memory, where a tile size's file has them.
LAST_TRANSFORMS = ("input_transform_last", "output_grad_transform_last")
# The forward's and the input gradient's P products, (P, M, K) @ (P, K, T) with K = 32..128
# channels, run on kernels/microkernel.py's register-blocked kernel (np.matmul in reference mode).
# Time over np.matmul's on the zoo's products (benchmarks/microkernel.py, 2026-12-06, 2-core AMD
# EPYC Zen 4, OpenBLAS 0.3.31 SkylakeX kernels, one process, interleaved; rough, the machine
# shared with five other sessions): 2 threads, quiet blocks only, 0.53-0.73 (145-200 GFLOP/s
# against 118-148); 1 thread, the machine busy, 0.46-0.94 (median 0.87). Whole layers forward +
# backward 0.76-1.02 and training steps 0.93-0.96 (reference CNN, ResNet-8; 1 thread, busy: within
# the noise). Without streaming stores (rows of T not a multiple of 16) it was no faster: see
# `_product`. Its first compile adds about 4-5 s (busy machine). The weight gradient's
# (P, O, T) @ (P, T, C), summing over the T tiles, stays in BLAS.
batched_product = Kernel(batched_matmul, batched_matmul_reference)


def planes(shape, dtype, count):
    """An uninitialised (count,) + shape array whose planes lie 16 elements further apart than
    contiguous ones (count: 16 for F(2x2, 3x3)'s 4x4 tiles, 36 for F(4x4, 3x3)'s 6x6), starting
    on a 64-byte boundary.

    The kernels write (or read) all planes at once, one stream each; when a plane's size is a
    multiple of 4 KiB (conv2's is) the streams map to the same L1 cache sets and evict one
    another (measured 7x slower input transform; the transformed weights' (16, 512, 512) planes
    made the weight transforms 3-4x slower, issue 30). The gap staggers them. Each plane is
    C-contiguous, so `np.matmul` hands the planes to BLAS without a copy; the 64-byte start lets
    kernels/microkernel.py write whole cache lines where the rows' length allows.
    """
    size, itemsize = int(np.prod(shape)), np.dtype(dtype).itemsize
    memory = np.empty(count * (size + 16) + 64 // itemsize, dtype=dtype)
    start = (-memory.ctypes.data % 64) // itemsize
    staggered = memory[start:start + count * (size + 16)].reshape(count, size + 16)
    return staggered[:, :size].reshape((count,) + tuple(shape))


class Winograd:
    """F(m x m, 3x3) on one tile size's transforms, each a `Kernel` (compiled or reference by the
    mode). Images and gradients channel-major: image (C, N, H, W), grad (O, N, H', W'); weight
    (O, C, 3, 3); ``geometry`` a `convnet.kernels.convolution.ConvGeometry` with stride 1 and
    groups 1. `convnet.kernels.convolution` calls these."""

    def __init__(self, name, transforms):
        self.name, self.planes, self.tile = name, transforms.PLANES, transforms.A_T.shape[0]
        self.reads_channels_last = all(hasattr(transforms, transform) for transform in LAST_TRANSFORMS)
        for transform in TRANSFORMS + (LAST_TRANSFORMS if self.reads_channels_last else ()):
            setattr(self, transform, Kernel(getattr(transforms, transform), getattr(transforms.reference, transform)))

    def tiles_hw(self, output_hw):
        """Output (H', W') -> the number of m x m tiles (ceil(H'/m), ceil(W'/m))."""
        return tuple(-(-size // self.tile) for size in output_hw)

    def forward(self, image, weight, geometry, last=False, finish=None):
        """image: channel-major (C, N, H, W), or channels-last (N, H, W, C) when ``last`` (only where
        `reads_channels_last`) -> out: channel-major (O, N, H', W'), tiles (P, C, N, tH, tW) and
        U = G g G^T (P, O, C), which `input_grad` takes again. ``finish``: in place of the output
        transform, a function of the products (P, O, N, tH, tW) returning out (an inference epilogue).

        tiles = B^T d B over the input's patches, U, then the P products
        (P, O, C) @ (P, C, N*tH*tW) and A^T m A back onto the output.
        """
        n, c = (image.shape[0], image.shape[3]) if last else image.shape[1::-1]
        o, tiles_hw = weight.shape[0], self.tiles_hw(geometry.output_hw)
        tiles = planes((c, n) + tiles_hw, image.dtype, self.planes)
        (self.input_transform_last if last else self.input_transform)(image, geometry.padding[::2], tiles)
        products = planes((o, n * tiles_hw[0] * tiles_hw[1]), image.dtype, self.planes)
        transformed_weight = self.weight(weight)
        _product(transformed_weight, tiles.reshape(self.planes, c, -1), products)
        if finish is not None:
            return finish(products.reshape((self.planes, o, n) + tiles_hw)), tiles, transformed_weight
        out = np.empty((o, n) + geometry.output_hw, dtype=image.dtype)
        self.output_transform(products.reshape((self.planes, o, n) + tiles_hw), out)
        return out, tiles, transformed_weight

    def weight(self, weight):
        """weight: (O, C, 3, 3) -> U = G g G^T: (P, O, C)."""
        transformed = planes(weight.shape[:2], weight.dtype, self.planes)
        self.weight_transform(np.ascontiguousarray(weight), transformed)
        return transformed

    def output_grad(self, grad, geometry, last=False):
        """grad: channel-major (O, N, H', W'), or channels-last (N, H', W', O) when ``last`` (only where
        `reads_channels_last`) -> dM = A dY A^T over its output tiles: (P, O, N*tH*tW)."""
        o_n = (grad.shape[3], grad.shape[0]) if last else grad.shape[:2]
        transformed = planes(o_n + self.tiles_hw(geometry.output_hw), grad.dtype, self.planes)
        (self.output_grad_transform_last if last else self.output_grad_transform)(grad, transformed)
        return transformed.reshape(self.planes, o_n[0], -1)

    def input_grad(self, grad_transformed, transformed_weight, geometry, n):
        """dM: (P, O, N*tH*tW) from `output_grad`, U: (P, O, C) from `weight` (or `forward`)
        -> grad_x: channel-major (C, N, H, W).

        dV = U^T @ dM, (P, C, O) @ (P, O, N*tH*tW), then B dV B^T added back onto the input.
        """
        c = transformed_weight.shape[2]
        tiles_grad = planes((c, grad_transformed.shape[2]), grad_transformed.dtype, self.planes)
        _product(transformed_weight.transpose(0, 2, 1), grad_transformed, tiles_grad)
        grad_x = np.empty((c, n) + geometry.input_hw, dtype=tiles_grad.dtype)
        tiles_hw = self.tiles_hw(geometry.output_hw)
        self.input_grad_transform(tiles_grad.reshape((self.planes, c, n) + tiles_hw), geometry.padding[::2], grad_x)
        return grad_x

    def weight_grad(self, grad_transformed, tiles):
        """dM: (P, O, N*tH*tW), tiles: (P, C, N, tH, tW) from `forward` -> grad_weight: (O, C, 3, 3).

        dU = dM @ tiles^T, (P, O, N*tH*tW) @ (P, N*tH*tW, C), then G^T dU G.
        """
        c = tiles.shape[1]
        transformed = planes((grad_transformed.shape[1], c), tiles.dtype, self.planes)
        np.matmul(grad_transformed, tiles.reshape(self.planes, c, -1).transpose(0, 2, 1), out=transformed)
        grad_weight = np.empty(transformed.shape[1:] + (3, 3), dtype=transformed.dtype)
        self.weight_grad_transform(transformed, grad_weight)
        return grad_weight


def _product(a, b, out):
    """out[p] = a[p] @ b[p]: `batched_product` on float32 where at least one register block fits
    and out's rows take streaming stores (`microkernel.streams`: T a multiple of 16), else
    np.matmul. Without streaming stores the kernel was no faster (0.92x and 1.15x np.matmul's time
    on the batch-1000 products, T = 49000); on products smaller than a block its plain-loop edges
    would do all the work, no faster and rounded differently from BLAS."""
    fits = out.shape[1] >= BLOCK_ROWS and out.shape[2] >= BLOCK_COLUMNS
    if a.dtype == b.dtype == out.dtype == np.float32 and fits and streams(out):
        batched_product(a, b, out)
    else:
        np.matmul(a, b, out=out)


class References:
    """The six transforms' NumPy references, written from a Winograd algorithm's matrices alone:
    B^T (p x p, p = patch side), G (p x 3) and A^T (m x p, m = output tile side, patches m apart).
    They take the kernels' arguments (shapes in kernels/winograd2.py, with P = p*p planes)."""

    def __init__(self, b_t, g, a_t):
        self.b_t, self.g, self.a_t = b_t, g, a_t
        self.patch, self.tile = b_t.shape[0], a_t.shape[0]

    def _scratch_hw(self, h, w, top, left, th, tw):
        """As the kernels' `_scratch_hw`: every tile's patch and the whole image fit."""
        reach = self.patch - self.tile
        return max(self.tile * th + reach, top + h), max(self.tile * tw + reach, left + w)

    def input_transform(self, image, top_left, tiles):
        """image (C, N, H, W) -> tiles (P, C, N, tiles_h, tiles_w)."""
        (c, n, h, w), (top, left), p, m = image.shape, top_left, self.patch, self.tile
        th, tw = tiles.shape[3:]
        padded = np.zeros((c, n) + self._scratch_hw(h, w, top, left, th, tw), dtype=image.dtype)
        padded[:, :, top:top + h, left:left + w] = image
        windows = np.lib.stride_tricks.sliding_window_view(padded, (p, p), axis=(2, 3))
        windows = windows[:, :, :m * th:m, :m * tw:m]
        b_t = self.b_t.astype(image.dtype)
        tiles[...] = np.einsum("ri,cnyxij,sj->rscnyx", b_t, windows, b_t).reshape(tiles.shape)

    def input_transform_last(self, image, top_left, tiles):
        """image channels-last (N, H, W, C) -> tiles (P, C, N, tiles_h, tiles_w)."""
        self.input_transform(image.transpose(3, 0, 1, 2), top_left, tiles)

    def output_grad_transform_last(self, grad_out, transformed):
        """grad_out channels-last (N, H', W', O) -> transformed (P, O, N, tiles_h, tiles_w)."""
        self.output_grad_transform(grad_out.transpose(3, 0, 1, 2), transformed)

    def weight_transform(self, weight, transformed):
        """weight (O, C, 3, 3) -> transformed (P, O, C)."""
        g = self.g.astype(weight.dtype)
        transformed[...] = np.einsum("ri,ocij,sj->rsoc", g, weight, g).reshape(transformed.shape)

    def output_transform(self, products, out):
        """products (P, O, N, tiles_h, tiles_w) -> out (O, N, H', W')."""
        a, m, (out_h, out_w) = self.a_t.astype(products.dtype), self.tile, out.shape[2:]
        y = np.einsum("ar,rsonyx,bs->onyaxb", a, products.reshape((self.patch,) * 2 + products.shape[1:]), a)
        o, n, th, _, tw, _ = y.shape  # tile rows and columns next to their m x m entries
        out[...] = y.reshape(o, n, m * th, m * tw)[:, :, :out_h, :out_w]

    def output_grad_transform(self, grad_out, transformed):
        """grad_out (O, N, H', W') -> transformed (P, O, N, tiles_h, tiles_w)."""
        (o, n, out_h, out_w), m, (th, tw) = grad_out.shape, self.tile, transformed.shape[3:]
        padded = np.zeros((o, n, m * th, m * tw), dtype=grad_out.dtype)
        padded[:, :, :out_h, :out_w] = grad_out
        a = self.a_t.astype(grad_out.dtype)
        out = np.einsum("ar,onyaxb,bs->rsonyx", a, padded.reshape(o, n, th, m, tw, m), a)
        transformed[...] = out.reshape(transformed.shape)

    def input_grad_transform(self, tiles_grad, top_left, grad_image):
        """tiles_grad (P, C, N, tiles_h, tiles_w) -> grad_image (C, N, H, W)."""
        b_t, p, m = self.b_t.astype(tiles_grad.dtype), self.patch, self.tile
        _, c, n, th, tw = tiles_grad.shape
        dd = np.einsum("ri,rscnyx,sj->cnyxij", b_t, tiles_grad.reshape((p, p) + tiles_grad.shape[1:]), b_t)
        (top, left), (h, w) = top_left, grad_image.shape[2:]
        padded = np.zeros((c, n) + self._scratch_hw(h, w, top, left, th, tw), dtype=tiles_grad.dtype)
        for i in range(p):  # one strided add per patch offset, never np.add.at
            for j in range(p):
                padded[:, :, i:i + m * th:m, j:j + m * tw:m] += dd[..., i, j]
        grad_image[...] = padded[:, :, top:top + h, left:left + w]

    def weight_grad_transform(self, transformed_grad, grad_weight):
        """transformed_grad (P, O, C) -> grad_weight (O, C, 3, 3)."""
        g, p = self.g.astype(transformed_grad.dtype), self.patch
        d_u = transformed_grad.reshape((p, p) + transformed_grad.shape[1:])
        grad_weight[...] = np.einsum("ri,rsoc,sj->ocij", g, d_u, g)
