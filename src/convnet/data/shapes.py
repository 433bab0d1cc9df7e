"""A small colour dataset made on the spot: circles, squares, triangles and stars.

Each image is a shape of a random colour, size and position (triangles and stars also turned by
a random angle) on a noisy background of two random colours blended along a random direction,
drawn with Pillow's ImageDraw at 4x the size and averaged down (smooth edges). Every image is a
function of (seed, split, class, index) alone, so the same seed writes the same bytes.

>>> import tempfile
>>> from convnet.data.shapes import shapes
>>> print(shapes(tempfile.mkdtemp(), per_class=2, val_per_class=1).split(", in ")[0])
shapes: 4 classes (circle, square, triangle, star), 64x64 RGB, 8 training / 4 validation images, seed 0
"""

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InvalidValue

CLASSES = ("circle", "square", "triangle", "star")
SPLITS = ("train", "val")
SUPERSAMPLE = 4  # drawn at 4x and averaged down: edges 16 levels deep
STAR_INNER = 0.45  # a star's inner radius over its outer one
RADIUS = (0.14, 0.34)  # a shape's radius, as a fraction of the image's side
BACKGROUND_NOISE = 14.0  # standard deviation of the pixel noise, in 0..255 levels
MIN_CONTRAST = 110.0  # least RGB distance between a shape's colour and its background's mean


def shapes(root, per_class=1000, val_per_class=100, size=64, seed=0):
    """Write the shapes dataset as an image folder and return a one-line summary of it.

    Layout (torchvision's ImageFolder, Keras' image_dataset_from_directory): ``root/train/<class>/
    00000.png`` with ``per_class`` images per class and ``root/val/<class>/00000.png`` with
    ``val_per_class`` (none when 0); RGB PNGs of ``size`` x ``size`` pixels. The folders are
    written aside and moved into ``root`` once complete; ``root`` must not hold them already.
    """
    for name, value, least in (("per_class", per_class, 1), ("val_per_class", val_per_class, 0), ("size", size, 16)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise InvalidValue(f"shapes: expected {name} to be an int >= {least}, got {value!r}")
    root = Path(root)
    counts = {"train": per_class, "val": val_per_class}
    for split in SPLITS:
        if (root / split).exists():
            raise InvalidValue(f"shapes: {root / split} already exists; expected a folder without train/ or val/ "
                               f"(remove them, or choose another folder)")
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=root, prefix=".shapes.", suffix=".part"))
    try:
        for split_index, split in enumerate(SPLITS):
            for class_index, kind in enumerate(CLASSES):
                if counts[split] == 0:
                    continue
                folder = temporary / split / kind
                folder.mkdir(parents=True)
                for index in range(counts[split]):
                    rng = np.random.default_rng([seed, split_index, class_index, index])
                    Image.fromarray(sample(kind, size, rng)).save(folder / f"{index:05d}.png", format="PNG")
        for split in SPLITS:
            if counts[split]:
                os.replace(temporary / split, root / split)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return (f"shapes: {len(CLASSES)} classes ({', '.join(CLASSES)}), {size}x{size} RGB, "
            f"{per_class * len(CLASSES):,} training / {val_per_class * len(CLASSES):,} validation images, "
            f"seed {seed}, in {root}")


def sample(kind, size, rng):
    """One image of a ``kind`` shape: uint8 (size, size, 3), RGB, drawn from ``rng``."""
    radius = rng.uniform(*RADIUS) * size
    centre = rng.uniform(radius, size - radius, 2)
    rotation = rng.uniform(0.0, 360.0) if kind in ("triangle", "star") else 0.0
    background = _background(size, rng)
    colour = _contrasting_colour(background.reshape(-1, 3).mean(axis=0), rng)
    coverage = shape_mask(kind, size, centre, radius, rotation)[..., None].astype(np.float32) / 255.0
    image = background * (1.0 - coverage) + colour * coverage
    image += rng.normal(0.0, BACKGROUND_NOISE, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def shape_mask(kind, size, centre, radius, rotation=0.0):
    """How much of each pixel the shape covers: uint8 (size, size), 0 (none) to 255 (all).

    The shape is centred at ``centre`` (x, y) in pixels (pixel (i, j) spans [j, j+1) x [i, i+1)),
    ``radius`` from its centre to its farthest points: a circle of that radius; a square of side
    2 * radius; an equilateral triangle and a five-pointed star with their points on that circle,
    turned ``rotation`` degrees clockwise from pointing up. Its area is sum(mask) / 255: pi r^2,
    4 r^2, (3 sqrt(3) / 4) r^2 and 5 * 0.45 * sin(36 degrees) r^2 respectively.
    """
    if kind not in CLASSES:
        raise InvalidValue(f"shapes: unknown shape {kind!r}; expected one of {', '.join(CLASSES)}")
    scale = SUPERSAMPLE
    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = centre[0] * scale, centre[1] * scale
    r = radius * scale
    # Pillow's boxes include both corner pixels, and it truncates their coordinates (round them
    # here, or a shape would shift up to a whole pixel of the canvas up and left); polygon vertices
    # sit on pixel centres (hence -0.5).
    box = [round(x - r), round(y - r), round(x + r) - 1, round(y + r) - 1]
    if kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "square":
        draw.rectangle(box, fill=255)
    else:
        points = 3 if kind == "triangle" else 5
        radii = [r] if kind == "triangle" else [r, r * STAR_INNER]
        corners = []
        for step in range(points * len(radii)):
            angle = math.radians(rotation) + math.pi * 2 * step / (points * len(radii))
            reach = radii[step % len(radii)]
            corners.append((x + reach * math.sin(angle) - 0.5, y - reach * math.cos(angle) - 0.5))
        draw.polygon(corners, fill=255)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX))


def _background(size, rng):
    """float32 (size, size, 3): two random colours blended along a random direction."""
    start, end = rng.uniform(0, 255, (2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    rows, columns = np.mgrid[0:size, 0:size] / (size - 1)
    along = (columns - 0.5) * math.cos(angle) + (rows - 0.5) * math.sin(angle) + 0.5
    along = np.clip(along, 0.0, 1.0)[..., None]
    return (start * (1.0 - along) + end * along).astype(np.float32)


def _contrasting_colour(mean, rng):
    """A random RGB colour at least `MIN_CONTRAST` from ``mean`` (the farthest corner of the RGB
    cube is always more than 220 away, so this ends)."""
    while True:
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - mean) >= MIN_CONTRAST:
            return colour.astype(np.float32)
