"""The layers torchvision's ImageNet CNNs need (issue 31) against PyTorch and finite differences:
hardtanh/relu6, hardsigmoid, hardswish, silu, exact gelu, layer_norm (LayerNorm, LayerNorm2d), Permute,
stochastic_depth (StochasticDepth), channel_shuffle, chunk/split and cat.

Every comparison with torch runs each input in both memory layouts, NCHW and channels-last (an (N, C, H, W)
view of (N, H, W, C) memory), and in float32 and float64; the elementwise ops must also hand their output
and their input's gradient back in the input's layout."""

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import Tensor, nn
from convnet.errors import InvalidValue
from convnet.kernels.convolution import is_channels_last, nchw

from conftest import RecordGradient, finite_difference_check, requires_torch, torch, torchvision_models

LAYOUTS = ["nchw", "channels-last"]
DTYPES = [np.float32, np.float64]
# float32 against torch: same formulas, so a few ulps at most; float64 tighter still.
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}


def laid_out(array, layout):
    """``array`` (N, C, H, W) as is, or as an (N, C, H, W) view of channels-last memory."""
    return nchw(np.ascontiguousarray(array.transpose(0, 2, 3, 1))) if layout == "channels-last" else array


def with_kinks(shape, dtype, kinks=(), seed=0, scale=4.0):
    """Random values of ``shape`` with each of ``kinks`` (the points where a derivative jumps) placed in."""
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    for i, kink in enumerate(kinks):
        x.flat[i::max(len(kinks) * 3, 7)] = kink
    return x


def compare_with_torch(ours, theirs, x, layout, grad_layout="nchw", keeps_layout=True, seed=1, tolerance=None):
    """Run ``ours`` on convnet and ``theirs`` on torch for x laid out as ``layout`` and a random output
    gradient laid out as ``grad_layout``; compare outputs and input gradients within the dtype's
    tolerance, and (``keeps_layout``) that both come back in the input's memory order."""
    tolerance = tolerance or TOLERANCE[x.dtype.type]
    x_in = laid_out(x, layout)
    seen = []
    out = ours(RecordGradient.apply(Tensor(x_in, requires_grad=True), seen=seen))
    grad = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(laid_out(grad, grad_layout) if grad.ndim == 4 else grad)
    reference = torch.tensor(x, requires_grad=True)
    expected = theirs(reference)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **tolerance, err_msg="output")
    np.testing.assert_allclose(seen[0], reference.grad.numpy(), **tolerance, err_msg="input gradient")
    assert out.dtype == seen[0].dtype == x.dtype
    if keeps_layout:
        for name, array in (("output", out.numpy()), ("input gradient", seen[0])):
            assert array.strides == x_in.strides, f"{name} strides {array.strides}, input's {x_in.strides}"
            assert is_channels_last(array) == (layout == "channels-last")


# --------------------------------------------------------------------------- elementwise activations
ACTIVATIONS = {  # name: (convnet, torch, the points where its derivative jumps)
    "hardtanh": (F.hardtanh, lambda x: torch.nn.functional.hardtanh(x), (-1.0, 1.0)),
    "hardtanh(-2, 3)": (lambda x: F.hardtanh(x, -2.0, 3.0), lambda x: torch.nn.functional.hardtanh(x, -2.0, 3.0),
                        (-2.0, 3.0)),
    "relu6": (F.relu6, lambda x: torch.nn.functional.relu6(x), (0.0, 6.0)),
    "hardsigmoid": (F.hardsigmoid, lambda x: torch.nn.functional.hardsigmoid(x), (-3.0, 3.0)),
    "hardswish": (F.hardswish, lambda x: torch.nn.functional.hardswish(x), (-3.0, 3.0)),
    "silu": (F.silu, lambda x: torch.nn.functional.silu(x), ()),
    "relu(inplace)": (lambda x: F.relu(x, inplace=True), lambda x: torch.relu(x), (0.0,)),
    "gelu": (F.gelu, lambda x: torch.nn.functional.gelu(x), ()),
    "erf": (F.erf, lambda x: torch.erf(x), ()),
}


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_torch_at_and_between_its_kinks(name, layout, dtype):
    ours, theirs, kinks = ACTIVATIONS[name]
    x = with_kinks((2, 5, 3, 4), dtype, kinks)
    tolerance = None
    if name == "hardsigmoid" and dtype == np.float64:
        tolerance = dict(rtol=1e-7, atol=0)  # torch's gradient multiplies by 1.0f / 6.0f, a float32 constant
    if name == "gelu" and dtype == np.float32:
        # torch's float32 1 + erf(x / sqrt(2)) cancels for negative x (absolute error ~6e-8 * |x|);
        # ours is within half an ulp of the exact value (test_gelu_in_float32_is_correctly_rounded...).
        tolerance = dict(rtol=1e-5, atol=1e-6)
    compare_with_torch(ours, theirs, x, layout, grad_layout="channels-last" if layout == "nchw" else "nchw",
                       tolerance=tolerance)


