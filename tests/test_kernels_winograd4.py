"""Winograd F(4x4, 3x3)'s kernels (kernels/winograd4.py): its matrices, each compiled transform
against its NumPy reference, each backward transform as the adjoint of its forward one, and the
convolution and both its gradients composed from the kernels against a float64 correlation.

float32 error bound: F(4x4)'s transforms weight values by up to 5 (B^T) and 8 (A^T) and cancel
in the end, so its float32 error is larger than F(2x2)'s. Measured against float64 (values
~N(0, 1), seeds 0..2): max error 2.3e-6..7.5e-6 of each result's scale (forward, input and
weight gradients; per shape in kernels/winograd4.py's docstring) at (N, C, H, W) -> O =
(128, 32, 14, 14) -> 64, (8, 128, 7, 7) -> 128 and (16, 32, 28, 28) -> 32, padding 1;
1.1e-6..3.2e-6 at small odd shapes. F(2x2)'s is 0.8e-7..8.2e-7 (tests/test_kernels_winograd.py).
Asserted <= 1.2e-5 of the scale.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from convnet.kernels import winograd4
from convnet.kernels.convolution import WINOGRAD
from convnet.kernels.winograd import planes

from conftest import assert_close_relative_to_scale

PLANES = winograd4.PLANES
F4 = WINOGRAD["winograd4"]  # F(4x4, 3x3) put together
FLOAT32_BOUND = 1.2e-5  # max error / max |expected|; measured <= 7.5e-6 (module docstring)
# A compiled transform against its reference: the same sums in another order.
TRANSFORM_TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


@st.composite
def cases(draw):
    """(N, C, H, W), O, padding (top, bottom, left, right): odd sizes, asymmetric padding, an
    output of at least 1x1."""
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, 3 - padding[0] - padding[1]), 13))
    w = draw(st.integers(max(1, 3 - padding[2] - padding[3]), 13))
    n = draw(st.integers(1, 3))
    c, o = draw(st.sampled_from([1, 2, 5, 16])), draw(st.sampled_from([1, 3, 8]))
    return (n, c, h, w), o, padding


# Outputs cut short at the bottom and right, as a transposed convolution's output_padding asks:
# the image then reaches past the last patch.
trims = st.tuples(st.integers(0, 3), st.integers(0, 3))


def output_hw_of(shape, padding, trim=(0, 0)):
    top, bottom, left, right = padding
    full = (shape[2] + top + bottom - 2, shape[3] + left + right - 2)
    return max(1, full[0] - trim[0]), max(1, full[1] - trim[1])


def unwritten(shape, dtype):
    """Staggered planes as the kernels get them, NaN so that any entry a kernel misses fails."""
    array = planes(shape, dtype, PLANES)
    array[...] = np.nan
    return array


def random_planes(rng, shape, dtype):
    array = planes(shape, dtype, PLANES)
    array[...] = rng.standard_normal(array.shape)
    return array


def into(like, reference, *inputs):
    """What ``reference`` writes, given the kernel's inputs, into a fresh array like ``like``."""
    out = np.full(like.shape, np.nan, dtype=like.dtype)
    reference(*inputs, out)
    return out


# ------------------------------------------------------------------ the matrices
def test_matrices_compute_four_outputs_of_a_1d_correlation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal(6), rng.standard_normal(3)
        expected = [g @ d[i:i + 3] for i in range(4)]
        winograd = winograd4.A_T @ ((winograd4.G @ g) * (winograd4.B_T @ d))
        np.testing.assert_allclose(winograd, expected, rtol=0, atol=1e-12)


def test_tiles_cover_the_output_in_4x4():
    assert F4.tiles_hw((1, 4)) == (1, 1)
    assert F4.tiles_hw((5, 12)) == (2, 3)
    assert F4.tiles_hw((13, 14)) == (4, 4)


