"""CIFAR-10 and CIFAR-100 python archives: reading them (written here as Python 2 wrote them),
refusing damaged ones, and `convnet download cifar10` against a local server."""

import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

from convnet.cli import main
from convnet.data import cifar, mnist
from convnet.data.download import SOURCES, DownloadError, download

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR files: every str (and bytes) as a byte string
    (SHORT_BINSTRING / BINSTRING, read back as bytes under encoding="bytes"), and numpy's array
    reconstructor under numpy 1's module name, numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_byte_string
    dispatch[type] = save_global


def python2_pickle(obj):
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def random_images(rng, count):
    return rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)


def write_cifar10(folder, per_batch=4, seed=0):
    """A CIFAR-10 folder of 5 training batches and a test batch of ``per_batch`` images each;
    returns {split: (images (N, 3, 32, 32), labels)} as written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for split, names in cifar.LAYOUTS["cifar10"]["splits"].items():
        images, labels = random_images(rng, per_batch * len(names)), rng.integers(0, 10, per_batch * len(names))
        written[split] = images, labels
        for number, name in enumerate(names):
            part = slice(number * per_batch, (number + 1) * per_batch)
            batch = {b"batch_label": f"{split} batch {number + 1}", b"labels": labels[part].tolist(),
                     b"data": images[part].reshape(per_batch, 3072),
                     b"filenames": [f"image_{index}.png" for index in range(per_batch)]}
            (folder / name).write_bytes(python2_pickle(batch))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR10_NAMES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(python2_pickle(meta))
    return written


def write_cifar100(folder, count=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for split in ("train", "test"):
        images, fine, coarse = random_images(rng, count), rng.integers(0, 100, count), rng.integers(0, 20, count)
        written[split] = images, fine, coarse
        batch = {b"filenames": [f"f{index}.png" for index in range(count)], b"batch_label": f"{split} batch",
                 b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist(), b"data": images.reshape(count, -1)}
        (folder / split).write_bytes(python2_pickle(batch))
    meta = {b"fine_label_names": [f"fine{index}" for index in range(100)],
            b"coarse_label_names": [f"coarse{index}" for index in range(20)]}
    (folder / "meta").write_bytes(python2_pickle(meta))
    return written


def test_cifar10_reads_the_planes_labels_and_class_names(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    written = write_cifar10(folder)
    assert b"numpy.core.multiarray\n_reconstruct" in (folder / "data_batch_1").read_bytes()  # as the official files
    for split, count in (("train", 20), ("test", 4)):
        dataset = cifar.load(tmp_path, split)  # the folder holding cifar-10-batches-py
        images, labels = written[split]
        assert dataset.images.dtype == np.uint8 and dataset.images.shape == (count, 3, 32, 32)
        np.testing.assert_array_equal(dataset.images, images)
        assert dataset.labels.dtype == np.int64 and dataset.labels.tolist() == labels.tolist()
        assert dataset.classes == tuple(CIFAR10_NAMES)
        assert dataset.source == {"kind": "cifar10", "path": str(folder.resolve()), "split": split, "labels": "fine",
                                  "sha256": mnist.fingerprint(images, labels.astype(np.int64))}
        json.dumps(dataset.source)
    assert cifar.describe(cifar.load(folder)) == "CIFAR-10 train, 3 channels, 32x32, 10 classes, 20 images"


def test_a_row_is_the_red_then_green_then_blue_plane(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, per_batch=1)
    row = np.zeros(3072, np.uint8)
    row[0], row[1024 + 32 * 2 + 5], row[2048 + 1023] = 11, 22, 33  # R (0, 0), G (2, 5), B (31, 31)
    batch = {b"data": row[None], b"labels": [3]}
    (folder / "test_batch").write_bytes(python2_pickle(batch))
    image = cifar.load(folder, "test").images[0]
    assert (image[0, 0, 0], image[1, 2, 5], image[2, 31, 31]) == (11, 22, 33) and image.sum() == 66


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    written = write_cifar100(folder)
    assert cifar.find(tmp_path) == ("cifar100", folder) and cifar.find(folder) == ("cifar100", folder)
    fine = cifar.load(folder, "test")
    np.testing.assert_array_equal(fine.images, written["test"][0])
    assert fine.labels.tolist() == written["test"][1].tolist() and len(fine.classes) == 100
    coarse = cifar.load(folder, "train", label_mode="coarse")
    assert coarse.labels.tolist() == written["train"][2].tolist() and coarse.classes[19] == "coarse19"
    assert coarse.source["labels"] == "coarse" and coarse.source["sha256"] != fine.source["sha256"]
    assert cifar.describe(coarse) == "CIFAR-100 train (coarse labels), 3 channels, 32x32, 20 classes, 6 images"
    with pytest.raises(ValueError, match=r"CIFAR-100: unknown label_mode 'medium'; expected one of \['coarse', "
                                         r"'fine'\]"):
        cifar.load(folder, label_mode="medium")
    with pytest.raises(ValueError, match=r"CIFAR-100: unknown split 'val'; expected 'train' or 'test'"):
        cifar.load(folder, "val")


def test_a_folder_without_cifar_data_says_what_it_expected(tmp_path):
    assert cifar.find(tmp_path) is None
    with pytest.raises(mnist.DatasetNotFound, match="holds no CIFAR data; expected the folder cifar-10-batches-py"):
        cifar.load(tmp_path)


def _batch_with(folder, **changes):
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    batch.update({key.encode(): value for key, value in changes.items()})
    batch = {key: value for key, value in batch.items() if value is not None}  # None: leave the key out
    (folder / "data_batch_2").write_bytes(python2_pickle(batch))


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "data_batch_3").unlink(), r"data_batch_3: missing"),
    (lambda folder: _batch_with(folder, data=np.zeros((4, 3000), np.uint8)),
     r"data_batch_2: expected 'data' to be uint8 of shape \(N, 3072\), got uint8 \(4, 3000\)"),
    (lambda folder: _batch_with(folder, data=np.zeros((4, 3072), np.float32)),
     r"data_batch_2: expected 'data' to be uint8 of shape \(N, 3072\), got float32 \(4, 3072\)"),
    (lambda folder: _batch_with(folder, labels=[0, 1, 10, 3]),
     r"data_batch_2: labels must be in \[0, 9\] \(the meta file names 10 classes\), found 10"),
    (lambda folder: _batch_with(folder, labels=[0, -1, 2, 3]), r"data_batch_2: labels must be in \[0, 9\].*found -1"),
    (lambda folder: _batch_with(folder, labels=[0, 1, 2]), r"data_batch_2: has 4 images but 3 labels in 'labels'"),
    (lambda folder: _batch_with(folder, labels=[0.5, 1, 2, 3]),
     r"data_batch_2: expected 'labels' to be a list of integers, got \[0.5, 1, 2, 3\]"),
    (lambda folder: _batch_with(folder, labels=None, fine_labels=[0, 1, 2, 3]),
     r"data_batch_2: expected the keys 'data' and 'labels', got \['data', 'fine_labels'\]"),
    (lambda folder: (folder / "data_batch_4").write_bytes((folder / "data_batch_4").read_bytes()[:5000]),
     r"data_batch_4: not a readable CIFAR pickle, damaged or truncated \(UnpicklingError: pickle data was truncated"),
    (lambda folder: (folder / "test_batch").write_bytes(python2_pickle([1, 2])),
     r"test_batch: expected a pickled dict, got list"),
    (lambda folder: (folder / "batches.meta").write_bytes(python2_pickle({b"label_names": []})),
     r"batches.meta: expected 'label_names' to list the class names, got \[\]"),
], ids=["missing batch", "wrong row length", "float pixels", "label too large", "negative label", "fewer labels",
        "float label", "no labels key", "truncated", "not a dict", "no class names"])
def test_damaged_archives_are_refused_naming_the_file(tmp_path, damage, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    damage(folder)
    with pytest.raises((cifar.CifarError, mnist.DatasetNotFound), match=message) as caught:
        cifar.load(folder, "test" if "test_batch" in message else "train")
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)


def test_a_pickle_naming_anything_else_is_refused_and_nothing_runs(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "ran"
    # {b'data': os.system('touch ran')}: Python 2's protocol 2 names the function as posix.system.
    command = f"touch {marker}".encode()
    payload = (b"\x80\x02}U\x04data" + b"cposix\nsystem\n" + b"U" + bytes([len(command)]) + command
               + b"\x85R" + b"s.")
    (folder / "data_batch_1").write_bytes(payload)
    with pytest.raises(cifar.CifarError, match=r"data_batch_1: refused: its pickle names posix.system, which a CIFAR "
                                               r"file never needs .*nothing in the file was run"):
        cifar.load(folder)
    assert not marker.exists()
    assert pickle.loads(payload) == {"data": 0} and marker.exists()  # the plain unpickler would have run it


# ---------------------------------------------------------------------------- download
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (its URL, the folder)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def archive_of(source, extra=None):
    """The bytes of a tar.gz holding the folder ``source`` under its own name, plus the
    ``extra`` (tarfile.TarInfo, bytes or None) members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(source, arcname=source.name)
        for info, data in extra or ():
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def pin(monkeypatch, archive_bytes):
    """Make download('cifar10') expect the SHA-256 of ``archive_bytes``."""
    source = dict(SOURCES["cifar10"], files={"cifar-10-python.tar.gz": hashlib.sha256(archive_bytes).hexdigest()})
    monkeypatch.setitem(SOURCES, "cifar10", source)