@requires_torch
@pytest.mark.parametrize("name", ["hardsigmoid", "hardswish", "relu6", "hardtanh(-2, 3)"])
def test_piecewise_activation_is_bitwise_torchs_in_float32(name):
    """Same operations in the same order as torch's kernels, so float32 outputs are identical."""
    ours, theirs, kinks = ACTIVATIONS[name]
    x = np.concatenate([np.linspace(-100, 100, 2001), np.linspace(-4, 4, 801)]).astype(np.float32)
    np.testing.assert_array_equal(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).numpy())


def test_silu_in_float32_is_within_a_few_ulps_of_the_exact_value_into_its_tails():
    """x / (1 + exp(-x)) keeps its relative precision where x * sigmoid(x) is tiny (a sigmoid through
    tanh would lose it below about -10), with no overflow warning where exp(-x) overflows. (torch's
    float32 exp differs from NumPy's in the last bit, so this compares with float64 rather than torch.)"""
    x = np.concatenate([np.linspace(-80, 80, 1601), np.linspace(-4, 4, 801)]).astype(np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = F.silu(Tensor(x)).numpy()
    exact = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(out, exact, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_erf_and_normal_cdf_keep_their_relative_precision_near_zero_and_in_the_tails():
    """Relative precision where the values are tiny (erf near 0, the normal CDF far into its lower tail)
    is what an absolutely accurate formula (Abramowitz & Stegun's 1.5e-7) lacks. The CDF's bound is the
    rounding of x / sqrt(2), which the tail's slope (about x^2 relative per unit) amplifies."""
    scipy_special = pytest.importorskip("scipy.special")
    from convnet.functional.special import erf_array, normal_cdf_array
    tiny = np.logspace(-300, 1.5, 3000)
    z = np.concatenate([np.linspace(-27, 27, 54001), tiny, -tiny, [0.0, -0.0, 1.0, -1.0, 4.0, -4.0, 26.5, -26.5]])
    x = np.concatenate([np.linspace(-37, 9, 46001), tiny, -tiny])
    for ours, theirs, rtol in ((erf_array(z), scipy_special.erf(z), 4e-16),
                               (normal_cdf_array(x), scipy_special.ndtr(x), 2e-13)):
        normal = np.abs(theirs) > 1e-300
        np.testing.assert_allclose(ours[normal], theirs[normal], rtol=rtol, atol=0)
        np.testing.assert_allclose(ours[~normal], theirs[~normal], rtol=0, atol=1e-300)
    special = np.array([np.inf, -np.inf, np.nan, 40.0, -40.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(erf_array(special), [1.0, -1.0, np.nan, 1.0, -1.0])
        np.testing.assert_array_equal(normal_cdf_array(special), [1.0, 0.0, np.nan, 1.0, 0.0])
    assert erf_array(np.float64(0.5)) == pytest.approx(scipy_special.erf(0.5), rel=1e-15)


def test_erf_kernels_equal_their_references():
    from convnet import kernels
    from convnet.kernels import special
    x = np.random.default_rng(5).standard_normal(1001).astype(np.float32) * 6
    for kernel in (kernels.erf, kernels.normal_cdf):
        compiled, reference = np.empty(1001), np.empty(1001)
        kernel.compiled(x, compiled)
        kernel.reference(x, reference)
        np.testing.assert_array_equal(compiled, reference)
    assert kernels.erf.compiled is special.erf


def test_erf_keeps_the_memory_layout_of_its_input():
    from convnet.functional.special import erf_array
    x = laid_out(np.random.default_rng(4).standard_normal((2, 3, 4, 5)) * 3, "channels-last")
    assert erf_array(x).strides == x.strides
    np.testing.assert_array_equal(erf_array(x), erf_array(np.ascontiguousarray(x)))


def test_gelu_in_float32_is_correctly_rounded_also_far_into_its_negative_tail():
    """Within half an ulp of x * erfc(-x / sqrt(2)) / 2 in float64, down to x = -12 (value ~1e-32)."""
    scipy_special = pytest.importorskip("scipy.special")
    x = np.linspace(-12, 12, 24001).astype(np.float32)
    exact = x * 0.5 * scipy_special.erfc(-x.astype(np.float64) / np.sqrt(2))
    np.testing.assert_allclose(F.gelu(Tensor(x)).numpy(), exact, rtol=np.finfo(np.float32).eps / 2 * 1.01, atol=0)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradient_equals_finite_differences(name):
    ours, _, kinks = ACTIVATIONS[name]
    x = with_kinks((2, 3, 4, 5), np.float64, seed=2)
    x[np.min(np.abs(x[..., None] - np.array(kinks or [1e9])), axis=-1) < 1e-3] += 0.01  # away from the kinks
    finite_difference_check(ours, [x], rtol=1e-6)


@pytest.mark.parametrize("module, expected", [
    (nn.ReLU(), "ReLU()"), (nn.ReLU(inplace=True), "ReLU(inplace=True)"), (nn.ReLU6(), "ReLU6()"),
    (nn.ReLU6(inplace=True), "ReLU6(inplace=True)"), (nn.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (nn.Hardtanh(-2, 3, True), "Hardtanh(min_val=-2, max_val=3, inplace=True)"),
    (nn.Hardswish(inplace=True), "Hardswish()"), (nn.Hardsigmoid(True), "Hardsigmoid()"),
    (nn.SiLU(), "SiLU()"), (nn.SiLU(inplace=True), "SiLU(inplace=True)")])
def test_activation_module_reprs_are_torchs(module, expected):
    assert repr(module) == expected


@pytest.mark.parametrize("module, function", [
    (nn.ReLU6(inplace=True), F.relu6), (nn.Hardtanh(-2.0, 3.0), lambda x: F.hardtanh(x, -2.0, 3.0)),
    (nn.Hardswish(), F.hardswish), (nn.Hardsigmoid(), F.hardsigmoid), (nn.SiLU(), F.silu)])
def test_activation_modules_run_their_function_and_keep_the_input(module, function):
    x = with_kinks((2, 3, 2, 2), np.float32, seed=3)
    before = x.copy()
    np.testing.assert_array_equal(module(Tensor(x)).numpy(), function(Tensor(x)).numpy())
    np.testing.assert_array_equal(x, before)  # inplace=True is accepted, never carried out


def test_dropout_accepts_torchs_inplace_flag_and_leaves_its_input_alone():
    """torchvision's classifiers build nn.Dropout(p=0.2, inplace=True)."""
    x = np.ones((64, 8), np.float32)
    convnet.manual_seed(0)
    out = nn.Dropout(p=0.25, inplace=True)(Tensor(x)).numpy()
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    np.testing.assert_array_equal(x, 1.0)


@pytest.mark.parametrize("call, message", [
    (lambda: F.hardtanh(Tensor(np.zeros(2, np.float32)), 2.0, 1.0),
     "hardtanh: expected min_val <= max_val, got min_val=2.0, max_val=1.0"),
    (lambda: F.hardtanh(Tensor(np.zeros(2, np.float32)), "a"), "hardtanh: expected min_val to be a number, got 'a'"),
    (lambda: nn.Hardtanh(0.0, float("nan")), "Hardtanh: expected max_val to be a number, got nan"),
    (lambda: F.relu6(Tensor(np.zeros(2, np.float32)), inplace=1), "relu6: expected inplace to be True or False, got 1"),
    (lambda: nn.SiLU(inplace="yes"), "SiLU: expected inplace to be True or False, got 'yes'"),
    (lambda: F.hardswish(np.zeros(2, np.int64)), "hardswish: expected input to be a floating-point tensor"),
])
def test_activation_bad_arguments_are_refused_in_one_line(call, message):
    with pytest.raises(convnet.ConvnetError) as error:
        call()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


# --------------------------------------------------------------------------- layer norm
def _affine(shape, dtype, seed=5):
    rng = np.random.default_rng(seed)
    return (1 + 0.5 * rng.standard_normal(shape)).astype(dtype), (0.3 * rng.standard_normal(shape)).astype(dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("normalized_shape", [(5,), (4, 5), (3, 4, 5)])
@pytest.mark.parametrize("affine", ["weight and bias", "weight", "none"])
def test_layer_norm_matches_torch_with_its_weight_and_bias_gradients(normalized_shape, affine, layout, dtype):
    x = with_kinks((2, 3, 4, 5), dtype, seed=6) + 3  # an offset that a one-pass variance would lose
    weight, bias = _affine(normalized_shape, dtype)
    ours_w, ours_b = Tensor(weight, requires_grad=True), Tensor(bias, requires_grad=True)
    theirs_w, theirs_b = torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)
    use = {"weight and bias": (True, True), "weight": (True, False), "none": (False, False)}[affine]
    pick = lambda pair: [p if u else None for p, u in zip(pair, use)]  # noqa: E731
    tolerance = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else None
    compare_with_torch(lambda t: F.layer_norm(t, normalized_shape, *pick((ours_w, ours_b)), eps=1e-6),
                       lambda t: torch.nn.functional.layer_norm(t, normalized_shape, *pick((theirs_w, theirs_b)),
                                                                eps=1e-6),
                       x, layout, grad_layout="channels-last", tolerance=tolerance)
    rtol = 1e-4 if dtype == np.float32 else 1e-11  # summed over 24 or more rows
    for ours, theirs, used in ((ours_w, theirs_w, use[0]), (ours_b, theirs_b, use[1])):
        if used:
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=rtol)


def test_layer_norm_gradients_equal_finite_differences():
    x = with_kinks((2, 3, 4), np.float64, seed=7)
    weight, bias = _affine((3, 4), np.float64)
    finite_difference_check(lambda x, w, b: F.layer_norm(x, (3, 4), w, b, eps=1e-3), [x, weight, bias], rtol=1e-6)


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layer_norm_2d_is_torchvisions_over_channels_and_keeps_the_layout(layout):
    """torchvision's convnext.LayerNorm2d: permute to (N, H, W, C), layer_norm over C, permute back."""
    torchvision_models()  # imports torchvision's model definitions (or skips, saying why)
    from torchvision.models.convnext import LayerNorm2d as TheirLayerNorm2d
    theirs = TheirLayerNorm2d(6, eps=1e-6)
    ours = nn.LayerNorm2d(6, eps=1e-6)
    weight, bias = _affine((6,), np.float32)
    theirs.load_state_dict({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)})
    ours.load_state_dict({"weight": weight, "bias": bias})
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    assert repr(ours) == repr(theirs) == "LayerNorm2d((6,), eps=1e-06, elementwise_affine=True, bias=True)"
    x = with_kinks((2, 6, 3, 4), np.float32, seed=8)
    compare_with_torch(ours, theirs, x, layout, grad_layout="nchw", tolerance=dict(rtol=2e-5, atol=2e-6))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


@requires_torch
def test_layer_norm_module_is_torchs():
    for args, kwargs in [((5,), {}), (((4, 5),), dict(eps=1e-6)), ((5,), dict(elementwise_affine=False)),
                         ((5,), dict(bias=False))]:
        ours, theirs = nn.LayerNorm(*args, **kwargs), torch.nn.LayerNorm(*args, **kwargs)
        assert repr(ours) == repr(theirs)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        x = with_kinks((2, 3, 4, 5), np.float32, seed=9)
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: F.layer_norm(Tensor(np.zeros((2, 3), np.float32)), (4,)),
     "layer_norm: expected input of shape (*, 4), got (2, 3)"),
    (lambda: F.layer_norm(Tensor(np.zeros((3,), np.float32)), (2, 3)),
     "layer_norm: expected input of shape (*, 2, 3), got (3,)"),
    (lambda: F.layer_norm(Tensor(np.zeros((2, 3), np.float32)), 3, weight=np.ones(4, np.float32)),
     "layer_norm: expected weight of shape (3,), got (4,)"),
    (lambda: F.layer_norm(Tensor(np.zeros((2, 3), np.float32)), 3, eps=-1.0),
     "layer_norm: expected eps to be a number >= 0, got -1.0"),
    (lambda: nn.LayerNorm(0), "LayerNorm: expected normalized_shape to be a positive int or a non-empty sequence"),
    (lambda: nn.LayerNorm([]), "LayerNorm: expected normalized_shape to be a positive int or a non-empty sequence"),
    (lambda: nn.LayerNorm(3, elementwise_affine=None), "LayerNorm: expected elementwise_affine to be True or False"),
    (lambda: nn.LayerNorm2d(3)(Tensor(np.zeros((2, 4, 5, 5), np.float32))),
     "LayerNorm2d((3,), eps=1e-05, elementwise_affine=True, bias=True): expected input of shape (N, 3, H, W), "
     "got (2, 4, 5, 5)"),
])
def test_layer_norm_bad_arguments_are_refused_in_one_line(call, message):
    with pytest.raises(InvalidValue) as error:
        call()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


