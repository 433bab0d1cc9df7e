"""Fashion-MNIST and MNIST: 28x28 grayscale images in 10 classes, stored as four IDX files.

A directory given (``--data DIR``) is used alone: all four files must be there, so a typo or
a half-filled folder is an error instead of a silent switch to other data. Without one, the
files are looked for, in order, in ``$CONVNET_DATA``, in the system directory of Debian's
package (``apt-get install dataset-fashion-mnist``), and in the user cache that ``convnet
download`` fills.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from .idx import IdxError, read_idx
from .transforms import Normalize, unit_range
from ..errors import ConvnetError, InvalidValue

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
# How to get each dataset, for the error that says it is missing (`convnet download` knows only
# Fashion-MNIST, whose files it can verify against pinned checksums).
GET = {"fashion-mnist": "Get it with: apt-get install dataset-fashion-mnist, or convnet download fashion-mnist "
                        "(or pass --data DIR)",
       "mnist": "Put its four IDX files (from http://yann.lecun.com/exdb/mnist/ or a mirror) in a folder and pass "
                "--data DIR, or set CONVNET_DATA"}


class DatasetNotFound(ConvnetError, FileNotFoundError):
    pass


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convnet" / name


def search_dirs(name, data_dir=None):
    """Where ``name``'s files are looked for: ``data_dir`` alone when given."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = []
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
        raise InvalidValue(f"unknown dataset {name!r}; expected one of {sorted(CLASSES)}")
    if split not in FILES:
        raise InvalidValue(f"unknown split {split!r}; expected 'train' or 'test'")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetNotFound(f"{name}: --data {data_dir} is not a directory")
    dirs = search_dirs(name, data_dir)
    paths = [_find(stem, dirs) for stem in FILES[split]]
    if None in paths:
        missing = FILES[split][paths.index(None)]
        if data_dir is not None:
            raise DatasetNotFound(f"{name}: {missing}(.gz) not found in --data {data_dir}, which must hold all four "
                                  f"files ({', '.join(stem for pair in FILES.values() for stem in pair)})")
        raise DatasetNotFound(f"{name}: {missing}(.gz) not found in {', '.join(str(d) for d in dirs)}. {GET[name]}")
    return tuple(paths)


def load(name="fashion-mnist", split="train", data_dir=None):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of ``split``, checked for consistency."""
    images, labels, _ = load_with_source(name, split, data_dir)
    return images, labels


def load_with_source(name="fashion-mnist", split="train", data_dir=None):
    """`load`'s (images, labels) and where they came from: {"files": [the two absolute paths],
    "sha256": `fingerprint` of what was read}, for a run to record and later compare."""
    images_path, labels_path = locate(name, split, data_dir)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"{images_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise IdxError(f"{images_path}: expected at least one image, got none")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise IdxError(f"{labels_path}: expected integer labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise IdxError(f"{images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels")
    classes = len(CLASSES[name])
    if labels.min() < 0 or labels.max() >= classes:
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise IdxError(f"{labels_path}: labels must be in [0, {classes - 1}], found {bad}")
    labels = labels.astype(np.int64)
    source = {"files": [str(path.resolve()) for path in (images_path, labels_path)],
              "sha256": fingerprint(images, labels)}
    return images, labels, source


def fingerprint(images, labels):
    """SHA-256 of a split's decoded images and labels: the same for the same data whether its
    files are compressed or not, different if a single pixel or label differs (0.1 s for
    Fashion-MNIST's 60,000 training images)."""
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def normalization(name):
    """The `Normalize` transform that the models of dataset ``name`` are trained with."""
    return Normalize(*NORMALIZATION[name])


def preprocess(name, pixels):
    """uint8 images (N, C, H, W) -> what a model trained on dataset ``name`` takes: float32 in
    [0, 1], normalised with the dataset's mean and standard deviation."""
    return normalization(name)(unit_range(pixels))
