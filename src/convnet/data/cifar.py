"""CIFAR-10 and CIFAR-100 in their own python format: the folders ``cifar-10-batches-py/`` and
``cifar-100-python/`` that the official ``.tar.gz`` archives hold (``convnet download cifar10``).

Each batch file is a dict pickled by Python 2 (protocol 2, byte-string keys): ``b"data"``, uint8
(N, 3072), each row an image's red plane, then green, then blue, 32x32 each, row by row; and the
labels, a list of N ints (``b"labels"``; CIFAR-100: ``b"fine_labels"`` and ``b"coarse_labels"``).
The meta file names the classes (``b"label_names"``; ``b"fine_label_names"``,
``b"coarse_label_names"``).

A pickle can run any code it names, so the files are read by `_BatchUnpickler`, which lets them
name numpy's array and dtype reconstruction and nothing else.
"""

import pickle
from pathlib import Path

import numpy as np

from .loader import ArrayDataset
from .mnist import DatasetNotFound, fingerprint
from ..errors import ConvnetError, InvalidValue

LAYOUTS = {
    "cifar10": {"name": "CIFAR-10", "folder": "cifar-10-batches-py", "meta": "batches.meta",
                "splits": {"train": tuple(f"data_batch_{number}" for number in range(1, 6)), "test": ("test_batch",)},
                "labels": {"fine": ("labels", "label_names")}},
    "cifar100": {"name": "CIFAR-100", "folder": "cifar-100-python", "meta": "meta",
                 "splits": {"train": ("train",), "test": ("test",)},
                 "labels": {"fine": ("fine_labels", "fine_label_names"),
                            "coarse": ("coarse_labels", "coarse_label_names")}},
}
SIDE = 32
ROW_BYTES = 3 * SIDE * SIDE

# What numpy's array pickles name (numpy 1 wrote numpy.core, numpy 2 writes numpy._core): the
# official files name these three and nothing else.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_ALLOWED_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
                    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
                    ("numpy", "ndarray"): np.ndarray,
                    ("numpy", "dtype"): np.dtype}


class CifarError(ConvnetError, ValueError):
    """A CIFAR file that is damaged, truncated or not what its name promises; the message names it."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch or meta file, naming no global but numpy's array reconstruction."""

    def __init__(self, stream, path):
        super().__init__(stream, encoding="bytes")  # Python 2's str: bytes here, decoded below
        self.path = path

    def find_class(self, module, name):
        # Called for every global the pickle names, in place of importing it: REDUCE, NEWOBJ and
        # BUILD reach only what this returns.
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        raise CifarError(f"{self.path}: refused: its pickle names {module}.{name}, which a CIFAR file never needs "
                         f"(only numpy's ndarray, dtype and _reconstruct); nothing in the file was run")


def find(path):
    """(kind, folder) of the CIFAR data at ``path`` (the extracted folder itself, or the folder
    holding it), kind 'cifar10' or 'cifar100'; None when ``path`` holds neither. A folder counts
    when it has the meta file and at least one batch file."""
    path = Path(path)
    for kind, layout in LAYOUTS.items():
        batches = [name for names in layout["splits"].values() for name in names]
        for folder in (path, path / layout["folder"]):
            if (folder / layout["meta"]).is_file() and any((folder / name).is_file() for name in batches):
                return kind, folder
    return None


