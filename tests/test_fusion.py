"""Inference-time fusion (`nn.fuse_for_inference`): the epilogue kernels against their references
and PyTorch, batch norm folding against PyTorch's eval-mode batch norm, and fused copies of the zoo's
networks against the unfused models, on inputs of both memory layouts."""

import numpy as np
import pytest
from conftest import requires_torch, torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet import kernels, models, nn
from convnet.errors import InvalidType, InvalidValue
from convnet.kernels import activation, winograd2
from convnet.kernels.convolution import is_channels_last, nchw
from convnet.kernels.winograd import planes
from convnet.nn.fusion import FusedBasicBlock, InferenceOnly, fold_batch_norm

def nhwc_memory(x):
    """The same (N, C, H, W) values as a view of channels-last memory."""
    return nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))


def torch_epilogue(x_nchw, bias, relu, pool):
    """The unfused ops in PyTorch: + bias, ReLU, 2x2 max pooling (floor)."""
    value = torch.from_numpy(x_nchw) + torch.from_numpy(bias).reshape(1, -1, 1, 1)
    value = torch.relu(value) if relu else value
    return (torch.nn.functional.max_pool2d(value, 2) if pool else value).numpy()


@requires_torch
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 20), h=st.integers(2, 9), w=st.integers(2, 9),
       relu=st.booleans(), pool=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_the_epilogue_kernels_match_their_references_and_torch_in_either_layout(n, c, h, w, relu, pool, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    bias = rng.standard_normal(c, dtype=np.float32)
    expected = torch_epilogue(x, bias, relu, pool)
    out_hw = (h // 2, w // 2) if pool else (h, w)
    for function in (activation.bias_relu_max_pool, activation.bias_relu_max_pool_reference):
        out = np.empty((c, n) + out_hw, np.float32)
        function(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), bias, relu, pool, out)
        np.testing.assert_array_equal(out.transpose(1, 0, 2, 3), expected)
    for function in (activation.bias_relu_max_pool_last, activation.bias_relu_max_pool_last_reference):
        out = np.empty((n,) + out_hw + (c,), np.float32)
        function(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), bias, relu, pool, out)
        np.testing.assert_array_equal(nchw(out), expected)


@requires_torch
def test_the_epilogue_writes_into_a_strided_output_and_a_nan_wins_its_window():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4) - 40
    x[1, 2, 0, 1] = np.nan
    bias = np.array([1, -2, 0.5], np.float32)
    expected = torch_epilogue(x, bias, True, True)
    assert np.isnan(expected[1, 2, 0, 0]) and np.isnan(expected).sum() == 1
    out = np.zeros((2, 3, 2, 2), np.float32)  # NCHW memory, written through its (C, N, H, W) view
    activation.bias_relu_max_pool(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), bias, True, True,
                                  out.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 0, 0] == 0 and out[1, 1, 1, 1] == max(x[1, 1, 2:, 2:].max() - 2, 0)  # by hand: 53 - 2


@requires_torch
@pytest.mark.parametrize("function", [activation.add_relu, activation.add_relu_reference])
def test_a_residual_sum_and_its_relu_in_one_pass_in_place(function, rng):
    x, residual = rng.standard_normal(37, dtype=np.float32), rng.standard_normal(37, dtype=np.float32)
    x[3], residual[5] = np.nan, np.nan
    expected = torch.relu(torch.from_numpy(x) + torch.from_numpy(residual)).numpy()
    function(x, residual, x)  # in place, as FusedBasicBlock calls it
    np.testing.assert_array_equal(x, expected)
    assert np.isnan(x[[3, 5]]).all() and (x >= 0).sum() == 35


@requires_torch
@pytest.mark.parametrize("out_hw, relu, pool", [(hw, relu, pool) for hw in [(4, 6), (5, 7), (1, 1), (3, 2)]
                                                 for relu in (True, False) for pool in (True, False)
                                                 if min(hw) >= 2 or not pool])  # pooling 1x1 leaves nothing