# ------------------------------------------------------------------ compiled transforms vs references
@given(cases(), trims, st.sampled_from([np.float64, np.float32]))
@example(((2, 3, 7, 6), 4, (1, 1, 1, 1)), (0, 0), np.float32)
@example(((1, 2, 5, 9), 2, (0, 2, 1, 0)), (0, 0), np.float64)
@example(((3, 1, 13, 13), 1, (2, 2, 2, 2)), (3, 1), np.float64)
@example(((1, 16, 1, 1), 8, (1, 1, 1, 1)), (0, 0), np.float32)
@settings(deadline=None, max_examples=40)
def test_transforms_match_their_references(case, trim, dtype):
    shape, o, padding = case
    (n, c), top_left, tolerance = shape[:2], padding[::2], TRANSFORM_TOLERANCE[dtype]
    output_hw = output_hw_of(shape, padding, trim)
    tiles_hw = F4.tiles_hw(output_hw)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((c, n) + shape[2:]).astype(dtype)
    weight = rng.standard_normal((o, c, 3, 3)).astype(dtype)

    tiles = unwritten((c, n) + tiles_hw, dtype)
    winograd4.input_transform(image, top_left, tiles)
    assert_close_relative_to_scale(tiles, into(tiles, winograd4.reference.input_transform, image, top_left), tolerance)

    u = unwritten((o, c), dtype)
    winograd4.weight_transform(weight, u)
    assert_close_relative_to_scale(u, into(u, winograd4.reference.weight_transform, weight), tolerance)

    products = random_planes(rng, (o, n) + tiles_hw, dtype)
    out = np.full((o, n) + output_hw, np.nan, dtype=dtype)
    winograd4.output_transform(products, out)
    assert_close_relative_to_scale(out, into(out, winograd4.reference.output_transform, products), tolerance)

    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grad_products = unwritten((o, n) + tiles_hw, dtype)
    winograd4.output_grad_transform(grad_out, grad_products)
    expected = into(grad_products, winograd4.reference.output_grad_transform, grad_out)
    assert_close_relative_to_scale(grad_products, expected, tolerance)

    tiles_grad = random_planes(rng, (c, n) + tiles_hw, dtype)
    grad_image = np.full(image.shape, np.nan, dtype=dtype)  # overwritten, not added to
    winograd4.input_grad_transform(tiles_grad, top_left, grad_image)
    assert_close_relative_to_scale(grad_image,
                                   into(grad_image, winograd4.reference.input_grad_transform, tiles_grad, top_left),
                                   tolerance)

    u_grad = rng.standard_normal((PLANES, o, c)).astype(dtype)
    grad_weight = np.full(weight.shape, np.nan, dtype=dtype)
    winograd4.weight_grad_transform(u_grad, grad_weight)
    assert_close_relative_to_scale(grad_weight, into(grad_weight, winograd4.reference.weight_grad_transform, u_grad),
                                   tolerance)


def assert_adjoint(forward_x, y, x, backward_y):
    """<forward(x), y> == <x, backward(y)> to float64 rounding of the two sums."""
    scale = np.abs(forward_x * y).sum() + np.abs(x * backward_y).sum()
    assert abs(np.vdot(forward_x, y) - np.vdot(x, backward_y)) <= 1e-12 * scale


@given(cases(), trims)
@example(((2, 3, 7, 6), 4, (1, 1, 1, 1)), (0, 0))
@example(((3, 1, 13, 13), 1, (2, 2, 2, 2)), (3, 1))
@settings(deadline=None, max_examples=25)
def test_backward_transforms_are_the_adjoints_of_the_forward_ones(case, trim):
    shape, o, padding = case
    (n, c), top_left = shape[:2], padding[::2]
    output_hw = output_hw_of(shape, padding, trim)
    tiles_hw = F4.tiles_hw(output_hw)
    rng = np.random.default_rng(0)

    image = rng.standard_normal((c, n) + shape[2:])
    tiles = planes((c, n) + tiles_hw, np.float64, PLANES)
    probe = random_planes(rng, (c, n) + tiles_hw, np.float64)
    grad_image = np.empty(image.shape)
    winograd4.input_transform(image, top_left, tiles)
    winograd4.input_grad_transform(probe, top_left, grad_image)
    assert_adjoint(tiles, probe, image, grad_image)

    products, out = random_planes(rng, (o, n) + tiles_hw, np.float64), np.empty((o, n) + output_hw)
    grad_out, grad_products = rng.standard_normal(out.shape), planes((o, n) + tiles_hw, np.float64, PLANES)
    winograd4.output_transform(products, out)
    winograd4.output_grad_transform(grad_out, grad_products)
    assert_adjoint(out, grad_out, products, grad_products)

    weight, u = rng.standard_normal((o, c, 3, 3)), planes((o, c), np.float64, PLANES)
    u_grad, grad_weight = rng.standard_normal((PLANES, o, c)), np.empty((o, c, 3, 3))
    winograd4.weight_transform(weight, u)
    winograd4.weight_grad_transform(u_grad, grad_weight)
    assert_adjoint(u, u_grad, weight, grad_weight)


