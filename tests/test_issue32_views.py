"""Issue 32: airbench's alternating flip (each image mirrored in every other epoch) and its multi-view
test-time augmentation (the image, its mirror image and 1-2 pixel shifts, logits averaged)."""

import json

import numpy as np
import pytest

import convnet
from convnet import nn
from convnet.cli import main
from convnet.data import ArrayDataset, DataLoader, transforms
from convnet.nn.mirror import augmented_view, logits, tta_views


def both_layouts(x):
    """x (N, C, H, W) in contiguous NCHW memory and as an (N, C, H, W) view of NHWC memory."""
    return [np.ascontiguousarray(x), np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)]


def numbered_images(count, channels=2, size=5):
    """``count`` distinct images, none of them its own mirror image, labelled by their index."""
    images = np.random.default_rng(7).integers(0, 256, (count, channels, size, size), dtype=np.uint8)
    images[:, :, 0, 0], images[:, :, 0, -1] = 0, 255  # the left-right mirror of each differs
    return images, ArrayDataset(images, np.arange(count))


def mirrored_in_epoch(loader, originals, epoch):
    """For each dataset image, whether ``epoch``'s batches showed it mirrored (asserting that it is
    exactly np.flip of the image, or the image itself)."""
    seen = {}
    for images, labels in loader.batches(epoch):
        for image, label in zip(images.numpy(), labels):
            original = originals[label].astype(np.float32) / 255
            flipped = np.array_equal(image, np.flip(original, axis=-1))
            assert flipped or np.array_equal(image, original)
            assert label not in seen
            seen[int(label)] = flipped
    return np.array([seen[i] for i in range(len(originals))])


def test_alternating_flip_shows_every_image_mirrored_once_in_every_two_epochs():
    originals, data = numbered_images(60)
    loader = DataLoader(data, batch_size=7, shuffle=True, seed=5, transform=transforms.AlternatingFlip())
    epochs = [mirrored_in_epoch(loader, originals, epoch) for epoch in range(4)]
    assert 15 < epochs[0].sum() < 45  # a random half, a coin per image
    np.testing.assert_array_equal(epochs[1], ~epochs[0])
    np.testing.assert_array_equal(epochs[2], epochs[0])
    np.testing.assert_array_equal(epochs[3], epochs[1])
    other_seed = DataLoader(data, batch_size=7, shuffle=True, seed=6, transform=transforms.AlternatingFlip())
    assert not np.array_equal(mirrored_in_epoch(other_seed, originals, 0), epochs[0])


def test_alternating_flip_mirrors_about_half_the_images_whatever_the_seed():
    for seed in (0, 1, 2**40, -3):
        share = transforms.AlternatingFlip.mirrored(seed, 0, np.arange(20000)).mean()
        assert 0.48 < share < 0.52, (seed, share)


def test_alternating_flip_batches_are_a_pure_function_of_seed_epoch_and_batch():
    originals, data = numbered_images(30)
    steps = transforms.Compose(transforms.AlternatingFlip(), transforms.Normalize(0.5, 0.25))

    def loader():
        return DataLoader(data, batch_size=4, shuffle=True, seed=11, transform=steps)

    walked = loader()
    for _ in range(3):
        list(iter(walked))  # epochs 0, 1 and 2, in order
    in_order = [images.numpy() for images, _ in iter(walked)]  # epoch 3
    resumed = [images.numpy() for images, _ in loader().batches(3, start=2)]
    assert len(resumed) == len(in_order) - 2
    for a, b in zip(in_order[2:], resumed):
        np.testing.assert_array_equal(a, b)
    # Normalize ran after the flip: undoing it gives the mirrored or the plain pixels.
    images, labels = next(loader().batches(1))
    pixels = images.numpy() * 0.25 + 0.5
    for image, label in zip(pixels, labels):
        original = originals[label].astype(np.float32) / 255
        assert (np.allclose(image, np.flip(original, axis=-1), atol=1e-6) != np.allclose(image, original, atol=1e-6))


