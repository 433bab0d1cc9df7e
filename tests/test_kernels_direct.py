"""The direct one-input-channel convolution (kernels/direct.py): its kernels against their NumPy
references, against the im2col path and the slow `conv2d_reference`, finite differences in float64
through `F.conv2d`, PyTorch, and the algorithm rule.

float32 results are compared relative to the output's scale (1e-5 of its largest magnitude);
float64 ones within 1e-10 of it.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels
from convnet.functional.conv import conv2d_reference
from convnet.kernels.convolution import ConvGeometry, conv2d_forward, conv2d_input_grad, conv2d_weight_grad
from conftest import assert_close_relative_to_scale, finite_difference_check, requires_torch, torch, torch_check


@st.composite
def cases(draw):
    """x: (N, 1, H, W), weight: (O, 1, kH, kW), padding (top, bottom, left, right), dilation."""
    kernel = draw(st.sampled_from([(1, 1), (2, 3), (3, 3), (4, 2), (5, 5), (10, 10)]))
    dilation = draw(st.sampled_from([(1, 1), (1, 1), (2, 1)]))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    h = draw(st.integers(max(1, span[0] - padding[0] - padding[1]), span[0] + 9)) | 1
    w = draw(st.integers(max(1, span[1] - padding[2] - padding[3]), span[1] + 9)) | 1
    n, o = draw(st.integers(1, 3)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.standard_normal((n, 1, h, w)), rng.standard_normal((o, 1) + kernel), padding, dilation


def geometry_of(x, weight, padding, dilation):
    return ConvGeometry.of_conv2d(x.shape[2:], weight.shape[2:], (1, 1), padding, dilation, 1)


def run(x, weight, grad_out, geometry, algorithm, mode="compiled"):
    with kernels.use(mode), kernels.use_algorithm(algorithm):
        out, saved = conv2d_forward(x, weight, geometry)
        return out, conv2d_weight_grad(grad_out, saved, geometry), saved.algorithm


def tolerance(dtype):
    return 1e-5 if dtype == np.float32 else 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(cases())
def test_kernels_match_references_im2col_and_the_defining_sum(dtype, case):
    x, weight, padding, dilation = (a.astype(dtype) if isinstance(a, np.ndarray) else a for a in case)
    geometry = geometry_of(x, weight, padding, dilation)
    grad_out = np.random.default_rng(1).standard_normal((x.shape[0], weight.shape[0]) + geometry.output_hw)
    grad_out = grad_out.astype(dtype)
    out, grad_w, algorithm = run(x, weight, grad_out, geometry, "direct")
    assert algorithm == "direct" and out.dtype == grad_w.dtype == dtype
    ref_out, ref_grad_w, _ = run(x, weight, grad_out, geometry, "direct", mode="reference")
    im2col_out, im2col_grad_w, im2col = run(x, weight, grad_out, geometry, "im2col")
    assert im2col == "im2col"
    slow = conv2d_reference(x, weight, None, (1, 1), padding, dilation)
    for expected in (ref_out, im2col_out, slow):
        assert_close_relative_to_scale(out, expected, tolerance(dtype))
    for expected in (ref_grad_w, im2col_grad_w):
        assert_close_relative_to_scale(grad_w, expected, tolerance(dtype))


def test_only_the_first_output_positions_when_asked():
    """A transposed convolution's geometry counts fewer outputs than the natural size."""
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((2, 1, 7, 9)), rng.standard_normal((3, 1, 3, 2))
    geometry = geometry_of(x, weight, (1, 0, 2, 1), (1, 1))._replace(output_hw=(4, 5))
    grad_out = rng.standard_normal((2, 3, 4, 5))
    out, grad_w, _ = run(x, weight, grad_out, geometry, "direct")
    im2col_out, im2col_grad_w, _ = run(x, weight, grad_out, geometry, "im2col")
    np.testing.assert_allclose(out, im2col_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_w, im2col_grad_w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [0, 1, (2, 0)])
