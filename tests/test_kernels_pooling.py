"""Compiled max pooling against its NumPy reference (exactly equal values and gradients) and
against PyTorch, on odd shapes, many ties, NaN, -inf and every kernel/stride/padding the op
takes; ReLU fused into it against the two ops one after the other. Every op-level test runs on
each input layout (NCHW, channel-major and channels-last memory), which choose between the
channel-major kernels (kernels/pooling.py) and the channels-last ones
(kernels/pooling_channels_last.py); the two families are also compared with each other."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet.functional as F
from convnet import Tensor, kernels, nn
from convnet.kernels.convolution import is_channels_last
from conftest import in_layout, requires_torch, torch, torch_check

LAYOUTS = ("nchw", "channel_major", "channels_last")


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.just((2, 2)), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), kernel[0] + 7))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), kernel[1] + 7))
    batch, channels = draw(st.sampled_from([(1, 1), (2, 3), (1, 100), (3, 1), (2, 101), (2, 8), (1, 130)]))
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


def _forward_backward(case, mode, layout, pool=F.max_pool2d, grad_layout=None):
    """Output and input gradient of ``pool`` under kernels ``mode``, the input (and the output
    gradient, unless ``grad_layout`` says otherwise) in ``layout``'s memory."""
    x = in_layout(case["x"], layout)
    with kernels.use(mode):
        tensor = Tensor(x, requires_grad=True)
        out = _pool(case, pool)(tensor)
        grad = np.random.default_rng(0).standard_normal(out.shape).astype(x.dtype)
        out.backward(in_layout(grad, grad_layout or layout))
    return out.numpy(), tensor.grad.numpy()


@given(pool_cases(), st.sampled_from(LAYOUTS))
def test_compiled_max_pool2d_equals_the_reference_exactly(case, layout):
    out, grad = _forward_backward(case, "compiled", layout)
    expected_out, expected_grad = _forward_backward(case, "reference", layout)
    assert out.dtype == expected_out.dtype == case["x"].dtype
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(grad, expected_grad)


@given(pool_cases(), st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS))
def test_max_pool2d_gives_the_same_floats_whatever_the_layouts(case, layout, grad_layout):
    # The channels-last and channel-major kernels add a position's gradients in the same order.
    expected_out, expected_grad = _forward_backward(case, "compiled", "nchw")
    out, grad = _forward_backward(case, "compiled", layout, grad_layout=grad_layout)
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


@given(pool_cases(), st.sampled_from(LAYOUTS), st.sampled_from([0.0, np.nan]))
def test_relu_max_pool2d_equals_relu_then_max_pool_exactly(case, layout, special):
    # Zeros (ReLU's kink) and NaN (which both ops pass on) in some windows.
    case["x"].flat[::7] = special
    expected_out, expected_grad = _forward_backward(case, "compiled", layout, _relu_then_max_pool)
    for mode in kernels.MODES:
        out, grad = _forward_backward(case, mode, layout, F.relu_max_pool2d)
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


@requires_torch
@given(pool_cases(), st.sampled_from(LAYOUTS), st.booleans())
def test_max_pool2d_matches_torch_on_every_layout(case, layout, with_nan):
    # PyTorch on the same memory layout (its channels_last kernel for channels-last input).
    if with_nan:
        case["x"].flat[::5] = np.nan  # NaN wins its window (the last NaN, if several)
    _check_against_torch(case, layout, F.max_pool2d, torch.nn.functional.max_pool2d)


def _check_against_torch(case, layout, pool, torch_pool):
    """``pool`` against ``torch_pool`` on the same input in the same memory layout (PyTorch's
    channels_last kernels for channels-last input): outputs and input gradients."""
    out, grad = _forward_backward(case, "compiled", layout, pool)
    x = torch.from_numpy(in_layout(case["x"], layout).copy(order="K")).requires_grad_()
    expected = torch_pool(x, case["kernel_size"], case["stride"], case["padding"])
    expected.backward(torch.from_numpy(np.random.default_rng(0).standard_normal(out.shape).astype(case["x"].dtype)))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-5, atol=1e-6)


