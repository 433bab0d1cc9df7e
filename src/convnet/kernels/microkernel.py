"""Batched matrix products out[p] = a[p] @ b[p] on a register-blocked micro-kernel (issue 30's
last tool): Winograd's P independent products (P, M, K) @ (P, K, N) with a small inner dimension
K (input channels) and a long N (tiles), which np.matmul hands to BLAS one plane at a time.

The micro-kernel is LLVM vector IR, emitted by a `numba.extending.intrinsic` with llvmlite: it
keeps a BLOCK_ROWS x BLOCK_COLUMNS block of ``out`` in vector registers (<W x float>, W =
VECTOR_WIDTH: 16 lanes where the CPU has AVX-512, 8 with AVX2 and FMA) and, for each k, loads
BLOCK_COLUMNS / W vectors of b's row k, broadcasts BLOCK_ROWS values of a's column k and adds
their products with ``llvm.fma``; then it stores the block, with streaming (non-temporal) stores
where out's rows are 64-byte aligned. a is packed first, per plane, into (M / BLOCK_ROWS, K,
BLOCK_ROWS) so that each k's broadcast values are adjacent; b's rows are read in place (N is
their contiguous axis). The driver is a plain `@njit` loop, parallel over (plane, a chunk of
column blocks); rows and columns left over by the blocks are summed by plain loops
(`_plain_block`), which are also the whole product on a CPU without FMA (VECTOR_WIDTH 0).

Every element is summed over k in ascending order by one thread, whatever the thread count, so
results are deterministic; the vector block rounds once per multiply-add (fma), the plain loops
sum in float64 and round once, and BLAS sums in its own order: all agree within float32 rounding
of a K-term sum. Measured against np.matmul in benchmarks/microkernel.py (figures in
kernels/winograd.py, where it runs); first compile about 4-5 s on a busy 2-core machine.

W is fixed when this module is imported, from llvmlite's host CPU features; where Numba compiles
for another CPU (NUMBA_CPU_NAME) without AVX-512, <16 x float> stays correct, LLVM splitting it.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import InvalidType, InvalidValue


def _vector_width():
    """16 float lanes with AVX-512, 8 with AVX2 and FMA, else 0 (plain loops only)."""
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    return 8 if features.get("avx2") and features.get("fma") else 0


VECTOR_WIDTH = _vector_width()
# 8 x 32 (AVX-512) keeps 16 accumulators, 2 loaded rows of b and one broadcast in the 32 zmm
# registers. Prototypes of this driver with 6x32, 4x64, 8x48, 12x32, 16x16 and 16x32 blocks were
# all within the noise of 8x32 on the zoo's products (a busy 2-core Zen 4, rough, issue 30); what
# mattered was the streaming stores (STREAMING_ALIGNMENT). In the cache, one thread, 64x32 @
# 32x2048, 8x32 reached 134 GFLOP/s to OpenBLAS's 61. With 8 lanes (16 ymm registers): 6 x 16.
BLOCK_ROWS, BLOCK_COLUMNS = (8, 32) if VECTOR_WIDTH == 16 else (6, 16)


def _make_block(rows, columns, width, streaming=False):
    """The micro-kernel for a rows x columns block (columns a multiple of width) as an intrinsic:

        _block(packed, packed_start, b, b_start, b_row, out, out_start, out_row, depth)

    out[i, j] = sum_k packed[k, i] * b[k, j] for i < rows, j < columns, k < depth, where each
    array is addressed flat from its ``*_start`` element with rows ``*_row`` elements apart
    (packed's rows are ``rows`` apart; b's and out's columns are adjacent). Arrays float32."""
    vectors = columns // width

    @intrinsic
    def _block(typingctx, packed, packed_start, b, b_start, b_row, out, out_start, out_row, depth):
        arrays, integers = (packed, b, out), (packed_start, b_start, b_row, out_start, out_row, depth)
        if not all(isinstance(a, types.Array) and a.dtype == types.float32 for a in arrays):
            return None
        if not all(isinstance(i, types.Integer) for i in integers):
            return None
        signature = types.void(packed, packed_start, b, b_start, b_row, out, out_start, out_row, depth)

        def codegen(context, builder, sig, args):
            def pointer(position, start_position):
                data = context.make_array(sig.args[position])(context, builder, args[position]).data
                return builder.gep(data, [integer(start_position)])

            def integer(position):
                return context.cast(builder, args[position], sig.args[position], types.intp)

            vector = ir.VectorType(ir.FloatType(), width)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                                 f"llvm.fma.v{width}f32")
            packed_at, b_at, out_at = pointer(0, 1), pointer(2, 3), pointer(5, 6)
            b_row_, out_row_ = integer(4), integer(7)
            zero = ir.Constant(vector, [0.0] * width)
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)
            lane_0 = ir.Constant(ir.IntType(32), 0)

            def vector_at(base, offset):
                return builder.bitcast(builder.gep(base, [offset]), vector.as_pointer())

            # Accumulators in stack slots of the entry block: LLVM's mem2reg keeps them in registers.
            sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(rows)]
            with cgutils.for_range(builder, integer(8)) as loop:
                k = loop.index
                b_k = builder.mul(k, b_row_)
                b_vectors = [builder.load(vector_at(b_at, builder.add(b_k, ir.Constant(b_k.type, v * width))),
                                          align=4) for v in range(vectors)]
                a_k = builder.mul(k, ir.Constant(k.type, rows))
                for i in range(rows):
                    value = builder.load(builder.gep(packed_at, [builder.add(a_k, ir.Constant(k.type, i))]))
                    lanes = builder.insert_element(ir.Constant(vector, ir.Undefined), value, lane_0)
                    broadcast = builder.shuffle_vector(lanes, ir.Constant(vector, ir.Undefined), splat_mask)
                    for v in range(vectors):
                        builder.store(builder.call(fma, [broadcast, b_vectors[v], builder.load(sums[i][v])]),
                                      sums[i][v])
            for i in range(rows):
                for v in range(vectors):
                    offset = builder.add(builder.mul(ir.Constant(b_row_.type, i), out_row_),
                                         ir.Constant(b_row_.type, v * width))
                    store = builder.store(builder.load(sums[i][v]), vector_at(out_at, offset),
                                          align=64 if streaming else 4)
                    if streaming:  # LLVM's !nontemporal: a streaming store, which needs that alignment
                        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return signature, codegen

    return _block


