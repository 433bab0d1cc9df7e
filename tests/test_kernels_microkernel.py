"""The register-blocked batched product (kernels/microkernel.py) against float64 products and
np.matmul, on sizes that leave rows, columns or both outside the blocks.

Bound: a K-term float32 dot product, summed in any order with or without fused multiply-adds,
is within gamma_K = K * u / (1 - K * u) (u = 2^-24) of the exact sum, relative to sum_k |a_ik b_kj|
(Higham, Accuracy and Stability of Numerical Algorithms, 3.1); each element is checked against
that bound, computed in float64 from the same float32 inputs.
"""

import numba
import numpy as np
import pytest

from convnet import kernels
from convnet.errors import InvalidType, InvalidValue
from convnet.kernels import Kernel, microkernel, winograd
from convnet.kernels.convolution import ConvGeometry, conv2d_forward, conv2d_input_grad, conv2d_weight_grad

from conftest import assert_close_relative_to_scale

U = 2.0 ** -24
ODD_SIZES = [(1, 1, 1, 1), (2, 3, 1, 5), (3, 9, 3, 33), (2, 17, 32, 70), (1, 64, 64, 96), (2, 13, 129, 41),
             (16, 64, 32, 6272 // 64), (1, 8, 3, 32), (1, 7, 32, 31)]


def operands(planes, rows, depth, columns, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((planes, rows, depth), dtype=np.float32),
            rng.standard_normal((planes, depth, columns), dtype=np.float32))


def assert_within_rounding(out, a, b, exact=None, roundings=1):
    """|out - exact| <= roundings * gamma_K * (|a| @ |b|) elementwise; exact: the float64 product,
    or another float32 product (then roundings=2: both are within one bound of the exact one)."""
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64)) if exact is None else exact
    magnitude = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    depth = a.shape[2]
    bound = roundings * depth * U / (1 - depth * U) * magnitude + 1e-30
    error = np.abs(out.astype(np.float64) - exact)
    assert np.all(error <= bound), f"max error / bound {np.max(error / bound)}"


@pytest.mark.parametrize("planes, rows, depth, columns", ODD_SIZES)
@pytest.mark.parametrize("product", [microkernel.batched_matmul, microkernel.batched_matmul_plain])
def test_products_within_float32_rounding(product, planes, rows, depth, columns):
    a, b = operands(planes, rows, depth, columns)
    out = np.full((planes, rows, columns), np.nan, dtype=np.float32)
    product(a, b, out)
    assert_within_rounding(out, a, b)
    assert_within_rounding(out, a, b, exact=np.matmul(a, b), roundings=2)


def test_reference_is_np_matmul():
    a, b = operands(3, 9, 5, 40)
    out = np.empty((3, 9, 40), dtype=np.float32)
    microkernel.batched_matmul_reference(a, b, out)
    np.testing.assert_array_equal(out, np.matmul(a, b))


def test_winograd_layouts():
    """As kernels/winograd.py lays them out: staggered planes, U^T a transposed view, odd tile count."""
    rng = np.random.default_rng(1)
    u = winograd.planes((33, 20), np.float32, 16)
    u[...] = rng.standard_normal(u.shape, dtype=np.float32)
    tiles = winograd.planes((20, 301), np.float32, 16)
    tiles[...] = rng.standard_normal(tiles.shape, dtype=np.float32)
    grad = winograd.planes((33, 301), np.float32, 16)
    grad[...] = rng.standard_normal(grad.shape, dtype=np.float32)
    for a, b, out in ((u, tiles, winograd.planes((33, 301), np.float32, 16)),
                      (u.transpose(0, 2, 1), grad, winograd.planes((20, 301), np.float32, 16))):
        out[...] = np.nan
        microkernel.batched_matmul(a, b, out)
        assert_within_rounding(out, a, b)


@pytest.mark.parametrize("columns", [96, 100])
def test_streaming_stores_where_aligned(columns):
    """Rows 64-byte aligned (96 columns) are written with streaming stores, others (100 columns,
    400-byte rows) with ordinary ones; both give the product."""
    a, b = operands(16, 19, 33, columns, seed=2)
    out = winograd.planes((19, columns), np.float32, 16)
    assert microkernel.streams(out) == (columns == 96)
    out[...] = np.nan
    microkernel.batched_matmul(a, b, out)
    assert_within_rounding(out, a, b)
    assert not microkernel.streams(out[:, :, 1:])


def test_strided_last_axes():
    """b and out whose rows are not contiguous runs: copied to and from contiguous memory."""
    a, b = operands(2, 11, 7, 90)
    out = np.full((2, 11, 90 * 2), np.nan, dtype=np.float32)
    wide_b = np.repeat(b, 2, axis=2)
    microkernel.batched_matmul(a, wide_b[:, :, ::2], out[:, :, 1::2])
    assert_within_rounding(out[:, :, 1::2], a, b)
    assert np.all(np.isnan(out[:, :, ::2]))


