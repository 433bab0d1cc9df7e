"""The channels-last im2col / col2im kernels against their NumPy references, and the convolution
path built on them ('im2col_last') against PyTorch, for inputs of both layouts.

Every convolution test here runs each input twice: as (N, C, H, W) contiguous memory and as an
(N, C, H, W) view of channels-last memory (`as_channels_last`)."""

import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels
from convnet.functional.conv import _channel_sums
from convnet.kernels import convolution
from convnet.kernels.columns_channels_last import col2im, col2im_reference, im2col, im2col_reference
from convnet.kernels.convolution import ConvGeometry, is_channels_last, nchw

from conftest import requires_torch, torch, window_geometries


def as_channels_last(x):
    """The same (N, C, H, W) values as a view of contiguous (N, H, W, C) memory."""
    return nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))


LAYOUTS = {"nchw": np.ascontiguousarray, "nhwc": as_channels_last}


@st.composite
def geometries(draw):
    """(N, H, W, C), kernel, stride, dilation, padding (top, bottom, left, right), output (H', W')."""
    kernel, stride, dilation, padding, (h, w) = draw(window_geometries(max_size=11))
    shape = (draw(st.integers(1, 3)), h, w, draw(st.sampled_from([1, 3, 5, 64])))
    out_hw = (convolution.output_size(h, kernel[0], stride[0], dilation[0], *padding[:2]),
              convolution.output_size(w, kernel[1], stride[1], dilation[1], *padding[2:]))
    return shape, kernel, stride, dilation, padding, out_hw


def run_im2col(image, kernel, stride, dilation, padding, out_hw, kernel_function):
    columns = np.full(image.shape[:1] + out_hw + kernel + image.shape[3:], np.nan, dtype=image.dtype)  # all written
    kernel_function(image, stride, dilation, padding[::2], columns)
    return columns


def run_col2im(columns, shape, stride, dilation, padding, kernel_function):
    image = np.full(shape, np.nan, dtype=columns.dtype)  # overwritten, not added to
    kernel_function(columns, stride, dilation, padding[::2], image)
    return image


SEVEN_BY_SEVEN_STEM = ((2, 17, 16, 3), (7, 7), (2, 2), (1, 1), (3, 3, 3, 3), (9, 8))
EVEN_SAME = ((2, 9, 8, 5), (4, 2), (1, 1), (1, 1), (1, 2, 0, 1), (9, 8))


@example(SEVEN_BY_SEVEN_STEM)
@example(EVEN_SAME)
@given(geometries())
def test_im2col_equals_the_reference_exactly(geometry):
    shape, kernel, stride, dilation, padding, out_hw = geometry
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(run_im2col(image, kernel, stride, dilation, padding, out_hw, im2col),
                                  run_im2col(image, kernel, stride, dilation, padding, out_hw, im2col_reference))


def test_im2col_rows_hold_each_windows_taps_channels_innermost():
    """A hand-checked case: a 2x2 kernel, padding 1 on top and left, on a 2x2 image of 2 channels."""
    image = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)  # pixel (p, q) holds channels [4p+2q, 4p+2q+1]
    columns = run_im2col(image, (2, 2), (1, 1), (1, 1), (1, 0, 1, 0), (2, 2), im2col).reshape(4, 8)
    np.testing.assert_array_equal(columns[0], [0, 0, 0, 0, 0, 0, 0, 1])  # output (0, 0): only tap (1, 1) in the image
    np.testing.assert_array_equal(columns[3], [0, 1, 2, 3, 4, 5, 6, 7])  # output (1, 1): the whole image


@example(SEVEN_BY_SEVEN_STEM)
@example(EVEN_SAME)
@given(geometries())
def test_col2im_equals_the_reference_exactly(geometry):
    """Both add the taps in (i, j) order onto zeros, so even float32 sums agree bit for bit."""
    shape, kernel, stride, dilation, padding, out_hw = geometry
    columns = np.random.default_rng(1).standard_normal(shape[:1] + out_hw + kernel + shape[3:]).astype(np.float32)
    np.testing.assert_array_equal(run_col2im(columns, shape, stride, dilation, padding, col2im),
                                  run_col2im(columns, shape, stride, dilation, padding, col2im_reference))


@given(geometries())
def test_col2im_is_the_adjoint_of_im2col(geometry):
    """<im2col(x), cols> == <x, col2im(cols)> in float64."""
    shape, kernel, stride, dilation, padding, out_hw = geometry
    rng = np.random.default_rng(2)
    image, columns = rng.standard_normal(shape), rng.standard_normal(shape[:1] + out_hw + kernel + shape[3:])
    lhs = np.vdot(run_im2col(image, kernel, stride, dilation, padding, out_hw, im2col), columns)
    rhs = np.vdot(image, run_col2im(columns, shape, stride, dilation, padding, col2im))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_does_not_depend_on_the_thread_count():
    shape, kernel, stride, dilation, padding, out_hw = SEVEN_BY_SEVEN_STEM
    columns = np.random.default_rng(3).standard_normal(shape[:1] + out_hw + kernel + shape[3:]).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = run_col2im(columns, shape, stride, dilation, padding, col2im)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(run_col2im(columns, shape, stride, dilation, padding, col2im), serial)


