"""Winograd convolution: F(2x2, 3x3)'s compiled transforms against their NumPy references
(F(4x4, 3x3)'s are in test_kernels_winograd4.py), and both algorithms' forward, input gradient
and weight gradient through `convnet.functional` against im2col, the defining sum
(`conv2d_reference`), finite differences (float64) and PyTorch (float32).

float32 error bound: Winograd's transforms add and halve before the products, so it does not
match im2col bit for bit. Measured against float64 (values ~N(0, 1), 1..128 channels, batch
1..128, including conv2's (128, 32, 14, 14) -> 64): max error 0.8e-7..8.2e-7 of each result's
scale (forward, input and weight gradients), im2col's float32 0.6e-7..6.8e-7; asserted
<= 1e-5 of the scale (`assert_close_relative_to_scale`).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels
from convnet.functional.conv import conv2d_reference
from convnet.kernels import winograd, winograd2, winograd4
from convnet.kernels.convolution import WINOGRAD, ConvGeometry, conv2d_forward, conv2d_grads, conv2d_input_grad, \
    conv2d_weight_grad, in_backward_layout, memory_layout

from conftest import assert_close_relative_to_scale, finite_difference_check, requires_torch, torch, torch_check

FLOAT32_BOUND = 1e-5  # max error / max |expected|; measured <= 8.2e-7 (module docstring)
# F(4x4, 3x3)'s transforms multiply by up to 8 and divide by 24: measured <= 7.5e-6 of the scale
# (kernels/winograd4.py).
BOUNDS = {"winograd": FLOAT32_BOUND, "winograd4": 2e-5}
each_winograd = pytest.mark.parametrize("algorithm", list(BOUNDS))
# Elementwise against PyTorch: F(4x4)'s bound times these outputs' scale (~30).
TORCH_ATOL = {"winograd": 1e-4, "winograd4": 6e-4}


@st.composite
def cases(draw):
    """(N, C, H, W), O, padding (top, bottom, left, right): odd sizes, batch 1, asymmetric padding."""
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, 3 - padding[0] - padding[1]), 11))
    w = draw(st.integers(max(1, 3 - padding[2] - padding[3]), 11))
    n = draw(st.integers(1, 3))
    c, o = draw(st.sampled_from([1, 2, 5, 16, 64])), draw(st.sampled_from([1, 3, 8, 33]))
    return (n, c, h, w), o, padding


def arrays(shape, o, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((o, shape[1], 3, 3)).astype(dtype)
    return x, weight


def geometry_of(shape, padding):
    return ConvGeometry.of_conv2d(shape[2:], (3, 3), (1, 1), padding, (1, 1), 1)


def all_three(x, weight, grad_out, geometry, algorithm):
    with kernels.use_algorithm(algorithm):
        out, saved = conv2d_forward(x, weight, geometry)
        grad_x = conv2d_input_grad(grad_out, weight, geometry)
    # The weight gradient follows the saved form, whichever algorithm is selected now.
    return out, grad_x, conv2d_weight_grad(grad_out, saved, geometry)


def float64_oracle(x, weight, grad_out, geometry):
    """The three in float64 through im2col's references."""
    with kernels.use("reference"), kernels.use_algorithm("im2col"):
        return all_three(*(a.astype(np.float64) for a in (x, weight, grad_out)), geometry, "im2col")


def into(like, reference, *inputs):
    """What ``reference`` writes, given the kernel's inputs, into a fresh array like ``like``."""
    out = np.full(like.shape, np.nan, dtype=like.dtype)
    reference(*inputs, out)
    return out


