"""Fashion-MNIST and MNIST: 28x28 grayscale images in 10 classes, stored as four IDX files.

The files are looked for, in order, in the directory given (``--data DIR``), in
``$CONVNET_DATA``, in the system directory of Debian's package (``apt-get install
dataset-fashion-mnist``), and in the user cache that ``convnet download`` fills.
"""

import os
from pathlib import Path

import numpy as np

from .idx import IdxError, read_idx
from .transforms import Normalize, unit_range

CLASSES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(digit) for digit in range(10)),
}
# Mean and standard deviation of the training images' pixels scaled to [0, 1].
NORMALIZATION = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


class DatasetNotFound(FileNotFoundError):
    pass


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convnet" / name


def search_dirs(name, data_dir=None):
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("CONVNET_DATA"):
        dirs.append(Path(os.environ["CONVNET_DATA"]))
    if name in SYSTEM_DIRS:
        dirs.append(SYSTEM_DIRS[name])
    dirs.append(cache_dir(name))
    return dirs


def _find(stem, dirs):
    for directory in dirs:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def locate(name, split, data_dir=None):
    """Paths of the (images, labels) IDX files of ``split`` ('train' or 'test')."""
    if name not in CLASSES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(CLASSES)}")
    if split not in FILES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    dirs = search_dirs(name, data_dir)
    paths = [_find(stem, dirs) for stem in FILES[split]]
    if None in paths:
        missing = FILES[split][paths.index(None)]
        hint = "apt-get install dataset-fashion-mnist, or " if name == "fashion-mnist" else ""
        raise DatasetNotFound(
            f"{name}: {missing}(.gz) not found in {', '.join(str(d) for d in dirs)}. "
            f"Get it with: {hint}convnet download {name} (or pass --data DIR)")
    return tuple(paths)


def load(name="fashion-mnist", split="train", data_dir=None):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of ``split``, checked for consistency."""
    images_path, labels_path = locate(name, split, data_dir)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"{images_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise IdxError(f"{labels_path}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise IdxError(f"{images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels")
    classes = len(CLASSES[name])
    if len(labels) and labels.max() >= classes:
        raise IdxError(f"{labels_path}: labels must be in [0, {classes - 1}], found {int(labels.max())}")
    return images, labels.astype(np.int64)


def normalization(name):
    """The `Normalize` transform that the models of dataset ``name`` are trained with."""
    return Normalize(*NORMALIZATION[name])


def preprocess(name, pixels):
    """uint8 images (N, C, H, W) -> what a model trained on dataset ``name`` takes: float32 in
    [0, 1], normalised with the dataset's mean and standard deviation."""
    return normalization(name)(unit_range(pixels))
