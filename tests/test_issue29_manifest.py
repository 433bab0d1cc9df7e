"""The manifest of a folder's files (`folders.Manifest`) keeps sizes and modification times in
NumPy arrays, not a tuple of Python ints per file, and writes the text (and so the SHA-256 that keys
the image cache and that runs recorded) it always wrote. The oracle: os.stat and hashlib, here."""

import hashlib
import os

import numpy as np
from PIL import Image

from convnet.data.folders import Manifest, scan_folder


def write_folder(root):
    for name in ("b/2.png", "a/10.png", "a/1.png", "b/é 1.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (3, 2), len(name)).save(root / name)


def test_the_text_and_hash_are_the_files_sorted_by_path_with_their_stat(tmp_path):
    write_folder(tmp_path)
    manifest = Manifest.of(scan_folder(tmp_path))
    names = sorted(["a/1.png", "a/10.png", "b/2.png", "b/é 1.png"])
    stats = [os.stat(tmp_path / name) for name in names]
    expected = "".join(f"{stat.st_size}\t{stat.st_mtime_ns}\t{name}\n" for name, stat in zip(names, stats))
    assert manifest.text() == expected
    assert manifest.sha256 == hashlib.sha256(expected.encode()).hexdigest()
    assert manifest.paths == names and len(manifest) == 4
    assert manifest.sizes.dtype == manifest.mtimes.dtype == np.int64
    assert manifest.mtimes.tolist() == [stat.st_mtime_ns for stat in stats]
    parsed = Manifest.parse(expected)
    assert (parsed.paths, parsed.sizes.tolist(), parsed.sha256) == (names, manifest.sizes.tolist(), manifest.sha256)


def test_an_empty_manifest_and_a_broken_link(tmp_path):
    assert Manifest([], [], []).text() == "" and Manifest.parse("").changes(Manifest([], [], [])) == ""
    write_folder(tmp_path)
    os.symlink(tmp_path / "gone.png", tmp_path / "a" / "0.png")
    manifest = Manifest.of(scan_folder(tmp_path))
    assert manifest.text().startswith("-1\t0\ta/0.png\n")  # cannot be stat'ed: reading it fails later, naming it
    assert manifest.changes(Manifest.parse(manifest.text())) == ""
    edited = Manifest.parse(manifest.text().replace("-1\t0\ta/0.png", "5\t0\ta/0.png"))
    assert manifest.changes(edited) == "1 edited (a/0.png)"