# ------------------------------------------------------------------ compiled transforms vs references
@given(cases())
@example(((2, 3, 7, 6), 4, (1, 1, 1, 1)))
@example(((1, 2, 5, 9), 2, (0, 2, 1, 0)))
@settings(deadline=None, max_examples=40)
def test_transforms_match_their_references(case):
    shape, o, padding = case
    x, weight = arrays(shape, o)
    geometry = geometry_of(shape, padding)
    image, top_left = np.ascontiguousarray(x.transpose(1, 0, 2, 3)), padding[::2]
    tiles_hw = WINOGRAD["winograd"].tiles_hw(geometry.output_hw)
    rng = np.random.default_rng(1)

    tiles = np.full((16,) + image.shape[:2] + tiles_hw, np.nan, dtype=np.float32)  # every entry written
    winograd2.input_transform(image, top_left, tiles)
    np.testing.assert_allclose(tiles, into(tiles, winograd2.reference.input_transform, image, top_left), atol=1e-5)

    u = np.full((16, o, shape[1]), np.nan, dtype=np.float32)
    winograd2.weight_transform(weight, u)
    np.testing.assert_allclose(u, into(u, winograd2.reference.weight_transform, weight), rtol=1e-6, atol=1e-6)

    products = rng.standard_normal((16, o, shape[0]) + tiles_hw).astype(np.float32)
    out = np.full((o, shape[0]) + geometry.output_hw, np.nan, dtype=np.float32)
    winograd2.output_transform(products, out)
    np.testing.assert_allclose(out, into(out, winograd2.reference.output_transform, products), atol=1e-5)

    grad_out = rng.standard_normal(out.shape).astype(np.float32)
    grad_t = np.full(products.shape, np.nan, dtype=np.float32)
    winograd2.output_grad_transform(grad_out, grad_t)
    np.testing.assert_allclose(grad_t, into(grad_t, winograd2.reference.output_grad_transform, grad_out), atol=1e-5)

    grad_image = np.full(image.shape, np.nan, dtype=np.float32)  # overwritten, not added to
    winograd2.input_grad_transform(tiles, top_left, grad_image)
    np.testing.assert_allclose(grad_image, into(grad_image, winograd2.reference.input_grad_transform, tiles, top_left),
                               atol=1e-4)

    grad_weight = np.full(weight.shape, np.nan, dtype=np.float32)
    winograd2.weight_grad_transform(u, grad_weight)
    np.testing.assert_allclose(grad_weight, into(grad_weight, winograd2.reference.weight_grad_transform, u), rtol=1e-5,
                               atol=1e-5)


def test_planes_are_staggered_views_blas_can_use():
    planes = winograd.planes((32, 128, 7, 7), np.float32, 16)
    assert planes.shape == (16, 32, 128, 7, 7) and planes[0].flags.c_contiguous
    assert planes.strides[0] % 4096 != 0
    flat = planes.reshape(16, 32, -1)
    assert np.shares_memory(flat, planes)


