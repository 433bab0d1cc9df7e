"""The ImageNet zoo against torchvision, its oracle: every architecture has torchvision's
state_dict keys and shapes, computes torchvision's function on torchvision's weights (evaluation
mode, both memory layouts of the input), each trains as torch's does (loss, every gradient, the
batch-norm statistics), a 1-channel first layer works, and a torchvision checkpoint fine-tunes
through ``convnet train --init-from`` with a new classifier for the folder's classes.

Images are small (32 px: each network's strides still leave at least one pixel) so that the
comparisons run on two shared cores; the networks are torchvision's, full width and depth."""

import numpy as np
import pytest
from conftest import assert_close_relative_to_scale, requires_torch, torch, torchvision_models

import convnet
from convnet import experiment, models
from convnet import functional as F
from convnet.cli import main
from convnet.data import shapes
from convnet.kernels.convolution import nchw

pytestmark = requires_torch

SIDE = 32  # the smallest side VGG, DenseNet and ConvNeXt take is 29-32 px
QUICK = ["resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "squeezenet1_0",
         "squeezenet1_1", "densenet121", "shufflenet_v2_x1_0", "efficientnet_b0", "regnet_y_400mf"]
SLOW = ["resnet50", "vgg11_bn", "vgg16_bn", "convnext_tiny"]  # 3-15 s each: 25-138 million parameters


def torchvision_twin(name, classes=10, seed=0):
    """torchvision's ``name`` for ``classes`` classes, seeded, in evaluation mode, with every
    normalisation's affine parameters and running statistics (and ConvNeXt's layer scales, 1e-6
    at first) drawn away from their starting values, so that a mixed-up buffer cannot pass."""
    torch.manual_seed(seed)
    model = getattr(torchvision_models(), name)(num_classes=classes)
    with torch.no_grad():
        ranges = {"running_mean": (-0.5, 0.5), "running_var": (0.5, 1.5), "layer_scale": (0.5, 1.0)}
        for key, tensor in model.state_dict().items():  # the state_dict's tensors share the model's memory
            if key.rsplit(".", 1)[-1] in ranges:
                tensor.uniform_(*ranges[key.rsplit(".", 1)[-1]])
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def loaded_twin(name, theirs, **data):
    """convnet's ``name`` built for ``data``, with exactly ``theirs``' keys and shapes, holding its weights."""
    ours = models.build(name, **{"in_channels": 3, "classes": 10, "image_size": SIDE, **data})
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(our_state) == list(their_state)
    assert {key: value.shape for key, value in our_state.items()} == {
        key: tuple(value.shape) for key, value in their_state.items()}
    ours.load_state_dict({key: value.numpy() for key, value in their_state.items()})
    return ours


def outputs(ours, theirs, x):
    """(ours' outputs, torch's) for x in evaluation mode, without graphs."""
    ours.eval()
    with convnet.no_grad():
        mine = ours(convnet.Tensor(x)).numpy()
    with torch.no_grad():
        return mine, theirs(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def images(count, channels=3, side=SIDE, seed=0):
    return np.random.default_rng(seed).standard_normal((count, channels, side, side)).astype(np.float32)


def check_equal_outputs(name):
    theirs = torchvision_twin(name)
    ours = loaded_twin(name, theirs)
    x = images(2)
    for layout in (x, nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))):  # NCHW memory, then NHWC memory
        mine, expected = outputs(ours, theirs, layout)
        assert mine.shape == (2, 10)
        assert_close_relative_to_scale(mine, expected, 1e-4)


