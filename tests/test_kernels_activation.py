"""The compiled ReLU equals its NumPy reference exactly, whatever the memory layout; every
elementwise op hands on its output and its input's gradient in its input's memory order."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convnet import Tensor, kernels
import convnet.functional as F
from convnet.kernels.convolution import is_channels_last, nchw

from conftest import RecordGradient, requires_torch, torch

LAYOUTS = ["contiguous", "channel-major", "channels-last", "sliced"]


def _layouts(array):
    """The same values as a C-contiguous array, NCHW views of channel-major and channels-last memory,
    and a strided slice."""
    channel_major = np.ascontiguousarray(array.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    doubled = np.repeat(array, 2, axis=3)[..., ::2]
    channels_last = nchw(np.ascontiguousarray(array.transpose(0, 2, 3, 1)))
    return {"contiguous": array, "channel-major": channel_major, "channels-last": channels_last, "sliced": doubled}


@st.composite
def relu_cases(draw):
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::3] = 0.0  # the kink itself: no gradient passes at x == 0
    if draw(st.booleans()):
        x.flat[1::5] = np.nan
    grad = rng.standard_normal(shape).astype(dtype)
    grad.flat[2::7] = np.inf  # an infinite gradient where the output is 0 gives 0, not NaN
    return x, grad


def _relu(x, grad, mode):
    with kernels.use(mode):
        tensor = Tensor(x, requires_grad=True)
        out = F.relu(tensor)
        out.backward(grad)
    return out.numpy(), tensor.grad.numpy()


@given(relu_cases(), st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS))
def test_compiled_relu_equals_the_reference_in_every_layout(case, x_layout, grad_layout):
    x, grad = case
    x, grad = _layouts(x)[x_layout], _layouts(grad)[grad_layout]
    compiled, reference = _relu(x, grad, "compiled"), _relu(x, grad, "reference")
    for ours, theirs in zip(compiled, reference):
        assert ours.dtype == theirs.dtype == x.dtype
        np.testing.assert_array_equal(ours, theirs)


@requires_torch
@given(relu_cases())
def test_relu_matches_torch_on_nan_zero_and_infinite_gradients(case):
    x, grad = case
    out, grad_x = _relu(x, grad, "compiled")
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.relu(theirs)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(out, expected.detach().numpy())
    np.testing.assert_array_equal(grad_x, theirs.grad.numpy())


@pytest.mark.parametrize("mode", ["compiled", "reference"])
def test_relu_keeps_the_input_layout(mode):
    x = np.arange(-12, 12, dtype=np.float32).reshape(2, 3, 2, 2)
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    with kernels.use(mode):
        out = F.relu(Tensor(channel_major)).numpy()
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    if mode == "compiled":
        assert out.strides == channel_major.strides  # the next layer reads it without a copy


ELEMENTWISE = {"relu": F.relu, "leaky_relu": F.leaky_relu, "sigmoid": F.sigmoid, "tanh": F.tanh, "gelu": F.gelu,
               "gelu tanh": lambda x: F.gelu(x, approximate="tanh")}


@pytest.mark.parametrize("mode", ["compiled", "reference"])
@pytest.mark.parametrize("grad_layout", ["contiguous", "channels-last", "channel-major"])
@pytest.mark.parametrize("layout", ["channels-last", "channel-major"])
@pytest.mark.parametrize("op", ELEMENTWISE)
def test_elementwise_ops_keep_the_input_layout(op, layout, grad_layout, mode):
    """Output and input gradient in the input's memory order (never copied into NCHW order), with the
    values the same op gives on NCHW-contiguous arrays."""
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal((2, 5, 3, 4)).astype(np.float32), rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    results = {}
    with kernels.use(mode):
        for name, (x_in, grad_in) in {"nchw": (x, grad), "laid out": (_layouts(x)[layout], _layouts(grad)[grad_layout])}.items():
            seen = []
            out = ELEMENTWISE[op](RecordGradient.apply(Tensor(x_in, requires_grad=True), seen=seen))
            out.backward(grad_in)
            results[name] = out.numpy(), seen[0]
    for name, ours, expected in zip(("out", "grad"), results["laid out"], results["nchw"]):
        assert ours.strides == _layouts(x)[layout].strides, f"{op} {name}: strides {ours.strides}"
        assert is_channels_last(ours) == (layout == "channels-last")
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7, err_msg=f"{op} {name}")