# ------------------------------------------------------------------ the 'im2col_last' convolution
CASES = [  # input shape, weight shape, keyword arguments: kernels 1/3/5/7, strides 1/2, C = 1, 3, 5, 64
    ((2, 1, 9, 11), (4, 1, 3, 3), dict(padding=1)),
    ((2, 3, 17, 15), (8, 3, 7, 7), dict(stride=2, padding=3)),
    ((3, 5, 10, 9), (6, 5, 5, 5), dict(padding=(2, 1), dilation=(1, 2))),
    ((2, 64, 7, 9), (16, 64, 1, 1), dict(stride=2)),
    ((1, 5, 8, 8), (3, 5, 4, 4), dict(padding="same")),  # even kernel: padding 1 top/left, 2 bottom/right
    ((2, 3, 11, 13), (5, 3, 3, 5), dict(stride=(2, 1), padding=(0, 2), dilation=(2, 1))),
]


def conv_both_ways(x, weight, bias, grad_out, kwargs):
    """(ours, torch's) for out, grad_x, grad_weight, grad_bias of F.conv2d with 'im2col_last' forced."""
    ours = [convnet.Tensor(a, requires_grad=True) for a in (x, weight, bias)]
    with kernels.use_algorithm("im2col_last"):
        out = F.conv2d(*ours, **kwargs)
        out.backward(grad_out)
    theirs = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, weight, bias)]
    expected = torch.nn.functional.conv2d(*theirs, **kwargs)
    expected.backward(torch.tensor(grad_out))
    return ([out.numpy()] + [t.grad.numpy() for t in ours],
            [expected.detach().numpy()] + [t.grad.numpy() for t in theirs])


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
def test_channels_last_convolution_matches_torch(x_shape, w_shape, kwargs, layout):
    rng = np.random.default_rng(5)
    x = LAYOUTS[layout](rng.standard_normal(x_shape).astype(np.float32))
    weight, bias = rng.standard_normal(w_shape).astype(np.float32), rng.standard_normal(w_shape[0]).astype(np.float32)
    out_shape = F.conv2d(convnet.Tensor(x), convnet.Tensor(weight), **kwargs).shape
    ours, theirs = conv_both_ways(x, weight, bias, rng.standard_normal(out_shape).astype(np.float32), kwargs)
    # The input gradient's own layout is checked at the array level below (whatever a leaf's .grad keeps).
    assert is_channels_last(ours[0])
    for name, a, b in zip(("output", "input gradient", "weight gradient", "bias gradient"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES[:3])
def test_channels_last_convolution_agrees_in_both_kernel_modes(x_shape, w_shape, kwargs):
    rng = np.random.default_rng(6)
    x = as_channels_last(rng.standard_normal(x_shape).astype(np.float32))
    weight, bias = rng.standard_normal(w_shape).astype(np.float32), rng.standard_normal(w_shape[0]).astype(np.float32)
    results = {}
    for mode in kernels.MODES:
        ours = [convnet.Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        with kernels.use(mode), kernels.use_algorithm("im2col_last"):
            out = F.conv2d(*ours, **kwargs)
            (out * out).sum().backward()
        results[mode] = [out.numpy()] + [t.grad.numpy() for t in ours]
    for name, a, b in zip(("output", "input gradient", "weight gradient", "bias gradient"), *results.values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=name)


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_transposed_convolution_on_the_channels_last_path_matches_torch(layout):
    rng = np.random.default_rng(7)
    x = LAYOUTS[layout](rng.standard_normal((2, 6, 5, 7)).astype(np.float32))
    weight, bias = rng.standard_normal((6, 4, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    kwargs = dict(stride=2, padding=1, output_padding=1)
    ours = [convnet.Tensor(a, requires_grad=True) for a in (x, weight, bias)]
    with kernels.use_algorithm("im2col_last"):
        out = F.conv_transpose2d(*ours, **kwargs)
        grad_out = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(as_channels_last(grad_out) if layout == "nhwc" else grad_out)
    theirs = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, weight, bias)]
    expected = torch.nn.functional.conv_transpose2d(*theirs, **kwargs)
    expected.backward(torch.tensor(grad_out))
    assert is_channels_last(out.numpy())
    for name, a, t in zip(("output", "input gradient", "weight gradient", "bias gradient"),
                          [out] + ours, [expected] + theirs):
        b = (t if name == "output" else t.grad).detach().numpy()
        a = a.numpy() if name == "output" else a.grad.numpy()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)


def test_the_forward_output_is_the_gemms_product_itself_and_backward_reads_an_nhwc_gradient_in_place():
    rng = np.random.default_rng(8)
    x = as_channels_last(rng.standard_normal((2, 5, 9, 8)).astype(np.float32))
    weight = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    geometry = ConvGeometry.of_conv2d((9, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    with kernels.use_algorithm("im2col_last"):
        out, saved = convolution.conv2d_forward(x, weight, geometry)
    assert saved.algorithm == "im2col_last" and saved.array.shape == (2 * 9 * 8, 3 * 3 * 5)
    rows = out.transpose(0, 2, 3, 1).reshape(-1, 7)  # a reshape that would copy were out not NHWC memory
    assert is_channels_last(out) and np.shares_memory(rows, out)
    np.testing.assert_array_equal(rows, saved.array @ weight.transpose(0, 2, 3, 1).reshape(7, -1).T)
    grad = as_channels_last(rng.standard_normal(out.shape).astype(np.float32))
    assert np.shares_memory(convolution.in_backward_layout(grad, saved), grad)
    assert np.shares_memory(convolution._grad_rows(grad), grad)
    grad_x, grad_weight = convolution.conv2d_grads(grad, weight, saved, geometry)
    assert is_channels_last(grad_x) and grad_x.shape == x.shape and grad_weight.flags.c_contiguous
    with kernels.use_algorithm("im2col_last"):
        assert is_channels_last(convolution.conv2d_input_grad(np.ascontiguousarray(grad), weight, geometry))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (128, 5, 28, 28)])
def test_bias_gradient_sums_each_channel_in_either_layout(shape, layout):
    grad = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    expected = grad.astype(np.float64).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(_channel_sums(LAYOUTS[layout](grad)), expected, rtol=1e-5, atol=1e-3)


def test_forcing_im2col_last_keeps_grouped_convolutions_channel_major():
    plain = dict(stride=(2, 2), dilation=(1, 1), in_channels=8, out_channels=16)
    with kernels.use_algorithm("im2col_last"):
        assert kernels.conv_algorithm((3, 3), groups=1, **plain) == "im2col_last"
        assert kernels.conv_algorithm((3, 3), groups=2, **plain) == "im2col"
    with kernels.use_algorithm("im2col"):
        assert kernels.conv_algorithm((3, 3), groups=1, **plain) == "im2col"


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_pointwise_convolution_uses_the_channels_last_input_as_its_columns(layout):
    rng = np.random.default_rng(10)
    x = LAYOUTS[layout](rng.standard_normal((2, 6, 5, 7)).astype(np.float32))
    weight, bias = rng.standard_normal((4, 6, 1, 1)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    geometry = ConvGeometry.of_conv2d((5, 7), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with kernels.use_algorithm("im2col_last"):
        saved = convolution.conv2d_columns_last(x, geometry)
    assert np.shares_memory(saved.array, x) == (layout == "nhwc")
    ours, theirs = conv_both_ways(x, weight, bias, rng.standard_normal((2, 4, 5, 7)).astype(np.float32), {})
    for name, a, b in zip(("output", "input gradient", "weight gradient", "bias gradient"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)


@requires_torch
def test_a_pointwise_transposed_convolution_with_output_padding_matches_torch():
    """Dilation 2 lets output_padding 1 through at stride 1: the output is then larger than the input."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    weight = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    with kernels.use_algorithm("im2col_last"):
        out = F.conv_transpose2d(convnet.Tensor(as_channels_last(x)), convnet.Tensor(weight), output_padding=1,
                                 dilation=2)
    expected = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(weight), output_padding=1, dilation=2)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_auto_runs_im2col_channels_last_except_on_few_channels_or_a_channel_major_input():
    stem = dict(stride=(2, 2), dilation=(1, 1), groups=1, out_channels=64)
    assert kernels.conv_algorithm((7, 7), **stem, in_channels=3) == "im2col_last"
    assert kernels.conv_algorithm((7, 7), **stem, in_channels=3, input_layout="channels_last") == "im2col_last"
    assert kernels.conv_algorithm((7, 7), **stem, in_channels=3, input_layout="channel_major") == "im2col"
    assert kernels.conv_algorithm((7, 7), **stem, in_channels=kernels.IM2COL_LAST_MIN_CHANNELS - 1) == "im2col"
    assert kernels.conv_algorithm((3, 3), (1, 1), (1, 1), 1, 64, 64, input_layout="channels_last") == "winograd"
    rng = np.random.default_rng(12)
    weight = convnet.Tensor(rng.standard_normal((8, 3, 7, 7)).astype(np.float32))
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert convolution.memory_layout(x) is None and convolution.memory_layout(channel_major) == "channel_major"
    assert is_channels_last(F.conv2d(convnet.Tensor(x), weight, stride=2, padding=3).numpy())
    out = F.conv2d(convnet.Tensor(channel_major), weight, stride=2, padding=3).numpy()
    assert out.transpose(1, 0, 2, 3).flags.c_contiguous
