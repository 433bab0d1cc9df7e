"""The zoo shaped by the data: channels, image size and classes from the data, a stem that halves
large inputs, the shipped 28x28 networks unchanged bit for bit, fine-tuning for other classes, and
ONNX export at any size."""

import re
from collections import OrderedDict

import numpy as np
import pytest
from conftest import assert_close_relative_to_scale, check_twins, requires_torch, torch

import convnet
from convnet import bench, models, nn, pretrained


# ------------------------------------------------------------------ the zoo before image_size (the oracle)
def old_lenet5(in_channels=1, classes=10, layers=nn):
    return layers.Sequential(
        layers.Conv2d(in_channels, 6, 5, padding=2), layers.ReLU(), layers.MaxPool2d(2),
        layers.Conv2d(6, 16, 5), layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
        layers.Linear(16 * 5 * 5, 120), layers.ReLU(), layers.Linear(120, 84), layers.ReLU(),
        layers.Linear(84, classes))


def old_simple_cnn(in_channels=1, classes=10, kernels=100, kernel_size=5, layers=nn):
    pooled = (28 - kernel_size + 1) // 2
    return layers.Sequential(
        layers.Conv2d(in_channels, kernels, kernel_size), layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
        layers.Dropout(0.25), layers.Linear(kernels * pooled * pooled, classes))


def old_reference_cnn(batch_norm=True, in_channels=1, classes=10, layers=nn):
    def block(cin, cout):
        norm = [layers.BatchNorm2d(cout)] if batch_norm else []
        return [layers.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), *norm, layers.ReLU(), layers.MaxPool2d(2)]

    return layers.Sequential(*block(in_channels, 32), *block(32, 64), layers.Flatten(),
                             layers.Linear(64 * 7 * 7, 128), layers.ReLU(), layers.Linear(128, classes))


def old_resnet8(in_channels=1, classes=10, widths=(32, 64, 128), layers=nn):
    stem = layers.Sequential(layers.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                             layers.BatchNorm2d(widths[0]), layers.ReLU())
    blocks, previous = [], widths[0]
    for stage, width in enumerate(widths):
        blocks.append(layers.BasicBlock(previous, width, stride=1 if stage == 0 else 2))
        previous = width
    return layers.Sequential(OrderedDict(stem=stem, layers=layers.Sequential(*blocks),
                                         pool=layers.AdaptiveAvgPool2d(1), flatten=layers.Flatten(),
                                         fc=layers.Linear(previous, classes)))


OLD = {"lenet5": old_lenet5, "simple_cnn": old_simple_cnn, "reference_cnn": old_reference_cnn,
       "resnet8": old_resnet8}
DATA_OF_28 = {"in_channels": 1, "image_size": (28, 28), "classes": 10}


def seeded(build, seed=3):
    convnet.manual_seed(seed)
    return build()


def forward(model, x):
    model.eval()
    with convnet.no_grad():
        return model(convnet.Tensor(x)).numpy()


def test_the_zoo_lists_every_model_the_old_zoo_had_beside_the_imagenet_architectures():
    assert set(models.MODELS) - set(models.IMAGENET) == set(OLD)


TODAYS_SETTINGS = [("lenet5", {"in_channels": 3, "classes": 4}), ("simple_cnn", {"kernels": 8, "kernel_size": 3}),
                   ("reference_cnn", {"batch_norm": False}), ("resnet8", {"widths": (16, 32, 64), "classes": 2})]


@pytest.mark.parametrize(("name", "settings"), [(name, {}) for name in OLD] + TODAYS_SETTINGS,
                         ids=lambda value: str(value or ""))
@pytest.mark.parametrize("config", [{}, DATA_OF_28, {"image_size": 28}], ids=["defaults", "from the data", "int size"])
def test_at_28x28_every_model_is_what_it_was_layer_for_layer_and_bit_for_bit(name, settings, config):
    old = seeded(lambda: OLD[name](**settings))
    new = seeded(lambda: models.build(name, **{**config, **settings}))
    assert repr(new) == repr(old)
    old_state, new_state = old.state_dict(), new.state_dict()
    assert list(new_state) == list(old_state)
    for key, value in old_state.items():
        assert new_state[key].dtype == value.dtype and new_state[key].shape == value.shape, key
        np.testing.assert_array_equal(new_state[key], value, err_msg=key)