# ------------------------------------------------------------------ the convolution composed from the kernels
def winograd4_convolution(x, weight, grad_out, padding):
    """x (N, C, H, W), weight (O, C, 3, 3), grad_out (N, O, H', W') -> the correlation of the
    zero-padded x with weight, its input gradient and its weight gradient, in x's dtype: the
    kernels and np.matmul composed by hand, as kernels/winograd.py's `Winograd` composes them."""
    (n, c), o, dtype = x.shape[:2], weight.shape[0], x.dtype
    output_hw, top_left = grad_out.shape[2:], padding[::2]
    tiles_hw = F4.tiles_hw(output_hw)
    image = np.ascontiguousarray(x.transpose(1, 0, 2, 3))

    tiles, u = planes((c, n) + tiles_hw, dtype, PLANES), planes((o, c), dtype, PLANES)
    winograd4.input_transform(image, top_left, tiles)
    winograd4.weight_transform(weight, u)
    products = planes((o, n * tiles_hw[0] * tiles_hw[1]), dtype, PLANES)
    np.matmul(u, tiles.reshape(PLANES, c, -1), out=products)
    out = np.empty((o, n) + output_hw, dtype=dtype)
    winograd4.output_transform(products.reshape((PLANES, o, n) + tiles_hw), out)

    grad_products = planes((o, n) + tiles_hw, dtype, PLANES)
    winograd4.output_grad_transform(np.ascontiguousarray(grad_out.transpose(1, 0, 2, 3)), grad_products)
    grad_products = grad_products.reshape(PLANES, o, -1)
    tiles_grad = planes((c, grad_products.shape[2]), dtype, PLANES)
    np.matmul(u.transpose(0, 2, 1), grad_products, out=tiles_grad)
    grad_image = np.empty(image.shape, dtype=dtype)
    winograd4.input_grad_transform(tiles_grad.reshape((PLANES, c, n) + tiles_hw), top_left, grad_image)

    grad_weight = np.empty(weight.shape, dtype=dtype)
    u_grad = np.matmul(grad_products, tiles.reshape(PLANES, c, -1).transpose(0, 2, 1))
    winograd4.weight_grad_transform(u_grad, grad_weight)
    return out.transpose(1, 0, 2, 3), grad_image.transpose(1, 0, 2, 3), grad_weight


def correlate(x, weight, padding):
    """float64 (N, C, H, W) correlated with (O, C, 3, 3) over the zero-padded x -> (N, O, H', W'),
    and x's 3x3 windows (N, C, H', W', 3, 3)."""
    top, bottom, left, right = padding
    windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))), (3, 3), axis=(2, 3))
    return np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2), windows


def correlation_oracle(x, weight, grad_out, padding):
    """The three results of `winograd4_convolution` in float64, straight from the windows."""
    x, weight, grad_out = (a.astype(np.float64) for a in (x, weight, grad_out))
    out, windows = correlate(x, weight, padding)
    grad_weight = np.tensordot(grad_out, windows, axes=([0, 2, 3], [0, 2, 3]))
    # Each input pixel's gradient gathers grad_out over the 3x3 outputs that read it, with the
    # kernel turned around: grad_out zero-padded by 2 correlated with the flipped, transposed
    # weight gives the gradient of the padded input, whose padding is then cut off.
    grad_padded, _ = correlate(grad_out, weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], (2, 2, 2, 2))
    top, left = padding[0], padding[2]
    return out, grad_padded[:, :, top:top + x.shape[2], left:left + x.shape[3]], grad_weight


def convolution_arrays(shape, o, padding, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((o, shape[1], 3, 3)).astype(dtype)
    grad_out = rng.standard_normal((shape[0], o) + output_hw_of(shape, padding)).astype(dtype)
    return x, weight, grad_out


@given(cases())
@example(((2, 3, 7, 6), 4, (1, 1, 1, 1)))
@example(((1, 16, 13, 13), 8, (0, 0, 2, 1)))
@settings(deadline=None, max_examples=25)
def test_convolution_matches_the_correlation_in_float64(case):
    shape, o, padding = case
    arrays = convolution_arrays(shape, o, padding, np.float64)
    for name, ours, exact in zip(("out", "grad_x", "grad_weight"), winograd4_convolution(*arrays, padding),
                                 correlation_oracle(*arrays, padding)):
        assert ours.shape == exact.shape, name
        assert_close_relative_to_scale(ours, exact, 1e-10)


@pytest.mark.parametrize("shape, o, padding", [
    ((128, 32, 14, 14), 64, (1, 1, 1, 1)),  # conv2 of the reference CNN
    ((8, 128, 7, 7), 128, (1, 1, 1, 1)),
    ((16, 32, 28, 28), 32, (1, 1, 1, 1)),
    ((3, 5, 9, 11), 7, (0, 2, 1, 0)),
    ((2, 16, 13, 6), 8, (2, 1, 0, 2)),
])
def test_float32_error_is_bounded(shape, o, padding):
    arrays = convolution_arrays(shape, o, padding, np.float32)
    for name, ours, exact in zip(("out", "grad_x", "grad_weight"), winograd4_convolution(*arrays, padding),
                                 correlation_oracle(*arrays, padding)):
        assert ours.dtype == np.float32, name
        assert_close_relative_to_scale(ours, exact, FLOAT32_BOUND)
