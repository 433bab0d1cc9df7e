"""Users' own images: reading any picture file, and a folder-per-class dataset."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .loader import ArrayDataset

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
    """An image that cannot be read; the message names the file."""


def read_image(path, size=None, channels=1):
    """Read ``path`` as uint8 (channels, H, W), converted to grayscale (1) or RGB (3) and,
    if ``size`` (H, W) is given, resized. Returns (array, notes) where notes lists the
    conversions made, so callers can tell the user."""
    if channels not in (1, 3):
        raise ValueError(f"read_image: expected channels 1 or 3, got {channels}")
    try:
        with Image.open(path) as image:
            image.load()
            notes = []
            mode = "L" if channels == 1 else "RGB"
            if image.mode != mode:
                notes.append(f"converted {image.mode} to {'grayscale' if channels == 1 else 'RGB'}")
                image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                notes.append(f"resized {image.size[0]}x{image.size[1]} to {size[1]}x{size[0]}")
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{path}: not a readable image ({error.__class__.__name__}: {error})") from None
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)), notes


def image_folder(root, size=(28, 28), channels=1):
    """A dataset from ``root/<class name>/*.png|jpg|...``: classes in sorted folder order.

    Every image is converted to ``channels`` and resized to ``size``; all are loaded at once.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image_folder: {root} is not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"image_folder: {root} has no class sub-folders (expected root/<class name>/<images>)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in EXTENSIONS:
                images.append(read_image(path, size, channels)[0])
                labels.append(label)
    if not images:
        raise ValueError(f"image_folder: no images with extensions {EXTENSIONS} under {root}")
    return ArrayDataset(np.stack(images), np.array(labels), classes)