@pytest.mark.parametrize("name", QUICK)
def test_an_architecture_has_torchvisions_keys_and_computes_its_function(name):
    check_equal_outputs(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_a_larger_architecture_has_torchvisions_keys_and_computes_its_function(name):
    check_equal_outputs(name)


def test_the_zoo_lists_every_imagenet_architecture_under_torchvisions_name():
    assert list(models.IMAGENET) == [
        "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "squeezenet1_0",
        "squeezenet1_1", "vgg11_bn", "vgg16_bn", "densenet121", "shufflenet_v2_x1_0", "efficientnet_b0",
        "regnet_y_400mf", "convnext_tiny"]
    assert set(models.IMAGENET) == set(QUICK + SLOW) and set(models.IMAGENET) <= set(models.MODELS)


def without_random_drops(model):
    """``model`` with every dropout and stochastic depth at p = 0 (torch's masks cannot be drawn alike)."""
    for module in model.modules():
        if type(module).__name__ in ("Dropout", "StochasticDepth"):
            module.p = 0.0
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK + ["convnext_tiny"])
def test_each_network_trains_as_torch_does_loss_gradients_and_batch_statistics(name):
    """One training-mode forward and backward, in float64 for both: in float32 a ReLU input within
    rounding of 0 can fall on either side in either library, and through 17 layers one such flip
    moves a gradient by 1e-4 of its scale. (ResNet-50 and VGG: their blocks are ResNet-18's and
    VGG's layers, which these cover, at 25-138 million parameters.)"""
    theirs = without_random_drops(torchvision_twin(name)).double()
    ours = without_random_drops(loaded_twin(name, theirs)).double()
    ours.train(), theirs.train()
    x, labels = images(4).astype(np.float64), np.array([0, 3, 7, 9])
    loss = F.cross_entropy(ours(convnet.Tensor(x)), labels)
    loss.backward()
    expected = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(labels))
    expected.backward()
    assert abs(loss.item() - expected.item()) <= 1e-10 * abs(expected.item())
    their_gradients = {key: parameter.grad.numpy() for key, parameter in theirs.named_parameters()}
    # A gradient zero in exact arithmetic (a bias followed by batch norm) is rounding noise in both:
    # it is measured against the largest gradient's scale instead of its own.
    floor = 1e-3 * max(np.abs(gradient).max() for gradient in their_gradients.values())
    # torch's float64 hardsigmoid backward multiplies by 1/6 rounded to float32 (a relative 3e-9 off)
    tolerance = 1e-6 if name.startswith("mobilenet_v3") else 1e-8
    for key, parameter in ours.named_parameters():
        error = np.abs(parameter.grad.numpy() - their_gradients[key]).max()
        assert error <= tolerance * max(np.abs(their_gradients[key]).max(), floor), key
    their_buffers = dict(theirs.named_buffers())
    for key, buffer in ours.named_buffers():
        np.testing.assert_allclose(buffer.numpy(), their_buffers[key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def with_grey_first_layer(name, theirs):
    """torchvision's model with its first convolution replaced by a 1-channel one, as its users do."""
    if name == "resnet18":
        theirs.conv1 = torch.nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    else:
        theirs.features[0] = torch.nn.Conv2d(1, 64, 3, stride=2)
    return theirs.eval()


@pytest.mark.parametrize(("name", "first"), [("resnet18", "conv1.weight"), ("squeezenet1_1", "features.0.weight")])
def test_a_greyscale_network_changes_only_its_first_convolution(name, first):
    theirs = with_grey_first_layer(name, torchvision_twin(name))
    ours = loaded_twin(name, theirs, in_channels=1)
    assert ours.state_dict()[first].shape[1] == 1
    mine, expected = outputs(ours, theirs, images(2, channels=1))
    assert_close_relative_to_scale(mine, expected, 1e-4)


@pytest.mark.parametrize(("name", "side", "smallest"), [("vgg11_bn", 28, 32), ("densenet121", 28, 29),
                                                        ("convnext_tiny", (64, 31), 32), ("squeezenet1_0", 20, 21)])
def test_a_size_a_network_would_pool_away_is_refused_naming_the_smallest(name, side, smallest):
    shown = f"{side}x{side}" if isinstance(side, int) else f"{side[0]}x{side[1]}"
    with pytest.raises(ValueError, match=f"^{name}: input size {shown} is too small; it takes at least "
                                         f"{smallest}x{smallest}$"):
        models.build(name, in_channels=3, image_size=side)


def test_the_defaults_are_the_zoos_and_torchvisions_configuration_is_asked_for():
    """The zoo's defaults are IDX's data (1 channel, 10 classes), as `build` is given for it."""
    grey = models.build("resnet18")
    assert grey.conv1.weight.shape == (64, 1, 7, 7) and grey.fc.weight.shape == (10, 512)
    colour = models.build("shufflenet_v2_x1_0", in_channels=3, classes=1000)
    assert colour.conv1[0].weight.shape == (24, 3, 3, 3) and colour.fc.weight.shape == (1000, 1024)
    assert sum(parameter.numel() for parameter in colour.parameters()) == 2_278_604  # torchvision's count


def test_weights_are_initialised_as_torchvision_draws_them():
    """ResNet: kaiming_normal_(fan_out) convolutions, std sqrt(2 / (out * k * k)); MobileNetV3:
    N(0, 0.01) Linear layers and zero biases; batch norm 1 and 0."""
    convnet.manual_seed(0)
    resnet = models.build("resnet18", in_channels=3, classes=1000)
    weight = resnet.layer3[0].conv2.weight.numpy()
    assert abs(weight.std() / np.sqrt(2 / (256 * 9)) - 1) < 0.01 and abs(weight.mean()) < 1e-3
    mobilenet = models.build("mobilenet_v3_small", in_channels=3, classes=1000)
    assert abs(mobilenet.classifier[0].weight.numpy().std() / 0.01 - 1) < 0.01
    assert not mobilenet.classifier[3].bias.numpy().any() and not mobilenet.features[1].block[1].fc1.bias.numpy().any()
    norm = mobilenet.features[0][1]
    assert (norm.weight.numpy() == 1).all() and not norm.bias.numpy().any() and norm.eps == 0.001


@pytest.fixture
def folder_and_checkpoint(tmp_path, monkeypatch):
    """A 4-class folder of 32x32 colour images (4 + 2 per class) and torchvision's ResNet-18 for
    1000 classes saved by torch.save(model.state_dict())."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shapes(tmp_path / "photos", per_class=4, val_per_class=2, size=32)
    state = torchvision_twin("resnet18", classes=1000).state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    return tmp_path / "photos", tmp_path / "resnet18.pth", state


@pytest.mark.slow
def test_a_torchvision_checkpoint_fine_tunes_on_a_folder_with_a_new_classifier(folder_and_checkpoint, tmp_path,
                                                                               capsys):
    photos, checkpoint, state = folder_and_checkpoint
    assert main(["train", "--model", "resnet18", "--data", str(photos), "--init-from", str(checkpoint),
                 "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "classifier" in line]
    assert notes == [f"note: --init-from {checkpoint}: its classifier (fc) answers another number of classes (1000; "
                     f"this run has 4), so that layer starts from random weights (the run's seed); every other layer "
                     f"starts from the file's"]
    assert experiment.load_run(tmp_path / "run")[1].fc.weight.shape == (4, 512)
    started = experiment.start(experiment.RunConfig(model="resnet18", data=str(photos), init_from=str(checkpoint),
                                                    batch_size=8), tmp_path / "unstarted", progress=False,
                               log=lambda line: None)
    loaded = started.trainer.model.state_dict()  # before any step: every layer but fc is the file's
    assert set(loaded) == set(state)
    for key, value in state.items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(loaded[key], value.numpy(), err_msg=key)
    assert loaded["fc.weight"].shape == (4, 512) and loaded["fc.bias"].shape == (4,)
    assert started.notes and "its classifier (fc)" in started.notes[0]


def test_squeezenets_classifier_is_its_last_convolution_when_classes_differ():
    theirs = torchvision_twin("squeezenet1_1", classes=1000)
    convnet.manual_seed(0)
    ours = models.build("squeezenet1_1", in_channels=3, classes=5, image_size=SIDE)
    fresh = ours.state_dict()["classifier.1.weight"].copy()
    assert models.load_all_but_classifier(ours, {key: value.numpy() for key, value in
                                                 theirs.state_dict().items()}) == ["classifier.1"]
    np.testing.assert_array_equal(ours.state_dict()["classifier.1.weight"], fresh)
    np.testing.assert_array_equal(ours.state_dict()["features.12.expand3x3.weight"],
                                  theirs.state_dict()["features.12.expand3x3.weight"].numpy())