def test_the_official_archives_are_pinned():
    assert SOURCES["cifar10"]["files"] == {
        "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}
    assert SOURCES["cifar100"]["files"] == {
        "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"}
    assert SOURCES["cifar10"]["url"] == SOURCES["cifar100"]["url"] == "https://www.cs.toronto.edu/~kriz/"


def test_download_verifies_unpacks_and_reads_back(tmp_path, server, monkeypatch, capsys):
    url, www = server
    written = write_cifar10(tmp_path / "made" / "cifar-10-batches-py")
    data = archive_of(tmp_path / "made" / "cifar-10-batches-py")
    (www / "cifar-10-python.tar.gz").write_bytes(data)
    pin(monkeypatch, data)
    target = tmp_path / "cache"
    assert main(["download", "cifar10", "--dir", str(target), "--url", url]) == 0
    folder = target / "cifar-10-batches-py"
    assert f"cifar10 is in {folder}" in capsys.readouterr().out
    assert sorted(os.listdir(target)) == ["cifar-10-batches-py"]  # the archive is gone once unpacked
    np.testing.assert_array_equal(cifar.load(folder, "test").images, written["test"][0])
    (www / "cifar-10-python.tar.gz").unlink()  # present and complete: nothing is fetched again
    assert download("cifar10", target, url, progress=False) == folder
    (folder / "data_batch_5").unlink()
    with pytest.raises(DownloadError, match=r"cifar-10-batches-py exists but lacks data_batch_5; remove it"):
        download("cifar10", target, url, progress=False)


def test_a_tampered_archive_is_discarded_before_unpacking(tmp_path, server, monkeypatch):
    url, www = server
    write_cifar10(tmp_path / "made" / "cifar-10-batches-py")
    data = archive_of(tmp_path / "made" / "cifar-10-batches-py")
    pin(monkeypatch, data)
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 1
    (www / "cifar-10-python.tar.gz").write_bytes(bytes(tampered))
    target = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"contents do not match the pinned SHA-256 .*the file was discarded"):
        download("cifar10", target, url, progress=False)
    assert os.listdir(target) == []


