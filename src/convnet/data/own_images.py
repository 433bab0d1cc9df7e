"""A user's own images as training and validation datasets: `open_images` for whatever a path
holds (an image folder or a CSV manifest), `ImageFolder` and `CsvImages` for one subset.

Refusals come before any decoding where they can (one class, an empty class folder, a class too
small for the split); the images are decoded once into a cache (see `cache`).
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from . import cache, mnist
from .datasets import CachedImages
from .folders import Manifest, check_classes, read_csv, recognise, scan_folder, stratified_split
from .images import ImageError
from ..errors import InvalidValue


@dataclass
class ImageData:
    """What `open_images` opened: the ``train`` and ``validation`` datasets, the JSON-able
    ``description`` a run records (also each dataset's ``source``; its ``options`` reopen the same
    images), the one-line ``summary``, and the ``manifest`` (`folders.Manifest`) a resume compares
    with ``Manifest.changes``."""
    train: CachedImages
    validation: CachedImages
    description: dict
    summary: str
    manifest: Manifest


def open_images(path, val_split=0.1, seed=0, image_size=None, channels=None, skip_bad=False, cache_dir=None,
                progress=True, workers=None):
    """Open the image folder or CSV manifest at ``path`` as an `ImageData`.

    Args:
        path: ``PATH/<class>/**/<image>``, ``PATH/train/<class>/...`` with ``PATH/val/<class>/...``
            (or valid/, validation/, test/), or a ``.csv`` with a ``path,label[,split]`` header.
        val_split: without a split in the data, the fraction of each class held out for
            validation, drawn from ``seed`` (the same files every time the files are the same).
        image_size: None (every image must have the same size), an int or (H, W): the shorter
            side is resized and the centre cropped to it.
        channels: None (1 when every image is grayscale, else 3), 1 or 3.
        skip_bad: leave out unreadable images (recorded in the description) instead of refusing.
        cache_dir: where the decoded cache lives (default: the user cache, ~/.cache/convnet/images).
        progress: show progress bars while decoding.
        workers: decoding processes (default: every core this process may use).
    """
    kind = recognise(path)
    if kind is None:
        raise InvalidValue(f"{path}: expected an image folder (PATH/<class name>/<images>) or a CSV manifest "
                           f"(a .csv file with path,label rows)")
    listing = scan_folder(path) if kind == "image folder" else read_csv(path)
    return _opened(listing, val_split, seed, image_size, channels, skip_bad, cache_dir, progress, workers)


def _opened(listing, val_split=0.1, seed=0, image_size=None, channels=None, skip_bad=False, cache_dir=None,
            progress=True, workers=None):
    image_size = _checked_size(image_size)
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise InvalidValue(f"channels: expected 1, 3 or None (chosen by the images), got {channels!r}")
    check_classes(listing)
    if listing.validation is None:
        listing.validation = stratified_split(listing.labels, listing.classes, val_split, seed)
        listing.split = {"kind": "seeded", "seed": seed, "fraction": val_split}
    relative = listing.relative()
    manifest = Manifest.of(listing, relative)
    found = cache.decoded(listing.paths, manifest, cache_dir or mnist.cache_dir("images"), image_size, channels,
                          workers, progress)
    if found.bad and not skip_bad:
        reasons = [found.bad[index] for index in sorted(found.bad)]
        raise ImageError(f"{len(reasons)} image{'s' * (len(reasons) != 1)} cannot be read: {'; '.join(reasons[:3])}"
                         f"{f' and {len(reasons) - 3} more' if len(reasons) > 3 else ''}; "
                         f"pass skip_bad=True (--skip-bad) to leave them out")
    readable = np.ones(len(listing.paths), dtype=bool)
    readable[list(found.bad)] = False
    train = np.flatnonzero(readable & ~listing.validation)
    held_out = np.flatnonzero(readable & listing.validation)
    _check_left(listing, train, held_out)
    mean, std = cache.statistics(found, train)
    listing.split["validation_sha256"] = hashlib.sha256("\n".join(relative[i] for i in held_out).encode()).hexdigest()
    description = {
        "kind": listing.kind, "path": str(listing.source),
        "classes": list(listing.classes), "channels": found.channels, "size": list(found.size),
        "image_size": image_size and list(image_size), "train": len(train), "validation": len(held_out),
        "split": listing.split, "manifest": {"sha256": manifest.sha256, "files": len(manifest)},
        "mean": mean, "std": std, "non_images": listing.non_images,
        "left_out": [{"file": relative[index], "reason": reason} for index, reason in sorted(found.bad.items())],
        "conversions": found.notes, "duplicates": _duplicates(found.digests, relative, train, held_out),
        "cache": str(found.path),
        # what `open_images` was asked: open_images(path, **options) opens the same images again
        "options": {"val_split": val_split, "seed": seed, "image_size": image_size and list(image_size),
                    "channels": channels, "skip_bad": skip_bad}}
    source = dict(description)
    return ImageData(*(CachedImages(found.pixels, subset, listing.labels[subset], listing.classes, source,
                                    [relative[i] for i in subset]) for subset in (train, held_out)),
                     description, summary(description), manifest)


def _checked_size(image_size):
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size):
        raise InvalidValue(f"image_size: expected a positive int or (height, width), got {image_size!r}")
    return size


def _check_left(listing, train, held_out):
    """After unreadable images are left out: every class still trains, and something validates."""
    counts = np.bincount(listing.labels[train], minlength=len(listing.classes))
    for name, count in zip(listing.classes, counts):
        if count == 0:
            raise InvalidValue(f"class {name!r} has no readable training images")
    if len(held_out) == 0:
        raise InvalidValue(f"{listing.root}: no readable validation images")


def _duplicates(digests, relative, train, held_out):
    """{"count": validation images whose bytes equal a training image's, "examples": [[train, validation], ...]}."""
    trained = {digests[index]: index for index in train}
    pairs = [(trained[digests[index]], index) for index in held_out if digests[index] in trained]
    return {"count": len(pairs), "examples": [[relative[a], relative[b]] for a, b in pairs[:3]]}


def summary(description):
    """One line: "image folder, 3 channels, 64x64, 10 classes, 8,412 training / 935 validation
    images", then what was skipped, left out or duplicated."""
    height, width = description["size"]
    line = (f"{description['kind']}, {_count(description['channels'], 'channel')}, {height}x{width}, "
            f"{_count(len(description['classes']), 'class', 'classes')}, {description['train']:,} training / "
            f"{_count(description['validation'], 'validation image')}")
    if description["non_images"]:
        line += f", {_count(description['non_images'], 'non-image file')} skipped"
    if description["left_out"]:
        line += f", {_count(len(description['left_out']), 'unreadable image')} left out"
    duplicates = description["duplicates"]["count"]
    if duplicates:
        copies = "is an exact copy of a training image" if duplicates == 1 else "are exact copies of training images"
        line += f"; {_count(duplicates, 'validation image')} {copies} (leakage)"
    return line


def _count(number, noun, plural=None):
    """"1 image", "8,412 images"."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


class ImageFolder(CachedImages):
    """One ``subset`` ("train" or "validation") of the image folder ``root``; ``options`` are
    `open_images`'s. ``description`` and ``summary`` say what was opened."""

    def __init__(self, root, subset="train", **options):
        _check_subset(self, subset)
        self._take(_opened(scan_folder(root), **options), subset)

    def _take(self, data, subset):
        chosen = data.train if subset == "train" else data.validation
        super().__init__(chosen.pixels, chosen.indices, chosen.labels, chosen.classes, chosen.source, chosen.files)
        self.description, self.summary = data.description, data.summary


class CsvImages(ImageFolder):
    """One ``subset`` of the CSV manifest ``csv_path`` (``path,label[,split]``); ``options`` are `open_images`'s."""

    def __init__(self, csv_path, subset="train", **options):
        _check_subset(self, subset)
        self._take(_opened(read_csv(csv_path), **options), subset)



def _check_subset(dataset, subset):
    if subset not in ("train", "validation"):
        raise InvalidValue(f"{type(dataset).__name__}: expected subset 'train' or 'validation', got {subset!r}")