@pytest.mark.parametrize("name", pretrained.available())
def test_the_shipped_weights_give_exactly_the_logits_they_gave(name):
    x = np.random.default_rng(29).standard_normal((4, 1, 28, 28)).astype(np.float32)
    old = OLD[name]()
    old.load_state_dict(pretrained.state_dict(name))
    expected = forward(old, x)
    np.testing.assert_array_equal(forward(models.build(name, pretrained=True), x), expected)
    np.testing.assert_array_equal(forward(models.build(name, pretrained=True, **DATA_OF_28), x), expected)


@pytest.mark.parametrize(("config", "got"), [({"classes": 5}, "classes=5"), ({"in_channels": 3}, "in_channels=3"),
                                             ({"image_size": (64, 64)}, "image_size=(64, 64)"),
                                             ({"in_channels": 1, "classes": True}, "classes=True")])
def test_pretrained_weights_for_other_data_are_refused_saying_what_they_fit(config, got):
    with pytest.raises(ValueError, match=rf"^resnet8: the shipped weights fit its default configuration \(1x28x28, "
                                         rf"10 classes\), so pretrained=True takes no other settings; got "
                                         rf"{re.escape(got)}$"):
        models.resnet8(pretrained=True, **config)


# ------------------------------------------------------------------ sizes from the data
SIZES = [(12, 12), (13, 17), (28, 28), (32, 32), (45, 70), (63, 63), (64, 64), (100, 80), (127, 127), (128, 128)]


@pytest.mark.parametrize("name", OLD)
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_every_model_runs_on_the_data_shape_it_was_built_for(name, size):
    """The layers themselves check the shapes: a wrong flatten size fails in the Linear layer."""
    model = models.build(name, in_channels=3, image_size=size, classes=7)
    out = forward(model, np.zeros((2, 3) + size, np.float32))
    assert out.shape == (2, 7)
    if name != "resnet8":  # the classifier's input is what the feature layers give, counted independently
        flatten = next(index for index, layer in enumerate(model) if isinstance(layer, nn.Flatten))
        features = forward(model[:flatten], np.zeros((1, 3) + size, np.float32))
        classifier = next(layer for layer in model[flatten:] if isinstance(layer, nn.Linear))
        assert classifier.in_features == features.size


@pytest.mark.parametrize("name", OLD)
def test_a_224_pixel_colour_image_enters_the_usual_layers_at_56_pixels(name):
    model = models.build(name, in_channels=3, image_size=224, classes=3)
    stem_out = forward(model.stem, np.zeros((1, 3, 224, 224), np.float32))
    assert stem_out.shape[2:] == (56, 56)
    assert forward(model, np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 3)


@pytest.mark.parametrize(("size", "after"), [((64, 64), (32, 32)), ((100, 80), (50, 40)), ((127, 127), (64, 64)),
                                             ((128, 128), (32, 32)), ((255, 64), (128, 32)), ((256, 300), (32, 37))])
def test_the_stem_halves_once_per_doubling_above_32_pixels(size, after):
    """ceil(side / 2) through the stride-2 convolution, then floor(side / 2) per max pooling."""
    model = models.reference_cnn(in_channels=3, image_size=size, classes=2)
    assert forward(model.stem, np.zeros((1, 3) + size, np.float32)).shape == (1, 32) + after


@pytest.mark.parametrize(("name", "first_width"), [("lenet5", 6), ("simple_cnn", 32), ("reference_cnn", 32)])
def test_the_stem_is_as_wide_as_the_first_convolution_at_most_32_and_the_rest_keeps_its_keys(name, first_width):
    small, large = models.build(name, in_channels=3, image_size=32), models.build(name, in_channels=3, image_size=64)
    assert "stem" not in dict(small.named_children())
    assert large.stem[0].describe() == f"Conv2d(3, {first_width}, kernel_size=3)" and large.stem[0].stride == (2, 2)
    body = [key for key in large.state_dict() if not key.startswith("stem.")]
    assert body == list(small.state_dict())


def test_resnet8_takes_the_stride_in_its_own_stem_so_its_weights_fit_every_size():
    small, large = models.resnet8(), models.resnet8(image_size=224)
    assert large.stem[0].stride == (2, 2) and isinstance(large.stem[3], nn.MaxPool2d)
    assert {key: value.shape for key, value in large.state_dict().items()} == \
           {key: value.shape for key, value in small.state_dict().items()}