# --------------------------------------------------------------------------- stochastic depth
@pytest.mark.parametrize("layout", LAYOUTS)
def test_stochastic_depth_in_training_drops_whole_rows_and_rescales_the_rest(layout):
    x = laid_out(with_kinks((64, 3, 2, 2), np.float32, seed=10), layout)
    convnet.manual_seed(3)
    tensor = Tensor(x, requires_grad=True)
    out = F.stochastic_depth(tensor, 0.25, "row")
    out.backward(np.ones(out.shape, np.float32))
    dropped = np.all(out.numpy() == 0, axis=(1, 2, 3))
    kept = ~dropped
    assert 4 <= dropped.sum() <= 30  # Binomial(64, 0.25): mean 16; outside this 1e-4 unlikely
    np.testing.assert_allclose(out.numpy()[kept], x[kept] / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(tensor.grad.numpy()[dropped], 0)
    np.testing.assert_allclose(tensor.grad.numpy()[kept], 1 / 0.75, rtol=1e-6)
    assert out.numpy().strides == x.strides and tensor.grad.numpy().strides == x.strides
    convnet.manual_seed(3)
    np.testing.assert_array_equal(F.stochastic_depth(Tensor(x), 0.25, "row").numpy(), out.numpy())  # the seed's
    assert not np.array_equal(F.stochastic_depth(Tensor(x), 0.25, "row").numpy(), out.numpy())  # next draws


def test_stochastic_depth_batch_mode_keeps_or_drops_everything_and_p_1_drops_all():
    x = with_kinks((4, 3, 2, 2), np.float32, seed=11)
    outcomes = set()
    for seed in range(12):
        convnet.manual_seed(seed)
        out = F.stochastic_depth(Tensor(x), 0.5, "batch").numpy()
        assert np.all(out == 0) or np.allclose(out, x * 2)
        outcomes.add(bool(np.all(out == 0)))
    assert outcomes == {True, False}
    np.testing.assert_array_equal(F.stochastic_depth(Tensor(x), 1.0, "row").numpy(), 0)


@pytest.mark.parametrize("p, mode, training", [(0.3, "row", False), (0.0, "row", True), (0.3, "batch", False)])
def test_stochastic_depth_is_the_identity_in_evaluation_or_at_p_0(p, mode, training):
    x = Tensor(with_kinks((4, 3, 2, 2), np.float32, seed=12))
    assert F.stochastic_depth(x, p, mode, training) is x


def test_stochastic_depth_module_follows_train_and_eval_and_has_torchvisions_repr():
    layer = nn.StochasticDepth(0.5, "row")
    assert repr(layer) == "StochasticDepth(p=0.5, mode=row)"
    x = Tensor(with_kinks((32, 2, 2, 2), np.float32, seed=13))
    convnet.manual_seed(0)
    training = layer(x).numpy()
    assert np.any(np.all(training == 0, axis=(1, 2, 3)))
    assert np.array_equal(layer.eval()(x).numpy(), x.numpy())
    assert layer.state_dict() == {}


@requires_torch
def test_stochastic_depth_repr_is_torchvisions():
    torchvision_models()
    from torchvision.ops import StochasticDepth as TheirStochasticDepth
    assert repr(nn.StochasticDepth(0.1, "batch")) == repr(TheirStochasticDepth(0.1, "batch"))


def test_stochastic_depth_gradient_equals_finite_differences():
    def fn(x):
        convnet.manual_seed(7)  # the same draws at every evaluation
        return F.stochastic_depth(x, 0.4, "row")
    finite_difference_check(fn, [with_kinks((6, 2, 3), np.float64, seed=14)], rtol=1e-6)


# --------------------------------------------------------------------------- moving elements
@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_matches_torch(groups, layout, dtype):
    x = with_kinks((2, 6, 3, 4), dtype, seed=15)
    compare_with_torch(lambda t: F.channel_shuffle(t, groups),
                       lambda t: torch.nn.functional.channel_shuffle(t, groups), x, layout, grad_layout="channels-last")
    assert repr(nn.ChannelShuffle(groups)) == repr(torch.nn.ChannelShuffle(groups))


def test_channel_shuffle_gradient_equals_finite_differences_and_works_on_3d_input():
    finite_difference_check(lambda t: F.channel_shuffle(t, 2), [with_kinks((2, 6, 5), np.float64, seed=16)])
    shuffled = F.channel_shuffle(Tensor(np.arange(12.0).reshape(1, 12, 1)), 3).numpy().ravel()
    np.testing.assert_array_equal(shuffled, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])  # torch's, by hand


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_permute_module_is_torchvisions_around_a_layer_norm(layout):
    """ConvNeXt's block: Permute to (N, H, W, C), LayerNorm over C, Permute back."""
    torchvision_models()
    from torchvision.ops.misc import Permute as TheirPermute
    ours = nn.Sequential(nn.Permute([0, 2, 3, 1]), nn.LayerNorm(6, eps=1e-6), nn.Permute([0, 3, 1, 2]))
    theirs = torch.nn.Sequential(TheirPermute([0, 2, 3, 1]), torch.nn.LayerNorm(6, eps=1e-6),
                                 TheirPermute([0, 3, 1, 2]))
    assert repr(ours[0]) == repr(theirs[0]) == "Permute()"
    compare_with_torch(ours, theirs, with_kinks((2, 6, 3, 4), np.float32, seed=17), layout,
                       tolerance=dict(rtol=2e-5, atol=2e-6))


