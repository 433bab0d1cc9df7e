"""The compiled im2col / col2im kernels against their NumPy references, and convolution in both
kernel modes against each other."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels
from convnet.kernels import convolution
from convnet.kernels.columns import col2im, col2im_reference, im2col, im2col_reference

from conftest import assert_close_relative_to_scale, finite_difference_check, requires_torch, torch, torch_check, \
    window_geometries


@st.composite
def geometries(draw):
    """(C, N, H, W), kernel, stride, dilation, padding (top, bottom, left, right), output (H', W')."""
    kernel, stride, dilation, padding, (h, w) = draw(window_geometries())
    shape = (draw(st.sampled_from([1, 2, 3, 64])), draw(st.integers(1, 3)), h, w)
    out_hw = (convolution.output_size(h, kernel[0], stride[0], dilation[0], *padding[:2]),
              convolution.output_size(w, kernel[1], stride[1], dilation[1], *padding[2:]))
    return shape, kernel, stride, dilation, padding, out_hw


def reference_im2col(image, kernel, stride, dilation, padding, out_hw):
    return run_im2col(image, kernel, stride, dilation, padding, out_hw, im2col_reference)


def reference_col2im(columns, shape, kernel, stride, dilation, padding, out_hw):
    return run_col2im(columns, shape, kernel, stride, dilation, padding, out_hw, col2im_reference)


def run_im2col(image, kernel, stride, dilation, padding, out_hw, kernel_function=im2col):
    c, n = image.shape[:2]
    columns = np.full((c,) + kernel + (n,) + out_hw, np.nan, dtype=image.dtype)  # every entry must be written
    kernel_function(image, stride, dilation, padding[::2], columns)
    return columns.reshape(c * kernel[0] * kernel[1], -1)


def run_col2im(columns, shape, kernel, stride, dilation, padding, out_hw, kernel_function=col2im):
    image = np.full(shape, np.nan, dtype=columns.dtype)  # overwritten, not added to
    kernel_function(columns.reshape(shape[:1] + kernel + shape[1:2] + out_hw), stride, dilation, padding[::2], image)
    return image


# 10x10 kernel on a bigger image, like the lesson's; 'same' padding of an even kernel (asymmetric).
@example(((2, 2, 40, 37), (10, 10), (1, 1), (1, 1), (0, 0, 0, 0), (31, 28)))
@example(((3, 2, 9, 8), (4, 2), (1, 1), (1, 1), (1, 2, 0, 1), (9, 8)))
@given(geometries())
def test_im2col_equals_the_reference_exactly(geometry):
    shape, kernel, stride, dilation, padding, out_hw = geometry
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(run_im2col(image, kernel, stride, dilation, padding, out_hw),
                                  reference_im2col(image, kernel, stride, dilation, padding, out_hw))


@example(((2, 2, 40, 37), (10, 10), (1, 1), (1, 1), (0, 0, 0, 0), (31, 28)))
@example(((3, 2, 9, 8), (4, 2), (1, 1), (1, 1), (1, 2, 0, 1), (9, 8)))
@given(geometries())
def test_col2im_equals_the_reference_exactly(geometry):
    """Both add the taps in (i, j) order onto zeros, so even float32 sums agree bit for bit."""
    shape, kernel, stride, dilation, padding, out_hw = geometry
    c, n = shape[:2]
    columns = np.random.default_rng(1).standard_normal((c * kernel[0] * kernel[1], n * out_hw[0] * out_hw[1]))
    columns = columns.astype(np.float32)
    np.testing.assert_array_equal(run_col2im(columns, shape, kernel, stride, dilation, padding, out_hw),
                                  reference_col2im(columns, shape, kernel, stride, dilation, padding, out_hw))


@given(geometries())
def test_col2im_is_the_adjoint_of_im2col(geometry):
    """<im2col(x), cols> == <x, col2im(cols)> in float64."""
    shape, kernel, stride, dilation, padding, out_hw = geometry
    rng = np.random.default_rng(2)
    image = rng.standard_normal(shape)
    columns = rng.standard_normal((shape[0] * kernel[0] * kernel[1], shape[1] * out_hw[0] * out_hw[1]))
    lhs = np.vdot(run_im2col(image, kernel, stride, dilation, padding, out_hw), columns)
    rhs = np.vdot(image, run_col2im(columns, shape, kernel, stride, dilation, padding, out_hw))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def forward_and_gradients(op, x, weight, **kwargs):
    x, weight = convnet.Tensor(x, requires_grad=True), convnet.Tensor(weight, requires_grad=True)
    out = op(x, weight, **kwargs)
    (out * convnet.Tensor(np.cos(np.arange(np.prod(out.shape), dtype=np.float32)).reshape(out.shape))).sum().backward()
    return out.numpy(), x.grad.numpy(), weight.grad.numpy()


CONV_CASES = [  # input shape, weight shape, keyword arguments
    ((1, 1, 5, 7), (2, 1, 3, 3), dict(padding=1)),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    ((2, 3, 8, 8), (4, 3, 4, 4), dict(padding="same")),
    ((3, 64, 6, 5), (8, 64, 1, 1), dict()),
    ((2, 6, 10, 11), (6, 1, 3, 3), dict(stride=3, padding=2, groups=6)),
    ((1, 1, 30, 30), (3, 1, 10, 10), dict()),
]


TRANSPOSE_CASES = [  # input shape, weight shape, keyword arguments
    ((2, 3, 5, 4), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 6, 7), (4, 3, 2, 3), dict(stride=(1, 3), dilation=(2, 1), groups=2)),
    ((2, 2, 4, 4), (2, 1, 4, 4), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("op, x_shape, w_shape, kwargs", [(F.conv2d, *case) for case in CONV_CASES]
                         + [(F.conv_transpose2d, *case) for case in TRANSPOSE_CASES])
def test_convolutions_agree_in_both_kernel_modes(op, x_shape, w_shape, kwargs):
    rng = np.random.default_rng(4)
    x, weight = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    with kernels.use("compiled"):
        ours = forward_and_gradients(op, x, weight, **kwargs)
    with kernels.use("reference"):
        theirs = forward_and_gradients(op, x, weight, **kwargs)
    for name, a, b in zip(("output", "input gradient", "weight gradient"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_compiled_conv2d_gradients_match_finite_differences():
    """float64 through the compiled kernels: asymmetric 'same' padding, stride, dilation, groups."""
    rng = np.random.default_rng(6)
    with kernels.use("compiled"):
        finite_difference_check(lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 2), groups=2),
                                [rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((4, 2, 2, 3))])
        finite_difference_check(lambda x, w: F.conv2d(x, w, stride=(2, 3), padding=(2, 1)),
                                [rng.standard_normal((1, 3, 7, 8)), rng.standard_normal((2, 3, 3, 3))])


@requires_torch
def test_compiled_conv2d_and_transpose_match_torch():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 4, 11, 9)), rng.standard_normal((6, 2, 4, 3))
    with kernels.use("compiled"):
        torch_check(lambda x, w: F.conv2d(x, w, stride=2, padding=(2, 1), dilation=(1, 2), groups=2),
                    lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=(2, 1), dilation=(1, 2), groups=2),
                    [x, w])
        torch_check(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
                    lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1,
                                                                      groups=2),
                    [x[:, :, :5, :5], rng.standard_normal((4, 3, 3, 3))])


@pytest.mark.parametrize("length", [100, 2048, 3 * 2048, 3 * 2048 + 5])
def test_small_weight_gradient_summed_run_by_run_equals_one_product(length):
    rng = np.random.default_rng(length)
    a, b = rng.standard_normal((32, length)), rng.standard_normal((9, length))
    np.testing.assert_allclose(convolution._small_product_of_long_rows(a, b), a @ b.T, rtol=1e-12, atol=1e-12)


@requires_torch
def test_first_layer_weight_gradient_over_many_positions_matches_torch_in_float64():
    """A first layer's (32, 9) weight gradient over 9 x 28 x 28 positions takes the run-by-run path;
    in float32 it is as close to float64 PyTorch as one product is."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((9, 1, 28, 28)), rng.standard_normal((32, 1, 3, 3))
    grad_out = rng.standard_normal((9, 32, 28, 28))
    assert 32 * 9 <= convolution.SMALL_PRODUCT_MAX_ENTRIES
    expected_w = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x), expected_w, padding=1).backward(torch.tensor(grad_out))
    for dtype, bound in [(np.float64, 1e-12), (np.float32, 1e-6)]:
        weight = convnet.tensor(w.astype(dtype), requires_grad=True)
        F.conv2d(convnet.tensor(x.astype(dtype)), weight, padding=1).backward(grad_out.astype(dtype))
        assert_close_relative_to_scale(weight.grad.numpy(), expected_w.grad.numpy(), bound)
