"""The IDX reader and the Fashion-MNIST locator, on small files written here."""

import contextlib
import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from convnet.data import IdxError, mnist, read_idx, write_idx
from convnet.data.idx import MAX_DATA_BYTES

MiB = 1 << 20


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, name, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_reads_the_real_header_layout(tmp_path):
    # Hand-built: magic 0x00000801 (uint8, 1 dimension), 3 items.
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    assert read_idx(tmp_path / "labels").tolist() == [7, 8, 9]


@pytest.mark.parametrize("content, message", [
    (b"", "not an IDX file"),
    (b"\x12\x34\x08\x01", "expected magic 0x0000, got 1234"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 0]), "unknown IDX dtype code 0x42"),
    (bytes([0, 0, 8, 0]), "expected 1 to 4 dimensions, got 0"),
    (bytes([0, 0, 8, 2, 0, 0]), "truncated header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated: the header promises 5 bytes of data, the file has 2"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "1 bytes of data expected after the header, but the file has more"),
])
def test_bad_files_are_rejected_with_the_reason(tmp_path, content, message):
    for path, write in ((tmp_path / "f", lambda p: p.write_bytes(content)),
                        (tmp_path / "f.gz", lambda p: p.write_bytes(gzip.compress(content)))):
        write(path)
        with pytest.raises(IdxError, match=message):
            read_idx(path)


def test_a_header_claiming_billions_of_items_is_not_allocated(tmp_path):
    # 4 dims of 65535: 1.8e19 bytes claimed, 10 bytes present. Must fail fast, not allocate.
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 4]) + b"\x00\x00\xff\xff" * 4 + bytes(10)))
    with pytest.raises(IdxError, match=r"huge.gz: the header promises 17,178,820,632.0 GiB of data "
                                       r"\(18445618199572250625 bytes\); convnet reads IDX files up to 2.0 GiB$"):
        read_idx(path)


def test_a_header_within_the_cap_is_still_checked_against_the_data_present(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + MAX_DATA_BYTES.to_bytes(4, "big") + bytes(10)))
    with pytest.raises(IdxError, match=f"truncated: the header promises {MAX_DATA_BYTES} bytes of data, the file "
                                       f"has 10$"):
        read_idx(path)


def write_gzip_bomb(path, header, zero_bytes):
    """A real gzip file of ``header`` then ``zero_bytes`` zeros, compressed a MiB at a time so that
    neither the stream nor its compressed form is ever whole in memory (256 MiB: 0.3 s, 1 MB on disk)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: with gzip's header and trailer
    zeros = bytes(MiB)
    with open(path, "wb") as file:
        file.write(compressor.compress(header))
        file.writelines(compressor.compress(zeros) for _ in range(zero_bytes // MiB))
        file.write(compressor.flush())


@contextlib.contextmanager
def allocation_peak():
    """Yields a dict whose "growth" is, after the block, the peak of Python's allocations above
    where they stood before it, NumPy's buffers and zlib's state included (both report to tracemalloc)."""
    measured = {}
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    try:
        yield measured
    finally:
        measured["growth"] = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()


def test_a_gzip_bomb_promising_more_than_the_cap_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.gz"
    write_gzip_bomb(path, bytes([0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF]), 64 * MiB)
    with allocation_peak() as memory, pytest.raises(
            IdxError, match=r"bomb.gz: the header promises 4.0 GiB of data \(4294967295 bytes\); "
                            r"convnet reads IDX files up to 2.0 GiB$"):
        read_idx(path)
    # Before the cap, the 64 MiB of zeros were read (68 MiB peak) only to find them short of the promise.
    assert memory["growth"] < MiB


# A header promising 64 MiB of big-endian int32, then exactly that (a file that looks like data) or four
# times that (a bomb).
PROMISED = 64 * MiB


@pytest.mark.parametrize("stream_bytes, error", [
    (PROMISED, None), (4 * PROMISED, f"{PROMISED} bytes of data expected after the header, but the file has more")],
    ids=["file", "bomb"])
def test_reading_costs_the_promised_size_once_however_large_the_stream(tmp_path, stream_bytes, error):
    path = tmp_path / "data.gz"
    write_gzip_bomb(path, bytes([0, 0, 0x0C, 1]) + (PROMISED // 4).to_bytes(4, "big"), stream_bytes)
    with allocation_peak() as memory, pytest.raises(IdxError, match=error) if error else contextlib.nullcontext():
        array = read_idx(path)
    if not error:
        assert array.shape == (PROMISED // 4,) and array.dtype == np.int32 and not array.any()
    # The lower bound shows the measurement sees the buffer; the upper one leaves room for a few 256 KiB
    # read temporaries and zlib's window. Growing a bytearray and copying it out took twice the promise for
    # the file, and the bytearray's slack took the bomb over the bound.
    assert PROMISED <= memory["growth"] < PROMISED + 2 * MiB


def test_decompression_stops_just_past_the_promised_data(tmp_path):
    # gzip's reader decompresses 8 KiB ahead of what is asked, so the data past the promise is longer.
    compressor = zlib.compressobj(wbits=31)
    promised_then_more = compressor.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3]) + bytes(3 + MiB))
    stream = promised_then_more + compressor.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 64
    with pytest.raises(zlib.error):  # So reading the stream to its end could not go unnoticed...
        zlib.decompress(stream, wbits=31)
    path = tmp_path / "more.gz"
    path.write_bytes(stream)
    with pytest.raises(IdxError, match="3 bytes of data expected after the header, but the file has more"):
        read_idx(path)  # ...and this error, not "cannot be read as IDX", shows the reader stopped before it.


def test_corrupt_gzip_is_an_idx_error(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))[:-12] + b"garbage!garbage!")
    with pytest.raises(IdxError, match="cannot be read as IDX"):
        read_idx(path)


def write_split(directory, count_images, count_labels, label_value=1):
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((count_images, 28, 28), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.full(count_labels, label_value, np.uint8))


def test_load_checks_counts_and_labels(tmp_path):
    write_split(tmp_path, 5, 5)
    images, labels = mnist.load("fashion-mnist", "test", tmp_path)
    assert images.shape == (5, 28, 28) and labels.dtype == np.int64
    write_split(tmp_path, 5, 4)
    with pytest.raises(IdxError, match="has 5 images but t10k-labels-idx1-ubyte.gz has 4 labels"):
        mnist.load("fashion-mnist", "test", tmp_path)
    write_split(tmp_path, 5, 5, label_value=12)
    with pytest.raises(IdxError, match=r"labels must be in \[0, 9\], found 12"):
        mnist.load("fashion-mnist", "test", tmp_path)


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "SYSTEM_DIRS", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVNET_DATA", raising=False)
    with pytest.raises(mnist.DatasetNotFound, match=r"apt-get install dataset-fashion-mnist, or convnet download "
                                                     r"fashion-mnist \(or pass --data DIR\)"):
        mnist.load("fashion-mnist", "train")


def test_search_order_prefers_the_given_directory_then_the_environment(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    for directory, count in ((given, 2), (env, 3)):
        directory.mkdir()
        write_split(directory, count, count)
    monkeypatch.setenv("CONVNET_DATA", str(env))
    assert len(mnist.load("fashion-mnist", "test", given)[0]) == 2
    assert len(mnist.load("fashion-mnist", "test")[0]) == 3
