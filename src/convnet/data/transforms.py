"""Batch transforms: each maps a float32 batch (B, C, H, W) and a generator to a new batch.

Augmentations draw one set of random numbers for the whole batch and apply them with array
operations, not a Python loop per image. A transform that depends on which images it is given
(`AlternatingFlip`) has ``for_batch(seed, epoch, indices)``, which `DataLoader` calls to get the
batch's transform.
"""

import numpy as np

from ..errors import InvalidValue


def unit_range(images):
    """Pixels as float32 in [0, 1]: uint8 images are divided by 255, float images kept as they are."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255
    return images.astype(np.float32, copy=False)


class Compose:
    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, batch, rng):
        for transform in self.transforms:
            batch = transform(batch, rng)
        return batch

    def for_batch(self, seed, epoch, indices):
        """These transforms, each that depends on where its images are (``for_batch``) bound to them."""
        return Compose(*(transform.for_batch(seed, epoch, indices) if hasattr(transform, "for_batch") else transform
                         for transform in self.transforms))

    def __repr__(self):
        return f"Compose({', '.join(map(repr, self.transforms))})"


class Normalize:
    """(x - mean) / std per channel; mean and std are numbers or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        if (self.std <= 0).any():
            raise InvalidValue(f"Normalize: expected std > 0, got {std!r}")

    def __call__(self, batch, rng=None):
        return (batch - self.mean) / self.std

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class RandomCrop:
    """Pad each side by ``padding`` (zeros), then crop a random ``size`` window per image."""

    def __init__(self, size, padding=0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def __call__(self, batch, rng):
        b, c, h, w = batch.shape
        p, (ch, cw) = self.padding, self.size
        padded = np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p))) if p else batch
        if ch > padded.shape[2] or cw > padded.shape[3]:
            raise InvalidValue(f"RandomCrop: crop {self.size} is larger than the padded image {padded.shape[2:]}")
        top = rng.integers(0, padded.shape[2] - ch + 1, b)
        left = rng.integers(0, padded.shape[3] - cw + 1, b)
        rows = (top[:, None] + np.arange(ch))[:, None, :, None]
        cols = (left[:, None] + np.arange(cw))[:, None, None, :]
        return padded[np.arange(b)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, batch, rng):
        flip = rng.random(len(batch)) < self.p
        batch = batch.copy()
        batch[flip] = batch[flip, :, :, ::-1]
        return batch

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def _splitmix64(x):
    """SplitMix64's finaliser on a uint64 array: each bit of the result depends on every bit of x."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class AlternatingFlip:
    """Mirror each image left-right in every other epoch (airbench's alternating flip, Jordan 2024).

    In epoch 0 a random half of the images are mirrored (a fair coin per image, drawn from the
    loader's seed and the image's dataset index), in epoch 1 exactly the other half, and so on, so
    every image is seen both ways every two epochs where random flips leave a quarter unseen one way.
    It depends on where its images are, so a `DataLoader` binds it per batch with ``for_batch``.
    """

    def for_batch(self, seed, epoch, indices):
        """The transform of one batch: ``indices`` (B,) are its images' indices in the dataset."""
        return MirrorImages(self.mirrored(seed, epoch, indices))

    @staticmethod
    def mirrored(seed, epoch, indices):
        """Whether each of the images ``indices`` (B,) is mirrored in ``epoch``: bool (B,)."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or (indices < 0).any():
            raise InvalidValue(f"AlternatingFlip: expected dataset indices as non-negative ints (B,), got {indices!r}")
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
            raise InvalidValue(f"AlternatingFlip: expected epoch to be a non-negative int, got {epoch!r}")
        key = _splitmix64(np.array([int(seed) % (1 << 64)], dtype=np.uint64))
        first_epoch = (_splitmix64(key ^ indices.astype(np.uint64)) >> np.uint64(63)).astype(bool)
        return first_epoch ^ bool(epoch % 2)

    def __call__(self, batch, rng):
        raise InvalidValue("AlternatingFlip: needs each image's dataset index and the epoch; use it as (part of) a "
                           "DataLoader's transform, or call for_batch(seed, epoch, indices) for one batch")

    def __repr__(self):
        return "AlternatingFlip()"


class MirrorImages:
    """Mirror left-right the images where ``mirrored`` (B,) is True: one batch's `AlternatingFlip`."""

    def __init__(self, mirrored):
        self.mirrored = np.asarray(mirrored, dtype=bool)

    def __call__(self, batch, rng=None):
        if len(batch) != len(self.mirrored):
            raise InvalidValue(f"MirrorImages: expected a batch of {len(self.mirrored)} images, got {len(batch)}")
        batch = batch.copy()
        batch[self.mirrored] = batch[self.mirrored, :, :, ::-1]
        return batch

    def __repr__(self):
        return f"MirrorImages({int(self.mirrored.sum())} of {len(self.mirrored)})"


class RandomErasing:
    """With probability p per image, set a random rectangle to ``value`` (Zhong et al., 2017).

    The rectangle covers a fraction in ``scale`` of the image with an aspect ratio in ``ratio``
    (log-uniform), as torchvision's RandomErasing; one rectangle per image, drawn for the batch.
    """

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def __call__(self, batch, rng):
        b, _, h, w = batch.shape
        area = rng.uniform(*self.scale, b) * h * w
        aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), b))
        eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(int)
        ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(int)
        top = (rng.random(b) * (h - eh + 1)).astype(int)
        left = (rng.random(b) * (w - ew + 1)).astype(int)
        erase = rng.random(b) < self.p
        rows, cols = np.arange(h), np.arange(w)
        inside = ((rows[None, :, None] >= top[:, None, None]) & (rows[None, :, None] < (top + eh)[:, None, None])
                  & (cols[None, None, :] >= left[:, None, None]) & (cols[None, None, :] < (left + ew)[:, None, None]))
        mask = (inside & erase[:, None, None])[:, None]
        return np.where(mask, np.float32(self.value), batch)

    def __repr__(self):
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"
