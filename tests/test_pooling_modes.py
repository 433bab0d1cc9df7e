"""Pooling's ceil_mode, dilation and four-sided padding, and transposed convolution's four-sided
padding: against PyTorch (values and gradients), against the definition written out tap by tap
(asymmetric padding, which PyTorch lacks), against central finite differences, and exported,
against onnxruntime. Every op-level test runs on NCHW, channel-major and channels-last input
memory, under the compiled kernels and their references."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import Tensor, kernels, nn
from conftest import finite_difference_check, in_layout, requires, requires_torch, torch

TF = torch.nn.functional if torch is not None else None
LAYOUTS = ("nchw", "channel_major", "channels_last")
MODES = ("compiled", "reference")


def output_sizes(hw, kernel, stride, padding, dilation, ceil_mode):
    """(H', W'): floor or ceil of (H + top + bottom - dH*(kH-1) - 1) / sH, plus one, less one in
    ceil_mode where the last window would start in the bottom padding (PyTorch's rule)."""
    sizes = []
    for size, k, s, d, before, after in zip(hw, kernel, stride, dilation, padding[::2], padding[1::2]):
        whole = size + before + after - d * (k - 1) - 1
        out = (-(-whole // s) if ceil_mode else whole // s) + 1
        sizes.append(out - 1 if ceil_mode and (out - 1) * s >= size + before else out)
    return tuple(sizes)


def pooled_by_definition(x, grad, kernel, stride, padding, dilation, ceil_mode, kind, count_include_pad=True):
    """(output, input gradient for output gradient ``grad``) of max or average pooling, one
    output and one tap at a time, from the definition: tap (i, j) of output (oy, ox) at
    (oy*sH - top + i*dH, ox*sW - left + j*dW); max keeps the first largest real tap; avg divides
    by the taps within the padded input, or within the input without count_include_pad."""
    n, c, h, w = x.shape
    sizes = output_sizes((h, w), kernel, stride, padding, dilation, ceil_mode)
    out, grad_x = np.empty((n, c) + tuple(sizes)), np.zeros(x.shape)
    for oy in range(sizes[0]):
        for ox in range(sizes[1]):
            ys = [oy * stride[0] - padding[0] + i * dilation[0] for i in range(kernel[0])]
            xs = [ox * stride[1] - padding[2] + j * dilation[1] for j in range(kernel[1])]
            taps = [(y, x_) for y in ys for x_ in xs if 0 <= y < h and 0 <= x_ < w]
            values = np.stack([x[:, :, y, x_] for y, x_ in taps])  # (taps, N, C)
            g = grad[:, :, oy, ox]
            if kind == "max":
                first = values.argmax(axis=0)
                out[:, :, oy, ox] = values.max(axis=0)
                for t, (y, x_) in enumerate(taps):
                    grad_x[:, :, y, x_] += np.where(first == t, g, 0.0)
            else:
                inside = [(y, x_) for y in ys for x_ in xs if -padding[0] <= y < h + padding[1]
                          and -padding[2] <= x_ < w + padding[3]] if count_include_pad else taps
                out[:, :, oy, ox] = values.sum(axis=0) / len(inside)
                for y, x_ in taps:
                    grad_x[:, :, y, x_] += g / len(inside)
    return out, grad_x


def run(pool, x, layout, mode, grad=None, **kwargs):
    """(output, input gradient) of ``pool`` on x in ``layout``'s memory under kernels ``mode``."""
    with kernels.use(mode):
        tensor = Tensor(in_layout(x, layout), requires_grad=True)
        out = pool(tensor, **kwargs)
        grad = np.random.default_rng(0).standard_normal(out.shape) if grad is None else grad
        out.backward(in_layout(grad.astype(x.dtype), layout))
    return out.numpy(), tensor.grad.numpy(), grad


@st.composite
def windows(draw, symmetric, dilated):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilated else (1, 1)
    pad_h, pad_w = ([draw(st.integers(0, k // 2))] * (2 if symmetric else 1) for k in kernel)
    if not symmetric:
        pad_h.append(draw(st.integers(0, kernel[0] // 2)))
        pad_w.append(draw(st.integers(0, kernel[1] // 2)))
    padding = (*pad_h, *pad_w)
    # sizes a few strides past the first window, plus a remainder that ceil_mode rounds up into a window
    hw = tuple(max(1, d * (k - 1) + 1 - before - after + s * draw(st.integers(0, 3)) + draw(st.integers(0, s - 1)))
               for k, s, d, before, after in zip(kernel, stride, dilation, padding[::2], padding[1::2]))
    ceil_mode = draw(st.booleans())
    sizes = output_sizes(hw, kernel, stride, padding, dilation, ceil_mode)
    assume(min(sizes) >= 1)
    # every window holds an input pixel (a dilated one may straddle them all: refused, tested below)
    assume(all(any(0 <= o * s - before + i * d < size for i in range(k)) for o in range(out))
           for size, k, s, d, before, out in zip(hw, kernel, stride, dilation, padding[::2], sizes))
    channels = draw(st.sampled_from([1, 3, 8, 24, 30]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = draw(st.sampled_from(["normal", "ties", "-inf"]))
    shape = (2, channels) + hw
    if values == "normal":
        x = rng.standard_normal(shape)
    elif values == "ties":
        x = rng.integers(-2, 3, shape).astype(float)
    else:  # windows holding only -inf keep their first real position, never the padding
        x = np.where(rng.random(shape) < 0.7, -np.inf, rng.integers(-2, 3, shape))
    return dict(x=x.astype(np.float32), kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=ceil_mode)


def torch_pair(padding):
    """(top, bottom, left, right) with top == bottom and left == right -> PyTorch's (pH, pW)."""
    assert padding[0] == padding[1] and padding[2] == padding[3]
    return padding[0], padding[2]


# ------------------------------------------------------------------ against PyTorch
@requires_torch
@pytest.mark.parametrize("size, expected", [(55, 27), (27, 13), (13, 6), (112, 56), (56, 28), (14, 7), (28, 14)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_caffe_era_3x3_stride_2_ceil_mode_pooling_matches_torch(size, expected, layout):
    """SqueezeNet's and GoogLeNet's MaxPool2d(3, 2, ceil_mode=True): 112 px gives 56 (55 floored)."""
    x = np.random.default_rng(size).standard_normal((2, 16, size, size)).astype(np.float32)
    t = torch.tensor(x, requires_grad=True)
    expected_out = TF.max_pool2d(t, 3, 2, ceil_mode=True)
    out, grad_x, grad = run(F.max_pool2d, x, layout, "compiled", kernel_size=3, stride=2, ceil_mode=True)
    expected_out.backward(torch.tensor(grad.astype(np.float32)))
    assert out.shape == (2, 16, expected, expected)
    np.testing.assert_array_equal(out, expected_out.detach().numpy())
    np.testing.assert_allclose(grad_x, t.grad.numpy(), atol=1e-6)
    t = torch.tensor(x, requires_grad=True)
    expected_avg = TF.avg_pool2d(t, 3, 2, ceil_mode=True)
    avg, grad_x, _ = run(F.avg_pool2d, x, layout, "compiled", grad, kernel_size=3, stride=2, ceil_mode=True)
    expected_avg.backward(torch.tensor(grad.astype(np.float32)))
    np.testing.assert_allclose(avg, expected_avg.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(grad_x, t.grad.numpy(), atol=1e-6)


@requires_torch
@given(windows(symmetric=True, dilated=True), st.sampled_from(LAYOUTS), st.sampled_from(MODES))
def test_max_pool2d_with_ceil_mode_and_dilation_matches_torch(case, layout, mode):
    x = case.pop("x")
    case["padding"] = torch_pair(case["padding"])
    t = torch.tensor(x, requires_grad=True)
    expected = TF.max_pool2d(t, **case)
    out, grad_x, grad = run(F.max_pool2d, x, layout, mode, **case)
    expected.backward(torch.tensor(grad.astype(np.float32)))
    np.testing.assert_array_equal(out, expected.detach().numpy())
    np.testing.assert_allclose(grad_x, t.grad.numpy(), atol=1e-5)


@requires_torch
@given(windows(symmetric=True, dilated=False), st.booleans(), st.sampled_from([None, 1, 5]),
       st.sampled_from(LAYOUTS), st.sampled_from(MODES))
def test_avg_pool2d_with_ceil_mode_matches_torch(case, count_include_pad, divisor_override, layout, mode):
    x = np.nan_to_num(case.pop("x"), neginf=-3.0)
    del case["dilation"]
    case.update(padding=torch_pair(case["padding"]), count_include_pad=count_include_pad,
                divisor_override=divisor_override)
    t = torch.tensor(x, requires_grad=True)
    expected = TF.avg_pool2d(t, **case)
    out, grad_x, grad = run(F.avg_pool2d, x, layout, mode, **case)
    expected.backward(torch.tensor(grad.astype(np.float32)))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_x, t.grad.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ four sides: the definition
@given(windows(symmetric=False, dilated=True), st.sampled_from(LAYOUTS), st.sampled_from(MODES))
def test_max_pool2d_with_four_sided_padding_equals_the_definition(case, layout, mode):
    x = case.pop("x")
    out, grad_x, grad = run(F.max_pool2d, x, layout, mode, **case)
    expected, expected_grad = pooled_by_definition(x, grad, case["kernel_size"], case["stride"], case["padding"],
                                                   case["dilation"], case["ceil_mode"], "max")
    np.testing.assert_array_equal(out, expected.astype(np.float32))
    np.testing.assert_allclose(grad_x, expected_grad, atol=1e-5)


@given(windows(symmetric=False, dilated=False), st.booleans(), st.sampled_from(LAYOUTS), st.sampled_from(MODES))
def test_avg_pool2d_with_four_sided_padding_equals_the_definition(case, count_include_pad, layout, mode):
    x = np.nan_to_num(case.pop("x"), neginf=-3.0)
    del case["dilation"]
    out, grad_x, grad = run(F.avg_pool2d, x, layout, mode, count_include_pad=count_include_pad, **case)
    expected, expected_grad = pooled_by_definition(x, grad, case["kernel_size"], case["stride"], case["padding"],
                                                   (1, 1), case["ceil_mode"], "avg", count_include_pad)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_x, expected_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool, kwargs", [
    (F.max_pool2d, dict(kernel_size=3, stride=2, padding=(1, 0, 0, 1), dilation=(2, 1), ceil_mode=True)),
    (F.max_pool2d, dict(kernel_size=(2, 3), stride=(2, 2), padding=(0, 1, 1, 0), ceil_mode=True)),
    (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=(0, 1, 1, 0), ceil_mode=True)),
    (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=(1, 0, 0, 1), ceil_mode=True, count_include_pad=False)),
])
def test_gradients_equal_finite_differences(pool, kwargs):
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 7))
    finite_difference_check(lambda t: pool(t, **kwargs), [x])


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_then_ceil_mode_dilated_pooling_in_a_sequential_matches_torch(layout):
    """nn.Sequential runs ReLU + MaxPool2d as F.relu_max_pool2d, which carries ceil_mode and dilation."""
    x = np.random.default_rng(5).standard_normal((2, 9, 11, 10)).astype(np.float32)
    ours = nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, 2, 1, dilation=(1, 2), ceil_mode=True))
    theirs = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1, dilation=(1, 2), ceil_mode=True))
    t = torch.tensor(x, requires_grad=True)
    expected = theirs(t)
    out, grad_x, grad = run(ours, x, layout, "compiled")
    expected.backward(torch.tensor(grad.astype(np.float32)))
    np.testing.assert_array_equal(out, expected.detach().numpy())
    np.testing.assert_allclose(grad_x, t.grad.numpy(), atol=1e-6)


# ------------------------------------------------------------------ the fast paths stay
@pytest.mark.parametrize("layout, channels, size, kernel, name", [
    ("nchw", 3, 28, 2, "max_pool_2x2_forward"), ("channels_last", 16, 28, 2, "max_pool_2x2_nhwc_forward"),
    ("nchw", 3, 55, 3, "max_pool_forward"), ("channels_last", 16, 55, 3, "max_pool_nhwc_forward")])
def test_ceil_mode_that_adds_no_window_keeps_the_fast_kernels(layout, channels, size, kernel, name, monkeypatch):
    """2x2/2 on 28 px and 3x3/2 on 55 px come out the same size floored or rounded up."""
    called, original = [], getattr(kernels, name)
    monkeypatch.setattr(kernels, name, lambda *args: called.append(name) or original(*args))
    x = np.random.default_rng(0).standard_normal((2, channels, size, size)).astype(np.float32)
    plain, plain_grad, grad = run(F.max_pool2d, x, layout, "compiled", kernel_size=kernel, stride=2)
    out, grad_x, _ = run(F.max_pool2d, x, layout, "compiled", grad, kernel_size=kernel, stride=2, ceil_mode=True)
    assert called == [name, name]
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_array_equal(grad_x, plain_grad)


# ------------------------------------------------------------------ transposed convolution
@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups", [
    ((2, 2), (0, 1, 0, 1), (1, 1), (1, 1), 1), ((2, 1), (1, 0, 2, 1), (0, 0), (1, 2), 2),
    ((3, 2), (2, 1, 0, 0), (2, 1), (1, 1), 1), ((1, 1), (1, 1, 1, 1), (0, 0), (2, 2), 1)])
def test_conv_transpose2d_with_four_sided_padding_is_torchs_output_cropped(stride, padding, output_padding, dilation,
                                                                          groups, layout):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w, b = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(3 * groups).astype(np.float32)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    full = TF.conv_transpose2d(*tensors, stride, 0, output_padding, groups, dilation)
    top, bottom, left, right = padding
    expected = full[:, :, top:full.shape[2] - bottom, left:full.shape[3] - right]
    ours = [Tensor(a, requires_grad=True) for a in (in_layout(x, layout), w, b)]
    out = F.conv_transpose2d(*ours, stride, padding, output_padding, groups, dilation)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-4)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(in_layout(grad, layout))
    expected.backward(torch.tensor(grad))
    for mine, theirs in zip(ours, tensors):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)
    reference = F.conv.conv_transpose2d_reference(x, w, b, stride, padding, output_padding, dilation, groups)
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-4, atol=1e-4)


def test_conv_transpose2d_layer_keeps_four_sides_and_shows_pairs_where_they_agree():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=(0, 1, 1, 0))
    assert (layer.padding, layer.resolved_padding) == ((0, 1, 1, 0), (0, 1, 1, 0))
    assert layer(convnet.zeros(1, 2, 4, 4)).shape == (1, 3, 8, 8)
    assert "padding=(0, 1, 1, 0)" in repr(layer)
    assert nn.ConvTranspose2d(2, 3, 3, padding=(1, 2)).padding == (1, 2)


# ------------------------------------------------------------------ layers
@requires_torch
def test_layers_take_torchs_arguments_in_torchs_order_and_print_ceil_mode():
    x = np.random.default_rng(2).standard_normal((1, 2, 13, 13)).astype(np.float32)
    for ours, theirs in [(nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)),
                         (nn.AvgPool2d(3, 2, 1, True, False, 4), torch.nn.AvgPool2d(3, 2, 1, True, False, 4))]:
        np.testing.assert_allclose(ours(convnet.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), atol=1e-6)
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    assert (pool.ceil_mode, pool.dilation) == (True, (1, 1))
    assert repr(pool) == "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(0, 0), ceil_mode=True)"
    assert repr(nn.MaxPool2d(2, dilation=(1, 2))) == ("MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), "
                                                      "dilation=(1, 2))")
    assert repr(nn.AvgPool2d(3, 2, ceil_mode=True)) == ("AvgPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(0, 0), "
                                                        "ceil_mode=True)")
    assert nn.MaxPool2d(2).state_dict() == {}


@pytest.mark.parametrize("call, exception, pattern", [
    (lambda: nn.MaxPool2d(3, 2, 0, 1, False, True), TypeError, "positional"),
    (lambda: nn.MaxPool2d(3, ceil_mode="yes"), TypeError,
     r"MaxPool2d: expected ceil_mode to be True or False, got 'yes'"),
    (lambda: F.avg_pool2d(convnet.ones(1, 1, 4, 4), 2, ceil_mode=1), TypeError, r"avg_pool2d: expected ceil_mode"),
    (lambda: F.max_pool2d(convnet.ones(1, 1, 4, 4), 2, dilation=0), ValueError, r"max_pool2d: expected dilation >= 1"),
    (lambda: F.avg_pool2d(convnet.ones(1, 1, 4, 4), 2, divisor_override=0), ValueError,
     r"avg_pool2d: expected divisor_override to be a positive int, got 0"),
    (lambda: F.max_pool2d(convnet.ones(1, 1, 3, 3), 3, dilation=2), ValueError,
     r"max_pool2d: kernel_size \(3, 3\) with dilation \(2, 2\) \(spanning \(5, 5\)\) is larger than the padded input"),
    (lambda: F.max_pool2d(convnet.ones(1, 1, 2, 2), 2, stride=1, padding=1, dilation=3), ValueError,
     r"max_pool2d: a window of kernel \(2, 2\) dilated by \(3, 3\) covers no input pixel of the 2x2 input"),
])
def test_bad_arguments_are_named(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


# ------------------------------------------------------------------ ONNX export
@requires("onnx", "onnxruntime")
@pytest.mark.parametrize("opset", [13, None])
@pytest.mark.parametrize("layers, shape", [
    (lambda: [nn.MaxPool2d(3, 2, ceil_mode=True)], (2, 3, 13, 13)),
    (lambda: [nn.MaxPool2d(3, 2, ceil_mode=True)], (1, 2, 112, 112)),
    (lambda: [nn.Conv2d(3, 4, 3, stride=2, padding=(0, 1, 0, 1))], (2, 3, 8, 8)),
    (lambda: [nn.MaxPool2d((3, 2), 2, padding=(1, 0, 0, 1), dilation=(2, 1), ceil_mode=True)], (1, 2, 9, 8)),
    (lambda: [nn.AvgPool2d(3, 2, padding=(1, 1, 0, 1), ceil_mode=True),
              nn.AvgPool2d(3, 2, padding=(1, 0, 1, 1), ceil_mode=True, count_include_pad=False)], (1, 2, 14, 12)),
    # a last window that would start in the end padding: ONNX's shape inference counts it, PyTorch drops it
    (lambda: [nn.AvgPool2d(2, 2, padding=(0, 1, 0, 1), ceil_mode=True), nn.MaxPool2d(2, 2, padding=(0, 1, 1, 0),
                                                                                      ceil_mode=True)], (1, 2, 8, 8)),
    # ... along the width, while along the height ceil_mode adds a window reaching past the padding
    (lambda: [nn.AvgPool2d((3, 2), 2, padding=(1, 1, 0, 1), ceil_mode=True)], (1, 2, 6, 8)),
    (lambda: [nn.AvgPool2d((3, 2), 2, padding=(1, 1, 0, 1), ceil_mode=True, count_include_pad=False)], (1, 2, 6, 8)),
    (lambda: [nn.ConvTranspose2d(3, 2, 3, stride=2, padding=(0, 1, 1, 0), output_padding=1)], (1, 3, 5, 4)),
])
def test_exported_files_carry_ceil_mode_dilation_and_four_sides_into_onnxruntime(layers, shape, opset, tmp_path):
    import onnxruntime
    from convnet.onnx.export import export
    model = nn.Sequential(*layers()).eval()
    path = tmp_path / "model.onnx"
    export(model, path, shape, opset=opset)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, {"input": x})
    with convnet.no_grad():
        ours = model(convnet.tensor(x)).numpy()
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)


@requires("onnx", "onnxruntime")
@pytest.mark.parametrize("size, written", [(112, 1), (55, 1), (8, 0)])
def test_ceil_mode_is_written_unless_onnx_would_count_a_window_pytorch_drops(size, written, tmp_path):
    """On 8 px, 2x2/2 with one pixel of end padding rounds up to a fifth window starting in the
    padding, which PyTorch drops and ONNX's shape inference keeps: the file says ceil_mode=0."""
    import onnx
    from convnet.onnx.export import export
    kernel, padding = (3, 0) if size > 8 else (2, (0, 1, 0, 1))
    export(nn.MaxPool2d(kernel, 2, padding, ceil_mode=True), tmp_path / "m.onnx", (1, 1, size, size))
    (node,) = onnx.load(tmp_path / "m.onnx").graph.node
    assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}["ceil_mode"] == written


@requires("onnx")
def test_divisor_override_is_refused_by_export_naming_the_layer(tmp_path):
    from convnet.onnx import OnnxError
    from convnet.onnx.export import export
    with pytest.raises(OnnxError, match=r"cannot export AvgPool2d\(divisor_override=3\)"):
        export(nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), tmp_path / "m.onnx", (1, 1, 4, 4))