def test_winograds_fused_output_transform_is_the_transform_then_the_epilogue(out_hw, relu, pool, rng):
    o, n = 5, 2
    tiles = tuple(-(-side // 2) for side in out_hw)
    products = planes((o, n) + tiles, np.float32, 16)
    products[...] = rng.standard_normal(products.shape, dtype=np.float32)
    bias = rng.standard_normal(o, dtype=np.float32)
    full = np.empty((o, n) + out_hw, np.float32)
    winograd2.output_transform(products, full)
    expected = torch_epilogue(full.transpose(1, 0, 2, 3).copy(), bias, relu, pool).transpose(1, 0, 2, 3)
    fused_hw = (out_hw[0] // 2, out_hw[1] // 2) if pool else out_hw
    for function in (winograd2.output_transform_fused, winograd2.output_transform_fused_reference):
        out = np.full((o, n) + fused_hw, np.nan, np.float32)
        function(products, bias, relu, pool, out)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    compiled = np.empty((o, n) + fused_hw, np.float32)
    winograd2.output_transform_fused(products, bias, relu, pool, compiled)
    np.testing.assert_array_equal(compiled, expected)  # the same arithmetic, so the same floats


def batch_normed(rng, channels):
    """A BatchNorm2d in eval mode with made-up running statistics and affine parameters."""
    norm = nn.BatchNorm2d(channels).eval()
    norm.running_mean.data[...] = rng.standard_normal(channels)
    norm.running_var.data[...] = rng.uniform(0.2, 3, channels)
    norm.weight.data[...] = rng.standard_normal(channels)
    norm.bias.data[...] = rng.standard_normal(channels)
    return norm


@requires_torch
def test_folding_batch_norm_into_a_convolution_matches_torch_in_float64(rng):
    conv, norm = nn.Conv2d(3, 4, 3), batch_normed(rng, 4)
    weight, bias = fold_batch_norm(conv.weight.data.astype(np.float64), conv.bias.data, norm)
    x = torch.from_numpy(rng.standard_normal((2, 3, 6, 6)))
    t_conv, t_norm = torch.nn.Conv2d(3, 4, 3).double(), torch.nn.BatchNorm2d(4).double().eval()
    t_conv.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in conv.state_dict().items()})
    t_norm.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64 if v.dtype.kind == "f" else v.dtype))
                            for k, v in norm.state_dict().items()})
    expected = t_norm(t_conv(x)).detach().numpy()
    folded = torch.nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias.astype(np.float64)))
    np.testing.assert_allclose(folded.numpy(), expected, rtol=1e-6, atol=1e-6)  # bias rounded to float32


