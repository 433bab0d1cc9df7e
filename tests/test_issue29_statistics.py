"""The training images' per-channel mean and std are computed once per training subset and kept in the
image cache's JSON (`data.cache.statistics`): a second open (a second start, every rank after the
first) reads them bit for bit instead of summing every image again; another split computes its own.
The oracle: the same figures from Pillow's decoding and NumPy's float64 arithmetic."""

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet.data import cache, open_images, shapes
from convnet.files import WriteError
from test_distributed import mpirun, requires_mpi, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """4 classes of 16x16 RGB shapes, 8 each, without a split of their own."""
    root = tmp_path_factory.mktemp("stats")
    shapes(root, per_class=8, val_per_class=0, size=16)
    return root / "train"


def opened(folder, cache_dir, val_split=0.25):
    return open_images(folder, val_split=val_split, cache_dir=cache_dir, progress=False, workers=1)


def oracle(folder, files):
    """Per-channel (mean, std) in [0, 1] of the RGB images ``files`` (relative to ``folder``), by Pillow and NumPy."""
    pixels = np.stack([np.asarray(Image.open(folder / name).convert("RGB"), np.float64) / 255 for name in files])
    return pixels.mean(axis=(0, 1, 2)), pixels.std(axis=(0, 1, 2))


@pytest.fixture
def counted(monkeypatch):
    """The number of times the statistics are summed over the pixels."""
    calls = []
    compute = cache.channel_statistics

    def counting(pixels, indices):
        calls.append(len(indices))
        return compute(pixels, indices)

    monkeypatch.setattr(cache, "channel_statistics", counting)
    return calls


def refuse_to_compute(monkeypatch):
    def refuse(pixels, indices):
        raise AssertionError("the statistics were computed again")

    monkeypatch.setattr(cache, "channel_statistics", refuse)


def test_a_second_open_reads_the_statistics_bit_for_bit(folder, tmp_path, counted, monkeypatch):
    first = opened(folder, tmp_path / "c")
    assert counted == [24]  # 8 per class, 2 held out: 6 x 4 training images
    mean, std = oracle(folder, first.train.files)
    np.testing.assert_allclose(first.description["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(first.description["std"], std, rtol=1e-12)
    refuse_to_compute(monkeypatch)
    second = opened(folder, tmp_path / "c")
    assert second.description["mean"] == first.description["mean"]  # lists of floats: equal bit for bit
    assert second.description["std"] == first.description["std"]


def test_another_split_computes_its_own_and_both_are_kept(folder, tmp_path, counted, monkeypatch):
    quarter = opened(folder, tmp_path / "c")
    half = opened(folder, tmp_path / "c", val_split=0.5)
    assert counted == [24, 16]
    mean, std = oracle(folder, half.train.files)
    np.testing.assert_allclose(half.description["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(half.description["std"], std, rtol=1e-12)
    assert half.description["mean"] != quarter.description["mean"]
    refuse_to_compute(monkeypatch)
    for split, before in ((0.25, quarter), (0.5, half)):
        assert opened(folder, tmp_path / "c", split).description["mean"] == before.description["mean"]


def sidecar_of(cache_dir):
    [path] = Path(cache_dir).glob("*.json")
    return path


def test_the_sidecar_keys_them_by_channels_size_and_the_training_images(folder, tmp_path):
    data = opened(folder, tmp_path / "c")
    [(key, value)] = json.loads(sidecar_of(tmp_path / "c").read_text())["statistics"].items()
    rows = np.sort(data.train.indices).astype(np.int64)
    assert key == f"3x16x16:{hashlib.sha256(rows.tobytes()).hexdigest()}"
    assert value == [data.description["mean"], data.description["std"]]


def test_a_killed_rewrite_leaves_the_cache_whole_and_computes_again_next_time(folder, tmp_path, counted,
                                                                              monkeypatch):
    quarter = opened(folder, tmp_path / "c")
    before = sidecar_of(tmp_path / "c").read_text()

    def killed(path, data):  # as if killed mid-way: half the text under a temporary name, never renamed
        (path.parent / f".{path.name}.partial").write_text(data[: len(data) // 2])
        raise WriteError(f"cannot write {path}: killed")

    with monkeypatch.context() as patch:
        patch.setattr(cache, "atomic_write", killed)
        half = opened(folder, tmp_path / "c", val_split=0.5)  # its figures still come back
    assert sidecar_of(tmp_path / "c").read_text() == before
    monkeypatch.setattr(cache, "_run", lambda *args: pytest.fail("the cache was decoded again"))
    assert opened(folder, tmp_path / "c", val_split=0.5).description["mean"] == half.description["mean"]
    assert counted == [24, 16, 16]  # the lost figures computed again; the pixels read from the cache
    assert opened(folder, tmp_path / "c").description["mean"] == quarter.description["mean"]
    assert counted == [24, 16, 16]


def test_a_damaged_entry_is_computed_again(folder, tmp_path, counted):
    opened(folder, tmp_path / "c")
    sidecar = sidecar_of(tmp_path / "c")
    meta = json.loads(sidecar.read_text())
    meta["statistics"] = {key: [[0.5], [0.5]] for key in meta["statistics"]}  # 1 number for 3 channels
    sidecar.write_text(json.dumps(meta))
    data = opened(folder, tmp_path / "c")
    assert counted == [24, 24] and len(data.description["mean"]) == 3


def test_only_the_latest_subsets_are_kept(folder, tmp_path, counted, monkeypatch):
    monkeypatch.setattr(cache, "STATISTICS_KEPT", 2)
    for split in (0.25, 0.5, 0.375, 0.375, 0.5, 0.25):
        opened(folder, tmp_path / "c", split)
    assert counted == [24, 16, 20, 24]  # 0.25's figures were dropped for 0.375's, then computed again
    assert len(json.loads(sidecar_of(tmp_path / "c").read_text())["statistics"]) == 2


STATISTICS_COUNTED = textwrap.dedent("""
    import os, sys
    from convnet.data import cache
    from convnet.cli import main
    compute = cache.channel_statistics

    def counted(pixels, indices):
        print(f"rank {os.environ['OMPI_COMM_WORLD_RANK']}: statistics of {len(indices)} images", flush=True)
        return compute(pixels, indices)
    cache.channel_statistics = counted
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.system
@requires_mpi
def test_two_ranks_compute_the_statistics_once_and_a_second_start_reads_them(folder, tmp_path, monkeypatch):
    script = tmp_path / "counted.py"
    script.write_text(STATISTICS_COUNTED)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # mpirun's ranks inherit it
    for out, expected in (("first", ["rank 0: statistics of 28 images"]), ("second", [])):
        command = train(folder, tmp_path / out, "--distributed", "--batch-size", 8, epochs=1)
        code, printed, err, _ = mpirun(2, script, *command[2:])
        assert code == 0, err
        assert [line for line in printed.splitlines() if line.startswith("rank ")] == expected
