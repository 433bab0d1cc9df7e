"""The Dataset protocol, and a dataset of cached, memory-mapped images.

A dataset is anything with ``len(dataset)``, ``dataset[i] -> (image, label)`` (image uint8
(C, H, W), or float in [0, 1]; label an int) and ``classes`` (the label names, in label order).
`DataLoader` batches any such dataset by stacking ``dataset[i]``; a dataset that also has
``batch(index) -> (float32 images (B, C, H, W) in [0, 1], int64 labels (B,))`` for an integer
array ``index`` is batched through it instead, without a Python call per image.

>>> import numpy as np
>>> class Squares:
...     classes = ("dark", "light")
...     def __len__(self):
...         return 4
...     def __getitem__(self, i):
...         return np.full((1, 8, 8), 60 * i, np.uint8), int(i >= 2)
>>> images, labels = stacked_batch(Squares(), np.array([3, 0]))
>>> images.shape, images.dtype, labels.tolist()
((2, 1, 8, 8), dtype('float32'), [1, 0])
"""

import numpy as np

from ..errors import InvalidType, InvalidValue
from .transforms import unit_range


def check_dataset(dataset):
    """An `InvalidType` naming what ``dataset`` lacks of the protocol (len, [i], classes)."""
    missing = [name for name, present in (("__len__", hasattr(dataset, "__len__")),
                                          ("__getitem__ or batch", hasattr(dataset, "__getitem__")
                                           or hasattr(dataset, "batch")),
                                          ("classes", hasattr(dataset, "classes"))) if not present]
    if missing:
        raise InvalidType(f"expected a dataset with len(dataset), dataset[i] -> (image (C, H, W), label) and classes "
                          f"(the label names), got {type(dataset).__name__} without {', '.join(missing)}")


def stacked_batch(dataset, index):
    """(float32 images (B, C, H, W) in [0, 1], int64 labels (B,)) from ``dataset[i]`` for i in ``index``."""
    images, labels = [], []
    for i in index.tolist():
        image, label = dataset[i]
        image = np.asarray(image)
        if image.ndim != 3 or (images and image.shape != images[0].shape):
            expected = f"{images[0].shape}, as dataset[{index[0]}]" if images else "(C, H, W)"
            raise InvalidValue(f"{type(dataset).__name__}[{i}]: expected an image of shape {expected}, "
                               f"got {image.shape}")
        images.append(image)
        labels.append(int(label))
    return unit_range(np.stack(images)), np.array(labels, dtype=np.int64)


def batch_of(dataset, index):
    """The batch of ``dataset`` at the integer array ``index``: its own ``batch`` where it has one
    (an array's, or a cache's read in one pass), else `stacked_batch`."""
    return dataset.batch(index) if hasattr(dataset, "batch") else stacked_batch(dataset, index)


class CachedImages:
    """The images ``indices`` (M,) of a decoded cache ``pixels`` (N, C, H, W) uint8 (memory-mapped:
    an image is read from disk when a batch asks for it), with labels (M,) naming ``classes``.
    ``source`` is the JSON-able description a run records, or None; ``files`` the file each image
    came from (M,), relative to the data's folder (for per-image reports), or None."""

    def __init__(self, pixels, indices, labels, classes, source=None, files=None):
        self.pixels, self.indices, self.files = pixels, np.asarray(indices, dtype=np.int64), files
        self.labels, self.classes, self.source = np.asarray(labels, dtype=np.int64), tuple(classes), source
        if self.labels.shape != self.indices.shape:
            raise InvalidValue(f"CachedImages: expected labels of shape {self.indices.shape}, got {self.labels.shape}")

    def __len__(self):
        return len(self.indices)

    @property
    def shape(self):
        """(C, H, W) of every image."""
        return self.pixels.shape[1:]

    def __getitem__(self, i):
        """(uint8 image (C, H, W), label)."""
        return np.array(self.pixels[self.indices[i]]), int(self.labels[i])

    def batch(self, index):
        """(float32 images (B, C, H, W) in [0, 1], int64 labels (B,)) for the integer array ``index``."""
        rows = self.indices[index]
        order = np.argsort(rows, kind="stable")  # read the map front to back, then put the batch back in order
        images = np.empty((len(rows), *self.shape), np.uint8)
        images[order] = self.pixels[rows[order]]
        return unit_range(images), self.labels[index]


def channel_statistics(pixels, indices, chunk_bytes=1 << 24):
    """Per-channel mean and standard deviation (population) of ``pixels[indices]`` (N, C, H, W)
    uint8 scaled to [0, 1]. The sums of values and of their squares are exact integers, taken over
    chunks of about ``chunk_bytes`` of images, so memory is bounded by the chunk (16 MB of pixels,
    a few times that while summing), not by the dataset. Returns two lists of C floats."""
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    channels, image_bytes = pixels.shape[1], max(1, int(np.prod(pixels.shape[1:])))
    chunk = max(1, chunk_bytes // image_bytes)
    total, squares, count = np.zeros(channels, np.int64), np.zeros(channels, np.int64), 0
    for start in range(0, len(indices), chunk):
        block = pixels[indices[start:start + chunk]]
        total += block.sum(axis=(0, 2, 3), dtype=np.int64)
        squares += np.square(block, dtype=np.uint16).sum(axis=(0, 2, 3), dtype=np.int64)  # 255^2 fits 16 bits
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / max(count, 1) / 255
    std = np.sqrt(np.maximum(squares / max(count, 1) / 255 ** 2 - np.square(mean), 0))
    return mean.tolist(), std.tolist()
