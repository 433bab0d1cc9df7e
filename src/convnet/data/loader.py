"""Datasets of arrays and the loader that batches any dataset (see `datasets` for the protocol).

A loader's shuffling and augmentation are a pure function of (seed, epoch, batch index), so a
run stopped in the middle of an epoch resumes with exactly the batches it would have seen.
"""

import math

import numpy as np

from ..errors import InvalidType, InvalidValue
from ..tensor import Tensor
from .datasets import batch_of, check_dataset
from .transforms import unit_range


class ArrayDataset:
    """Images (N, H, W) or (N, C, H, W), uint8 in [0, 255] or float, with integer labels (N,).

    ``classes`` names the labels (for reports); ``source`` says where the data came from (a
    JSON-able dict that a run records, e.g. `mnist.load_with_source`'s), or is None; ``len``,
    ``dataset[i] -> (image (C, H, W), label)`` and ``batch`` (integer-array indexing) work.
    """

    def __init__(self, images, labels, classes=None, source=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise InvalidValue(f"ArrayDataset: expected images of shape (N, H, W) or (N, C, H, W), got {images.shape}")
        if len(images) == 0:
            raise InvalidValue("ArrayDataset: expected at least one image, got none")
        if labels.shape != (len(images),):
            raise InvalidValue(f"ArrayDataset: expected labels of shape ({len(images)},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise InvalidType(f"ArrayDataset: expected integer labels, got dtype {labels.dtype}")
        self.images, self.labels, self.source = images, labels.astype(np.int64), source
        self.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(int(labels.max()) + 1))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])

    def batch(self, index):
        """Float32 images scaled to [0, 1] (uint8 input) and labels for the integer ``index``."""
        return unit_range(self.images[index]), self.labels[index]


class DataLoader:
    """Iterate over ``dataset`` (see `datasets`) in batches of (Tensor (B, C, H, W) float32, labels (B,) int64).

    Args:
        batch_size: images per batch (the last one may be smaller unless ``drop_last``).
        shuffle: a new order every epoch, drawn from (seed, epoch).
        transform: a batch transform ``f(batch, rng)`` (see ``convnet.data.transforms``).
        seed: makes shuffling and augmentation repeat exactly.
    """

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=0, transform=None):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidValue(f"DataLoader: expected batch_size to be a positive int, got {batch_size!r}")
        check_dataset(dataset)
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.seed, self.transform = seed, transform
        self.epoch = 0

    def __len__(self):
        count = len(self.dataset) / self.batch_size
        return int(count) if self.drop_last else math.ceil(count)

    def order(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.dataset))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def batches(self, epoch, start=0):
        """The batches of ``epoch``, from batch number ``start`` on."""
        order = self.order(epoch)
        for number in range(start, len(self)):
            index = order[number * self.batch_size:(number + 1) * self.batch_size]
            images, labels = batch_of(self.dataset, index)
            if self.transform is not None:
                # A transform that depends on which images it sees (`transforms.AlternatingFlip`) is
                # bound to them here, so the batch stays a function of (seed, epoch, batch number).
                transform = (self.transform.for_batch(self.seed, epoch, index) if hasattr(self.transform, "for_batch")
                             else self.transform)
                images = transform(images, np.random.default_rng([self.seed, epoch, number, 1]))
            yield Tensor(np.ascontiguousarray(images, dtype=np.float32)), labels

    def __iter__(self):
        """One epoch; each ``iter()`` moves to the next epoch."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.batches(epoch)
