"""Layers against their torch.nn twins: same state_dict keys, weights load across, same numbers."""

import math

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import Tensor, bench, models, nn
from conftest import check_twins, requires_torch, torch


LAYERS = [
    (lambda m: m.Conv2d(3, 8, 3), (2, 3, 9, 9)),
    (lambda m: m.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2), (2, 4, 11, 8)),
    (lambda m: m.Conv2d(6, 6, 3, padding="same", groups=6, bias=False), (2, 6, 7, 7)),
    (lambda m: m.Linear(12, 5), (4, 12)),
    (lambda m: m.Linear(12, 5, bias=False), (2, 3, 12)),
    (lambda m: m.BatchNorm2d(5), (4, 5, 3, 3)),
    (lambda m: m.BatchNorm2d(5, momentum=None, affine=False), (4, 5, 3, 3)),
    (lambda m: m.BatchNorm1d(7, eps=1e-3, momentum=0.3), (6, 7)),
    (lambda m: m.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    (lambda m: m.AvgPool2d(2), (2, 3, 8, 8)),
    (lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 8)),
    (lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 5, 7)),
    (lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 3, 5, 7)),
    (lambda m: m.Flatten(), (2, 3, 4, 5)),
    (lambda m: m.Sequential(m.ReLU(), m.LeakyReLU(0.1), m.GELU(), m.Tanh(), m.Sigmoid(), m.Softmax(dim=1),
                            m.LogSoftmax(dim=1)), (3, 6)),
]


@requires_torch
@pytest.mark.parametrize("make, shape", LAYERS)
@pytest.mark.parametrize("train", [True, False])
def test_layer_matches_its_torch_twin(make, shape, train, rng):
    check_twins(make(nn), make(torch.nn), shape, rng, train=train)


@requires_torch
@pytest.mark.parametrize("in_channels, out_channels, stride", [(4, 4, 1), (4, 8, 2), (3, 5, 1)])
@pytest.mark.parametrize("train", [True, False])
def test_basic_block_matches_torchvision_block(in_channels, out_channels, stride, train, rng):
    """The bench's torch.nn with torchvision's BasicBlock written out (no torchvision needed)."""
    torch_layers = bench.TorchLayers(torch)
    check_twins(nn.BasicBlock(in_channels, out_channels, stride),
                torch_layers.BasicBlock(in_channels, out_channels, stride), (2, in_channels, 8, 8), rng, train=train)


@requires_torch
def test_the_zoo_builds_the_same_resnet8_in_pytorch(rng):
    check_twins(models.resnet8(), models.resnet8(layers=bench.TorchLayers(torch)), (2, 1, 28, 28), rng, train=True)


def small_cnn(m):
    return m.Sequential(m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                        m.Conv2d(4, 8, 3, padding=1), m.ReLU(), m.AdaptiveAvgPool2d(1), m.Flatten(),
                        m.Dropout(0.5), m.Linear(8, 3))