@each_winograd
def test_transformed_weights_are_staggered_planes(algorithm):
    """U = G g G^T for 64 -> 64 channels: planes of 16 KiB, which contiguous would alias in L1."""
    winograd_algorithm, (_, weight) = WINOGRAD[algorithm], arrays((1, 64, 3, 3), 64)
    transformed = winograd_algorithm.weight(weight)
    assert transformed.strides[0] % 4096 != 0 and transformed[0].flags.c_contiguous
    reference = {"winograd": winograd2, "winograd4": winograd4}[algorithm].reference
    np.testing.assert_allclose(transformed, into(transformed, reference.weight_transform, weight), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ the three functions
@each_winograd
@given(cases(), st.sampled_from(["compiled", "reference"]), st.sampled_from(["channels_last", "channel_major"]))
@example(((2, 3, 7, 6), 4, (1, 1, 1, 1)), "compiled", "channel_major")
@example(((1, 64, 9, 5), 33, (0, 2, 2, 1)), "compiled", "channels_last")
@example(((2, 17, 9, 5), 8, (0, 2, 2, 1)), "reference", "channels_last")
@example(((1, 5, 3, 3), 1, (0, 0, 0, 0)), "compiled", "channels_last")  # a 1x1 output that nearly cancels
@settings(deadline=None, max_examples=40)
def test_winograd_matches_im2col_and_float64(algorithm, case, mode, layout):
    shape, o, padding = case
    x, weight = arrays(shape, o)
    geometry = geometry_of(shape, padding)
    grad_out = np.random.default_rng(2).standard_normal((shape[0], o) + geometry.output_hw).astype(np.float32)
    with kernels.use(mode):
        ours = all_three(in_memory(x, layout), weight, in_memory(grad_out, layout), geometry, algorithm)
        im2col = all_three(x, weight, grad_out, geometry, "im2col")
    exact = float64_oracle(x, weight, grad_out, geometry)
    for name, a, b, e in zip(("out", "grad_x", "grad_weight"), ours, im2col, exact):
        assert a.dtype == np.float32 and a.shape == e.shape, name
        assert_close_relative_to_scale(a, e, BOUNDS[algorithm])
        # Two float32 approximations differ by up to both their errors (a 1x1 output of 5 channels
        # that nearly cancels: F(4x4)'s 1.9e-5 of the scale and im2col's own 8.1e-6).
        assert_close_relative_to_scale(a, b, BOUNDS[algorithm] + FLOAT32_BOUND)


@each_winograd
@given(cases())
@settings(deadline=None, max_examples=15)
def test_forward_matches_the_defining_sum(algorithm, case):
    shape, o, padding = case
    x, weight = arrays(shape, o, dtype=np.float64)
    with kernels.use_algorithm(algorithm):
        out, _ = conv2d_forward(x, weight, geometry_of(shape, padding))
    np.testing.assert_allclose(out, conv2d_reference(x, weight, padding=padding), rtol=1e-10, atol=1e-10)


def in_memory(x, layout):
    """(N, C, H, W) x, same values, as a view of channels-last, channel-major or (N, C, H, W) memory."""
    order = {"channels_last": (0, 2, 3, 1), "channel_major": (1, 0, 2, 3), "nchw": (0, 1, 2, 3)}[layout]
    return np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))


