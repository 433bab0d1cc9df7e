"""Compiled max pooling against its NumPy reference (exactly equal values and gradients) and
against PyTorch, on odd shapes, many ties, -inf and every kernel/stride/padding the op takes;
ReLU fused into it against the two ops one after the other."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet.functional as F
from convnet import Tensor, kernels, nn
from conftest import requires_torch, torch, torch_check


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.just((2, 2)), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), kernel[0] + 7))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), kernel[1] + 7))
    batch, channels = draw(st.sampled_from([(1, 1), (2, 3), (1, 100), (3, 1), (2, 101)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = draw(st.sampled_from(["normal", "integers", "equal", "-inf"]))
    shape = (batch, channels, height, width)
    if values == "normal":
        x = rng.standard_normal(shape)
    elif values == "integers":  # many ties within each window
        x = rng.integers(-2, 3, shape).astype(float)
    elif values == "equal":
        x = np.full(shape, -1e30)
    else:  # windows that hold only -inf pick their first real position, never the padding
        x = np.where(rng.random(shape) < 0.7, -np.inf, rng.integers(-2, 3, shape))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return dict(x=x.astype(dtype), kernel_size=kernel, stride=stride, padding=padding)


def _pool(case, pool):
    return lambda x: pool(x, case["kernel_size"], case["stride"], case["padding"])


def _forward_backward(case, mode, channel_major, pool=F.max_pool2d):
    """Output and input gradient of ``pool`` under kernels ``mode``, the input laid out as a conv
    hands it over (channel-major memory) or as a user does (NCHW)."""
    x = case["x"]
    if channel_major:
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    with kernels.use(mode):
        tensor = Tensor(x, requires_grad=True)
        out = _pool(case, pool)(tensor)
        grad = np.random.default_rng(0).standard_normal(out.shape).astype(x.dtype)
        out.backward(grad)
    return out.numpy(), tensor.grad.numpy()


@given(pool_cases(), st.booleans())
def test_compiled_max_pool2d_equals_the_reference_exactly(case, channel_major):
    out, grad = _forward_backward(case, "compiled", channel_major)
    expected_out, expected_grad = _forward_backward(case, "reference", channel_major)
    assert out.dtype == expected_out.dtype == case["x"].dtype
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(grad, expected_grad)


@requires_torch
@given(pool_cases())
def test_compiled_max_pool2d_matches_torch(case):
    with kernels.use("compiled"):
        torch_check(_pool(case, F.max_pool2d), _pool(case, torch.nn.functional.max_pool2d), [case["x"]])


@requires_torch
@pytest.mark.parametrize("mode", kernels.MODES)
def test_max_pool2d_sends_nothing_to_padding_in_an_all_minus_inf_window_like_torch(mode):
    x = np.full((1, 1, 3, 3), -np.inf)
    with kernels.use(mode):
        torch_check(lambda t: F.max_pool2d(t, 3, 1, 1), lambda t: torch.nn.functional.max_pool2d(t, 3, 1, 1), [x],
                    rtol=0, atol=0)


def test_compiled_max_pool2d_propagates_nan_like_torch():
    x = np.array([[[[1.0, np.nan], [np.nan, 0.0]]]], dtype=np.float32)
    tensor = Tensor(x, requires_grad=True)
    with kernels.use("compiled"):
        out = F.max_pool2d(tensor, 2)
        out.backward(np.ones(out.shape, dtype=np.float32))
    assert np.isnan(out.numpy()).all()
    # PyTorch takes every NaN it meets, so the last one wins.
    np.testing.assert_array_equal(tensor.grad.numpy(), [[[[0.0, 0.0], [1.0, 0.0]]]])


def _relu_then_max_pool(x, kernel_size, stride, padding):
    return F.max_pool2d(F.relu(x), kernel_size, stride, padding)


@given(pool_cases(), st.booleans(), st.sampled_from([0.0, np.nan]))
def test_relu_max_pool2d_equals_relu_then_max_pool_exactly(case, channel_major, special):
    # Zeros (ReLU's kink) and NaN (which both ops pass on) in some windows.
    case["x"].flat[::7] = special
    expected_out, expected_grad = _forward_backward(case, "compiled", channel_major, _relu_then_max_pool)
    for mode in kernels.MODES:
        out, grad = _forward_backward(case, mode, channel_major, F.relu_max_pool2d)
        np.testing.assert_array_equal(out, expected_out)
        np.testing.assert_array_equal(grad, expected_grad)


def test_sequential_fuses_relu_into_the_max_pool_unless_a_hook_watches():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 9, 9)).astype(np.float32))

    def run():
        model.zero_grad()
        out = model(x)
        pool_op = out.grad_fn.inputs[0].grad_fn  # Flatten's input came from the pool
        rectifying = pool_op.rectified is not None
        out.backward(np.arange(np.prod(out.shape), dtype=np.float32).reshape(out.shape))
        return out, model[0].weight.grad.numpy(), rectifying

    fused_out, fused_grad, fused = run()
    seen = []
    model[1].register_forward_hook(lambda module, inputs, output: seen.append(output.numpy().min()))
    out, grad, rectifying = run()
    assert fused and not rectifying
    assert seen == [0.0]  # with a hook the ReLU ran on its own, so the hook saw its output
    np.testing.assert_array_equal(fused_out.numpy(), out.numpy())
    np.testing.assert_array_equal(fused_grad, grad)