@st.composite
def nhwc_kernel_cases(draw):
    """Arguments of the channels-last kernels: x: (N, H, W, C) and a geometry (top and left padding)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = [draw(st.integers(max(1, k - 2 * p), k + 6)) for k, p in zip(kernel, pad)]
    channels = draw(st.sampled_from([1, 3, 7, 8, 17, 130]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.integers(-2, 3, (draw(st.integers(1, 3)), *size, channels)).astype(draw(st.sampled_from(["f4", "f8"])))
    x[rng.random(x.shape) < 0.1] = draw(st.sampled_from([np.nan, -np.inf]))
    return x, kernel, stride, pad


def _nhwc_run(mode, x, kernel, stride, pad, two_by_two=False):
    """Forward and backward through the channels-last kernels of ``mode``; the outputs start as
    garbage, so a kernel that leaves an element unwritten fails."""
    (height, width), (kh, kw), (sh, sw), (ph, pw) = x.shape[1:3], kernel, stride, pad
    out_shape = (x.shape[0], (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1, x.shape[3])
    out, argmax = np.full(out_shape, 7.0, dtype=x.dtype), np.full(out_shape, -7, dtype=np.int32)
    grad_out = np.random.default_rng(1).standard_normal(out_shape).astype(x.dtype)
    grad_in = np.full(x.shape, 7.0, dtype=x.dtype)
    with kernels.use(mode):
        if two_by_two:
            kernels.max_pool_2x2_nhwc_forward(x, out, argmax)
            kernels.max_pool_2x2_nhwc_backward(grad_out, argmax, grad_in)
        else:
            kernels.max_pool_nhwc_forward(x, *kernel, *stride, *pad, out, argmax)
            kernels.max_pool_nhwc_backward(grad_out, argmax, *kernel, *stride, *pad, grad_in)
    return out, argmax, grad_in


@given(nhwc_kernel_cases())
def test_channels_last_kernels_equal_their_references_and_the_channel_major_kernels(case):
    x, kernel, stride, pad = case
    out, argmax, grad_in = _nhwc_run("compiled", *case)
    for actual, expected in zip((out, argmax, grad_in), _nhwc_run("reference", *case)):
        np.testing.assert_array_equal(actual, expected)
    # The channel-major kernels on the same data, one plane per (image, channel): an independent check.
    n, h, w, c = x.shape
    planes = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n * c, h, w)
    plane_out = np.empty((n * c,) + out.shape[1:3], dtype=x.dtype)
    plane_argmax = np.empty(plane_out.shape, dtype=np.int32)
    kernels.max_pool_forward(planes, *kernel, *stride, *pad, plane_out, plane_argmax)
    as_planes = lambda a: a.transpose(0, 3, 1, 2).reshape(n * c, -1)  # noqa: E731
    np.testing.assert_array_equal(as_planes(out), plane_out.reshape(n * c, -1))
    np.testing.assert_array_equal(as_planes(argmax), plane_argmax.reshape(n * c, -1))
    grad_out = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    plane_grad = np.zeros((n * c, h * w), dtype=x.dtype)
    kernels.max_pool_backward(np.ascontiguousarray(as_planes(grad_out)), plane_argmax.reshape(n * c, -1), plane_grad)
    np.testing.assert_array_equal(as_planes(grad_in), plane_grad)


@given(nhwc_kernel_cases())
def test_the_2x2_channels_last_kernels_equal_the_general_ones_and_their_references(case):
    x = case[0]
    x = np.pad(x, ((0, 0), (0, max(0, 2 - x.shape[1])), (0, max(0, 2 - x.shape[2])), (0, 0)), mode="edge")
    general = _nhwc_run("compiled", x, (2, 2), (2, 2), (0, 0))
    for mode in kernels.MODES:
        for actual, expected in zip(_nhwc_run(mode, x, (2, 2), (2, 2), (0, 0), two_by_two=True), general):
            np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("layout, kernel, channels, runs_channels_last", [
    ("channels_last", 3, 8, True), ("channels_last", 2, 8, True), ("channels_last", 3, 7, False),
    ("nchw", 3, 16, True), ("channel_major", 3, 16, True), ("nchw", 2, 16, False), ("channel_major", 2, 130, False)])
def test_max_pool2d_hands_on_the_memory_its_kernels_ran_on(layout, kernel, channels, runs_channels_last):
    x = in_layout(np.random.default_rng(0).standard_normal((2, channels, 9, 10)).astype(np.float32), layout)
    out = F.max_pool2d(Tensor(x, requires_grad=True), kernel, 2)
    assert is_channels_last(out.numpy()) == runs_channels_last
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    expected = out.grad_fn.backward(grad)  # an NCHW gradient, whatever the kernels' layout
    assert is_channels_last(expected) == runs_channels_last
    np.testing.assert_array_equal(out.grad_fn.backward(in_layout(grad, "channels_last")), expected)


@pytest.mark.parametrize("channels", [3, 130])
def test_channels_last_max_pool2d_gives_the_same_floats_on_one_thread_and_on_all(channels):
    numba = pytest.importorskip("numba")
    case = dict(x=np.random.default_rng(0).integers(-3, 4, (4, channels, 11, 13)).astype(np.float32),
                kernel_size=3, stride=2, padding=1)
    threads = numba.get_num_threads()
    expected = _forward_backward(case, "compiled", "channels_last")
    numba.set_num_threads(1)
    try:
        actual = _forward_backward(case, "compiled", "channels_last")
    finally:
        numba.set_num_threads(threads)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


@given(nhwc_kernel_cases())
def test_window_sum_kernels_equal_their_references(case):
    x, kernel, stride, pad = case
    out_hw = tuple((size + 2 * p - k) // s + 1 for size, k, s, p in zip(x.shape[1:3], kernel, stride, pad))
    out_shape = (x.shape[0],) + out_hw + (x.shape[3],)
    grad_out = np.random.default_rng(1).standard_normal(out_shape).astype(x.dtype)
    results = []
    for mode in kernels.MODES:
        out, grad_in = np.full(out_shape, 7.0, dtype=x.dtype), np.full(x.shape, 7.0, dtype=x.dtype)
        with kernels.use(mode):
            kernels.window_sum(x, *kernel, *stride, *pad, out)
            kernels.window_sum_backward(grad_out, *kernel, *stride, *pad, grad_in)
        results.append((out, grad_in))
    for actual, expected in zip(*results):
        np.testing.assert_array_equal(actual, expected)
    # Hand-checkable: with unit gradients each input pixel gets the number of windows covering it.
    covered = np.zeros(x.shape[1:3])
    for oy in range(out_shape[1]):
        for ox in range(out_shape[2]):
            top, left = oy * stride[0] - pad[0], ox * stride[1] - pad[1]
            covered[max(top, 0):top + kernel[0], max(left, 0):left + kernel[1]] += 1
    with kernels.use("compiled"):
        kernels.window_sum_backward(np.ones(out_shape, dtype=x.dtype), *kernel, *stride, *pad, grad_in)
    np.testing.assert_array_equal(grad_in, np.broadcast_to(covered[None, :, :, None], x.shape))


def _average(count_include_pad):
    return lambda x, *args: F.avg_pool2d(x, *args, count_include_pad=count_include_pad)


@given(pool_cases(), st.sampled_from(LAYOUTS), st.booleans())
def test_avg_pool2d_gives_the_same_floats_whatever_the_layout_and_mode(case, layout, count_include_pad):
    # Channels-last input with many channels runs the channels-last kernels, the rest NumPy's passes.
    expected_out, expected_grad = _forward_backward(case, "compiled", "nchw", _average(count_include_pad))
    for mode in kernels.MODES:
        out, grad = _forward_backward(case, mode, layout, _average(count_include_pad))
        np.testing.assert_array_equal(out, expected_out)
        np.testing.assert_array_equal(grad, expected_grad)


@requires_torch
@given(pool_cases(), st.sampled_from(LAYOUTS), st.booleans())
def test_avg_pool2d_matches_torch_on_every_layout(case, layout, count_include_pad):
    _check_against_torch(case, layout, _average(count_include_pad),
                         lambda x, *args: torch.nn.functional.avg_pool2d(x, *args, count_include_pad=count_include_pad))
