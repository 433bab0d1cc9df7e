"""Transposed convolution and the three array functions both convolutions are built from, against
central finite differences (float64), a slow scatter-sum reference, and PyTorch 2.13 (float32).

PyTorch is imported inside the tests that use it, so this file runs (and skips those) without it.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels, nn
from convnet.functional.conv import conv2d_reference, conv_transpose2d_reference
from convnet.kernels.convolution import (ConvGeometry, conv2d_columns, conv2d_columns_last, conv2d_forward,
                                         conv2d_input_grad, conv2d_weight_grad)
from conftest import (assert_close_relative_to_scale, check_twins, finite_difference_check, requires_torch, torch,
                      torch_check)


@st.composite
def transpose_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    # Padding up to what leaves an output of one row or column.
    padding = tuple(draw(st.integers(0, min(2, ((n - 1) * s + d * (k - 1) + extra) // 2)))
                    for n, s, d, k, extra in zip(size, stride, dilation, kernel, output_padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), in_channels) + size)
    w = rng.standard_normal((in_channels, out_channels // groups) + kernel)
    b = rng.standard_normal(out_channels) if draw(st.booleans()) else None
    return dict(x=x, w=w, b=b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                dilation=dilation)


def _inputs(case):
    return [case["x"], case["w"]] + ([case["b"]] if case["b"] is not None else [])


def _conv_transpose(case, conv_transpose):
    kwargs = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    return lambda x, w, b=None: conv_transpose(x, w, b, **kwargs)


@given(transpose_cases())
def test_conv_transpose2d_gradients_match_finite_differences(case):
    finite_difference_check(_conv_transpose(case, F.conv_transpose2d), _inputs(case))


@requires_torch
@given(transpose_cases())
def test_conv_transpose2d_matches_torch(case):
    torch_check(_conv_transpose(case, F.conv_transpose2d),
                _conv_transpose(case, torch.nn.functional.conv_transpose2d), _inputs(case))


@given(transpose_cases())
def test_conv_transpose2d_matches_slow_reference(case):
    out = _conv_transpose(case, F.conv_transpose2d)(*_inputs(case))
    np.testing.assert_allclose(out.numpy(), _conv_transpose(case, conv_transpose2d_reference)(*_inputs(case)),
                               rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ the three array functions
def _geometry(x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, output_hw=None):
    """The conv2d geometry, optionally counting only the first ``output_hw`` output positions, as
    conv_transpose2d with output_padding >= stride does."""
    geometry = ConvGeometry.of_conv2d(x.shape[2:], w.shape[2:], stride, padding, dilation, groups)
    return geometry if output_hw is None else geometry._replace(output_hw=output_hw)


ARRAY_CASES = [  # x shape, weight shape, geometry arguments
    ((2, 3, 6, 7), (4, 3, 3, 3), dict(padding=(1, 1, 1, 1))),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 2), padding=(1, 0, 2, 1), groups=2)),
    ((1, 6, 11, 10), (3, 2, 2, 3), dict(stride=(2, 1), dilation=(2, 3), groups=3)),
    ((2, 2, 7, 7), (2, 2, 3, 3), dict(padding=(2, 2, 1, 3), dilation=(2, 2))),
    ((1, 1, 5, 6), (2, 1, 3, 3), dict(dilation=(2, 2), padding=(1, 1, 1, 1), output_hw=(2, 3))),
    ((2, 2, 8, 8), (4, 1, 3, 3), dict(stride=(2, 2), groups=2, output_hw=(2, 3))),
]


def _array_case(x_shape, w_shape, arguments):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    geometry = _geometry(x, w, **arguments)
    grad_out = rng.standard_normal((x_shape[0], w_shape[0]) + geometry.output_hw)
    return x, w, geometry, grad_out, rng


def _reference_out(x, w, geometry):
    out = conv2d_reference(x, w, None, geometry.stride, geometry.padding, geometry.dilation, geometry.groups)
    return out[:, :, :geometry.output_hw[0], :geometry.output_hw[1]]


# 'auto', and each im2col forced (groups > 1 stay on 'im2col'; its output size may be cut short).
ALGORITHMS = ["auto", "im2col", "im2col_last"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape, w_shape, arguments", ARRAY_CASES)
def test_array_forward_matches_reference(x_shape, w_shape, arguments, algorithm):
    x, w, geometry, _, _ = _array_case(x_shape, w_shape, arguments)
    with kernels.use_algorithm(algorithm):
        out, saved = conv2d_forward(x, w, geometry)
    np.testing.assert_allclose(out, _reference_out(x, w, geometry), rtol=1e-12, atol=1e-12)
    columns = conv2d_columns_last if saved.algorithm == "im2col_last" else conv2d_columns
    np.testing.assert_array_equal(saved.array, columns(x, geometry).array)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape, w_shape, arguments", ARRAY_CASES)
def test_array_gradients_match_finite_differences(x_shape, w_shape, arguments, algorithm):
    """L(x, w) = <reference conv2d(x, w), d_out>; central differences along random directions."""
    x, w, geometry, grad_out, rng = _array_case(x_shape, w_shape, arguments)
    eps = 1e-6

    def loss(x, w):
        return float((_reference_out(x, w, geometry) * grad_out).sum())

    with kernels.use_algorithm(algorithm):
        grad_x = conv2d_input_grad(grad_out, w, geometry)
        grad_w = conv2d_weight_grad(grad_out, conv2d_forward(x, w, geometry)[1], geometry)
    assert grad_x.shape == x.shape and grad_w.shape == w.shape
    for _ in range(3):
        v_x, v_w = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        numeric_x = (loss(x + eps * v_x, w) - loss(x - eps * v_x, w)) / (2 * eps)
        numeric_w = (loss(x, w + eps * v_w) - loss(x, w - eps * v_w)) / (2 * eps)
        assert (grad_x * v_x).sum() == pytest.approx(numeric_x, rel=1e-6, abs=1e-6)
        assert (grad_w * v_w).sum() == pytest.approx(numeric_w, rel=1e-6, abs=1e-6)


@requires_torch
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape, w_shape, arguments", ARRAY_CASES)
def test_array_gradients_match_torch(x_shape, w_shape, arguments, algorithm):
    x, w, geometry, grad_out, _ = _array_case(x_shape, w_shape, arguments)
    x, w, grad_out = (a.astype(np.float32) for a in (x, w, grad_out))
    their_x, their_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    top, bottom, left, right = geometry.padding
    (oh, ow), g = geometry.output_hw, geometry
    out = torch.nn.functional.conv2d(torch.nn.functional.pad(their_x, (left, right, top, bottom)), their_w,
                                     stride=g.stride, dilation=g.dilation, groups=g.groups)[:, :, :oh, :ow]
    out.backward(torch.from_numpy(grad_out))
    with kernels.use_algorithm(algorithm):
        assert_close_relative_to_scale(conv2d_input_grad(grad_out, w, geometry), their_x.grad.numpy())
        assert_close_relative_to_scale(conv2d_weight_grad(grad_out, conv2d_forward(x, w, geometry)[1], geometry),
                                       their_w.grad.numpy())


def test_conv_transpose_geometry_is_the_convolution_it_transposes():
    geometry = ConvGeometry.of_conv_transpose2d((7, 5), (3, 2), (2, 1), (1, 0), (1, 1), (1, 2), 1)
    assert geometry.input_hw == (14, 8) and geometry.padding == (1, 1, 0, 0) and geometry.padded_hw == (16, 8)
    # output_padding 1 >= stride 1 in width: the convolution's natural width is 6, it counts 5.
    natural = ConvGeometry.of_conv2d(geometry.input_hw, geometry.kernel, geometry.stride, geometry.padding,
                                     geometry.dilation, geometry.groups)
    assert geometry.output_hw == (7, 5) and natural.output_hw == (7, 6)


# ------------------------------------------------------------------ the layer
LAYERS = [
    dict(in_channels=3, out_channels=5, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0),
         groups=2),
    dict(in_channels=2, out_channels=2, kernel_size=3, stride=1, padding=1, output_padding=1, dilation=2,
         bias=False),
]


@requires_torch
@pytest.mark.parametrize("arguments", LAYERS)
@pytest.mark.parametrize("input_requires_grad", [True, False])  # False: a first layer, weight gradients alone
def test_conv_transpose_layer_loads_into_torch_and_matches_it(arguments, input_requires_grad, rng):
    ours, theirs = nn.ConvTranspose2d(**arguments), torch.nn.ConvTranspose2d(**arguments)
    assert ours.extra_repr() == theirs.extra_repr()
    check_twins(ours, theirs, (2, arguments["in_channels"], 5, 4), rng, steps=1,
                input_requires_grad=input_requires_grad)


def test_conv_transpose_layer_default_init_has_torchs_bounds():
    """torch: kaiming_uniform(a=sqrt(5)) with fan_in = weight.size(1)*kH*kW = out_channels/groups*kH*kW,
    so weight and bias lie in +-1/sqrt(fan_in)."""
    convnet.manual_seed(0)
    layer = nn.ConvTranspose2d(8, 32, 5, groups=2)
    bound = 1 / math.sqrt(16 * 25)
    assert layer.weight.shape == (8, 16, 5, 5) and layer.bias.shape == (32,)
    for values in (layer.weight.numpy(), layer.bias.numpy()):
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound


def test_conv_transpose_layer_describes_itself_like_conv2d():
    assert nn.ConvTranspose2d(16, 8, 3, stride=2).describe() == "ConvTranspose2d(16, 8, kernel_size=3)"
    assert repr(nn.ConvTranspose2d(16, 8, (3, 2), bias=False)) == \
        "ConvTranspose2d(16, 8, kernel_size=(3, 2), stride=(1, 1), bias=False)"
