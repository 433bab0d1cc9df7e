"""Padding that differs on each side, (top, bottom, left, right), through conv2d, max_pool2d and
avg_pool2d: against PyTorch (pad with ``torch.nn.functional.pad``, then the op with no padding),
against central finite differences, and compiled kernels against references, for every
convolution algorithm."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import convnet.functional as F
from convnet import Tensor, kernels
from conftest import finite_difference_check, requires_torch, torch, torch_check

TF = torch.nn.functional if torch is not None else None
MODES = ("compiled", "reference")
ALGORITHMS = ("im2col", "winograd", "winograd4", "direct", "depthwise")


def _torch_pad(sides):
    """(top, bottom, left, right) -> torch.nn.functional.pad's order (left, right, top, bottom)."""
    top, bottom, left, right = sides
    return left, right, top, bottom


def test_resolve_padding_accepts_every_form_and_returns_top_bottom_left_right():
    assert F.resolve_padding("op", 1, (3, 3)) == (1, 1, 1, 1)
    assert F.resolve_padding("op", (1, 2), (3, 3)) == (1, 1, 2, 2)
    assert F.resolve_padding("op", (0, 1, 2, 3), (3, 3)) == (0, 1, 2, 3)
    assert F.resolve_padding("op", "valid", (3, 3)) == (0, 0, 0, 0)
    assert F.resolve_padding("op", "same", (2, 4), dilation=(1, 2)) == (0, 1, 3, 3)
    with pytest.raises(TypeError, match=r"op: expected padding to be .* four ints .* got \(1, 2, 3\)"):
        F.resolve_padding("op", (1, 2, 3), (3, 3))
    with pytest.raises(ValueError, match=r"op: expected padding >= 0, got \(0, 1, -1, 0\)"):
        F.resolve_padding("op", (0, 1, -1, 0), (3, 3))
    with pytest.raises(ValueError, match="needs stride 1"):
        F.resolve_padding("op", "same", (3, 3), stride=(2, 1))


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    sides = tuple(draw(st.integers(0, 3)) for _ in range(4))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    height = draw(st.integers(max(1, span[0] - sides[0] - sides[1]), span[0] + 4))
    width = draw(st.integers(max(1, span[1] - sides[2] - sides[3]), span[1] + 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), in_channels, height, width))
    w = rng.standard_normal((out_channels, in_channels // groups) + kernel)
    return dict(x=x, w=w, b=rng.standard_normal(out_channels), stride=stride, padding=sides, dilation=dilation,
                groups=groups)


def _conv(case):
    return lambda x, w, b: F.conv2d(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"])


def _torch_conv(case):
    return lambda x, w, b: TF.conv2d(TF.pad(x, _torch_pad(case["padding"])), w, b, case["stride"], 0,
                                     case["dilation"], case["groups"])


@requires_torch
@given(conv_cases())
def test_conv2d_with_four_sides_matches_torch_on_a_padded_input(case):
    torch_check(_conv(case), _torch_conv(case), [case["x"], case["w"], case["b"]])


@given(conv_cases())
def test_conv2d_with_four_sides_gradients_match_finite_differences(case):
    finite_difference_check(_conv(case), [case["x"], case["w"], case["b"]])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mode", MODES)
def test_every_conv_algorithm_pads_four_sides_like_a_padded_input(algorithm, mode, rng):
    """Each algorithm, forced, on a shape it applies to, against the same op on an input padded first."""
    channels, groups = {"direct": (1, 1), "depthwise": (4, 4)}.get(algorithm, (4, 1))
    x = rng.standard_normal((2, channels, 9, 8))
    w = rng.standard_normal((4, channels // groups, 3, 3))
    sides = (2, 0, 1, 3)
    padded = np.pad(x, ((0, 0), (0, 0), sides[:2], sides[2:]))
    grad = rng.standard_normal((2, 4, 9, 10))
    with kernels.use(mode), kernels.use_algorithm(algorithm):
        ours = _values_and_gradients(lambda a, b: F.conv2d(a, b, padding=sides, groups=groups), x, w, grad)
        theirs = _values_and_gradients(lambda a, b: F.conv2d(a, b, groups=groups), padded, w, grad)
    top, left = sides[0], sides[2]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours[1], theirs[1][:, :, top:top + 9, left:left + 8], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-10, atol=1e-10)


def _values_and_gradients(op, x, w, grad):
    x, w = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    out = op(x, w)
    out.backward(grad)
    return out.numpy(), x.grad.numpy(), w.grad.numpy()


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    sides = tuple(draw(st.integers(0, k // 2)) for k in (kernel[0], kernel[0], kernel[1], kernel[1]))
    height = draw(st.integers(max(1, kernel[0] - sides[0] - sides[1]), kernel[0] + 5))
    width = draw(st.integers(max(1, kernel[1] - sides[2] - sides[3]), kernel[1] + 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), height, width))
    return dict(x=x, kernel_size=kernel, stride=stride, padding=sides)


def _pool(case, pool, **options):
    return lambda x: pool(x, case["kernel_size"], case["stride"], case["padding"], **options)


def _torch_pool(case, pool, fill):
    return lambda x: pool(TF.pad(x, _torch_pad(case["padding"]), value=fill), case["kernel_size"], case["stride"])


def _torch_exclusive_mean(case):
    """count_include_pad=False by its definition: the window sums over the number of input pixels in it."""
    def mean(x):
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        window_sum = _torch_pool(case, TF.avg_pool2d, 0.0)
        return window_sum(x) / window_sum(ones)
    return mean


@requires_torch
@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases())
def test_max_pool2d_with_four_sides_matches_torch_on_a_padded_input(mode, case):
    with kernels.use(mode):
        torch_check(_pool(case, F.max_pool2d), _torch_pool(case, TF.max_pool2d, -np.inf), [case["x"]])


@requires_torch
@pytest.mark.parametrize("count_include_pad", [True, False])
@given(case=pool_cases())
def test_avg_pool2d_with_four_sides_matches_torch_on_a_padded_input(count_include_pad, case):
    theirs = _torch_pool(case, TF.avg_pool2d, 0.0) if count_include_pad else _torch_exclusive_mean(case)
    torch_check(_pool(case, F.avg_pool2d, count_include_pad=count_include_pad), theirs, [case["x"]])


@requires_torch
@given(case=pool_cases())
def test_avg_pool2d_without_the_padding_in_the_count_matches_torch(case):
    """Symmetric padding, which torch's own count_include_pad=False takes."""
    top, _, left, _ = case["padding"]
    ours = lambda x: F.avg_pool2d(x, case["kernel_size"], case["stride"], (top, left), count_include_pad=False)
    theirs = lambda x: TF.avg_pool2d(x, case["kernel_size"], case["stride"], (top, left), count_include_pad=False)
    assume(case["x"].shape[2] + 2 * top >= case["kernel_size"][0])
    assume(case["x"].shape[3] + 2 * left >= case["kernel_size"][1])
    torch_check(ours, theirs, [case["x"]])


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases())
def test_pooling_with_four_sides_gradients_match_finite_differences(mode, case):
    with kernels.use(mode):
        finite_difference_check(_pool(case, F.max_pool2d), [case["x"]])
    finite_difference_check(_pool(case, F.avg_pool2d, count_include_pad=False), [case["x"]])


def test_pooling_refuses_a_side_wider_than_half_the_kernel():
    with pytest.raises(ValueError, match=r"at most half the kernel size, got padding=\(0, 2, 0, 0\)"):
        F.max_pool2d(np.zeros((1, 1, 4, 4)), 3, padding=(0, 2, 0, 0))
