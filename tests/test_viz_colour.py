"""The pictures of colour networks: kernels drawn in their weights' colours, large inputs drawn
under a size cap, class names in any script, the greyscale pictures unchanged, and the lesson's
pictures drawn from PyTorch's maps."""

import hashlib
import io
from dataclasses import replace

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import convnet
from convnet import models, viz
from convnet.data import read_image, shapes, transforms
from convnet.errors import InvalidValue
from convnet.viz import colour, lesson, snapshots
from convnet.viz.figures import HANGUL_FONTS, fonts_for, png_bytes


def pixels(png):
    return np.asarray(Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB"))


def digest(path):
    """sha256 of a PNG's decoded pixels (not its bytes, which carry matplotlib's version). The digests
    below were recorded with matplotlib 3.11.2's own DejaVu Sans: another matplotlib may draw text
    differently, and then they are recorded again from the code before the change under test."""
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()[:16]


def test_kernel_patches_scale_each_kernels_three_channels_together_by_hand():
    kernel = np.array([[[0.0, 2.0]], [[1.0, 1.0]], [[-2.0, 0.0]]])  # (3, 1, 2): min -2, max 2 over all channels
    flat = np.full((3, 1, 2), 0.3)
    patches = colour.kernel_patches(np.stack([kernel, flat]))
    assert patches.shape == (2, 1, 2, 3)
    np.testing.assert_allclose(patches[0, 0], [[0.5, 0.75, 0.0], [1.0, 0.75, 0.5]])
    np.testing.assert_allclose(patches[1], 0.5)  # all weights equal: mid-grey
    with pytest.raises(InvalidValue, match=r"expected kernels of shape \(K, 3, kH, kW\), got \(2, 1, 3, 3\)"):
        colour.kernel_patches(np.zeros((2, 1, 3, 3)))


def test_a_kernel_positive_in_red_only_draws_pure_red_and_one_negative_in_red_draws_cyan():
    kernels = np.zeros((2, 3, 5, 5))
    kernels[0, 0] = 0.4
    kernels[1, 0] = -0.4
    drawn = pixels(png_bytes(colour.colour_kernels_figure(kernels, "two kernels")))
    red = np.all(drawn == (255, 0, 0), axis=-1).sum()
    cyan = np.all(drawn == (0, 255, 255), axis=-1).sum()
    assert red > 1000 and cyan > 1000 and abs(red - cyan) < 0.1 * red  # two patches of the same size


def test_the_channels_picture_puts_each_channel_in_its_row_on_one_signed_scale():
    kernels = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2) - 10
    tiled = colour.channels_mosaic(kernels)
    assert tiled.shape == (3 * 3 + 1 - 2, 2 * 3 - 1)
    for channel in range(3):
        np.testing.assert_array_equal(tiled[3 * channel:3 * channel + 2, 0:2], kernels[0, channel])
        np.testing.assert_array_equal(tiled[3 * channel:3 * channel + 2, 3:5], kernels[1, channel])
    image = colour.kernel_channels_figure(kernels, "channels").axes[0].images[0]
    assert image.norm.vmin == -13 and image.norm.vmax == 13  # weights -10 to 13: symmetric about 0
    assert [label.get_text() for label in colour.kernel_channels_figure(kernels, "c").axes[0].get_yticklabels()] == \
        ["0-1  R", "G", "B"]


def test_shrink_averages_blocks_and_repeats_the_edge():
    maps = np.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_allclose(colour.shrink(maps, 2)[0], [[2.5, 4.5], [10.5, 12.5]])
    odd = np.arange(15.0).reshape(1, 5, 3)  # factor 3: rows 0-2, then rows 3, 4 and 4 again
    np.testing.assert_allclose(colour.shrink(odd, 2)[0],
                               [[np.arange(9.0).mean()], [(9 + 10 + 11 + 2 * (12 + 13 + 14)) / 9]])
    assert colour.shrink(maps, 4) is maps


def test_show_averages_maps_over_the_cap_down_and_keeps_smaller_ones_whole():
    large = np.random.default_rng(0).random((2, 3 * colour.MAP_PIXELS - 30, 3 * colour.MAP_PIXELS))
    drawn = lesson.maps_grid_figure(large, "large").axes[0].images[0].get_array()
    gap = (colour.MAP_PIXELS - 10) // 12  # the grid's gap grows with the (shrunk) tile
    # averaged over 3 x 3 blocks (the fewest under the cap), in 2 columns (ceil(sqrt(2 * 1.4)))
    assert drawn.shape == (colour.MAP_PIXELS - 10, 2 * colour.MAP_PIXELS + gap)
    np.testing.assert_allclose(drawn[0, 0], large[0, :3, :3].mean())
    small = np.random.default_rng(0).random((2, 247, 247))  # the lesson's maps: under the cap, drawn as they are
    np.testing.assert_array_equal(lesson.maps_grid_figure(small, "small").axes[0].images[0].get_array()[:247, :247],
                                  small[0])


