"""The lesson at ImageNet scale: `convnet show` on torchvision's architectures (zoo or ONNX) and a
photograph of any size, drawn at 224 px with grids sized to the channel count, strongest maps
first; and `nn.summary` as torchinfo prints it."""

import re
from collections import OrderedDict

import numpy as np
import pytest
from conftest import requires
from PIL import Image

import convnet
from convnet import models, nn, viz
from convnet.experiment import show_input
from convnet.viz import lesson
from convnet.viz.imagenet_classes import IMAGENET_CLASSES
from convnet.viz.story import deeper_stages, strongest_first, top_classes

IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture
def photo(tmp_path):
    """A 400x300 colour picture: a horizontal gradient in red, shapes on it."""
    columns = np.linspace(0, 255, 400)
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[..., 0] = columns.round().astype(np.uint8)
    pixels[..., 1] = 90
    pixels[60:160, 50:150, 2] = 255
    pixels[180:280, 250:380, 1] = 230
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


# ------------------------------------------------------------------ preparing the photograph
def test_a_photo_is_resized_to_256_centre_cropped_to_224_and_normalised_as_torchvision_does(photo, tmp_path):
    image, notes = show_input.imagenet_input(photo)
    assert image.shape == (3, 224, 224) and image.dtype == np.float32
    assert any("resized 400x300 to 341x256" in note and "224x224" in note for note in notes)
    # 400 px -> 341 px, then 58 columns cut on the left: column c of the crop is column (c + 58.5) * 400 / 341
    # - 0.5 of the photo, whose red is that column * 255 / 399 (bilinear keeps a linear ramp where it is linear)
    red = image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    for column in (20, 112, 200):
        source = (column + 58 + 0.5) * 400 / 341 - 0.5
        assert red[5, column] == pytest.approx(source / 399, abs=2 / 255)
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((50, 90, 3), (10, 128, 250), np.uint8)).save(flat)  # smaller than 224: enlarged
    image, _ = show_input.imagenet_input(flat)
    expected = (np.array([10, 128, 250]) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(image.reshape(3, -1), np.repeat(expected[:, None], 224 * 224, axis=1), atol=1e-5)


def test_the_imagenet_class_names_are_torchvisions_in_its_order():
    from conftest import torchvision_models
    torchvision_models()  # skips without torchvision; opens it where its compiled ops cannot load
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    assert IMAGENET_CLASSES == tuple(_IMAGENET_CATEGORIES) and len(IMAGENET_CLASSES) == 1000


# ------------------------------------------------------------------ strongest first, top k
def test_maps_are_ranked_by_mean_absolute_value_ties_in_channel_order():
    maps = np.stack([np.full((3, 3), 0.5), np.full((3, 3), -3.0), np.full((3, 3), 2.0), np.full((3, 3), 2.0),
                     np.array([[6.0, -6.0, 0.0]] * 3)])  # mean |value| 4
    assert strongest_first(maps).tolist() == [4, 1, 2, 3, 0]
    probabilities = np.array([0.1, 0.4, 0.05, 0.4, 0.05])
    assert top_classes(probabilities, 3).tolist() == [1, 3, 0]


def test_the_grid_has_one_cell_per_map_square_to_the_count_strongest_first_numbered_by_channel():
    strengths = np.random.default_rng(0).permutation(64).astype(float)
    maps = np.repeat(strengths[:, None, None], 5, axis=1).repeat(5, axis=2)  # channel c: constant strengths[c]
    figure = lesson.maps_grid_figure(maps, "t", order=strongest_first(maps))
    axes = figure.axes[0]
    labels = [int(text.get_text()) for text in axes.texts]
    assert labels == np.argsort(-strengths).tolist()  # 64 cells, channel numbers strongest first
    mosaic = axes.images[0].get_array()
    gap = 1
    assert mosaic.shape == (8 * (5 + gap) - gap, 8 * (5 + gap) - gap)  # 8x8 cells for 64 maps
    tiles = [mosaic[row * 6, column * 6] for row in range(8) for column in range(8)]
    assert tiles == sorted(strengths, reverse=True)
    assert len(lesson.maps_grid_figure(maps[:10], "t").axes[0].texts) == 10  # 10 maps: 4 columns, 3 rows
    assert lesson.maps_grid_figure(maps[:10], "t").axes[0].images[0].get_array().shape == (3 * 6 - 1, 4 * 6 - 1)


def test_the_first_layers_story_and_pooling_follow_the_strongest_map_where_another_convolution_intervenes():
    """VGG's first pooling comes after its second convolution: the pooled maps are that layer's."""
    first, second = nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1)
    for conv, weights in ((first, [1.0, 3.0, 2.0]), (second, [[1, 1, 1], [-5, -5, -5]])):
        conv.weight.data[...] = np.asarray(weights, np.float32).reshape(conv.weight.shape)
        conv.bias.data[...] = 0
    story = viz.tell(nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), nn.MaxPool2d(2)), np.ones((1, 6, 6), np.float32))
    assert strongest_first(story.feature_maps).tolist() == [1, 2, 0]
    assert story.pooled_maps.shape == (2, 3, 3) and story.pooling.maximum == 6.0  # relu(1 + 3 + 2) wins over 0