_block = _make_block(BLOCK_ROWS, BLOCK_COLUMNS, max(VECTOR_WIDTH, 8))
_streaming_block = _make_block(BLOCK_ROWS, BLOCK_COLUMNS, max(VECTOR_WIDTH, 8), streaming=True)
# Each parallel task takes CHUNK_BLOCKS column blocks of one plane, so that a thread reads b's
# rows in runs of CHUNK_BLOCKS * BLOCK_COLUMNS floats, which the hardware prefetcher follows.
CHUNK_BLOCKS = 4
# Streaming (non-temporal) stores write out's blocks without first reading their cache lines
# (out is written whole, and is larger than the caches on Winograd's shapes); they need every
# block 64-byte aligned. They made the products 1.2-2x faster in the prototypes (above), and
# without them the kernel was no faster than OpenBLAS on Winograd's products (0.9-1.15x its time).
STREAMING_ALIGNMENT = 64


@njit(cache=True, nogil=True, inline="always")
def _plain_block(a, b, out, p, row_start, row_stop, column_start, column_stop):
    """out[p, rows, columns] = a[p, rows] @ b[p, :, columns] as plain loops, k ascending, summed
    in float64 and rounded once (as accurate as BLAS's fused multiply-adds, or more, on the
    small products that only these loops do)."""
    sums = np.empty(column_stop - column_start, dtype=np.float64)
    for i in range(row_start, row_stop):
        sums[:] = 0.0
        for k in range(a.shape[2]):
            a_ik = np.float64(a[p, i, k])
            for j in range(column_start, column_stop):
                sums[j - column_start] += a_ik * b[p, k, j]
        for j in range(column_start, column_stop):
            out[p, i, j] = sums[j - column_start]


@njit(cache=True, nogil=True, parallel=True)
def batched_matmul_plain(a, b, out):
    """out[p] = a[p] @ b[p] as plain loops (the fallback without FMA; also the vector driver's
    edges). a: (P, M, K), b: (P, K, N), out: (P, M, N), float32, any strides."""
    for p in prange(a.shape[0]):
        _plain_block(a, b, out, p, 0, a.shape[1], 0, b.shape[2])