def test_mirror_images_flips_exactly_the_chosen_images_in_either_layout(rng):
    batch = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    chosen = np.array([True, False, False, True])
    for layout in both_layouts(batch):
        out = transforms.MirrorImages(chosen)(layout)
        np.testing.assert_array_equal(out[chosen], np.flip(batch[chosen], axis=3))
        np.testing.assert_array_equal(out[~chosen], batch[~chosen])
        np.testing.assert_array_equal(layout, batch)  # the input is left alone


def test_alternating_flip_refuses_what_it_cannot_do():
    flip = transforms.AlternatingFlip()
    with pytest.raises(ValueError, match="^AlternatingFlip: needs each image's dataset index and the epoch; use it"):
        flip(np.zeros((2, 1, 3, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^AlternatingFlip: expected epoch to be a non-negative int, got -1$"):
        flip.for_batch(0, -1, np.arange(3))
    with pytest.raises(ValueError, match=r"^AlternatingFlip: expected dataset indices as non-negative ints \(B,\)"):
        flip.for_batch(0, 0, np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="^MirrorImages: expected a batch of 3 images, got 2$"):
        flip.for_batch(0, 0, np.arange(3))(np.zeros((2, 1, 3, 3), np.float32))


def shifted_oracle(image, rows, cols, padding_mode):
    """The defining formula, pixel by pixel: out[i, j] = image[i - rows, j - cols], an index off
    the image reflected about its edge pixel ("reflect") or clamped to it ("replicate")."""
    h, w = image.shape[-2:]

    def inside(k, size):
        if padding_mode == "replicate":
            return min(max(k, 0), size - 1)
        return -k if k < 0 else 2 * (size - 1) - k if k >= size else k

    out = np.empty_like(image)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = image[..., inside(i - rows, h), inside(j - cols, w)]
    return out


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (-1, -1), (2, 2), (-2, -2), (0, 2), (1, -2)])
def test_shifted_views_equal_the_defining_formula_and_torch_pad(padding_mode, rows, cols, rng):
    images = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    expected = shifted_oracle(images, rows, cols, padding_mode)
    for layout in both_layouts(images):
        np.testing.assert_array_equal(augmented_view(layout, False, rows, cols, padding_mode), expected)
        np.testing.assert_array_equal(augmented_view(layout, True, rows, cols, padding_mode), np.flip(expected, 3))
    torch = pytest.importorskip("torch")
    pad = max(abs(rows), abs(cols))
    padded = torch.nn.functional.pad(torch.from_numpy(images), (pad,) * 4, mode=padding_mode).numpy()
    np.testing.assert_array_equal(expected, padded[:, :, pad - rows:pad - rows + 5, pad - cols:pad - cols + 6])


def test_the_views_and_weights_are_airbenchs():
    assert tta_views() == ((1.0, False, 0, 0),)
    assert tta_views(mirror=True) == ((0.5, False, 0, 0), (0.5, True, 0, 0))
    assert tta_views(mirror=True, translate=1) == ((0.25, False, 0, 0), (0.25, True, 0, 0),
                                                   (0.125, False, 1, 1), (0.125, True, 1, 1),
                                                   (0.125, False, -1, -1), (0.125, True, -1, -1))
    assert tta_views(translate=2) == ((0.5, False, 0, 0), (0.25, False, 2, 2), (0.25, False, -2, -2))


class Recording(nn.Module):
    """A linear layer over the flattened image, with known weights, that records each batch's size."""

    def __init__(self, weight, bias):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        self.linear.weight.data[...] = weight
        self.linear.bias.data[...] = bias
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return self.linear(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("mirror, translate, padding_mode", [(True, 0, "reflect"), (True, 1, "reflect"),
                                                             (True, 2, "replicate"), (False, 1, "replicate")])
def test_averaged_logits_equal_the_hand_computed_average_of_the_views(mirror, translate, padding_mode, rng):
    images = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    weight = rng.standard_normal((4, 2 * 4 * 5)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    pictures = [(1.0, images)]
    if translate:  # airbench: half for the image, a quarter each for the two diagonal shifts
        pictures = [(0.5, images), (0.25, shifted_oracle(images, translate, translate, padding_mode)),
                    (0.25, shifted_oracle(images, -translate, -translate, padding_mode))]
    if mirror:
        pictures = [(share / 2, view) for share, picture in pictures for view in (picture, np.flip(picture, 3))]
    expected = sum(share * (view.reshape(3, -1).astype(np.float64) @ weight.T + bias) for share, view in pictures)
    views = len(pictures)
    for layout in both_layouts(images):
        for max_values, passes in [(1 << 20, [3 * views]), (images.size, [3] * views), (2 * images.size, None)]:
            model = Recording(weight, bias)
            with convnet.no_grad():
                out = logits(model, layout, mirror, translate, padding_mode, max_values=max_values).numpy()
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
            assert sum(model.batch_sizes) == 3 * views and max(model.batch_sizes) * images[0].size <= max(
                max_values, images.size)
            if passes is not None:
                assert model.batch_sizes == passes


def test_no_views_is_the_model_itself(rng):
    images = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    model = Recording(rng.standard_normal((2, 9)).astype(np.float32), np.zeros(2, np.float32))
    with convnet.no_grad():
        np.testing.assert_array_equal(logits(model, images).numpy(), model(convnet.Tensor(images)).numpy())


def test_test_time_views_refuse_bad_arguments():
    model, images = Recording(np.ones((2, 9), np.float32), np.zeros(2, np.float32)), np.zeros((2, 1, 3, 3), np.float32)
    cases = [(dict(mirror="yes"), TypeError, "^logits: expected mirror to be a bool, got 'yes'$"),
             (dict(translate=-1), ValueError, "^logits: expected translate to be a non-negative int of pixels, got -1$"),
             (dict(translate=1.5), ValueError, "^logits: expected translate to be a non-negative int of pixels, got 1.5$"),
             (dict(translate=1, padding_mode="zeros"), ValueError,
              "^logits: expected padding_mode to be one of reflect, replicate, got 'zeros'$"),
             (dict(translate=3), ValueError, "^logits: a reflected shift of 3 pixels needs images larger than that, got 3x3$"),
             (dict(mirror=True, max_values=0), ValueError, "^logits: expected max_values to be a positive int, got 0$")]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            logits(model, images, **arguments)
    with pytest.raises(ValueError, match=r"^logits: expected images of shape \(N, C, H, W\) for test-time views, got \(2, 9\)$"):
        logits(model, np.zeros((2, 9), np.float32), mirror=True)


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_shifted_test_views_are_named_where_the_accuracy_is_printed(tiny_fashion, tmp_path, capsys):
    """With --test-translate the figures average six views, not two: both lines say so."""
    run_dir = tmp_path / "shifted"
    code, out, _ = cli(capsys, "train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs", "1",
                       "--batch-size", "32", "--augment", "crop,flip", "--test-translate", "1", "--out", str(run_dir),
                       "--no-progress")
    views = "mirrored and shifted 1 px down-right and up-left"
    assert code == 0 and f"; test images are also scored {views} (test-time views); run folder" in out
    recorded = json.loads((run_dir / "checkpoint.json").read_text())["history"][-1]
    line = (f"test accuracy: {recorded['test_accuracy']:.4f} (loss {recorded['test_loss']:.4f}, each image averaged "
            f"with its views {views})\n")
    assert f"\n{line}" in out
    code, out, _ = cli(capsys, "evaluate", str(run_dir), "--no-test-mirror")
    assert code == 0 and out.startswith("test accuracy: ") and out.splitlines()[0].endswith(
        ", each image averaged with its views shifted 1 px down-right and up-left)")
    pytest.importorskip("onnx", reason="exporting needs the onnx package (pip install 'convnet-numpy[onnx]')")
    path = tmp_path / "shifted.onnx"
    code, out, _ = cli(capsys, "export", str(run_dir), str(path))
    assert code == 0 and (f"note: {run_dir} was evaluated with test-time views, which the graph leaves out: average "
                          f"its outputs for each image and its views {views}") in out
    code, out, _ = cli(capsys, "evaluate", str(path), "--data", str(tiny_fashion))
    assert code == 0 and out.startswith(line)