@each_winograd
@pytest.mark.parametrize("layout", ["channels_last", "channel_major", "nchw"])
def test_every_input_layout_gives_the_defining_sum_and_its_gradients(algorithm, layout):
    x, weight = arrays((3, 16, 9, 7), 8, dtype=np.float64)
    grad_out = np.random.default_rng(2).standard_normal((3, 8, 9, 7))
    geometry = geometry_of(x.shape, (1, 1, 1, 1))
    out, grad_x, grad_weight = all_three(in_memory(x, layout), weight, in_memory(grad_out, layout), geometry, algorithm)
    expected = float64_oracle(x, weight, grad_out, geometry)
    np.testing.assert_allclose(out, conv2d_reference(x, weight, padding=(1, 1, 1, 1)), rtol=1e-10, atol=1e-10)
    for got, want in zip((out, grad_x, grad_weight), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@each_winograd
@pytest.mark.parametrize("padding", [(1, 1), (0, 2), 0])
def test_gradients_match_finite_differences(algorithm, padding):
    x, weight = arrays((2, 3, 7, 6), 4, dtype=np.float64)
    bias = np.random.default_rng(3).standard_normal(4)
    with kernels.use_algorithm(algorithm):
        finite_difference_check(lambda a, b, c: F.conv2d(a, b, c, padding=padding), [x, weight, bias])


@each_winograd
def test_asymmetric_same_padding_through_conv2d(algorithm):
    x, weight = arrays((1, 5, 8, 7), 3, dtype=np.float64)
    with kernels.use_algorithm(algorithm):
        finite_difference_check(lambda a, b: F.conv2d(a, b, padding="same"), [x, weight])


@requires_torch
@each_winograd
@pytest.mark.parametrize("shape, o, padding", [((2, 32, 14, 14), 64, 1), ((1, 5, 9, 7), 3, 0),
                                               ((3, 64, 7, 7), 16, (2, 1)), ((2, 16, 28, 28), 16, 1)])
def test_matches_torch(algorithm, shape, o, padding):
    x, weight = arrays(shape, o)
    bias = np.random.default_rng(4).standard_normal(o).astype(np.float32)
    with kernels.use_algorithm(algorithm):
        torch_check(lambda a, b, c: F.conv2d(a, b, c, padding=padding),
                    lambda a, b, c: torch.nn.functional.conv2d(a, b, c, padding=padding), [x, weight, bias],
                    rtol=1e-4, atol=TORCH_ATOL[algorithm])


# ------------------------------------------------------------------ the rule and the switch
def test_rule_sends_only_stride_1_3x3_with_enough_channels_to_winograd():
    plain = dict(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1)
    assert kernels.conv_algorithm(**plain, in_channels=kernels.WINOGRAD_MIN_CHANNELS, out_channels=64) == "winograd"
    fewer = dict(plain, in_channels=kernels.WINOGRAD_MIN_CHANNELS - 1, out_channels=64)
    assert kernels.conv_algorithm(**fewer) == "im2col_last"  # no layout given: as for channels-last input
    assert kernels.conv_algorithm(**fewer, input_layout="channel_major") == "im2col"
    for change in ({"kernel": (5, 5)}, {"stride": (2, 2)}, {"dilation": (1, 2)}, {"groups": 2}):
        for forced in ("winograd", "winograd4"):
            with kernels.use_algorithm(forced):
                changed = {**plain, **change}
                assert kernels.conv_algorithm(**changed, in_channels=64, out_channels=64) == "im2col", change
    for forced in ("winograd", "winograd4"):
        with kernels.use_algorithm(forced):
            assert kernels.conv_algorithm(**plain, in_channels=1, out_channels=64) == forced
    with kernels.use_algorithm("im2col"):
        assert kernels.conv_algorithm(**plain, in_channels=64, out_channels=64) == "im2col"
    with pytest.raises(ValueError, match="expected one of auto, im2col, .*winograd, winograd4, .*, got 'fft'"):
        kernels.set_algorithm("fft")


def test_saved_form_follows_the_algorithm():
    x, weight = arrays((2, 32, 6, 6), 8)
    geometry = geometry_of(x.shape, (1, 1, 1, 1))
    assert conv2d_forward(x, weight, geometry)[1].array.ndim == 5  # 32 channels: Winograd under 'auto'
    with kernels.use_algorithm("im2col"):
        assert conv2d_forward(x, weight, geometry)[1].array.ndim == 3


@each_winograd
def test_conv_transpose_through_winograd_matches_im2col(algorithm):
    rng = np.random.default_rng(5)
    x = convnet.Tensor(rng.standard_normal((2, 8, 7, 6)).astype(np.float32), requires_grad=True)
    weight = convnet.Tensor(rng.standard_normal((8, 5, 3, 3)).astype(np.float32), requires_grad=True)
    results = []
    for chosen in (algorithm, "im2col"):
        x.grad = weight.grad = None
        with kernels.use_algorithm(chosen):
            out = F.conv_transpose2d(x, weight, padding=1)
            (out * out).sum().backward()
        results.append((out.numpy(), x.grad.numpy(), weight.grad.numpy()))
    for a, b in zip(*results):
        assert_close_relative_to_scale(a, b, BOUNDS[algorithm])


# ------------------------------------------------------------------ F(2x2, 3x3) reading channels-last memory
LAST_CASES = [((2, 8, 7, 6), 5, (1, 1, 1, 1)), ((1, 17, 9, 11), 8, (0, 2, 1, 0)), ((3, 64, 5, 5), 17, (2, 1, 0, 2)),
              ((2, 17, 3, 4), 8, (0, 0, 0, 0))]


@pytest.mark.parametrize("shape, o, padding", LAST_CASES)
def test_channels_last_transforms_give_the_channel_major_floats_exactly(shape, o, padding):
    x, _ = arrays(shape, o)
    geometry = geometry_of(shape, padding)
    tiles_hw = WINOGRAD["winograd"].tiles_hw(geometry.output_hw)
    top_left, x_last = padding[::2], np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    expected = np.full((16, shape[1], shape[0]) + tiles_hw, np.nan, dtype=np.float32)
    winograd2.input_transform(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), top_left, expected)
    np.testing.assert_array_equal(into(expected, winograd2.input_transform_last, x_last, top_left), expected)
    np.testing.assert_allclose(into(expected, winograd2.reference.input_transform_last, x_last, top_left), expected,
                               atol=1e-5)

    grad_out = np.random.default_rng(6).standard_normal((shape[0], o) + geometry.output_hw).astype(np.float32)
    grad_last = np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1))
    expected = np.full((16, o, shape[0]) + tiles_hw, np.nan, dtype=np.float32)
    winograd2.output_grad_transform(np.ascontiguousarray(grad_out.transpose(1, 0, 2, 3)), expected)
    np.testing.assert_array_equal(into(expected, winograd2.output_grad_transform_last, grad_last), expected)
    np.testing.assert_allclose(into(expected, winograd2.reference.output_grad_transform_last, grad_last), expected,
                               atol=1e-5)