def test_colour_snapshots_draw_the_weights_colour_on_one_scale_and_stay_small():
    kernels = np.zeros((4, 3, 3, 3))
    kernels[0, 0] = 0.2   # the largest weight: full red over grey
    drawn = pixels(snapshots.kernels_png(kernels))
    scale = snapshots.TILE_PIXELS // 3  # each weight drawn as a 12 x 12 block; 3 columns of 3 px tiles, 1 px gaps
    assert drawn.shape == (2 * 4 * scale - scale, 3 * 4 * scale - scale, 3)
    assert tuple(drawn[0, 0]) == (255, 128, 128)
    assert tuple(drawn[0, 3 * scale]) == tuple(drawn[-1, -1]) == (255, 255, 255)  # between and after the tiles: white
    assert tuple(drawn[0, 4 * scale]) == (128, 128, 128)  # kernel 1, all zero: grey
    red_image = np.zeros((3, 600, 600))
    red_image[0] = 1.0
    image = Image.open(io.BytesIO(snapshots.image_png(red_image)))
    assert image.mode == "RGB" and image.size == (200, 200)  # 600 px averaged down by 3, under the cap
    assert tuple(np.asarray(image)[100, 100]) == (255, 0, 0)
    maps = Image.open(io.BytesIO(snapshots.feature_maps_png(np.random.default_rng(0).random((32, 224, 224)))))
    # 224 px averaged by 5 (the fewest blocks under 48 px) to 45 px tiles, 7 columns (ceil(sqrt(32 * 1.4))), 5 rows
    assert maps.size == (7 * 46 - 1, 5 * 46 - 1)


def test_the_greyscale_snapshots_are_unchanged_pixel_for_pixel(tmp_path):
    image = np.random.default_rng(5).random((1, 28, 28), dtype=np.float32)
    for name, png, expected in [
            ("k", snapshots.kernels_png(np.random.default_rng(1).standard_normal((6, 5, 5))), "f184ca8b89e98188"),
            ("k4", snapshots.kernels_png(np.random.default_rng(1).standard_normal((6, 1, 5, 5))), "f184ca8b89e98188"),
            ("m", snapshots.feature_maps_png(np.random.default_rng(2).standard_normal((6, 24, 24))),
             "585674d7db51b6f1"),
            ("i", snapshots.image_png(image), "61360e98d4b49b91")]:
        (tmp_path / f"{name}.png").write_bytes(png)
        assert digest(tmp_path / f"{name}.png") == expected, name


@pytest.mark.slow
def test_the_greyscale_pictures_are_unchanged_pixel_for_pixel(tmp_path):
    convnet.manual_seed(3)
    model = models.reference_cnn(batch_norm=False)
    image = np.random.default_rng(5).random((1, 28, 28), dtype=np.float32)
    viz.show(model, image, tmp_path, "t", tuple("abcdefghij"))
    # drawn by the code before colour pictures existed; the grids (feature maps, kernels) as issue 31
    # draws them: ceil(sqrt(count)) columns, the maps strongest first
    recorded = {"convolution.png": "5eb36ad579a29468", "feature_maps.png": "cda973641242d326",
                "kernels.png": "39274da9473fbcd6", "probabilities.png": "6ac64d9d78af5296",
                "pooling.png": "4776c42af816b2ac"}
    assert {name: digest(tmp_path / name) for name in recorded} == recorded
    assert not (tmp_path / "kernels_channels.png").exists()