def test_deterministic_across_runs_and_threads():
    a, b = operands(16, 64, 32, 1000, seed=3)
    runs = []
    for threads in (numba.config.NUMBA_NUM_THREADS, 1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            out = np.empty((16, 64, 1000), dtype=np.float32)
            microkernel.batched_matmul(a, b, out)
        finally:
            numba.set_num_threads(previous)
        runs.append(out)
    for out in runs[1:]:
        np.testing.assert_array_equal(out, runs[0])


@pytest.mark.skipif(microkernel.VECTOR_WIDTH == 0, reason="no FMA vector unit: the plain loops run")
def test_one_block_is_vector_fma():
    """The intrinsic alone, on one block read from the middle of larger arrays, in a fresh
    (uncached, so inspectable) function: its IR calls llvm.fma on <W x float> vectors."""
    rows, columns, depth = microkernel.BLOCK_ROWS, microkernel.BLOCK_COLUMNS, 5
    block = microkernel._block

    @numba.njit
    def one_block(packed, b, out):
        block(packed, depth * rows, b, 3, b.shape[1], out, out.shape[1] + 2, out.shape[1], depth)

    a, b = operands(1, rows, depth, columns + 7)
    packed = np.zeros((2, depth, rows), dtype=np.float32)
    packed[1] = a[0].T
    out = np.full((rows + 2, columns + 4), np.nan, dtype=np.float32)
    one_block(packed, b[0], out)
    assert_within_rounding(out[None, 1:rows + 1, 2:columns + 2], a, b[:, :, 3:columns + 3])
    assert np.all(np.isnan(out[0])) and np.all(np.isnan(out[1:rows + 1, :2])) and np.all(np.isnan(out[1:, -2:]))
    ir_text = "".join(one_block.inspect_llvm().values())
    assert f"@llvm.fma.v{microkernel.VECTOR_WIDTH}f32(" in ir_text


def test_bad_arguments_say_what_was_expected():
    a, b = operands(2, 3, 4, 5)
    with pytest.raises(InvalidType, match="expected a a 3-d float32 array, got float64"):
        microkernel.batched_matmul(a.astype(np.float64), b, np.empty((2, 3, 5), np.float32))
    with pytest.raises(InvalidValue, match=r"got a \(2, 3, 4\), b \(2, 4, 5\), out \(2, 3, 6\)"):
        microkernel.batched_matmul(a, b, np.empty((2, 3, 6), np.float32))
    with pytest.raises(InvalidValue, match="expected a"):
        microkernel.batched_matmul(a, b[:1], np.empty((2, 3, 5), np.float32))


# ------------------------------------------------------------------ inside Winograd's convolution
@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@pytest.mark.parametrize("layout", ["channels_last", "channel_major"])
def test_winograd_convolution_on_the_kernel(monkeypatch, algorithm, layout):
    """Forward and both gradients of a convolution whose products take the micro-kernel (T = 2
    images x 16 tiles = 32 columns, 16 input and 8 output channels), input and output gradient in
    either memory layout: within Winograd's float32 bound of float64 im2col, the same as with
    np.matmul's products within twice that, and the same bits on a second run."""
    calls = []
    counted = Kernel(lambda a, b, out: calls.append(a.shape) or microkernel.batched_matmul(a, b, out),
                     microkernel.batched_matmul_reference)
    rng = np.random.default_rng(4)
    side = 8 if algorithm == "winograd" else 16
    x = rng.standard_normal((2, 16, side, side), dtype=np.float32)
    weight = rng.standard_normal((8, 16, 3, 3), dtype=np.float32)
    grad_out = rng.standard_normal((2, 8, side, side), dtype=np.float32)
    geometry = ConvGeometry.of_conv2d((side, side), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    order = {"channels_last": (0, 2, 3, 1), "channel_major": (1, 0, 2, 3)}[layout]

    def in_layout(array):
        return np.ascontiguousarray(array.transpose(order)).transpose(np.argsort(order))

    def three(algorithm, arrays):
        x, weight, grad_out = arrays
        with kernels.use_algorithm(algorithm):
            out, saved = conv2d_forward(in_layout(x), weight, geometry)
            grad_x = conv2d_input_grad(in_layout(grad_out), weight, geometry)
        return out, grad_x, conv2d_weight_grad(in_layout(grad_out), saved, geometry)

    monkeypatch.setattr(winograd, "batched_product", counted)
    ours, again = three(algorithm, (x, weight, grad_out)), three(algorithm, (x, weight, grad_out))
    assert len(calls) == 4 and calls[0] == ((16, 36)[algorithm == "winograd4"], 8, 16)
    with kernels.use("reference"):  # the products in np.matmul, the transforms compiled or not alike
        blas = three(algorithm, (x, weight, grad_out))
    with kernels.use("reference"):
        exact = three("im2col", (x.astype(np.float64), weight.astype(np.float64), grad_out.astype(np.float64)))
    bound = {"winograd": 1e-5, "winograd4": 2e-5}[algorithm]
    for result, repeat, with_blas, expected in zip(ours, again, blas, exact):
        np.testing.assert_array_equal(result, repeat)
        assert_close_relative_to_scale(result, expected, bound)
        assert_close_relative_to_scale(result, with_blas, 2 * bound)