def test_the_answer_of_1000_classes_draws_the_10_most_likely_named_most_likely_first():
    logits = np.random.default_rng(1).standard_normal(1000)
    probabilities = np.exp(logits) / np.exp(logits).sum()
    axes = lesson.probabilities_figure(probabilities, IMAGENET_CLASSES).axes[0]
    widths = [bar.get_width() for bar in axes.patches][::-1]  # drawn bottom up
    assert widths == sorted(probabilities, reverse=True)[:10]
    best = np.argsort(-probabilities)[:10]
    assert [label.get_text() for label in axes.get_yticklabels()][::-1] == [IMAGENET_CLASSES[i] for i in best]
    assert "10 most likely of 1000" in axes.get_title()


# ------------------------------------------------------------------ the stages, in nested modules
def test_deeper_stages_are_each_resolutions_outermost_output_not_a_module_holding_several():
    convnet.manual_seed(0)
    model = models.resnet8()  # residual blocks sum and ReLU in their forward, past their leaves
    records, _ = nn.record_outputs(model, np.zeros((1, 1, 28, 28), np.float32), containers=True)
    first = next(i for i, r in enumerate(records) if isinstance(r.module, nn.Conv2d))
    stages = deeper_stages(records, first)
    assert [name for name, _ in stages] == ["layers.1", "layers.2"]  # 14x14 and 7x7; 'layers' holds both
    block = dict(model.named_modules())["layers.2"]
    assert [maps.shape for _, maps in stages] == [(64, 14, 14), (128, 7, 7)]
    leaves, _ = nn.record_outputs(model, np.zeros((1, 1, 28, 28), np.float32))
    assert not any(r.module is block for r in leaves)  # a container's output: only recorded with containers


# ------------------------------------------------------------------ convnet show on real networks
def _check_pictures(written, out, stage_count, pooled):
    names = {path.name for path in written}
    expected = {"convolution.png", "sliding.gif", "feature_maps.png", "feature_maps_shared.png", "kernels.png",
                "kernels_channels.png", "probabilities.png", "index.html"}
    assert expected <= names and (("pooled_maps.png" in names) == pooled)
    assert len([name for name in names if name.startswith("deeper_")]) == stage_count
    for path in written:
        assert path.stat().st_size > 1_000
        if path.suffix == ".png":
            with Image.open(path) as picture:
                picture.verify()
    page = (out / "index.html").read_text()
    assert "strongest first (largest mean |value|" in page


@pytest.mark.slow
@pytest.mark.parametrize("name, stages, pooled", [("resnet18", ["layer1", "layer2", "layer3", "layer4"], True),
                                                  ("mobilenet_v3_small", None, False)])
