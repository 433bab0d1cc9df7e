"""Batch norm on channels-last memory (kernels/normalization_channels_last.py through F.batch_norm):
PyTorch's batch_norm in float64 on the same values as the oracle, the layout handed on, no copy of
the input, and results that do not depend on the thread count. Every test runs both layouts of
input: channels-last and channel-major (and (N, C) batches as they are)."""

import numba
import numpy as np
import pytest

import convnet.functional as F
from convnet import Tensor, kernels
from convnet.kernels.convolution import is_channels_last, nchw

from conftest import RecordGradient, requires_torch, torch

# (N, C, H, W): 3 and 130 channels; M = N*H*W = 315, 429, 12800 and 6, none a multiple of the 256-row blocks.
SHAPES = [(5, 3, 7, 9), (3, 130, 11, 13), (8, 3, 40, 40), (6, 130)]


def channels_last(x):
    return nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1))) if x.ndim == 4 else np.ascontiguousarray(x)


def channel_major(x):
    return np.ascontiguousarray(x.T).T if x.ndim == 2 else \
        np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


LAYOUTS = {"channels-last": channels_last, "channel-major": channel_major}


def problem(shape, seed=0):
    """float32 (x, grad, weight, bias, running_mean, running_var): channel 0 has mean 1e3 and std 1e-2."""
    rng = np.random.default_rng(seed)
    channels = shape[1]
    per_channel = (1, channels) + (1,) * (len(shape) - 2)
    spread = rng.uniform(0.1, 3.0, channels)
    center = rng.standard_normal(channels) * 2
    spread[0], center[0] = 1e-2, 1e3
    x = rng.standard_normal(shape) * spread.reshape(per_channel) + center.reshape(per_channel)
    arrays = (x, rng.standard_normal(shape), rng.standard_normal(channels), rng.standard_normal(channels),
              center + rng.standard_normal(channels) * 0.1, spread ** 2 * rng.uniform(0.8, 1.25, channels))
    return [a.astype(np.float32) for a in arrays]


def ours(x, grad, weight, bias, running_mean, running_var, training, momentum=0.3):
    """(out, grad_x, grad_weight, grad_bias, running_mean, running_var) as arrays, then the op's
    Function's name and the rows it kept for backward (None in the reference mode)."""
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
    mean, var, seen = running_mean.copy(), running_var.copy(), []
    out = F.batch_norm(RecordGradient.apply(xt, seen=seen), mean, var, wt, bt, training=training, momentum=momentum)
    function, kept = type(out.grad_fn).__name__, getattr(out.grad_fn, "rows", None)
    out.backward(grad)  # frees the Function's arrays
    return out.numpy(), seen[0], wt.grad.numpy(), bt.grad.numpy(), mean, var, function, kept


def theirs(x, grad, weight, bias, running_mean, running_var, training, momentum=0.3):
    """PyTorch in float64 on the same (float32) values, x in torch's channels_last memory format."""
    wide = [torch.tensor(a.astype(np.float64)) for a in (x, grad, weight, bias, running_mean, running_var)]
    xt, gt, wt, bt, mean, var = wide
    if x.ndim == 4:
        xt = xt.contiguous(memory_format=torch.channels_last)
    for t in (xt, wt, bt):
        t.requires_grad_(True)
    out = torch.nn.functional.batch_norm(xt, mean, var, wt, bt, training=training, momentum=momentum)
    out.backward(gt)
    return [t.detach().numpy() for t in (out, xt.grad, wt.grad, bt.grad, mean, var)]


NAMES = ("out", "grad_x", "grad_weight", "grad_bias", "running_mean", "running_var")