@pytest.mark.parametrize(("name", "config", "size", "message"), [
    ("lenet5", {}, (11, 11), "lenet5: input size 11x11 is too small; it takes at least 12x12"),
    ("lenet5", {}, (28, 11), "lenet5: input size 28x11 is too small; it takes at least 12x12"),
    ("reference_cnn", {}, (3, 40), "reference_cnn: input size 3x40 is too small; it takes at least 4x4"),
    ("simple_cnn", {}, (5, 5), "simple_cnn: input size 5x5 is too small; it takes at least 6x6"),
    ("simple_cnn", {"kernel_size": 40}, (64, 64), "simple_cnn: input size 64x64 is too small; its stem makes it "
                                                  "32x32 and its layers take at least 41x41"),
])
def test_an_input_too_small_for_a_network_is_refused_naming_the_smallest(name, config, size, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        models.build(name, image_size=size, **config)
    smallest = int(message.rsplit("x", 1)[1])
    model = models.build(name, image_size=smallest, **config)  # and the smallest named runs
    assert forward(model, np.zeros((1, 1, smallest, smallest), np.float32)).shape == (1, 10)


@pytest.mark.parametrize(("size", "error", "message"), [
    (0, ValueError, r"lenet5: expected image_size >= 1, got 0"),
    ((28, 28, 3), TypeError, r"lenet5: expected image_size to be an int or a pair of ints, got \(28, 28, 3\)"),
    (28.0, TypeError, r"lenet5: expected image_size to be an int or a pair of ints, got 28.0"),
])
def test_an_image_size_that_is_no_size_is_refused(size, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        models.lenet5(image_size=size)


@requires_torch
@pytest.mark.parametrize("name", OLD)
def test_the_zoo_builds_the_same_network_in_pytorch_at_any_size(name, rng):
    ours = models.build(name, in_channels=3, image_size=(70, 64), classes=4)
    theirs = models.build(name, in_channels=3, image_size=(70, 64), classes=4, layers=bench.TorchLayers(torch))
    # eval: no dropout, drawn differently; float64: see check_twins (a ReLU input of 7e-9 flipped in float32)
    check_twins(ours.double(), theirs.double(), (2, 3, 70, 64), rng, train=False, steps=1, dtype=np.float64)


# ------------------------------------------------------------------ fine-tuning for other classes
def test_all_but_a_classifier_for_other_classes_is_loaded_and_the_layer_named():
    source = seeded(lambda: models.reference_cnn(classes=10), seed=1)
    target = seeded(lambda: models.reference_cnn(classes=3), seed=2)
    own = {key: value.copy() for key, value in target.state_dict().items()}
    assert models.load_all_but_classifier(target, source.state_dict()) == ["11"]
    for key, value in target.state_dict().items():
        expected = own[key] if key.startswith("11.") else source.state_dict()[key]
        np.testing.assert_array_equal(value, expected, err_msg=key)


def test_the_shipped_resnet8_starts_a_network_of_another_size_and_class_count():
    """resnet8's keys and shapes do not depend on the size: only its classifier differs."""
    model, shipped = models.resnet8(image_size=96, classes=4), pretrained.state_dict("resnet8")
    assert models.load_all_but_classifier(model, shipped) == ["fc"]
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(value, shipped[key], err_msg=key)


def test_weights_for_the_same_classes_load_whole():
    source, target = seeded(models.lenet5, seed=1), seeded(models.lenet5, seed=2)
    assert models.load_all_but_classifier(target, source.state_dict()) == []
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value, err_msg=key)


def test_any_other_difference_is_refused_and_nothing_is_loaded():
    target = seeded(lambda: models.reference_cnn(in_channels=3, classes=3), seed=2)
    before = {key: value.copy() for key, value in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"^load_state_dict for Sequential: wrong shapes: 0.weight: expected shape "
                                         r"\(32, 3, 3, 3\), got \(32, 1, 3, 3\)$"):
        models.load_all_but_classifier(target, models.reference_cnn().state_dict())
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


# ------------------------------------------------------------------ ONNX at any size
@pytest.mark.parametrize("name", OLD)
def test_a_64_pixel_colour_model_exports_to_onnx_and_loads_back(name, tmp_path):
    pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
    from convnet.onnx import load
    from convnet.onnx.export import export

    model = seeded(lambda: models.build(name, in_channels=3, image_size=64, classes=5))
    rng = np.random.default_rng(0)
    for module in model.modules():  # statistics away from 0 and 1, so that batch norm matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.data[...] = rng.normal(0, 0.3, module.num_features)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, module.num_features)
    x = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    expected = forward(model, x)
    path = tmp_path / f"{name}.onnx"
    export(model, path, (1, 3, 64, 64))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close_relative_to_scale(session.run(None, {"input": x})[0], expected)
    assert_close_relative_to_scale(forward(load(path), x), expected)