def test_gradients_match_finite_differences(padding):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 1, 9, 7)), rng.standard_normal((4, 1, 5, 5)), rng.standard_normal(4)]
    with kernels.use_algorithm("direct"):
        finite_difference_check(lambda x, w, b: F.conv2d(x, w, b, padding=padding), arrays)


@requires_torch
@pytest.mark.parametrize("kernel, padding", [((3, 3), 1), ((5, 5), 2), ((10, 10), 0)])
def test_matches_torch(kernel, padding):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 1, 15, 13)), rng.standard_normal((6, 1) + kernel), rng.standard_normal(6)]
    with kernels.use_algorithm("direct"):
        torch_check(lambda x, w, b: F.conv2d(x, w, b, padding=padding),
                    lambda x, w, b: torch.nn.functional.conv2d(x, w, b, padding=padding), arrays)


def test_conv_transpose_to_one_channel_through_direct_matches_im2col():
    """conv_transpose2d's backward runs the forward and weight gradient of a 1-channel convolution."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((4, 1, 5, 5))
    grads = {}
    for algorithm in ("direct", "im2col"):
        with kernels.use_algorithm(algorithm):
            xt, wt = convnet.tensor(x, requires_grad=True), convnet.tensor(w, requires_grad=True)
            (F.conv_transpose2d(xt, wt, padding=1) ** 2).sum().backward()
            grads[algorithm] = xt.grad.numpy(), wt.grad.numpy()
    for ours, theirs in zip(grads["direct"], grads["im2col"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_rule_and_switch():
    plain = dict(stride=(1, 1), dilation=(1, 1), groups=1)
    few = kernels.DIRECT_MAX_OUT_CHANNELS
    assert kernels.conv_algorithm((5, 5), **plain, in_channels=1, out_channels=few) == "direct"
    assert kernels.conv_algorithm((3, 3), **plain, in_channels=1, out_channels=few) == "direct"
    assert kernels.conv_algorithm((3, 3), **plain, in_channels=1, out_channels=few + 1) == "im2col"  # measured slower
    assert kernels.conv_algorithm((5, 5), **plain, in_channels=1, out_channels=100) == "im2col"  # simple_cnn's
    assert kernels.conv_algorithm((5, 5), **plain, in_channels=2, out_channels=few) == "im2col"
    assert kernels.conv_algorithm((5, 5), (1, 1), (2, 2), 1, in_channels=1, out_channels=few) == "im2col"
    with kernels.use_algorithm("direct"):
        assert kernels.conv_algorithm((3, 3), **plain, in_channels=1, out_channels=32) == "direct"
        assert kernels.conv_algorithm((3, 3), (1, 1), (2, 2), 1, in_channels=1, out_channels=32) == "direct"
        assert kernels.conv_algorithm((3, 3), (2, 2), (1, 1), 1, in_channels=1, out_channels=32) == "im2col"
        assert kernels.conv_algorithm((3, 3), **plain, in_channels=64, out_channels=32) == "im2col"
    with kernels.use_algorithm("im2col"):
        assert kernels.conv_algorithm((5, 5), **plain, in_channels=1, out_channels=few) == "im2col"
    with kernels.use_algorithm("winograd"):
        assert kernels.conv_algorithm((3, 3), **plain, in_channels=1, out_channels=few) == "winograd"


def test_saved_names_its_algorithm_and_is_the_input():
    x = np.random.default_rng(6).standard_normal((3, 1, 8, 8)).astype(np.float32)
    weight = np.ones((2, 1, 5, 5), dtype=np.float32)
    geometry = geometry_of(x, weight, (2, 2, 2, 2), (1, 1))
    _, saved = conv2d_forward(x, weight, geometry)
    assert saved.algorithm == "direct" and saved.array.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(saved.array[0], x[:, 0])
    # The input gradient, which direct does not have, is im2col's.
    grad_x = conv2d_input_grad(np.ones((3, 2, 8, 8), dtype=np.float32), weight, geometry)
    assert grad_x.shape == x.shape
