"""The compiled batch norm (convnet.kernels.normalization and normalization_channels_last) against
its NumPy reference, an exact float64 oracle, finite differences and PyTorch. Inputs and
gradients come in every layout: NCHW-contiguous, channel-major and channels-last memory (and
(N, C) batches as they are or transposed)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet.functional as F
from convnet import Tensor, kernels
from convnet.kernels.convolution import nchw
from conftest import finite_difference_check, requires_torch, torch, torch_check

LAYOUTS = ("contiguous", "channel-major", "channels-last")


def laid_out(x, layout):
    """x's values in ``layout``'s memory; an (N, C) array is channels-last as it is."""
    if layout == "channel-major":
        return np.ascontiguousarray(x.T).T if x.ndim == 2 else \
            np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if layout == "channels-last" and x.ndim == 4:
        return nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    return np.ascontiguousarray(x)


@st.composite
def batch_norm_problems(draw, dtypes=(np.float32, np.float64), offsets=(0.0, 1e3, -1e3)):
    """(x, grad, weight, bias, running_mean, running_var, training), x: (N, C[, H, W]) and grad each in
    one of LAYOUTS."""
    channels = draw(st.sampled_from([1, 2, 3, 5, 101, 130]))
    if draw(st.booleans()):
        shape = (draw(st.integers(2, 9)), channels)
    else:
        shape = (draw(st.integers(1, 5)), channels, draw(st.integers(1, 7)), draw(st.integers(2, 7)))
    dtype, seed = draw(st.sampled_from(dtypes)), draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.1, 3.0, channels)[:, None]
    center = draw(st.sampled_from(offsets)) + rng.standard_normal(channels)[:, None]
    rows = rng.standard_normal((channels, int(np.prod(shape)) // channels)) * spread + center
    x = rows.T if len(shape) == 2 else rows.reshape(shape[1], shape[0], *shape[2:]).transpose(1, 0, 2, 3)
    x = laid_out(x.astype(dtype), draw(st.sampled_from(LAYOUTS)))
    grad = laid_out(rng.standard_normal(shape).astype(dtype), draw(st.sampled_from(LAYOUTS)))
    affine = draw(st.booleans())
    weight, bias = (rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype)) \
        if affine else (None, None)
    running_mean = (center[:, 0] + rng.standard_normal(channels) * 0.1).astype(dtype)
    running_var = (spread[:, 0] ** 2 * rng.uniform(0.8, 1.25, channels)).astype(dtype)
    return x, grad, weight, bias, running_mean, running_var, draw(st.booleans())


def run(mode, x, grad, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """(out, grad_x, grad_weight, grad_bias, running_mean, running_var) with the kernels in ``mode``."""
    with kernels.use(mode):
        xt = Tensor(x.copy(), requires_grad=True)
        wt, bt = (None, None) if weight is None else (Tensor(weight.copy(), requires_grad=True),
                                                      Tensor(bias.copy(), requires_grad=True))
        mean, var = running_mean.copy(), running_var.copy()
        out = F.batch_norm(xt, mean, var, wt, bt, training=training, momentum=momentum, eps=eps)
        assert type(out.grad_fn).__name__ == ("CompiledBatchNorm" if mode == "compiled" else "BatchNorm")
        out.backward(grad)
        grads = (None, None) if weight is None else (wt.grad.numpy(), bt.grad.numpy())
        return out.numpy(), xt.grad.numpy(), *grads, mean, var


def oracle(x, grad, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """The defining formulas in float64 on the same values: what both implementations approximate."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    x, grad = x.astype(np.float64), grad.astype(np.float64)
    channels = x.shape[1]
    shape = (1, channels) + (1,) * (x.ndim - 2)
    weight = np.ones(channels) if weight is None else weight.astype(np.float64)
    bias = np.zeros(channels) if bias is None else bias.astype(np.float64)
    count = x.size // channels
    running_mean, running_var = running_mean.astype(np.float64), running_var.astype(np.float64)
    if training:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    else:
        mean, var, new_mean, new_var = running_mean, running_var, running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    out = x_hat * weight.reshape(shape) + bias.reshape(shape)
    grad_weight, grad_bias = (grad * x_hat).sum(axis=axes), grad.sum(axis=axes)
    grad_x = grad
    if training:
        grad_x = grad - (grad_bias / count).reshape(shape) - x_hat * (grad_weight / count).reshape(shape)
    grad_x = grad_x * (weight * inv_std).reshape(shape)
    return out, grad_x, grad_weight, grad_bias, new_mean, new_var


def assert_close(actual, expected, tolerance, name):
    """max |actual - expected| <= tolerance * max(max |expected|, 1)."""
    if expected is None:
        assert actual is None
        return
    assert actual.shape == expected.shape, name
    error, scale = np.abs(actual.astype(np.float64) - expected).max(), max(np.abs(expected).max(), 1.0)
    assert error <= tolerance * scale, f"{name}: max error {error} exceeds {tolerance} x scale {scale}"