def conv_block(rng, cin, cout, *tail):
    """Conv2d(cin, cout, 3, pad 1) followed by the named layers, with trained-looking statistics."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1)]
    for name in tail:
        layers.append({"bn": lambda: batch_normed(rng, cout), "relu": nn.ReLU, "pool": lambda: nn.MaxPool2d(2),
                       "pool3": lambda: nn.MaxPool2d(3, 2)}[name]())
    return layers


# 1 input channel runs im2col (channel-major), 3 'im2col_last' (channels-last), 8 Winograd.
@pytest.mark.parametrize("cin", [1, 3, 8])
@pytest.mark.parametrize("tail", [("bn", "relu", "pool"), ("bn",), ("relu", "pool"), ("bn", "pool"), ("relu",)])
@pytest.mark.parametrize("mode", ["compiled", "reference"])
def test_a_fused_run_gives_the_unfused_layers_values_on_either_layout(cin, tail, mode, rng):
    model = nn.Sequential(*conv_block(rng, cin, 8, *tail), nn.Flatten()).eval()
    fused = nn.fuse_for_inference(model)
    assert type(fused[0]) is nn.FusedConv2d and all(type(layer) is nn.Identity for layer in fused[1:len(tail) + 1])
    x = rng.standard_normal((3, cin, 9, 11), dtype=np.float32)  # odd sides: pooling drops a row and a column
    with convnet.no_grad(), kernels.use(mode):
        expected = model(convnet.Tensor(x)).numpy()
        for batch in (x, nhwc_memory(x)):
            np.testing.assert_allclose(fused(convnet.Tensor(batch)).numpy(), expected, rtol=1e-5, atol=1e-5)


@requires_torch
def test_a_fused_network_matches_torchs_eval_mode_twin(rng):
    model = nn.Sequential(*conv_block(rng, 3, 8, "bn", "relu", "pool"), *conv_block(rng, 8, 16, "bn", "relu", "pool"),
                          nn.Flatten(), nn.Linear(16 * 2 * 2, 5)).eval()
    t = torch.nn
    twin = t.Sequential(t.Conv2d(3, 8, 3, padding=1), t.BatchNorm2d(8), t.ReLU(), t.MaxPool2d(2),
                        t.Conv2d(8, 16, 3, padding=1), t.BatchNorm2d(16), t.ReLU(), t.MaxPool2d(2), t.Flatten(),
                        t.Linear(64, 5)).eval()
    twin.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in model.state_dict().items()})
    x = rng.standard_normal((4, 3, 10, 10), dtype=np.float32)
    with convnet.no_grad():
        ours = nn.fuse_for_inference(model)(convnet.Tensor(x)).numpy()
    np.testing.assert_allclose(ours, twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_only_what_can_fuse_is_fused(rng):
    hooked = nn.ReLU()
    hooked.register_forward_hook(lambda *args: None)
    no_stats = nn.BatchNorm2d(4, track_running_stats=False)
    model = nn.Sequential(*conv_block(rng, 1, 4, "relu", "pool3"), *conv_block(rng, 4, 4), hooked,
                          nn.Conv2d(4, 4, 1), no_stats, nn.ReLU(), nn.Conv2d(4, 4, 1)).eval()
    fused = nn.fuse_for_inference(model)
    kinds = [type(layer).__name__ for layer in fused]
    assert kinds == ["FusedConv2d", "Identity", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU",
                     "Conv2d"]
    assert not fused[0].pool and fused[0].relu and list(fused._modules) == list(model._modules)


def test_resnet8_fuses_its_blocks_and_answers_as_before(rng):
    model = models.resnet8(widths=(8, 16, 16)).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.load_state_dict(batch_normed(rng, module.num_features).state_dict())
    fused = nn.fuse_for_inference(model)
    assert [type(block) for block in fused.layers] == [FusedBasicBlock] * 3
    x = rng.standard_normal((2, 1, 12, 12), dtype=np.float32)
    with convnet.no_grad():
        expected = model(convnet.Tensor(x)).numpy()
        for batch in (x, nhwc_memory(x)):
            np.testing.assert_allclose(fused(convnet.Tensor(batch)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_shipped_reference_cnn_answers_within_float32_rounding(rng):
    model = models.reference_cnn(pretrained=True).eval()
    x = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    with convnet.no_grad():
        expected = model(convnet.Tensor(x)).numpy()
        got = nn.fuse_for_inference(model)(convnet.Tensor(x)).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_original_is_untouched_and_the_copy_refuses_to_train(rng):
    model = nn.Sequential(*conv_block(rng, 1, 4, "bn", "relu")).train()
    before = model.state_dict()
    fused = nn.fuse_for_inference(model)
    assert model.training and type(model[0]) is nn.Conv2d and model[0].weight.requires_grad
    assert all(np.array_equal(value, model.state_dict()[key]) for key, value in before.items())
    x = convnet.Tensor(rng.standard_normal((2, 1, 5, 5), dtype=np.float32))
    assert not fused.training and fused(x).shape == (2, 4, 5, 5)  # grad mode on, input needs none: fine
    with pytest.raises(InferenceOnly, match=r"^FusedConv2d\(1, 4, kernel_size=\(3, 3\)\): .*cannot train"):
        fused.train()(x)
    fused.eval()
    with pytest.raises(InferenceOnly, match="has no gradients; run it under convnet.no_grad()"):
        fused(convnet.Tensor(x.numpy(), requires_grad=True))


def test_bad_arguments_are_refused_with_what_was_expected(rng):
    with pytest.raises(InvalidType, match="fuse_for_inference: expected a convnet.nn.Module, got ndarray"):
        nn.fuse_for_inference(np.zeros(3))
    fused = nn.fuse_for_inference(nn.Sequential(*conv_block(rng, 1, 4, "relu", "pool")).eval())
    with pytest.raises(InvalidValue, match=r"expected input of shape \(N, 1, H, W\), got \(2, 3, 8, 8\)"):
        fused(convnet.zeros(2, 3, 8, 8))
    with pytest.raises(InvalidValue, match="input 1x1 is too small: the output would be 0x0"):
        fused(convnet.zeros(2, 1, 1, 1))
    with pytest.raises(InvalidType, match="expected input of dtype float32 .the weights'., got float64"):
        fused(convnet.zeros(2, 1, 8, 8, dtype=np.float64))


def test_the_fused_output_keeps_its_producers_layout(rng):
    fused = nn.fuse_for_inference(nn.Sequential(*conv_block(rng, 3, 8, "relu", "pool")).eval())
    x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    with convnet.no_grad():
        assert is_channels_last(fused(convnet.Tensor(x)).numpy())  # 'im2col_last' writes channels-last


@pytest.mark.parametrize("name", ["lenet5", "simple_cnn", "reference_cnn", "resnet8"])
def test_every_small_zoo_network_fused_answers_as_before(name, rng):
    model = models.build(name, in_channels=3, image_size=(64, 48), classes=4).eval()  # with a stem
    fused = nn.fuse_for_inference(model)
    assert any(isinstance(layer, (nn.FusedConv2d, FusedBasicBlock)) for layer in fused.modules())
    x = rng.standard_normal((2, 3, 64, 48), dtype=np.float32)
    with convnet.no_grad():
        expected = model(convnet.Tensor(x)).numpy()
        np.testing.assert_allclose(fused(convnet.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