@requires_torch
@pytest.mark.parametrize("shape, o, padding", LAST_CASES)
def test_channels_last_input_and_gradient_give_the_same_floats_as_channel_major(shape, o, padding):
    """Forward, both gradients (shared and separate) bit-equal across the layouts, and PyTorch's values."""
    x, weight = arrays(shape, o)
    geometry = geometry_of(shape, padding)
    grad_out = np.random.default_rng(7).standard_normal((shape[0], o) + geometry.output_hw).astype(np.float32)
    results = {}
    for layout in ("channels_last", "channel_major"):
        x_in, grad_in = in_memory(x, layout), in_memory(grad_out, layout)
        assert memory_layout(x_in) == memory_layout(grad_in) == layout
        out, grad_x, grad_weight = all_three(x_in, weight, grad_in, geometry, "winograd")
        with kernels.use_algorithm("winograd"):
            _, saved = conv2d_forward(x_in, weight, geometry)
        assert saved.algorithm == "winograd"
        shared = conv2d_grads(in_backward_layout(grad_in, saved), weight, saved, geometry)
        assert memory_layout(in_backward_layout(grad_in, saved)) == layout  # no copy into the other layout
        results[layout] = (out, grad_x, grad_weight) + shared
    for a, b in zip(results["channels_last"], results["channel_major"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results["channels_last"][3], results["channels_last"][1])  # shared == separate
    np.testing.assert_array_equal(results["channels_last"][4], results["channels_last"][2])
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    top, bottom, left, right = padding
    out_t = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (left, right, top, bottom)), wt)
    out_t.backward(torch.tensor(grad_out))
    for got, want in zip(results["channels_last"][:3], (out_t, xt.grad, wt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-4, atol=1e-4)


@each_winograd
def test_forward_keeps_the_transformed_weights_that_the_input_gradient_uses(algorithm):
    x, weight = arrays((2, 16, 7, 9), 12)
    geometry = geometry_of(x.shape, (1, 1, 1, 1))
    grad_out = np.random.default_rng(8).standard_normal((2, 12, 7, 9)).astype(np.float32)
    with kernels.use_algorithm(algorithm):
        _, saved = conv2d_forward(x, weight, geometry)
        separate = conv2d_input_grad(grad_out, weight, geometry)
    np.testing.assert_array_equal(saved.transformed_weight, WINOGRAD[algorithm].weight(weight))
    np.testing.assert_array_equal(conv2d_grads(grad_out, weight, saved, geometry)[0], separate)
    with kernels.use_algorithm("im2col"):
        assert conv2d_forward(x, weight, geometry)[1].transformed_weight is None
