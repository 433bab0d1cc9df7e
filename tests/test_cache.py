"""The decoded cache: made once, opened after, invalidated by a changed file, never used half
written (a kill -9 mid-decoding), the same pixels on any number of workers, and Fashion-MNIST
written out as PNGs decoding to exactly its IDX pixels."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from convnet.data import cache, mnist, open_images
from convnet.data.folders import Manifest, scan_folder


def gray_folder(root, count=20, classes=2, seed=0):
    """{relative path: pixels (H, W)} of random 10x12 grayscale PNGs, ``count`` per class."""
    rng, written = np.random.default_rng(seed), {}
    for label in range(classes):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (10, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"c{label}" / f"{i:03d}.png")
            written[f"c{label}/{i:03d}.png"] = pixels
    return written


def all_pixels(data):
    """{relative path: pixels (H, W)} of both subsets' single-channel images."""
    return {name: dataset[i][0][0] for dataset in (data.train, data.validation) for i, name in enumerate(dataset.files)}


def test_the_second_open_reads_the_cache_and_decodes_nothing(tmp_path, monkeypatch):
    written = gray_folder(tmp_path / "g")
    first = open_images(tmp_path / "g", cache_dir=tmp_path / "c", progress=False, workers=1)
    monkeypatch.setattr(cache, "read_image", lambda *args, **kwargs: pytest.fail("decoded again"))
    monkeypatch.setattr(cache, "_headers", lambda *args: pytest.fail("read the headers again"))
    second = open_images(tmp_path / "g", cache_dir=tmp_path / "c", progress=False, workers=1)
    assert isinstance(second.train.pixels, np.memmap) and second.description == first.description
    assert {name: pixels.tolist() for name, pixels in all_pixels(second).items()} == \
           {name: pixels.tolist() for name, pixels in written.items()}


def test_a_changed_file_is_decoded_again(tmp_path):
    gray_folder(tmp_path / "g")
    before = open_images(tmp_path / "g", cache_dir=tmp_path / "c", progress=False, workers=1)
    edited = np.full((10, 12), 7, np.uint8)
    Image.fromarray(edited).save(tmp_path / "g" / "c1" / "004.png")
    os.utime(tmp_path / "g" / "c1" / "004.png", ns=(1, 10**18))  # a new mtime even on a coarse-grained clock
    after = open_images(tmp_path / "g", cache_dir=tmp_path / "c", progress=False, workers=1)
    assert after.description["cache"] != before.description["cache"]
    np.testing.assert_array_equal(all_pixels(after)["c1/004.png"], edited)


def test_the_default_cache_is_in_the_user_cache_not_the_image_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user cache"))
    gray_folder(tmp_path / "g", count=5)
    files = sorted(tmp_path.joinpath("g").rglob("*"))
    data = open_images(tmp_path / "g", progress=False, workers=1)
    assert data.description["cache"].startswith(str(tmp_path / "user cache" / "convnet" / "images"))
    assert sorted(tmp_path.joinpath("g").rglob("*")) == files


@pytest.mark.parametrize("workers, executor", [(2, cache.ProcessPoolExecutor), (3, ThreadPoolExecutor)])
def test_parallel_decoding_gives_the_same_pixels(tmp_path, workers, executor):
    written = gray_folder(tmp_path / "g", count=30)
    listing = scan_folder(tmp_path / "g")
    decoded = cache.decoded(listing.paths, Manifest.of(listing), tmp_path / "c", workers=workers, progress=False,
                            executor=executor)
    np.testing.assert_array_equal(decoded.pixels[:, 0], np.stack([written[name] for name in listing.relative()]))


KILLED_MID_DECODING = r"""
import sys, time
from convnet.data import cache, open_images
real = cache.read_image
def slow(*args, **kwargs):
    time.sleep(0.02)
    return real(*args, **kwargs)
cache.read_image = slow
open_images(sys.argv[1], cache_dir=sys.argv[2], progress=False, workers=1)
"""


@pytest.mark.slow
def test_a_kill_during_decoding_never_leaves_a_cache_that_is_used(tmp_path):
    written = gray_folder(tmp_path / "g", count=100)
    (tmp_path / "c").mkdir()
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_DECODING, str(tmp_path / "g"), str(tmp_path / "c")])
    deadline = time.monotonic() + 60
    while not list((tmp_path / "c").glob(".*.tmp")):
        assert child.poll() is None and time.monotonic() < deadline, "the child should still be decoding"
        time.sleep(0.01)
    time.sleep(0.5)  # well into the decoding pass: part of the rows written
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert list((tmp_path / "c").glob(".*.tmp")) and not list((tmp_path / "c").glob("*.json"))
    data = open_images(tmp_path / "g", cache_dir=tmp_path / "c", progress=False, workers=1)
    assert {n: p.tolist() for n, p in all_pixels(data).items()} == {n: p.tolist() for n, p in written.items()}
    assert not list((tmp_path / "c").glob(".*.tmp"))  # the killed decoding's leftovers are gone


def test_fashion_mnist_written_as_png_folders_decodes_to_exactly_its_idx_pixels(tmp_path):
    try:
        images, labels = mnist.load("fashion-mnist", "train")
        images, labels = images[:300], labels[:300]
    except mnist.DatasetNotFound:
        rng = np.random.default_rng(0)
        images, labels = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), np.arange(300) % 10
    names = mnist.CLASSES["fashion-mnist"]
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "fashion" / names[label].replace("/", " or ")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    data = open_images(tmp_path / "fashion", cache_dir=tmp_path / "c", progress=False)
    assert data.description["channels"] == 1 and data.description["size"] == [28, 28]
    assert len(data.train) + len(data.validation) == 300
    for dataset in (data.train, data.validation):
        index = np.array([int(name[-9:-4]) for name in dataset.files])
        np.testing.assert_array_equal(dataset.pixels[dataset.indices][:, 0], images[index])
        assert [dataset.classes[label] for label in dataset.labels] == \
               [names[label].replace("/", " or ") for label in labels[index]]