def _member(name, kind=tarfile.REGTYPE, link="", data=b"x"):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("member, message", [
    (_member("../escaped"), r"is outside the destination"),
    (_member("/tmp/absolute"), r"outside|absolute"),
    (_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "data_batch_1"),
     r"member 'cifar-10-batches-py/link' is a link or a special file"),
    (_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "cifar-10-batches-py/data_batch_1"),
     r"member 'cifar-10-batches-py/hard' is a link or a special file"),
    (_member("elsewhere.txt"), r"member 'elsewhere.txt' is outside cifar-10-batches-py/"),
], ids=["dot-dot", "absolute", "symlink", "hard link", "outside the folder"])
def test_an_archive_with_links_or_paths_outside_is_refused_even_when_pinned(tmp_path, server, monkeypatch, member,
                                                                            message):
    url, www = server
    write_cifar10(tmp_path / "made" / "cifar-10-batches-py")
    data = archive_of(tmp_path / "made" / "cifar-10-batches-py", extra=[member])
    (www / "cifar-10-python.tar.gz").write_bytes(data)
    pin(monkeypatch, data)
    target = tmp_path / "cache"
    with pytest.raises(DownloadError, match=message):
        download("cifar10", target, url, progress=False)
    assert sorted(os.listdir(target)) == ["cifar-10-python.tar.gz"]  # verified, kept; nothing extracted
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/tmp/absolute")


def test_an_archive_lacking_a_batch_is_not_unpacked(tmp_path, server, monkeypatch):
    url, www = server
    made = tmp_path / "made" / "cifar-10-batches-py"
    write_cifar10(made)
    (made / "test_batch").unlink()
    data = archive_of(made)
    (www / "cifar-10-python.tar.gz").write_bytes(data)
    pin(monkeypatch, data)
    with pytest.raises(DownloadError, match=r"lacks cifar-10-batches-py/test_batch \(1 of the 7 files expected"):
        download("cifar10", tmp_path / "cache", url, progress=False)
    assert sorted(os.listdir(tmp_path / "cache")) == ["cifar-10-python.tar.gz"]
