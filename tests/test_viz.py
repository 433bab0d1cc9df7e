"""The pictures show the model's real numbers, every file is written and valid, and the HTML
page loads all its images in a real browser without touching the network."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import convnet
import convnet.functional as F
from convnet import Tensor, models, nn, viz
from convnet.cli import main
from convnet.language import words


@pytest.fixture
def image(rng):
    return rng.random((1, 28, 28), dtype=np.float32)


def test_story_numbers_are_the_forward_pass_numbers(image):
    convnet.manual_seed(1)
    model = models.reference_cnn(batch_norm=False)
    story = viz.tell(model, image, classes=("a",) * 10)
    conv = model[0]
    expected_maps = F.conv2d(Tensor(image[None]), conv.weight, conv.bias, padding=1).numpy()[0]
    np.testing.assert_allclose(story.feature_maps, expected_maps, rtol=1e-6, atol=1e-6)
    step = story.convolution
    for (row, col), (top, left, height, width), value in zip(step.positions, step.windows, step.values):
        padded = np.pad(image[0], 1)
        window = padded[top + 1:top + 1 + height, left + 1:left + 1 + width]
        by_hand = (window * conv.weight.numpy()[step.map_index, 0]).sum() + conv.bias.numpy()[step.map_index]
        assert value == pytest.approx(by_hand, rel=1e-5, abs=1e-5)
        assert value == expected_maps[step.map_index, row, col]
    expected_pooled = F.max_pool2d(F.relu(Tensor(expected_maps[None])), 2).numpy()[0]
    np.testing.assert_allclose(story.pooled_maps, expected_pooled, rtol=1e-6)
    p = story.pooling
    top, left, height, width = p.window
    neighbourhood = p.feature_map[top:top + height, left:left + width]
    assert p.maximum == neighbourhood.max() == p.feature_map[p.winner]
    assert p.pooled[p.output_position] == p.maximum
    # the deeper stage at 14x14: the last output of that size, the ReLU after the second convolution
    assert [name for name, _ in story.deeper] == ["4"]
    second = model[3]
    expected_deeper = F.relu(F.conv2d(Tensor(expected_pooled[None]), second.weight, second.bias, padding=1)).numpy()[0]
    np.testing.assert_allclose(story.deeper[0][1], expected_deeper, rtol=1e-5, atol=1e-5)
    assert story.probabilities.sum() == pytest.approx(1.0, rel=1e-5) and len(story.probabilities) == 10


def test_with_test_time_mirroring_the_answer_averages_the_image_and_its_mirror_image(image):
    convnet.manual_seed(1)
    model = models.reference_cnn(batch_norm=False)
    story = viz.tell(model, image, mirror=True)
    with convnet.no_grad():
        both = model(Tensor(image[None])).numpy() + model(Tensor(image[None, ..., ::-1].copy())).numpy()
    np.testing.assert_allclose(story.probabilities, F.softmax(Tensor(both / 2), dim=1).numpy()[0], rtol=1e-5)
    assert story.mirrored and not viz.tell(model, image).mirrored
    assert not np.allclose(story.probabilities, viz.tell(model, image).probabilities, rtol=1e-3)
    titles = [viz.lesson.probabilities_figure(story.probabilities, (), mirrored=mirrored).axes[0].get_title()
              for mirrored in (False, True)]
    assert titles == [words("en")["probabilities.title"], words("en")["probabilities.mirrored"]]


def test_bad_models_and_layers_are_refused(image):
    with pytest.raises(ValueError, match="has no Conv2d layer, so there is no convolution to show"):
        viz.tell(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), image)
    with pytest.raises(ValueError, match=r"layer index 2 is out of range: the model has 2 convolution layers \(0 to 1\)"):
        viz.tell(models.lenet5(), image, layer=2)


def test_render_writes_valid_pngs_a_gif_and_a_self_contained_page(image, tmp_path):
    model = models.lenet5()
    story = viz.tell(model, image, layer=0, classes=tuple("abcdefghij"))
    written = viz.render(story, tmp_path, "test page", summary=nn.summary(model, (1, 1, 28, 28)))
    names = {path.name for path in written}
    assert {"convolution.png", "sliding.gif", "feature_maps.png", "feature_maps_shared.png", "pooling.png",
            "pooled_maps.png", "kernels.png", "deeper_4.png", "probabilities.png", "index.html"} <= names
    for path in written:
        assert 1_000 < path.stat().st_size < 5_000_000, path
        if path.suffix in (".png", ".gif"):
            with Image.open(path) as picture:
                picture.verify()
    with Image.open(tmp_path / "sliding.gif") as gif:
        assert gif.n_frames > 10
    html = (tmp_path / "index.html").read_text()
    assert html.count("<img ") == len([p for p in written if p.suffix in (".png", ".gif")])
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", html) and "url(" not in html


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.system
@pytest.mark.skipif(not chromium() and not os.environ.get("CI"), reason="needs Debian's chromium (make test installs it)")
def test_the_page_loads_every_image_in_headless_chromium_without_network(image, tmp_path):
    viz.render(viz.tell(models.lenet5(), image), tmp_path / "page", "browser test")
    probe = tmp_path / "probe.html"
    probe.write_text((tmp_path / "page" / "index.html").read_text().replace("</body>", """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  const fetched = performance.getEntriesByType('resource').map(r => r.name);
  document.body.setAttribute('data-result', JSON.stringify({images, fetched}));
});
</script></body>"""))
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"data-result=\"([^\"]*)\"", result.stdout)
    assert found, result.stderr[-2000:]
    import html as html_module
    import json
    outcome = json.loads(html_module.unescape(found.group(1)))
    assert len(outcome["images"]) >= 8 and all(outcome["images"]), outcome
    assert outcome["fetched"] == []


def test_show_command_for_a_model_with_an_rgb_image(tmp_path, capsys):
    picture = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(picture)
    assert main(["show", "lenet5", str(picture), "--out", str(tmp_path / "out"), "--layer", "1"]) == 0
    out = capsys.readouterr().out
    assert "converted RGB to grayscale" in out and "resized 50x40 to 28x28" in out
    assert (tmp_path / "out" / "index.html").exists()


@pytest.mark.parametrize("argv, message", [
    (["show", "lenet5", "missing.png"], "missing.png: no such file"),
    (["show", "lenet5", "--layer", "5"], "layer index 5 is out of range"),
    (["show", "vgg"], "vgg is neither a run folder, a model (lenet5, "),
    (["show"], "show takes RUN_DIR, MODEL or MODEL.onnx"),
])
def test_show_bad_input_is_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_show_an_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["show", "lenet5", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert f"{bad}: not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # a refused input leaves no empty folder behind


@pytest.mark.slow
def test_show_lesson_on_the_bundled_photograph(tmp_path, capsys):
    assert main(["show", "--lesson", "--out", str(tmp_path / "lesson")]) == 0
    out = capsys.readouterr().out
    assert "grace_hopper.jpg: converted RGB to grayscale" in out and "cropped 512x600 to the centred 512x512" in out
    assert "resized 512x512 to 256x256" in out  # not squashed: the face keeps its proportions
    html = (tmp_path / "lesson" / "index.html").read_text()
    assert "100 kernels of 10x10" in html and "All 100 feature maps" not in html  # titles live in the PNGs
    with Image.open(tmp_path / "lesson" / "feature_maps.png") as maps:
        assert maps.size[0] > 1000  # a 10x10 grid of 247x247 maps


@pytest.mark.slow
def test_show_a_run_without_an_image_uses_a_test_image(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(tiny_fashion), "--epochs", "1", "--out", str(run_dir), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", str(run_dir), "--data", str(tiny_fashion), "--out", str(tmp_path / "show")]) == 0
    assert "no IMAGE given: the first fashion-mnist test image" in capsys.readouterr().out
    html = (tmp_path / "show" / "index.html").read_text()
    assert "curves.png" in html and "probabilities.png" in html


def test_learning_curves_plot_the_history_and_say_how_train_was_measured():
    history = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 0.5 / e, "train_accuracy": 0.5 + e / 10,
                "test_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]
    figure = viz.curves_figure(history, ["augmented", "label smoothing 0.1"])
    loss_axes, accuracy_axes = figure.axes
    train_line, test_line = loss_axes.get_lines()
    assert list(train_line.get_ydata()) == [1.0, 0.5, 1.0 / 3] and list(test_line.get_xdata()) == [1, 2, 3]
    assert [line.get_label() for line in accuracy_axes.get_lines()] == [
        "train (augmented, label smoothing 0.1)", "test"]
    assert [line.get_label() for line in viz.curves_figure(history).axes[0].get_lines()] == ["train", "test"]


def test_examples_stay_inside_the_image_away_from_zero_paddings_artefacts():
    """A kernel of -1s over a uniform image answers -9 inside but -6 and -4 along the border, where
    the zero padding drops terms: the strongest responses are artefacts there. The convolution's
    three windows lie wholly inside the image and the pooling neighbourhood clear of that ring."""
    conv = nn.Conv2d(1, 1, 3, padding=1)
    conv.weight.data[...] = -1.0
    conv.bias.data[...] = 0.0
    model = nn.Sequential(conv, nn.MaxPool2d(2))
    story = viz.tell(model, np.ones((1, 12, 12), np.float32))
    assert story.feature_maps[0].max() == -4.0  # the artefact is the maximum
    for top, left, height, width in story.convolution.windows:
        assert top >= 0 and left >= 0 and top + height <= 12 and left + width <= 12
    assert set(story.convolution.values) == {-9.0}
    top, left, height, width = story.pooling.window
    assert top >= 1 and left >= 1 and top + height <= 11 and left + width <= 11 and story.pooling.maximum == -9.0


def _pixels(png):
    import io
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def _colour(name, value):
    import matplotlib
    return (np.asarray(matplotlib.colormaps[name](value)[:3]) * 255).round().astype(int)


def test_snapshot_kernels_share_one_signed_scale_pixel_for_pixel():
    from convnet.viz.snapshots import TILE_PIXELS, kernels_png
    kernels = np.array([[[2.0, -2.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])  # 2x2 kernels: 18 pixels each
    pixels = _pixels(kernels_png(kernels))
    scale = TILE_PIXELS // 2
    assert pixels.shape == (2 * scale, 5 * scale, 3)  # two 2x2 tiles side by side, one white column between

    def at(tile, row, col):
        return pixels[row * scale, (tile * 3 + col) * scale]
    assert (at(0, 0, 0) == _colour("RdBu_r", 1.0)).all() and (at(0, 0, 1) == _colour("RdBu_r", 0.0)).all()
    assert (at(0, 1, 0) == _colour("RdBu_r", 0.5)).all() and (at(1, 0, 0) == _colour("RdBu_r", 0.625)).all()
    assert (pixels[0, 2 * scale] == 255).all()  # the gap


def test_snapshot_feature_maps_each_span_their_own_range():
    from convnet.viz.snapshots import feature_maps_png
    maps = np.stack([np.arange(64.0).reshape(8, 8), 1000 + 0.001 * np.arange(64.0).reshape(8, 8)])
    pixels = _pixels(feature_maps_png(maps))
    for tile in range(2):
        left = tile * 9 * (36 // 8)
        assert (pixels[0, left] == _colour("viridis", 0.0)).all()
        assert (pixels[8 * 4 - 1, left + 8 * 4 - 1] == _colour("viridis", 1.0)).all()


def test_each_window_is_where_its_output_came_from_padding_and_stride_included(image):
    """Output (r, c) is the sum of the kernel times the padded input under the window, plus the bias."""
    conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
    story = viz.tell(nn.Sequential(conv), image)
    step = story.convolution
    padded = np.pad(image[0].astype(np.float64), 1)
    for row, col in [(0, 0), (3, 5), (13, 13)]:
        top, left, height, width = step.window(row, col)
        under = padded[top + 1:top + 1 + height, left + 1:left + 1 + width]
        expected = (under * conv.weight.data[step.map_index, 0]).sum() + conv.bias.data[step.map_index]
        assert step.feature_map[row, col] == pytest.approx(expected, rel=1e-5, abs=1e-6)
