"""DataLoader and batch transforms."""

import numpy as np
import pytest

from convnet.data import ArrayDataset, DataLoader, transforms


def dataset(count=10):
    images = np.arange(count * 4 * 4, dtype=np.uint8).reshape(count, 4, 4)
    return ArrayDataset(images, np.arange(count) % 3)


def test_batches_cover_the_data_once_per_epoch_with_a_new_order_each_epoch():
    loader = DataLoader(dataset(10), batch_size=4, shuffle=True, seed=3)
    assert len(loader) == 3
    first = np.concatenate([labels for _, labels in loader])
    second_images = np.concatenate([images.numpy() for images, _ in loader])
    assert sorted(first.tolist()) == sorted((np.arange(10) % 3).tolist())
    assert second_images.shape == (10, 1, 4, 4) and second_images.dtype == np.float32
    assert second_images.max() <= 1.0  # uint8 scaled to [0, 1]
    assert not np.array_equal(loader.order(0), loader.order(1))
    np.testing.assert_array_equal(loader.order(1), DataLoader(dataset(10), 4, shuffle=True, seed=3).order(1))


def test_drop_last_and_starting_mid_epoch():
    loader = DataLoader(dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(labels) for _, labels in loader] == [4, 4]
    loader = DataLoader(dataset(10), batch_size=4, shuffle=True, seed=1, transform=transforms.RandomErasing(p=1))
    full = [images.numpy() for images, _ in loader.batches(5)]
    tail = [images.numpy() for images, _ in loader.batches(5, start=1)]
    for a, b in zip(full[1:], tail):
        np.testing.assert_array_equal(a, b)  # same shuffle and same augmentation: resumable


def test_loader_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="expected batch_size to be a positive int, got 0"):
        DataLoader(dataset(), 0)
    with pytest.raises(ValueError, match=r"expected labels of shape \(10,\), got \(9,\)"):
        ArrayDataset(np.zeros((10, 4, 4)), np.zeros(9, int))


def test_random_crop_takes_windows_of_the_padded_image():
    batch = np.random.default_rng(0).random((6, 2, 5, 5), dtype=np.float32)
    out = transforms.RandomCrop(5, padding=2)(batch, np.random.default_rng(1))
    assert out.shape == batch.shape
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for image, source in zip(out, padded):
        matches = [(top, left) for top in range(5) for left in range(5)
                   if np.array_equal(source[:, top:top + 5, left:left + 5], image)]
        assert matches, "each crop is a 5x5 window of its own padded image"


def test_flip_and_erasing():
    batch = np.random.default_rng(0).random((200, 1, 6, 6), dtype=np.float32)
    flipped = transforms.RandomHorizontalFlip(p=0.5)(batch, np.random.default_rng(2))
    mirrored = [np.array_equal(f, b[:, :, ::-1]) for f, b in zip(flipped, batch)]
    same = [np.array_equal(f, b) for f, b in zip(flipped, batch)]
    assert all(m or s for m, s in zip(mirrored, same)) and 60 < sum(mirrored) < 140
    erased = transforms.RandomErasing(p=0.5, value=-1.0)(batch, np.random.default_rng(3))
    hit = (erased == -1.0).any(axis=(1, 2, 3))
    assert 60 < hit.sum() < 140
    for image, was in zip(erased[hit], batch[hit]):
        rows, cols = np.nonzero(image[0] == -1.0)
        assert (image[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1] == -1.0).all()  # a rectangle
        assert np.array_equal(image[image != -1.0], was[image != -1.0])


def test_normalize():
    out = transforms.Normalize(0.5, 0.25)(np.full((1, 1, 2, 2), 1.0, np.float32))
    np.testing.assert_allclose(out, 2.0)
    with pytest.raises(ValueError, match="expected std > 0"):
        transforms.Normalize(0, 0)


def test_array_batches_are_the_images_in_the_order_drawn_from_seed_and_epoch():
    images = np.random.default_rng(5).integers(0, 256, (23, 2, 3, 3), dtype=np.uint8)
    loader = DataLoader(ArrayDataset(images, np.arange(23) % 4), batch_size=5, shuffle=True, seed=7)
    for epoch in (0, 3):
        order = np.random.default_rng([7, epoch]).permutation(23)  # the recipe, written out independently
        got = list(loader.batches(epoch))
        assert [len(labels) for _, labels in got] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(np.concatenate([batch.numpy() for batch, _ in got]),
                                      images[order].astype(np.float32) / 255)
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in got]), order % 4)


class Squares:
    """A user's own dataset: only len, [i] and classes."""
    classes = ("dark", "light")

    def __init__(self, count=12):
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return np.full((1, 4, 4), 20 * i, np.uint8), i % 2


def test_a_dataset_without_batch_is_batched_by_stacking_its_items():
    loader = DataLoader(Squares(12), batch_size=5, shuffle=True, seed=2)
    order = np.random.default_rng([2, 0]).permutation(12)
    images, labels = next(iter(loader))
    assert images.shape == (5, 1, 4, 4) and images.numpy().dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], (20 * order[:5]).astype(np.float32) / 255)
    np.testing.assert_array_equal(labels, order[:5] % 2)
    assert ArrayDataset(np.zeros((3, 2, 2), np.uint8), np.array([0, 1, 2]))[1][1] == 1


def test_a_dataset_missing_part_of_the_protocol_or_giving_odd_shapes_is_refused():
    class NoClasses:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.zeros((1, 2, 2), np.uint8), 0

    with pytest.raises(TypeError, match="got NoClasses without classes"):
        DataLoader(NoClasses(), 2)

    class Ragged(Squares):
        def __getitem__(self, i):
            return np.zeros((1, 4, 4 + i), np.uint8), 0

    with pytest.raises(ValueError, match=r"Ragged\[1\]: expected an image of shape \(1, 4, 4\), as dataset\[0\], "
                                         r"got \(1, 4, 5\)"):
        next(iter(DataLoader(Ragged(), 4)))


def test_a_users_own_dataset_trains_with_the_trainer():
    from convnet import manual_seed, nn, optim
    from convnet.train import Trainer

    manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    train, test = DataLoader(Squares(12), 4, shuffle=True), DataLoader(Squares(6), 6)
    before = model[1].weight.data.copy()
    history = Trainer(model, train, test, optim.SGD(model.parameters(), lr=0.1)).fit(2)
    assert len(history) == 2 and 0 <= history[-1]["test_accuracy"] <= 1
    assert not np.array_equal(before, model[1].weight.data)
