"""The shapes dataset: its folder layout, its determinism, and shapes that have the right geometry
(areas and second moments against their formulas)."""

import importlib
import math
import os

import numpy as np
import pytest
from PIL import Image

from convnet.data.shapes import CLASSES, sample, shape_mask, shapes

# convnet.data.shapes is the function (convnet.data exports it); the module, for monkeypatching:
shapes_module = importlib.import_module("convnet.data.shapes")


def files_under(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_writes_an_image_folder_of_rgb_pngs(tmp_path):
    line = shapes(tmp_path / "data", per_class=3, val_per_class=2, size=48, seed=5)
    assert line == (f"shapes: 4 classes (circle, square, triangle, star), 48x48 RGB, 12 training / 8 validation "
                    f"images, seed 5, in {tmp_path / 'data'}")
    assert sorted(os.listdir(tmp_path / "data")) == ["train", "val"]  # no temporary folder left
    for split, count in (("train", 3), ("val", 2)):
        assert sorted(os.listdir(tmp_path / "data" / split)) == sorted(CLASSES)
        for kind in CLASSES:
            names = sorted(os.listdir(tmp_path / "data" / split / kind))
            assert names == [f"{index:05d}.png" for index in range(count)]
            for name in names:
                with Image.open(tmp_path / "data" / split / kind / name) as image:
                    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (48, 48))


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    shapes(tmp_path / "a", per_class=2, val_per_class=1, seed=3)
    shapes(tmp_path / "b", per_class=2, val_per_class=1, seed=3)
    shapes(tmp_path / "c", per_class=2, val_per_class=1, seed=4)
    first, again, other = (files_under(tmp_path / name) for name in "abc")
    assert len(first) == 12 and first == again
    assert first.keys() == other.keys() and all(first[name] != other[name] for name in first)
    shapes(tmp_path / "d", per_class=3, val_per_class=0, seed=3)  # more images: the first ones unchanged
    assert files_under(tmp_path / "d")["train/star/00001.png"] == first["train/star/00001.png"]
    assert not (tmp_path / "d" / "val").exists()


def _moments(mask):
    """(area, centre x, centre y, variance along x, variance along y) of a coverage mask."""
    weight = mask.astype(np.float64) / 255
    rows, columns = np.mgrid[0:mask.shape[0], 0:mask.shape[1]] + 0.5  # pixel centres
    area = weight.sum()
    x, y = (weight * columns).sum() / area, (weight * rows).sum() / area
    return area, x, y, (weight * (columns - x) ** 2).sum() / area, (weight * (rows - y) ** 2).sum() / area


@pytest.mark.parametrize("centre, radius", [((32.0, 32.0), 20.0), ((20.3, 41.7), 9.5), ((33.1, 30.6), 13.25)])
def test_a_circle_is_round(centre, radius):
    area, x, y, var_x, var_y = _moments(shape_mask("circle", 64, centre, radius))
    assert area == pytest.approx(math.pi * radius ** 2, rel=0.01)
    assert (x, y) == (pytest.approx(centre[0], abs=0.15), pytest.approx(centre[1], abs=0.15))
    # A disc's second moment about its centre is r^2 / 4 along every axis.
    assert var_x == pytest.approx(radius ** 2 / 4, rel=0.02) and var_y == pytest.approx(radius ** 2 / 4, rel=0.02)


def test_a_square_has_side_twice_the_radius():
    mask = shape_mask("square", 64, (30.0, 34.0), 10.0)
    assert mask.sum() / 255 == pytest.approx(400, rel=0.001)
    assert (mask[24:44, 20:40] == 255).all() and mask.sum() == mask[24:44, 20:40].sum()
    _, _, _, var_x, var_y = _moments(mask)
    assert var_x == pytest.approx(10.0 ** 2 / 3, rel=0.01) and var_y == pytest.approx(10.0 ** 2 / 3, rel=0.01)


@pytest.mark.parametrize("kind, area_per_r2, symmetry", [
    ("triangle", 3 * math.sqrt(3) / 4, 120.0), ("star", 5 * 0.45 * math.sin(math.pi / 5), 72.0)])
def test_triangles_and_stars_have_their_area_and_turn(kind, area_per_r2, symmetry):
    radius, centre = 22.0, (32.0, 32.0)
    upright = shape_mask(kind, 64, centre, radius)
    area, x, y, _, _ = _moments(upright)
    assert area == pytest.approx(area_per_r2 * radius ** 2, rel=0.03)
    # Centroid on the centre (both shapes are symmetric about it); a point straight up, reaching the
    # circle of the radius, and the lowest points (n of them around) at cos(180 / n degrees) below.
    assert (x, y) == (pytest.approx(32.0, abs=0.3), pytest.approx(32.0, abs=0.3))
    covered_rows = np.flatnonzero(upright.any(axis=1))
    lowest = 32 + radius * math.cos(math.pi / (3 if kind == "triangle" else 5))
    assert covered_rows[0] == pytest.approx(32 - radius, abs=1) and covered_rows[-1] + 1 == pytest.approx(lowest, abs=1)
    turned_by_symmetry = shape_mask(kind, 64, centre, radius, rotation=symmetry)
    turned_half = shape_mask(kind, 64, centre, radius, rotation=symmetry / 2)
    difference = np.abs(upright.astype(int) - turned_by_symmetry).sum() / 255
    assert difference < 0.02 * area < 0.3 * area < np.abs(upright.astype(int) - turned_half).sum() / 255


def test_a_sample_is_uint8_rgb_and_a_function_of_its_generator():
    image = sample("star", 40, np.random.default_rng(1))
    assert image.dtype == np.uint8 and image.shape == (40, 40, 3)
    np.testing.assert_array_equal(image, sample("star", 40, np.random.default_rng(1)))
    assert image.std() > 10  # colours and noise, not a flat picture


def test_bad_arguments_and_an_existing_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shapes: expected per_class to be an int >= 1, got 0"):
        shapes(tmp_path, per_class=0)
    with pytest.raises(ValueError, match=r"shapes: expected size to be an int >= 16, got 8"):
        shapes(tmp_path, size=8)
    with pytest.raises(ValueError, match=r"shapes: unknown shape 'hexagon'; expected one of circle, square"):
        shape_mask("hexagon", 64, (32, 32), 10)
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=rf"shapes: {tmp_path / 'val'} already exists; expected a folder without"):
        shapes(tmp_path, per_class=1)


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    drawn = []

    def failing(kind, size, rng):
        drawn.append(kind)
        if len(drawn) == 5:
            raise OSError("disk full")
        return np.zeros((size, size, 3), np.uint8)

    monkeypatch.setattr(shapes_module, "sample", failing)
    with pytest.raises(OSError, match="disk full"):
        shapes(tmp_path / "data", per_class=3, val_per_class=1)
    assert os.listdir(tmp_path / "data") == []
