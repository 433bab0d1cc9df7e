"""open_images, ImageFolder and CsvImages on folders the tests write: channels and sizes chosen by
the data, unreadable files, duplicates, statistics and the summary, against Pillow and NumPy."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from convnet.data import CsvImages, DataLoader, ImageError, ImageFolder, open_images


def save(path, array, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def colour_folder(root, per_class=5, size=(6, 8), seed=0):
    """{relative path: pixels (C, H, W)} of random RGB PNGs in classes "red" and "blue sky"."""
    rng, written = np.random.default_rng(seed), {}
    for name in ("red", "blue sky"):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            save(root / name / f"{i}.png", pixels)
            written[f"{name}/{i}.png"] = pixels.transpose(2, 0, 1)
    return written


def test_a_colour_folder_opens_with_its_pixels_statistics_and_summary(tmp_path):
    written = colour_folder(tmp_path / "pics", per_class=10)
    (tmp_path / "pics" / "red" / "notes.txt").write_text("x")
    data = open_images(tmp_path / "pics", cache_dir=tmp_path / "cache", progress=False, workers=1)
    assert data.summary == "image folder, 3 channels, 6x8, 2 classes, 18 training / 2 validation images, " \
                           "1 non-image file skipped"
    assert data.train.classes == ("blue sky", "red") and len(data.train) == 18 and len(data.validation) == 2
    for dataset in (data.train, data.validation):
        for i in range(len(dataset)):
            image, label = dataset[i]
            np.testing.assert_array_equal(image, written[dataset.files[i]])
            assert label == dataset.classes.index(dataset.files[i].split("/")[0])
    training = np.stack([written[name] for name in data.train.files]).astype(np.float64) / 255
    np.testing.assert_allclose(data.description["mean"], training.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(data.description["std"], training.std(axis=(0, 2, 3)), rtol=1e-12)
    assert str(tmp_path / "cache") in data.description["cache"] and data.description["split"]["seed"] == 0
    again = open_images(data.description["path"], cache_dir=tmp_path / "cache", progress=False,
                        **data.description["options"])
    assert again.validation.files == data.validation.files and again.description == data.description
    images, labels = next(iter(DataLoader(data.train, 4)))
    expected = np.stack([written[name] for name in data.train.files[:4]]) / np.float32(255)
    np.testing.assert_array_equal(images.numpy(), expected)


def test_all_grayscale_gives_one_channel_any_colour_three_and_channels_can_be_forced(tmp_path):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    for name in ("a", "b"):
        for i in range(3):
            save(tmp_path / "g" / name / f"{i}.png", gray)
    save(tmp_path / "g" / "a" / "16bit.png", gray.astype(np.uint16) * 257)  # 65535 * v / 255: v exactly
    data = open_images(tmp_path / "g", val_split=0.3, cache_dir=tmp_path / "c", progress=False, workers=1)
    assert data.description["channels"] == 1 and data.train[0][0].shape == (1, 4, 6)
    assert all(np.array_equal(data.train[i][0][0], gray) for i in range(len(data.train)))
    forced = open_images(tmp_path / "g", val_split=0.3, channels=3, cache_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(forced.train[0][0], np.stack([gray] * 3))
    save(tmp_path / "g" / "b" / "colour.png", np.full((4, 6, 3), (255, 0, 0), np.uint8))
    mixed = open_images(tmp_path / "g", val_split=0.3, cache_dir=tmp_path / "c", progress=False, workers=1)
    assert mixed.description["channels"] == 3


def test_mixed_sizes_are_refused_naming_them_and_the_option_and_image_size_centre_crops(tmp_path):
    wide = np.zeros((8, 16), np.uint8)
    wide[:, 4:12] = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for name in ("a", "b"):
        for i in range(3):
            save(tmp_path / "m" / name / f"{i}.png", wide)
    save(tmp_path / "m" / "b" / "square.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    with pytest.raises(ValueError, match=r"the images have 2 different sizes \(height x width\): 8x16 \(6 images, "
                                         r"e.g. 0.png\), 8x8 \(1 image, e.g. square.png\); pass an image size "
                                         r"\(--image-size 8x16, or image_size=\(8, 16\)\)"):
        open_images(tmp_path / "m", val_split=0.3, cache_dir=tmp_path / "c", progress=False, workers=1)
    data = open_images(tmp_path / "m", val_split=0.3, image_size=8, cache_dir=tmp_path / "c", progress=False)
    for dataset in (data.train, data.validation):
        for i in range(len(dataset)):  # the centred 8x8 of each 8x16 image, with no resizing needed
            np.testing.assert_array_equal(dataset[i][0][0], np.arange(64).reshape(8, 8))
    assert data.description["image_size"] == [8, 8] and data.description["conversions"] == {
        "cropped #x# to the centred #x#": 6}


def test_an_exif_rotated_photo_is_turned_upright(tmp_path):
    photo = np.zeros((6, 10, 3), np.uint8)
    photo[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    for name in ("a", "b"):
        for i in range(2):
            save(tmp_path / "e" / name / f"{i}.jpg", photo, exif=exif.tobytes(), quality=95)
    data = open_images(tmp_path / "e", val_split=0.5, cache_dir=tmp_path / "c", progress=False, workers=1)
    with Image.open(tmp_path / "e" / "a" / "0.jpg") as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB")).transpose(2, 0, 1)
    assert upright.shape == (3, 10, 6) and data.description["size"] == [10, 6]
    index = data.train.files.index("a/0.jpg") if "a/0.jpg" in data.train.files else None
    image = data.train[index][0] if index is not None else data.validation[data.validation.files.index("a/0.jpg")][0]
    np.testing.assert_array_equal(image, upright)
    assert data.description["conversions"]["turned upright as its EXIF orientation says"] == 4


def test_unreadable_images_are_refused_by_name_and_count_unless_skipped(tmp_path):
    colour_folder(tmp_path / "d", per_class=4)
    good = (tmp_path / "d" / "red" / "0.png").read_bytes()
    (tmp_path / "d" / "red" / "truncated.png").write_bytes(good[:len(good) // 2])
    (tmp_path / "d" / "blue sky" / "garbage.jpg").write_bytes(b"not a jpeg at all")
    options = {"val_split": 0.25, "cache_dir": tmp_path / "c", "progress": False, "workers": 1}
    with pytest.raises(ImageError, match=r"^2 images cannot be read: .*garbage.jpg: not a readable image .*; "
                                         r".*truncated.png: not a readable image .*; pass skip_bad=True "
                                         r"\(--skip-bad\) to leave them out$"):
        open_images(tmp_path / "d", **options)
    data = open_images(tmp_path / "d", skip_bad=True, **options)
    assert [entry["file"] for entry in data.description["left_out"]] == ["blue sky/garbage.jpg", "red/truncated.png"]
    assert len(data.train) + len(data.validation) == 8 and "2 unreadable images left out" in data.summary


def test_duplicates_between_training_and_validation_are_reported_as_leakage(tmp_path):
    written = colour_folder(tmp_path / "dup" / "train", per_class=3)
    save(tmp_path / "dup" / "val" / "red" / "copy.png", written["red/1.png"].transpose(1, 2, 0))
    save(tmp_path / "dup" / "val" / "blue sky" / "new.png", np.zeros((6, 8, 3), np.uint8))
    data = open_images(tmp_path / "dup", cache_dir=tmp_path / "c", progress=False, workers=1)
    assert data.description["split"]["kind"] == "folders" and len(data.validation) == 2
    assert data.description["duplicates"] == {"count": 1, "examples": [["train/red/1.png", "val/red/copy.png"]]}
    assert data.summary.endswith("; 1 validation image is an exact copy of a training image (leakage)")


def test_alpha_is_composited_and_counted(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    for name in ("a", "b"):
        for i in range(2):
            save(tmp_path / "t" / name / f"{i}.png", rgba)
    data = open_images(tmp_path / "t", val_split=0.5, cache_dir=tmp_path / "c", progress=False, workers=1)
    assert data.description["conversions"] == {"converted RGBA to RGB": 4, "alpha composited onto black": 4}
    assert data.train[0][0][:, 0, 0].tolist() == [(200 * 128 + 127) // 255, 0, 0]


def test_image_folder_and_csv_images_are_one_subset_each_and_the_split_repeats(tmp_path):
    written = colour_folder(tmp_path / "f", per_class=10)
    options = {"cache_dir": tmp_path / "c", "workers": 1, "progress": False}
    train, held = ImageFolder(tmp_path / "f", **options), ImageFolder(tmp_path / "f", "validation", **options)
    assert len(train) == 18 and len(held) == 2 and not set(train.files) & set(held.files)
    other = ImageFolder(tmp_path / "f", "validation", seed=1, **options)
    assert other.description["split"]["validation_sha256"] != held.description["split"]["validation_sha256"]
    rows = "".join(f"f/{name},{name.split('/')[0]}\n" for name in written)
    (tmp_path / "m.csv").write_text("path,label\n" + rows)
    from_csv = CsvImages(tmp_path / "m.csv", **options)
    # the same split: each class draws from its own members, in the same order in the folder and the CSV
    assert sorted(from_csv.files) == sorted(f"f/{name}" for name in train.files)
    assert from_csv.description["kind"] == "csv"
    assert from_csv.description["path"] == str(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="expected subset 'train' or 'validation', got 'val'"):
        ImageFolder(tmp_path / "f", "val", **options)
    with pytest.raises(ValueError, match=r"expected an image folder .* or a CSV manifest"):
        open_images(tmp_path / "m.txt")


def test_an_image_folder_trains_with_the_trainer(tmp_path):
    from convnet import manual_seed, nn, optim
    from convnet.train import Trainer

    colour_folder(tmp_path / "f", per_class=10)
    data = open_images(tmp_path / "f", cache_dir=tmp_path / "c", progress=False, workers=1)
    manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 8, 2))
    trainer = Trainer(model, DataLoader(data.train, 6, shuffle=True), DataLoader(data.validation, 6),
                      optim.SGD(model.parameters(), lr=0.05))
    assert len(trainer.fit(1)) == 1


def test_a_fifo_is_not_read_a_broken_symlink_is_named_and_an_unusable_cache_dir_is_said(tmp_path):
    import os

    colour_folder(tmp_path / "s", per_class=4)
    os.mkfifo(tmp_path / "s" / "red" / "pipe.png")  # reading it would block forever
    os.symlink(tmp_path / "nowhere.png", tmp_path / "s" / "red" / "gone.png")
    options = {"val_split": 0.25, "progress": False, "workers": 1}
    with pytest.raises(ImageError, match=r"^1 image cannot be read: .*red/gone.png: no such file; pass skip_bad"):
        open_images(tmp_path / "s", cache_dir=tmp_path / "c", **options)
    data = open_images(tmp_path / "s", cache_dir=tmp_path / "c", skip_bad=True, **options)
    assert data.description["non_images"] == 1 and data.description["left_out"][0]["file"] == "red/gone.png"
    (tmp_path / "a file").write_text("")
    with pytest.raises(OSError, match=r"cannot write the image cache in .*a file/cache: .*; pass another cache_dir"):
        open_images(tmp_path / "s", cache_dir=tmp_path / "a file" / "cache", skip_bad=True, **options)


def test_palettes_count_as_gray_when_every_entry_is_and_a_bomb_is_left_out_by_name(tmp_path):
    from test_images import blank_png  # a 20000x20000 PNG of a few KB

    gray_palette = Image.new("P", (4, 4))
    gray_palette.putpalette([v for i in range(256) for v in (i, i, i)])
    for name in ("a", "b"):
        (tmp_path / "p" / name).mkdir(parents=True)
        for i in range(2):
            gray_palette.save(tmp_path / "p" / name / f"{i}.gif")
    options = {"val_split": 0.5, "cache_dir": tmp_path / "c", "progress": False, "workers": 1}
    assert open_images(tmp_path / "p", **options).description["channels"] == 1
    colour = Image.new("P", (4, 4))
    colour.putpalette([255, 0, 0] * 256)
    colour.save(tmp_path / "p" / "b" / "red.gif")
    assert open_images(tmp_path / "p", **options).description["channels"] == 3
    blank_png(tmp_path / "p" / "a" / "bomb.png", 20000, 20000)
    data = open_images(tmp_path / "p", skip_bad=True, **options)
    assert data.description["left_out"] == [{"file": "a/bomb.png", "reason": f"{tmp_path / 'p' / 'a' / 'bomb.png'}: "
                                             "400 megapixels is more than convnet reads (at most 8192x8192 = "
                                             "67 megapixels)"}]


def test_channel_statistics_over_many_chunks_equal_numpys_over_the_whole():
    from convnet.data.datasets import channel_statistics
    pixels = np.random.default_rng(3).integers(0, 256, (37, 3, 5, 7), dtype=np.uint8)
    chosen = np.array([30, 2, 5, 11, 0, 36, 17])
    mean, std = channel_statistics(pixels, chosen, chunk_bytes=2 * 3 * 5 * 7)  # two images a chunk
    scaled = pixels[chosen].astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-9)