def load(path, split="train", label_mode="fine"):
    """The ``split`` ('train' or 'test') of the CIFAR-10 or CIFAR-100 data at ``path`` (see `find`).

    Returns an `ArrayDataset` of images uint8 (N, 3, 32, 32) (RGB), labels int64 (N,), the
    classes named by the meta file, and ``source`` = {"kind", "path" (the folder, absolute),
    "split", "labels" (``label_mode``: CIFAR-100's 100 'fine' or 20 'coarse' classes; CIFAR-10
    has only 'fine'), "sha256" (`mnist.fingerprint` of the images and labels)}. Train: 50,000
    images; test: 10,000.
    """
    found = find(path)
    if found is None:
        raise DatasetNotFound(f"{path}: holds no CIFAR data; expected the folder cifar-10-batches-py (batches.meta, "
                              f"data_batch_1..5, test_batch) or cifar-100-python (meta, train, test), or the folder "
                              f"holding it (get them with: convnet download cifar10)")
    kind, folder = found
    layout = LAYOUTS[kind]
    if split not in layout["splits"]:
        raise InvalidValue(f"{layout['name']}: unknown split {split!r}; expected 'train' or 'test'")
    if label_mode not in layout["labels"]:
        raise InvalidValue(f"{layout['name']}: unknown label_mode {label_mode!r}; expected one of "
                           f"{sorted(layout['labels'])}")
    labels_key, names_key = layout["labels"][label_mode]
    classes = _class_names(folder / layout["meta"], names_key)
    parts = [_batch(folder / name, labels_key, len(classes)) for name in layout["splits"][split]]
    images = np.concatenate([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    targets = np.concatenate([part[1] for part in parts]) if len(parts) > 1 else parts[0][1]
    source = {"kind": kind, "path": str(folder.resolve()), "split": split, "labels": label_mode,
              "sha256": fingerprint(images, targets)}
    return ArrayDataset(images, targets, classes, source=source)


def describe(dataset):
    """One line for a loaded CIFAR split, e.g. 'CIFAR-10 train, 3 channels, 32x32, 10 classes,
    50,000 images'."""
    source = dataset.source
    labels = f" ({source['labels']} labels)" if source["kind"] == "cifar100" else ""
    return (f"{LAYOUTS[source['kind']]['name']} {source['split']}{labels}, 3 channels, {SIDE}x{SIDE}, "
            f"{len(dataset.classes)} classes, {len(dataset):,} images")


def _unpickled(path):
    """The dict that the pickle at ``path`` holds, its keys as str."""
    if not path.is_file():
        raise DatasetNotFound(f"{path}: missing; expected the {path.parent.name} folder to hold it (download the "
                              f"archive again: convnet download cifar10 or cifar100)")
    try:
        with open(path, "rb") as stream:
            content = _BatchUnpickler(stream, path).load()
    except CifarError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError, RecursionError, MemoryError) as error:
        message = str(error).splitlines()[0] if str(error) else "no detail"
        raise CifarError(f"{path}: not a readable CIFAR pickle, damaged or truncated ({type(error).__name__}: "
                         f"{message})") from None
    if not isinstance(content, dict):
        raise CifarError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _class_names(path, key):
    """The class names listed under ``key`` in the meta file ``path``."""
    names = _unpickled(path).get(key)
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise CifarError(f"{path}: expected {key!r} to list the class names, got {_shown(names)}")
    return tuple(name.decode("utf-8", "replace") if isinstance(name, bytes) else name for name in names)


def _batch(path, labels_key, classes):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of the batch file ``path``."""
    content = _unpickled(path)
    if "data" not in content or labels_key not in content:
        raise CifarError(f"{path}: expected the keys 'data' and {labels_key!r}, got {sorted(map(str, content))}")
    data, labels = content["data"], content[labels_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CifarError(f"{path}: expected 'data' to be uint8 of shape (N, {ROW_BYTES}), got {got}")
    if len(data) == 0:
        raise CifarError(f"{path}: expected at least one image, got none")
    try:
        values = np.asarray(labels)
    except ValueError:  # a ragged list
        values = np.asarray(None)
    if values.dtype.kind not in "iu" or values.dtype == np.uint64:
        raise CifarError(f"{path}: expected {labels_key!r} to be a list of integers, got {_shown(labels)}")
    labels = values.astype(np.int64)
    if labels.shape != (len(data),):
        raise CifarError(f"{path}: has {len(data)} images but {labels.size} labels in {labels_key!r}")
    if labels.min() < 0 or labels.max() >= classes:
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise CifarError(f"{path}: labels must be in [0, {classes - 1}] (the meta file names {classes} classes), "
                         f"found {bad}")
    return data.reshape(len(data), 3, SIDE, SIDE), labels


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