@requires_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_chunk_split_and_cat_match_torch_with_gradients(layout):
    """ShuffleNetV2's x.chunk(2, dim=1) and torch.cat back; torch.split with sizes."""
    x = with_kinks((2, 7, 3, 4), np.float32, seed=18)

    def ours(t):
        first, second, third = t.chunk(3, dim=1)
        a, b = convnet.split(t, [2, 5], dim=1)
        return convnet.cat([third * 2, first, b, second * 3, a], dim=1)

    def theirs(t):
        first, second, third = t.chunk(3, dim=1)
        a, b = torch.split(t, [2, 5], dim=1)
        return torch.cat([third * 2, first, b, second * 3, a], dim=1)
    compare_with_torch(ours, theirs, x, layout, keeps_layout=False)
    halves = convnet.chunk(Tensor(laid_out(x, layout)), 2, dim=1)
    assert [h.shape for h in halves] == [(2, 4, 3, 4), (2, 3, 3, 4)]
    joined = convnet.cat(list(halves), dim=1).numpy()
    np.testing.assert_array_equal(joined, x)
    assert joined.strides == laid_out(x, layout).strides  # cat keeps its first input's memory order
    assert [p.shape[1] for p in convnet.split(Tensor(x), 3, dim=1)] == [3, 3, 1]
    assert [p.shape[1] for p in convnet.chunk(Tensor(x[:, :6]), 4, dim=1)] == [2, 2, 2]  # torch's: 3 pieces