def test_show_draws_an_imagenet_zoo_model_on_a_photo_at_224(name, stages, pooled, photo, tmp_path):
    shown = show_input.model_on_image(name, photo)
    assert shown.image.shape == (3, 224, 224) and shown.classes == IMAGENET_CLASSES
    story = viz.tell(shown.model, shown.image, classes=shown.classes)
    assert story.kernels.shape[1] == 3 and story.feature_maps.shape[1:] == (112, 112)
    assert story.probabilities.sum() == pytest.approx(1.0, rel=1e-5) and len(story.probabilities) == 1000
    assert (story.pooling is not None) == pooled
    if stages is not None:
        assert [layer for layer, _ in story.deeper] == stages
    sides = [maps.shape[1] for _, maps in story.deeper]
    assert sides == sorted(sides, reverse=True) and len(sides) == 4 and sides[-1] == 7
    out = tmp_path / "out"
    written = viz.show(shown.model, shown.image, out, shown.title, shown.classes, notes=shown.notes)
    _check_pictures(written, out, 4, pooled)
    if not pooled:
        assert "No max pooling" in (out / "index.html").read_text()


@pytest.mark.parametrize("classes", [1000, 4])
def test_show_draws_a_torchvision_checkpoint_with_its_weights_and_class_count(classes, photo, tmp_path, capsys):
    """`convnet show --model NAME --weights FILE.pth`: the file's weights, read without torch; ImageNet's
    class names for 1000 classes, numbered classes for a fine-tuned count."""
    from conftest import TORCH_MISSING, torch, torchvision_models
    if torch is None:
        pytest.skip(TORCH_MISSING)
    torch.manual_seed(0)
    state = torchvision_models().squeezenet1_1(num_classes=classes).state_dict()
    torch.save(state, tmp_path / "squeezenet.pth")
    shown = show_input.model_on_image("squeezenet1_1", photo, weights=tmp_path / "squeezenet.pth")
    for key, value in shown.model.state_dict().items():
        np.testing.assert_array_equal(value, state[key].numpy(), err_msg=key)
    assert shown.classes == (IMAGENET_CLASSES if classes == 1000 else ("class 0", "class 1", "class 2", "class 3"))
    assert shown.title == "squeezenet1_1 (squeezenet.pth) on a 224x224 photograph" and not shown.model.training
    from convnet.cli import main
    assert main(["show", "--model", "squeezenet1_1", str(photo), "--weights", str(tmp_path / "squeezenet.pth"),
                 "--out", str(tmp_path / "out")]) == 0
    assert f"note: squeezenet1_1 with the weights of {tmp_path / 'squeezenet.pth'}" in capsys.readouterr().out


def test_weights_that_do_not_fit_or_where_they_do_not_apply_are_refused_in_one_line(photo, tmp_path, capsys):
    from conftest import TORCH_MISSING, torch
    from convnet.cli import main
    if torch is None:
        pytest.skip(TORCH_MISSING)
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3)}, tmp_path / "other.pth")
    out = str(tmp_path / "out")
    assert main(["show", "--model", "squeezenet1_1", str(photo), "--weights", str(tmp_path / "other.pth"),
                 "--out", out]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"convnet: error: --weights {tmp_path / 'other.pth'}: not squeezenet1_1's weights: ")
    assert "\n" not in error and "conv.weight" in error
    assert main(["show", "--model", "reference_cnn", "--weights", str(tmp_path / "other.pth"), "--out", out]) == 1
    assert "expected with an ImageNet architecture named alone" in capsys.readouterr().err
    assert main(["show", "--lesson", "--weights", str(tmp_path / "other.pth"), "--out", out]) == 1
    assert "--weights is for an ImageNet architecture" in capsys.readouterr().err
    assert main(["show", "--model", "squeezenet1_1", "--weights", str(tmp_path / "none.pth"), "--out", out]) == 1
    assert "--weights" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.slow