def tolerances(x, running_var):
    """Per channel, for each of NAMES. x and the mean are float32: a channel's output is off by up
    to ~|x| / std roundings in its normalised units (1e5 for channel 0), and the sums over its M
    values add sqrt(M) such terms."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    std = np.sqrt(np.minimum(x.astype(np.float64).var(axis=axes), running_var))
    amplification = 1 + np.abs(x).max(axis=axes) / std
    eps, count = np.finfo(np.float32).eps, x.size // x.shape[1]
    return [8 * eps * amplification] * 2 + [8 * eps * amplification * np.sqrt(count)] * 2 + [8 * eps] * 2


def assert_close_per_channel(actual, expected, tolerance, name):
    """|actual - expected| <= tolerance[c] * max(max |expected[:, c]|, 1) in every channel c."""
    axes = tuple(i for i in range(expected.ndim) if i != (1 if expected.ndim > 1 else 0))
    error = np.abs(actual.astype(np.float64) - expected).max(axis=axes)
    scale = np.maximum(np.abs(expected).max(axis=axes), 1.0)
    assert (error <= tolerance * scale).all(), f"{name}: errors {error} exceed {tolerance * scale}"


@requires_torch
@pytest.mark.parametrize("mode", ["compiled", "reference"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch(shape, layout, training, mode):
    x, grad, weight, bias, running_mean, running_var = problem(shape)
    x, grad = LAYOUTS[layout](x), LAYOUTS[layout](grad)
    with kernels.use(mode):
        *got, function, _ = ours(x, grad, weight, bias, running_mean, running_var, training)
    assert function == ("CompiledBatchNorm" if mode == "compiled" else "BatchNorm")
    expected = theirs(x, grad, weight, bias, running_mean, running_var, training)
    for name, actual, want, tolerance in zip(NAMES, got, expected, tolerances(x, running_var)):
        assert actual.dtype == np.float32, name
        assert_close_per_channel(actual, want, tolerance, name)


@pytest.mark.parametrize("mode", ["compiled", "reference"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("grad_layout", LAYOUTS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES[:2] + SHAPES[3:], ids=str)
def test_output_and_input_gradient_keep_the_input_layout(shape, layout, grad_layout, training, mode):
    x, grad, weight, bias, running_mean, running_var = problem(shape)
    x, grad = LAYOUTS[layout](x), LAYOUTS[grad_layout](grad)
    with kernels.use(mode):
        out, grad_x, *_, kept = ours(x, grad, weight, bias, running_mean, running_var, training)
    for name, array in (("out", out), ("grad_x", grad_x)):
        assert array.strides == x.strides, f"{name}: strides {array.strides}, the input's {x.strides}"
    if mode == "compiled":  # the kernels read x's own memory, whichever its layout
        assert np.shares_memory(kept, x)
    if x.ndim == 4:
        assert is_channels_last(out) == (layout == "channels-last")


def at_thread_counts(run):
    """run() at 1 and then 2 Numba threads: the two results."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    threads, results = numba.get_num_threads(), []
    try:
        for count in (1, 2):
            numba.set_num_threads(count)
            results.append(run())
    finally:
        numba.set_num_threads(threads)
    return results


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_compiled_channels_last_results_do_not_depend_on_the_thread_count(shape, training):
    """Blocks of rows are summed in parallel, then added in block order: 1 and 2 threads agree bit for bit."""
    x, grad, weight, bias, running_mean, running_var = problem(shape, seed=1)
    x, grad = channels_last(x), channels_last(grad)
    one, two = at_thread_counts(lambda: ours(x, grad, weight, bias, running_mean, running_var, training)[:7])
    assert one[6] == two[6] == "CompiledBatchNorm"
    for first, second in zip(one[:6], two[:6]):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_kernels_float64_sums_do_not_depend_on_the_thread_count(shape):
    """The statistics and gradient sums in float64, bit for bit: a thread-dependent order of adding
    the blocks would change their last bits, which float32 outputs could round away."""
    x, grad, weight, bias, *_ = (a.astype(np.float64) for a in problem(shape, seed=2))
    rows, grad_rows = (np.ascontiguousarray(np.moveaxis(a, 1, -1)).reshape(-1, shape[1]) for a in (x, grad))

    def run():
        out, mean, var = np.empty_like(rows), np.empty(shape[1]), np.empty(shape[1])
        kernels.batch_norm_train_forward_channels_last.compiled(rows, weight, bias, 1e-5, out, mean, var)
        grad_input, grad_sum, projection = np.empty_like(rows), np.empty(shape[1]), np.empty(shape[1])
        kernels.batch_norm_backward_channels_last.compiled(grad_rows, rows, mean, 1 / np.sqrt(var + 1e-5), weight,
                                                           True, grad_input, grad_sum, projection)
        return out, mean, var, grad_input, grad_sum, projection

    for first, second in zip(*at_thread_counts(run)):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES[:2] + SHAPES[3:], ids=str)
def test_synchronised_batch_norm_of_one_process_keeps_the_layout_and_the_values(shape, layout):
    """A data-parallel job of one process (summing across it changes nothing) is batch norm itself,
    in the input's layout."""
    x, grad, weight, bias, running_mean, running_var = problem(shape)
    x, grad = LAYOUTS[layout](x), LAYOUTS[layout](grad)
    results = []
    for sum_across in (None, lambda array: None):
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
        mean, var, seen = running_mean.copy(), running_var.copy(), []
        out = F.batch_norm(RecordGradient.apply(xt, seen=seen), mean, var, wt, bt, training=True,
                           sum_across=sum_across)
        out.backward(grad)
        results.append((out.numpy(), seen[0], wt.grad.numpy(), bt.grad.numpy(), mean, var))
    plain, synchronised = results
    for name, ours, expected, tolerance in zip(NAMES, synchronised, plain, tolerances(x, running_var)):
        if name in ("out", "grad_x"):
            assert ours.strides == x.strides, name
        assert_close_per_channel(ours, expected.astype(np.float64), 2 * tolerance, name)