@requires_torch
def test_a_whole_cnn_state_dict_round_trips_with_torch(rng):
    ours, theirs = small_cnn(nn), small_cnn(torch.nn)
    check_twins(ours, theirs, (3, 1, 12, 12), rng, train=False)
    # And back: torch's weights load into convnet and give torch's outputs.
    fresh = small_cnn(torch.nn).eval()
    ours.load_state_dict(fresh.state_dict())
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(ours.eval()(Tensor(x)).numpy(), fresh(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_load_state_dict_lists_every_problem_at_once():
    model = small_cnn(nn)
    state = model.state_dict()
    del state["0.weight"], state["1.running_var"]
    state["extra.weight"] = np.zeros(3)
    state["9.weight"] = np.zeros((3, 9), dtype=np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    for fragment in ["missing keys: ['0.weight', '1.running_var']", "unexpected keys: ['extra.weight']",
                     "9.weight: expected shape (3, 8), got (3, 9)"]:
        assert fragment in message
    with pytest.raises(ValueError, match=r"values too large for float32 \(they would become infinite\): \['0.bias'\]"):
        model.load_state_dict({"0.bias": np.full(4, 1e300)}, strict=False)
    before = model[0].weight.numpy().copy()
    result = model.load_state_dict({"0.weight": np.ones((4, 1, 3, 3))}, strict=False)
    assert "0.bias" in result.missing_keys and (model[0].weight.numpy() == 1).all() and (before != 1).any()


def test_default_initialisation_follows_torch_bounds():
    convnet.manual_seed(0)
    conv = nn.Conv2d(16, 32, 5)
    bound = 1 / math.sqrt(16 * 25)
    weight = conv.weight.numpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.95 * bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # uniform(-b, b) has std b/sqrt(3)
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert weight.dtype == np.float32


def test_manual_seed_makes_a_training_run_repeat_bit_for_bit(rng):
    images = rng.standard_normal((16, 1, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 3, 16)

    def run():
        convnet.manual_seed(42)
        model = small_cnn(nn)
        optimizer = convnet.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(model(Tensor(images)), labels).backward()  # dropout draws from the seed too
            optimizer.step()
        return model.state_dict()

    first, second = run(), run()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_module_bookkeeping():
    model = small_cnn(nn)
    assert [name for name, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert len(list(model.children())) == 10 and len(model) == 10 and isinstance(model[0], nn.Conv2d)
    assert len(list(model.modules())) == 11
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    F.cross_entropy(model(convnet.randn(2, 1, 8, 8)), [0, 1]).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert repr(model).splitlines()[1] == "  (0): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


@requires_torch
def test_parameter_count_and_repr_match_torch():
    model = small_cnn(nn)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in small_cnn(torch.nn).parameters())
    assert repr(nn.Linear(3, 2)) == str(torch.nn.Linear(3, 2))


def test_forward_hooks_see_outputs_and_can_be_removed():
    layer, seen = nn.ReLU(), []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.numpy().copy()))
    layer(convnet.tensor([-1.0, 2.0]))
    handle.remove()
    layer(convnet.tensor([3.0]))
    assert len(seen) == 1 and seen[0].tolist() == [0.0, 2.0]


def test_double_converts_parameters_and_buffers_for_gradient_checks():
    model = small_cnn(nn).double()
    assert all(t.dtype == np.float64 for t in model.parameters())
    assert model.state_dict()["1.running_mean"].dtype == np.float64
    assert model.state_dict()["1.num_batches_tracked"].dtype == np.int64


def test_test_time_mirroring_averages_the_outputs_for_each_image_and_its_mirror_image(rng):
    """A linear model's outputs are W x + b, so the mirrored answer is computed by hand."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images = rng.standard_normal((4, 1, 3, 4)).astype(np.float32)
    weight, bias = model[1].weight.numpy(), model[1].bias.numpy()
    one_pass = images.reshape(4, 12) @ weight.T + bias
    mirrored = images[..., ::-1].reshape(4, 12) @ weight.T + bias
    np.testing.assert_allclose(nn.logits(model, images).numpy(), one_pass, rtol=1e-6)
    np.testing.assert_allclose(nn.logits(model, Tensor(images), mirror=True).numpy(), (one_pass + mirrored) / 2,
                               rtol=1e-5, atol=1e-6)
    symmetric = images + images[..., ::-1]  # an image that is its own mirror image gets one answer
    np.testing.assert_allclose(nn.logits(model, symmetric, mirror=True).numpy(), nn.logits(model, symmetric).numpy(),
                               rtol=1e-5, atol=1e-6)


@requires_torch
def test_test_time_mirroring_of_a_convolutional_network_matches_torch_flip(rng):
    ours, theirs = small_cnn(nn), small_cnn(torch.nn).eval()
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    images = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    with convnet.no_grad(), torch.no_grad():
        expected = (theirs(torch.from_numpy(images)) + theirs(torch.flip(torch.from_numpy(images), [3]))) / 2
        np.testing.assert_allclose(nn.logits(ours, images, mirror=True).numpy(), expected.numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_sequential_runs_relu_then_max_pool_as_one_op_with_the_same_bits(rng):
    """The fused step gives exactly what the two layers give one after the other (a hook on the
    ReLU keeps them apart), forward and backward; the fusion is a visible step of its own."""
    from convnet.nn.sequential import fused_steps

    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    grad = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    results = []
    for hooked in (False, True):
        relu, pool = nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=(1, 0, 1, 0))
        if hooked:
            relu.register_forward_hook(lambda module, inputs, output: None)
        steps = fused_steps([relu, pool, nn.Identity()])
        assert len(steps) == (3 if hooked else 2)
        inputs = Tensor(x, requires_grad=True)
        out = nn.Sequential(relu, pool, nn.Identity())(inputs)
        out.backward(grad)
        results.append((out.numpy(), inputs.grad.numpy()))
    (fused_out, fused_grad), (out, grad) = results
    np.testing.assert_array_equal(fused_out, out)
    np.testing.assert_array_equal(fused_grad, grad)


FOUR_SIDED = [  # (the layer with a given padding, the value that padding adds)
    (lambda p: nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=p), 0.0),
    (lambda p: nn.MaxPool2d(3, stride=2, padding=p), -np.inf),
    (lambda p: nn.AvgPool2d((2, 3), stride=1, padding=p), 0.0),
]


@pytest.mark.parametrize("make, fill", FOUR_SIDED)
@pytest.mark.parametrize("padding", [(0, 1, 1, 0), (1, 0, 0, 1), (1, 1, 0, 0)])
def test_four_sided_padding_is_the_unpadded_layer_on_the_padded_input(make, fill, padding, rng):
    padded_layer, plain_layer = make(padding), make(0)
    plain_layer.load_state_dict(padded_layer.state_dict())
    x = rng.standard_normal((2, 2, 7, 8)).astype(np.float32)
    top, bottom, left, right = padding
    ours, padded = Tensor(x, requires_grad=True), Tensor(
        np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill), requires_grad=True)
    out, expected = padded_layer(ours), plain_layer(padded)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(grad)
    expected.backward(grad)
    h, w = x.shape[2:]
    np.testing.assert_allclose(ours.grad.numpy(), padded.grad.numpy()[:, :, top:top + h, left:left + w],
                               rtol=1e-5, atol=1e-6)


def test_padding_is_resolved_once_and_shown_as_torch_shows_it():
    conv = nn.Conv2d(1, 2, 4, padding="same")
    assert (conv.padding, conv.resolved_padding) == ("same", (1, 2, 1, 2))
    assert repr(conv) == "Conv2d(1, 2, kernel_size=(4, 4), stride=(1, 1), padding='same')"
    conv = nn.Conv2d(1, 2, 3, padding=(1, 1, 2, 2))  # opposite sides alike: PyTorch's pair
    assert (conv.padding, conv.resolved_padding) == ((1, 2), (1, 1, 2, 2))
    assert repr(conv) == "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 2))"
    pool = nn.MaxPool2d(3, padding=(0, 1, 1, 0))
    assert pool.padding == pool.resolved_padding == (0, 1, 1, 0)
    assert repr(pool) == "MaxPool2d(kernel_size=(3, 3), stride=(3, 3), padding=(0, 1, 1, 0))"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    with pytest.raises(TypeError, match=r"^MaxPool2d: expected padding to be an int, a pair \(pH, pW\) or four ints"):
        nn.MaxPool2d(3, padding="same")
    with pytest.raises(ValueError, match=r"^Conv2d: expected padding >= 0, got \(1, 0, -1, 0\)$"):
        nn.Conv2d(1, 2, 3, padding=(1, 0, -1, 0))