@requires("onnx")
def test_show_takes_an_imported_onnx_imagenet_classifier_as_torchvisions(photo, tmp_path):
    from convnet.onnx import export
    convnet.manual_seed(0)
    model = nn.Sequential(OrderedDict(stem=nn.Sequential(nn.Conv2d(3, 8, 7, stride=4, padding=3), nn.BatchNorm2d(8),
                                                         nn.ReLU()),
                                      pool=nn.MaxPool2d(3, stride=2, padding=1),
                                      stage=nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
                                      head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000))))
    path = tmp_path / "net.onnx"
    export(model, path, (1, 3, 224, 224))
    shown = show_input.model_on_image(str(path), photo)
    assert shown.classes == IMAGENET_CLASSES and any("taken as an ImageNet classifier" in n for n in shown.notes)
    np.testing.assert_array_equal(shown.image, show_input.imagenet_input(photo)[0])
    out = tmp_path / "out"
    written = viz.show(shown.model, shown.image, out, shown.title, shown.classes, notes=shown.notes)
    _check_pictures(written, out, 1, pooled=True)
    story = viz.tell(shown.model, shown.image)
    with convnet.no_grad():
        logits = model.eval()(convnet.Tensor(shown.image[None])).numpy()[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(story.probabilities, expected, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ summary, as torchinfo prints it
def _row(text, label):
    line = next(line for line in text.splitlines() if line.lstrip("│ └─").startswith(label))
    return line.split()[-2:]  # (Param #, Mult-Adds)


def test_summary_counts_parameters_and_mult_adds_by_hand_and_limits_depth():
    model = nn.Sequential(OrderedDict(block=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)),
                                      relu=nn.ReLU(), pool=nn.MaxPool2d(2), flatten=nn.Flatten(),
                                      fc=nn.Linear(4 * 4 * 4, 10)))
    text = nn.summary(model, (2, 3, 8, 8))
    # conv: 4*3*3*3 + 4 = 112 parameters, each used at 2*8*8 positions; batch norm: 8, once an image;
    # linear: 64*10 + 10 = 650, once an image
    assert _row(text, "block.0 (Conv2d)") == ["112", f"{112 * 2 * 64:,}"]
    assert _row(text, "block.1 (BatchNorm2d)") == ["8", "16"]
    assert _row(text, "fc (Linear)") == ["650", "1,300"]
    assert _row(text, "relu (ReLU)") == ["--", "--"]
    lines = text.splitlines()
    assert lines[3].startswith("Sequential ") and lines[4].startswith("└─block (Sequential)")
    assert lines[5].startswith("│   └─block.0 (Conv2d)") and lines[7].startswith("└─relu (ReLU)")  # indented by depth
    assert "Total params: 770" in text and f"Total mult-adds (M): {(14336 + 16 + 1300) / 1e6:.2f}" in text
    shallow = nn.summary(model, (2, 3, 8, 8), depth=1)
    assert "block.0" not in shallow and _row(shallow, "block (Sequential)") == ["120", f"{14336 + 16:,}"]
    assert "Total params: 770" in shallow
    with pytest.raises(ValueError, match=r"summary: expected depth None or an integer >= 0, got -1"):
        nn.summary(model, (2, 3, 8, 8), depth=-1)


@pytest.mark.slow
def test_summary_of_resnet18_at_224_prints_torchinfos_figures():
    """torchinfo.summary(torchvision.models.resnet18(), (1, 3, 224, 224)) prints these (torchinfo 1.8)."""
    text = nn.summary(models.build("resnet18", in_channels=3, classes=1000), (1, 3, 224, 224), depth=3)
    for line in ("Total params: 11,689,512", "Trainable params: 11,689,512", "Non-trainable params: 0",
                 "Total mult-adds (G): 1.81", "Input size (MB): 0.60", "Forward/backward pass size (MB): 39.75",
                 "Params size (MB): 46.76", "Estimated Total Size (MB): 87.11"):
        assert line in text
    assert re.search(r"└─layer2\.0\.downsample \(Sequential\)\s+\(1, 128, 28, 28\)\s+8,448", text)  # depth 3: folded
    assert re.search(r"└─conv1 \(Conv2d\)\s+\(1, 64, 112, 112\)\s+9,408\s+118,013,952", text)


@pytest.mark.slow
def test_the_summary_command_describes_an_imagenet_zoo_model_at_224_to_a_depth(capsys):
    from convnet.cli import main
    assert main(["summary", "--model", "resnet18", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resnet18 as torchvision builds it (3x224x224 images, 1000 classes)\n")
    # torchinfo at depth 1: layer1 (Sequential: 1-5) [1, 64, 56, 56] 147,968, its blocks folded into it
    assert re.search(r"\n└─layer1 \(Sequential\)\s+\(1, 64, 56, 56\)\s+147,968", out) and "layer1.0" not in out
    assert "Total params: 11,689,512" in out and "Input shape: (1, 3, 224, 224)" in out