def test_split_and_cat_gradients_equal_finite_differences():
    def fn(x, y):
        a, b = convnet.split(x, [1, 3], dim=-1)
        return convnet.cat([b * a, y], dim=0)
    finite_difference_check(fn, [with_kinks((2, 4), np.float64, seed=19), with_kinks((3, 3), np.float64, seed=20)])


@pytest.mark.parametrize("call, message", [
    (lambda: F.stochastic_depth(Tensor(np.zeros((2, 3), np.float32)), 1.5, "row"),
     "stochastic_depth: expected p between 0 and 1, got 1.5"),
    (lambda: F.stochastic_depth(Tensor(np.zeros((2, 3), np.float32)), 0.1, "rows"),
     "stochastic_depth: expected mode 'row' or 'batch', got 'rows'"),
    (lambda: nn.StochasticDepth(0.1, "Row"), "StochasticDepth: expected mode 'row' or 'batch', got 'Row'"),
    (lambda: F.channel_shuffle(Tensor(np.zeros((2, 5, 3, 3), np.float32)), 2),
     "channel_shuffle: expected groups to divide the 5 channels, got groups=2"),
    (lambda: F.channel_shuffle(Tensor(np.zeros((2, 6), np.float32)), 2),
     "channel_shuffle: expected input of shape (N, C, *) with at least 3 dimensions, got (2, 6)"),
    (lambda: nn.ChannelShuffle(0), "ChannelShuffle: expected groups to be a positive int, got 0"),
    (lambda: nn.Permute([0, 2, 2, 1]), "Permute: expected dims to be a permutation of 0..n-1, got [0, 2, 2, 1]"),
    (lambda: nn.Permute([0, 2, 3, 1])(Tensor(np.zeros((2, 3, 4), np.float32))),
     "Permute(): expected an input with 4 dimensions, got shape (2, 3, 4)"),
    (lambda: Tensor(np.zeros((2, 3))).chunk(0, dim=1), "chunk: expected chunks to be a positive int, got 0"),
    (lambda: convnet.split(Tensor(np.zeros((2, 3))), [1, 1], dim=1),
     "split: expected a positive int or sizes summing to 3 (dim 1 of (2, 3)), got [1, 1]"),
    (lambda: convnet.cat([Tensor(np.zeros((2, 3))), Tensor(np.zeros((3, 3)))], dim=1),
     "cat: expected shapes that differ only in dim 1, got [(2, 3), (3, 3)]"),
    (lambda: convnet.cat([Tensor(np.zeros((2, 3)))], dim=2),
     "cat: expected tensors of one number of dimensions and dim among them, got shapes [(2, 3)] and dim=2"),
])
def test_shape_and_depth_bad_arguments_are_refused_in_one_line(call, message):
    with pytest.raises(InvalidValue) as error:
        call()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
