"""Every functional op on randomised shapes and arguments, against two oracles: central finite
differences in float64 and PyTorch 2.13 in float32 (values and gradients)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import convnet.functional as F
from convnet import Tensor
from convnet.functional import resolve_padding
from convnet.functional.conv import conv2d_reference
from conftest import finite_difference_check, requires_torch, torch, torch_check

TF = torch.nn.functional if torch is not None else None


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    choices = [st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("valid")]
    if stride == (1, 1):
        choices.append(st.just("same"))
    padding = draw(st.one_of(*choices))
    pads = resolve_padding("test", padding, kernel, stride, dilation)
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    # From "kernel as large as the padded input" to a few positions more.
    height = draw(st.integers(max(1, span[0] - pads[0] - pads[1]), span[0] + 5))
    width = draw(st.integers(max(1, span[1] - pads[2] - pads[3]), span[1] + 5))
    batch = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_channels, height, width))
    w = rng.standard_normal((out_channels, in_channels // groups) + kernel)
    b = rng.standard_normal(out_channels) if draw(st.booleans()) else None
    return dict(x=x, w=w, b=b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _conv_inputs(case):
    return [case["x"], case["w"]] + ([case["b"]] if case["b"] is not None else [])


def _conv(case, conv):
    kwargs = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    return lambda x, w, b=None: conv(x, w, b, **kwargs)


@given(conv_cases())
def test_conv2d_gradients_match_finite_differences(case):
    finite_difference_check(_conv(case, F.conv2d), _conv_inputs(case))


@requires_torch
@given(conv_cases())
def test_conv2d_matches_torch(case):
    torch_check(_conv(case, F.conv2d), _conv(case, TF.conv2d), _conv_inputs(case))


@given(conv_cases())
def test_conv2d_matches_slow_reference(case):
    out = _conv(case, F.conv2d)(*_conv_inputs(case))
    pads = resolve_padding("test", case["padding"], case["w"].shape[2:], case["stride"], case["dilation"])
    expected = conv2d_reference(case["x"], case["w"], case["b"], case["stride"], pads, case["dilation"], case["groups"])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


@st.composite
def pool_cases(draw, max_kernel=4):
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), kernel[0] + 6))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), kernel[1] + 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), height, width))
    return dict(x=x, kernel_size=kernel, stride=stride, padding=padding)


def _pool(case, pool):
    return lambda x: pool(x, case["kernel_size"], case["stride"], case["padding"])


@given(pool_cases())
def test_max_pool2d_gradients_match_finite_differences(case):
    finite_difference_check(_pool(case, F.max_pool2d), [case["x"]])


@requires_torch
@given(pool_cases())
def test_max_pool2d_matches_torch(case):
    torch_check(_pool(case, F.max_pool2d), _pool(case, TF.max_pool2d), [case["x"]])


@given(pool_cases())
def test_avg_pool2d_gradients_match_finite_differences(case):
    finite_difference_check(_pool(case, F.avg_pool2d), [case["x"]])


@requires_torch
@given(pool_cases())
def test_avg_pool2d_matches_torch(case):
    torch_check(_pool(case, F.avg_pool2d), _pool(case, TF.avg_pool2d), [case["x"]])


@requires_torch
def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum_like_torch():
    x = np.zeros((1, 1, 4, 4))
    torch_check(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), [x])


ADAPTIVE_POOL_CASES = (st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5),
                       st.integers(0, 2**16))


@given(*ADAPTIVE_POOL_CASES)
def test_adaptive_avg_pool2d_gradients_match_finite_differences(height, width, out_h, out_w, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, height, width))
    finite_difference_check(lambda t: F.adaptive_avg_pool2d(t, (out_h, out_w)), [x])


@requires_torch
@given(*ADAPTIVE_POOL_CASES)
def test_adaptive_avg_pool2d_matches_torch(height, width, out_h, out_w, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, height, width))
    torch_check(lambda t: F.adaptive_avg_pool2d(t, (out_h, out_w)),
                lambda t: TF.adaptive_avg_pool2d(t, (out_h, out_w)), [x])


@st.composite
def linear_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    arrays = [rng.standard_normal(tuple(lead) + (n_in,)), rng.standard_normal((n_out, n_in))]
    if draw(st.booleans()):
        arrays.append(rng.standard_normal(n_out))
    return arrays


@given(linear_cases())
def test_linear_gradients_match_finite_differences(arrays):
    finite_difference_check(F.linear, arrays)


@requires_torch
@given(linear_cases())
def test_linear_matches_torch(arrays):
    torch_check(F.linear, TF.linear, arrays)


# PyTorch's side is looked up when called, so that this module collects without PyTorch.
ACTIVATIONS = [
    (F.relu, lambda x: TF.relu(x)),
    (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    (F.sigmoid, lambda x: torch.sigmoid(x)),
    (F.tanh, lambda x: torch.tanh(x)),
    (F.gelu, lambda x: TF.gelu(x)),
    (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    (lambda x: F.softmax(x, dim=1), lambda x: TF.softmax(x, dim=1)),
    (lambda x: F.log_softmax(x, dim=-1), lambda x: TF.log_softmax(x, dim=-1)),
    (lambda x: F.softmax(x, dim=0), lambda x: TF.softmax(x, dim=0)),
]


ACTIVATION_CASES = (st.sampled_from(range(len(ACTIVATIONS))), st.lists(st.integers(1, 4), min_size=2, max_size=4),
                    st.floats(0.5, 20), st.integers(0, 2**16))


@given(*ACTIVATION_CASES)
def test_activation_gradients_match_finite_differences(index, shape, scale, seed):
    ours, _ = ACTIVATIONS[index]
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    finite_difference_check(ours, [x], rtol=2e-5)


@requires_torch
@given(*ACTIVATION_CASES)
def test_activations_match_torch(index, shape, scale, seed):
    ours, theirs = ACTIVATIONS[index]
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    torch_check(ours, theirs, [x])


def test_softmax_and_log_softmax_are_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    assert np.isfinite(F.log_softmax(x, dim=1).numpy()).all()
    np.testing.assert_allclose(F.softmax(x, dim=1).numpy(), [[1, 0, 0]])
    assert np.isfinite(F.sigmoid(np.array([-1e4, 1e4], dtype=np.float32)).numpy()).all()


def batch_norm_case(shape, training, affine, seed):
    """(ours, theirs, arrays): batch norm with fixed running statistics, on input and affine parameters."""
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    params = [rng.standard_normal(channels), rng.standard_normal(channels)] if affine else []
    stats = rng.standard_normal(channels), rng.random(channels) + 0.5

    def ours(x, *wb):
        mean, var = (s.astype(x.dtype) for s in stats)
        return F.batch_norm(x, mean, var, *wb, training=training)

    def theirs(x, *wb):
        mean, var = (torch.tensor(s, dtype=torch.float32) for s in stats)
        return TF.batch_norm(x, mean, var, *wb, training=training)

    return ours, theirs, [x] + params


BATCH_NORM_CASES = (st.sampled_from([(4, 3), (3, 2, 5, 4), (2, 3, 1, 2)]), st.booleans(), st.booleans(),
                    st.integers(0, 2**16))


@given(*BATCH_NORM_CASES)
def test_batch_norm_gradients_match_finite_differences(shape, training, affine, seed):
    ours, _, arrays = batch_norm_case(shape, training, affine, seed)
    finite_difference_check(ours, arrays)


@requires_torch
@given(*BATCH_NORM_CASES)
def test_batch_norm_matches_torch(shape, training, affine, seed):
    ours, theirs, arrays = batch_norm_case(shape, training, affine, seed)
    torch_check(ours, theirs, arrays)


@requires_torch
def test_batch_norm_updates_running_statistics_like_torch(rng):
    x = rng.standard_normal((8, 3, 4, 4)).astype(np.float32) * 3 + 2
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    torch_mean, torch_var = torch.zeros(3), torch.ones(3)
    for _ in range(3):
        F.batch_norm(x, mean, var, training=True, momentum=0.2)
        TF.batch_norm(torch.from_numpy(x), torch_mean, torch_var, training=True, momentum=0.2)
    np.testing.assert_allclose(mean, torch_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(var, torch_var.numpy(), rtol=1e-6)  # the unbiased variance is stored


CROSS_ENTROPY_CASES = (st.integers(1, 6), st.integers(2, 7), st.sampled_from(["mean", "sum", "none"]),
                       st.sampled_from([0.0, 0.1, 0.5]), st.floats(0.1, 30), st.integers(0, 2**16))


def logits_and_targets(batch, classes, scale, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, classes)) * scale, rng.integers(0, classes, batch)


@given(*CROSS_ENTROPY_CASES)
def test_cross_entropy_gradients_match_finite_differences(batch, classes, reduction, smoothing, scale, seed):
    logits, target = logits_and_targets(batch, classes, scale, seed)
    finite_difference_check(lambda x: F.cross_entropy(x, target, smoothing, reduction), [logits], rtol=2e-5)


@requires_torch
@given(*CROSS_ENTROPY_CASES)
def test_cross_entropy_matches_torch(batch, classes, reduction, smoothing, scale, seed):
    logits, target = logits_and_targets(batch, classes, scale, seed)
    torch_check(lambda x: F.cross_entropy(x, target, smoothing, reduction),
                lambda x: TF.cross_entropy(x, torch.from_numpy(target), reduction=reduction, label_smoothing=smoothing),
                [logits])


LOSS_CASES = (st.integers(1, 6), st.integers(2, 7), st.sampled_from(["mean", "sum", "none"]), st.integers(0, 2**16))


def log_probs_targets_and_regression_targets(batch, classes, seed):
    rng = np.random.default_rng(seed)
    log_probs = rng.standard_normal((batch, classes))
    target = rng.integers(0, classes, batch)
    return log_probs, target, rng.standard_normal((batch, classes))


@given(*LOSS_CASES)
def test_nll_and_mse_gradients_match_finite_differences(batch, classes, reduction, seed):
    log_probs, target, y = log_probs_targets_and_regression_targets(batch, classes, seed)
    finite_difference_check(lambda x: F.nll_loss(x, target, reduction), [log_probs])
    finite_difference_check(lambda a, b: F.mse_loss(a, b, reduction), [log_probs, y])


@requires_torch
@given(*LOSS_CASES)
def test_nll_and_mse_match_torch(batch, classes, reduction, seed):
    log_probs, target, y = log_probs_targets_and_regression_targets(batch, classes, seed)
    torch_check(lambda x: F.nll_loss(x, target, reduction),
                lambda x: TF.nll_loss(x, torch.from_numpy(target), reduction=reduction), [log_probs])
    torch_check(lambda a, b: F.mse_loss(a, b, reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction),
                [log_probs, y])


def test_dropout_keeps_expected_fraction_scales_survivors_and_masks_the_gradient():
    x = Tensor(np.ones((200, 500), dtype=np.float32), requires_grad=True)
    out = F.dropout(x, p=0.3, training=True)
    kept = out.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out.numpy()[kept], 1 / 0.7, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.7, 0), rtol=1e-6)
    assert F.dropout(x, p=0.3, training=False) is x


def test_dropout_repeats_with_the_same_generator():
    x = np.ones((10, 10), dtype=np.float32)
    first = F.dropout(x, 0.5, generator=np.random.default_rng(7)).numpy()
    second = F.dropout(x, 0.5, generator=np.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(first, second)