@given(batch_norm_problems())
def test_compiled_matches_the_oracle_and_the_reference(problem):
    x, grad, weight, bias, running_mean, running_var, training = problem
    eps = np.finfo(x.dtype).eps
    # Each value is rounded once to x's dtype before x - mean, so an offset of 1e3 costs up to
    # |x| / std roundings in normalised units; the sums over M values add their own.
    spread = np.sqrt(np.minimum(x.var(axis=(0,) if x.ndim == 2 else (0, 2, 3)), running_var) + 1e-5).min()
    amplification = 1 + np.abs(x).max() / spread
    count = x.size // x.shape[1]
    tolerances = [16 * eps * amplification] * 2 + [16 * eps * amplification * np.sqrt(count)] * 2 + [16 * eps] * 2
    expected = oracle(*problem)
    compiled, reference = run("compiled", *problem), run("reference", *problem)
    names = ("out", "grad_x", "grad_weight", "grad_bias", "running_mean", "running_var")
    for name, actual, other, want, tolerance in zip(names, compiled, reference, expected, tolerances):
        if weight is None and name in ("grad_weight", "grad_bias"):
            continue
        assert actual.dtype == x.dtype, name
        assert_close(actual, want, tolerance, f"compiled {name}")
        assert_close(actual, other.astype(np.float64), 2 * tolerance, f"compiled vs reference {name}")


@pytest.mark.parametrize("rows_layout", ["channel rows (C, M)", "channels last (M, C)"])
@given(problem=batch_norm_problems())
def test_each_kernel_matches_its_reference(rows_layout, problem):
    """The three kernels and their NumPy references, called alike on channel rows (C, M), and
    their channels-last twins on (M, C) rows."""
    x, grad, weight, bias, running_mean, running_var, training = problem
    rows = np.ascontiguousarray(x.T if x.ndim == 2 else x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1))
    grad_rows = np.ascontiguousarray(grad.T if x.ndim == 2 else grad.transpose(1, 0, 2, 3).reshape(x.shape[1], -1))
    suffix = "_channels_last" if rows_layout == "channels last (M, C)" else ""
    if suffix:
        rows, grad_rows = np.ascontiguousarray(rows.T), np.ascontiguousarray(grad_rows.T)
    channels, dtype = x.shape[1], rows.dtype
    weight = np.ones(channels, dtype) if weight is None else weight
    bias = np.zeros(channels, dtype) if bias is None else bias
    channel_axis = 1 if suffix else 0
    tolerance = 64 * np.finfo(dtype).eps * (1 + np.abs(rows).max() / (rows.std(axis=1 - channel_axis).min() + 1e-3)) \
        * np.sqrt(rows.size // channels)

    def both(name, *inputs, outputs):
        results = []
        for function in (getattr(kernels, name + suffix).compiled, getattr(kernels, name + suffix).reference):
            arrays = [np.full(shape, np.nan, out_dtype) for shape, out_dtype in outputs]
            function(*inputs, *arrays)
            results.append(arrays)
        for ours, expected in zip(*results):
            assert_close(ours, expected.astype(np.float64), tolerance, name)
        return results[0]

    _, mean, var = both("batch_norm_train_forward", rows, weight, bias, 1e-5,
                        outputs=[(rows.shape, dtype), (channels, np.float64), (channels, np.float64)])
    both("batch_norm_eval_forward", rows, running_mean, weight, bias, outputs=[(rows.shape, dtype)])
    both("batch_norm_backward", grad_rows, rows, mean, 1 / np.sqrt(var + 1e-5), weight, training,
         outputs=[(rows.shape, dtype), (channels, np.float64), (channels, np.float64)])


def test_the_variance_survives_a_large_mean():
    """Naive float32 E[x^2] - E[x]^2 of values 1e4 +- 0.01 would be noise; the kernel's is exact to float32."""
    rng = np.random.default_rng(0)
    x = (1e4 + 0.01 * rng.standard_normal((64, 3, 8, 8))).astype(np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    F.batch_norm(x, mean, var, training=True, momentum=1.0)
    exact = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(var, exact, rtol=1e-5)


@given(batch_norm_problems(dtypes=(np.float64,), offsets=(0.0, 30.0)))
def test_compiled_gradients_match_finite_differences(problem):
    x, _, weight, bias, running_mean, running_var, training = problem
    if x.size > 400:  # a few hundred values keep the check quick
        return

    def fn(x, *wb):
        return F.batch_norm(x, running_mean.copy(), running_var.copy(), *wb, training=training)

    finite_difference_check(fn, [x] + ([] if weight is None else [weight, bias]))


@requires_torch
@given(batch_norm_problems(dtypes=(np.float32,), offsets=(0.0,)))
def test_compiled_matches_torch(problem):
    x, _, weight, bias, running_mean, running_var, training = problem
    means, variances = {}, {}

    def ours(x, *wb):
        means["ours"], variances["ours"] = running_mean.copy(), running_var.copy()
        return F.batch_norm(x, means["ours"], variances["ours"], *wb, training=training, momentum=0.3)

    def theirs(x, *wb):
        means["theirs"], variances["theirs"] = torch.tensor(running_mean), torch.tensor(running_var)
        return torch.nn.functional.batch_norm(x, means["theirs"], variances["theirs"], *wb, training=training,
                                              momentum=0.3)

    torch_check(ours, theirs, [x] + ([] if weight is None else [weight, bias]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(means["ours"], means["theirs"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variances["ours"], variances["theirs"].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["compiled", "reference"])
def test_eval_mode_leaves_the_running_statistics_alone(mode):
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    mean, var = np.arange(3, dtype=np.float32), np.full(3, 2.0, np.float32)
    with kernels.use(mode):
        out = F.batch_norm(x, mean, var, training=False)
    np.testing.assert_array_equal(mean, [0, 1, 2])
    np.testing.assert_array_equal(var, [2, 2, 2])
    np.testing.assert_allclose(out.numpy(), (x - mean[:, None, None]) / np.sqrt(2 + 1e-5), rtol=1e-6, atol=1e-6)