@njit(cache=True, nogil=True, parallel=True)
def _batched_matmul_vector(a, b, out, streaming):
    """As `batched_matmul` on the micro-kernel; b's and out's last axis must be unit-stride, and
    with ``streaming`` out's data and row strides multiples of STREAMING_ALIGNMENT bytes."""
    planes, rows, depth, columns = a.shape[0], a.shape[1], a.shape[2], b.shape[2]
    row_blocks, column_blocks = rows // BLOCK_ROWS, columns // BLOCK_COLUMNS
    packed = np.empty((planes, row_blocks, depth, BLOCK_ROWS), dtype=np.float32)
    for p in range(planes):  # small (P * M * K); serial, as one parallel loop compiles faster
        for block in range(row_blocks):
            for k in range(depth):
                for i in range(BLOCK_ROWS):
                    packed[p, block, k, i] = a[p, block * BLOCK_ROWS + i, k]
    b_plane, b_row = b.strides[0] // 4, b.strides[1] // 4
    out_plane, out_row = out.strides[0] // 4, out.strides[1] // 4
    full_rows, full_columns = row_blocks * BLOCK_ROWS, column_blocks * BLOCK_COLUMNS
    chunks = max(1, -(-column_blocks // CHUNK_BLOCKS))
    for task in prange(planes * chunks):
        p, chunk = task // chunks, task % chunks
        start = chunk * CHUNK_BLOCKS * BLOCK_COLUMNS
        stop = min((chunk + 1) * CHUNK_BLOCKS, column_blocks) * BLOCK_COLUMNS
        for block in range(row_blocks):
            packed_start = (p * row_blocks + block) * depth * BLOCK_ROWS
            out_start = p * out_plane + block * BLOCK_ROWS * out_row
            for j in range(start, stop, BLOCK_COLUMNS):
                b_start = p * b_plane + j
                if streaming:
                    _streaming_block(packed, packed_start, b, b_start, b_row, out, out_start + j, out_row, depth)
                else:
                    _block(packed, packed_start, b, b_start, b_row, out, out_start + j, out_row, depth)
        _plain_block(a, b, out, p, full_rows, rows, start, stop)  # rows left over by the blocks
        if chunk == chunks - 1:  # columns left over, in the plane's last task
            _plain_block(a, b, out, p, 0, rows, full_columns, columns)


def batched_matmul(a, b, out):
    """out[p] = a[p] @ b[p] for every plane p. a: (P, M, K), b: (P, K, N), out: (P, M, N), all
    float32; a may have any strides (a transposed view is fine), b and out any strides but their
    last axis is read and written as a contiguous run (copied to such where it is not).

    >>> a, b = np.ones((2, 3, 4), np.float32), np.ones((2, 4, 5), np.float32)
    >>> out = np.empty((2, 3, 5), np.float32)
    >>> batched_matmul(a, b, out); float(out[1, 2, 4])
    4.0
    """
    _check(a, b, out)
    if VECTOR_WIDTH == 0:
        batched_matmul_plain(a, b, out)
        return
    b = b if b.strides[2] == 4 else np.ascontiguousarray(b)
    if out.strides[2] == 4:
        _batched_matmul_vector(a, b, out, streams(out))
    else:
        product = np.empty(out.shape, dtype=np.float32)
        _batched_matmul_vector(a, b, product, streams(product))
        out[...] = product


def streams(out):
    """Whether `batched_matmul` writes ``out`` (P, M, N) with streaming stores: where its data and
    its planes' and rows' strides are multiples of STREAMING_ALIGNMENT bytes."""
    return all(value % STREAMING_ALIGNMENT == 0 for value in (out.ctypes.data,) + out.strides[:2])


def batched_matmul_reference(a, b, out):
    """out[p] = a[p] @ b[p]: np.matmul (BLAS). Shapes as `batched_matmul`."""
    _check(a, b, out)
    np.matmul(a, b, out=out)


def _check(a, b, out):
    for name, array in (("a", a), ("b", b), ("out", out)):
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 3:
            raise InvalidType(f"batched_matmul: expected {name} a 3-d float32 array, got "
                              f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1] or out.shape != (a.shape[0], a.shape[1], b.shape[2]):
        raise InvalidValue(f"batched_matmul: expected a (P, M, K), b (P, K, N), out (P, M, N), "
                           f"got a {a.shape}, b {b.shape}, out {out.shape}")