@pytest.mark.slow
def test_the_lesson_draws_pytorchs_feature_maps(tmp_path):
    """The lesson's 100 maps of 247 px come from a BLAS product whose rounding depends on the CPU,
    so the pictures drawn from them are compared, not hashed: with the maps and the shown map's
    values replaced by PyTorch's (float64, rounded to float32), `render` draws the same pictures
    up to a few pixels a rounding tips over a colour step. The kernels are the seeded weights
    themselves and stay exact."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the lesson's maps")
    convnet.manual_seed(0)  # as `convnet show --lesson` does (experiment.lesson_on_image)
    model = models.lesson_network()
    photograph, _ = read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), size=(256, 256),
                               channels=1, crop=True)
    image = transforms.unit_range(photograph)
    viz.show(model, image, tmp_path / "ours", "lesson")
    assert digest(tmp_path / "ours" / "kernels.png") == "9d216bb1b595638f"  # issue 31's grid
    story = viz.tell(model, image)
    conv = model[0]
    maps = torch.nn.functional.conv2d(*(torch.from_numpy(np.asarray(a, np.float64)) for a in (
        image[None], conv.weight.data, conv.bias.data)))[0].numpy().astype(np.float32)
    step = story.convolution
    shown = maps[step.map_index]
    theirs = replace(story, feature_maps=maps, convolution=replace(
        step, feature_map=shown, values=[shown[position] for position in step.positions]))
    viz.render(theirs, tmp_path / "theirs", "lesson")
    for name in ("feature_maps.png", "convolution.png"):
        ours, expected = (pixels(tmp_path / folder / name).astype(int) for folder in ("ours", "theirs"))
        assert ours.shape == expected.shape, name
        off = np.abs(ours - expected).max(axis=-1)
        assert (off > 0).mean() < 1e-4 and off.max() <= 8, (name, int((off > 0).sum()), int(off.max()))


@pytest.fixture(scope="module")
def shape_image(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    shapes(root, per_class=1, val_per_class=1, size=64, seed=0)
    return sorted(root.rglob("*.png"))[0]


@pytest.mark.slow
def test_a_224_px_colour_input_draws_in_colour_under_a_size_cap(shape_image, tmp_path):
    convnet.manual_seed(0)
    model = models.build("reference_cnn", in_channels=3, image_size=(224, 224), classes=4)
    image, _ = read_image(shape_image, size=(224, 224), channels=3)
    image = transforms.unit_range(image)
    written = viz.show(model, image, tmp_path, "colour", ("circle", "square", "triangle", "star"))
    names = {path.name for path in written}
    assert {"kernels.png", "kernels_channels.png", "feature_maps.png", "convolution.png"} <= names
    for path in written:
        if path.suffix == ".png":
            picture = Image.open(path)
            assert picture.mode == "RGBA" and picture.width <= 1600 and picture.height <= 1300, path.name
    story = viz.tell(model, image)
    drawn_kernel = lesson.convolution_figure(story).axes[1].images[0].get_array()
    np.testing.assert_allclose(drawn_kernel, colour.kernel_patches(story.kernels)[story.convolution.map_index])
    shown_input = lesson.convolution_figure(story).axes[0].images[0].get_array()
    assert shown_input.shape == (224, 224, 3)


def label_strip(classes, language="en"):
    """The left part of a probabilities picture, where the class names are drawn."""
    drawn = pixels(png_bytes(lesson.probabilities_figure(np.array([0.7, 0.3]), classes, language)))
    return drawn[:, :80]


def test_hangul_class_names_draw_their_glyphs_in_an_english_picture():
    families = fonts_for("고양이", "en")
    assert families[0] == "DejaVu Sans" and set(families[1:]) & set(HANGUL_FONTS)
    assert fonts_for("cat", "en") is None  # pictures without such names stay as they were
    # Empty boxes would draw two names of as many syllables alike; real glyphs differ.
    assert not np.array_equal(label_strip(("고양이", "강아지")), label_strip(("토끼야", "여우야")))
    assert (label_strip(("고양이", "강아지")) < 128).any()  # something dark is drawn


def test_emoji_and_other_scripts_in_class_names_draw_without_failing():
    assert not np.array_equal(label_strip(("🐱 cat", "dog")), label_strip(("cat", "dog")))  # the cat face is drawn
    strip = label_strip(("⭐ star", "別 ★"), "ko")  # a star no installed font may have: a box at worst, never an error
    assert strip.shape[2] == 3 and (strip < 128).any()


def test_the_step_log_draws_a_colour_networks_kernels_from_every_input_channel():
    from convnet import models
    from convnet.reports import first_convolution
    model = models.build("lenet5", in_channels=3, image_size=32, classes=4)
    kernels, maps = first_convolution(model, np.zeros((1, 3, 32, 32), np.float32))
    assert kernels.shape == tuple(model[0].weight.shape) and kernels.shape[1] == 3
    assert np.array_equal(kernels, model[0].weight.data) and maps.shape[0] == kernels.shape[0]
