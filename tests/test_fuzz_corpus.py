"""The fuzz corpus (fuzz/corpus/<target>/: seeds, and every crash the fuzzers found) replayed
through its reader: only the documented one-line errors may come out (`fuzz/targets.py` says which
per reader). A fuzz run that finds a new crash adds a file here, minimised; see fuzz/run.py."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as save_tensors

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conftest import requires  # noqa: E402
from fuzz import targets  # noqa: E402
from fuzz.run import MAX_LEN  # noqa: E402  (run.py imports atheris only when it fuzzes)

from convnet import checkpoint, experiment, load_pth  # noqa: E402
from convnet.data import mnist, read_idx, read_image  # noqa: E402

# Crashes that were memory, not an exception (libFuzzer's oom-*): replayed in a child process whose
# peak memory is measured, at most this many bytes per pixel of the image (plus what the import costs).
BYTES_PER_PIXEL = 16

CORPUS = targets.corpus_files()


def needs_its_reader(name):
    """The marks of a corpus file whose reader needs an optional package: convnet.onnx needs onnx."""
    return [requires("onnx")] if name == "onnx" else []


def replay_marks(name, path):
    """Its reader's needs; and a memory crash replays in a fresh process, which takes seconds."""
    return needs_its_reader(name) + ([pytest.mark.slow] if path.name.startswith("crash-oom-") else [])


@pytest.mark.parametrize(("name", "path"), [pytest.param(name, path, id=f"{name}/{path.name}",
                                                         marks=replay_marks(name, path)) for name, path in CORPUS])
def test_the_corpus_raises_only_documented_errors(name, path):
    if path.name.startswith("crash-oom-"):
        _replay_measuring_memory(name, path)
    else:
        targets.replay(name, path)


def _replay_measuring_memory(name, path):
    """Replay in a child process, and hold its peak memory (resident, a high-water mark) during the
    replay to `BYTES_PER_PIXEL` of the image: a few hundred bytes can describe 50 megapixels, and
    converting them once took 26 bytes a pixel (1.3 GB)."""
    from PIL import Image
    with Image.open(path) as image:
        width, height = image.size
    script = (f"import resource, sys; sys.path.insert(0, {str(ROOT)!r}); from fuzz import targets; "
              f"before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
              f"targets.replay({name!r}, {str(path)!r}); "
              f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")  # KiB on Linux
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    grown = int(done.stdout.split()[-1]) * 1024
    assert grown <= BYTES_PER_PIXEL * width * height, (
        f"{path.name}: reading {width}x{height} pixels took {grown / 2**20:.0f} MiB, more than {BYTES_PER_PIXEL} "
        f"bytes a pixel")


def test_every_target_has_seeds_and_a_fuzz_budget():
    assert set(MAX_LEN) == set(targets.TARGETS)
    for name in targets.TARGETS:
        seeds = [path for target, path in CORPUS if target == name and path.name.startswith("seed-")]
        assert seeds, f"fuzz/corpus/{name} has no seed-* files (python fuzz/seeds.py writes them)"
        assert all(path.stat().st_size <= MAX_LEN[name] for path in seeds), name


def test_the_corpus_stays_small():
    assert sum(path.stat().st_size for _, path in CORPUS) < 200_000
    assert all(path.name.startswith(("seed-", "crash-")) for _, path in CORPUS)


@pytest.mark.parametrize(("name", "path"), [pytest.param(n, p, id=f"{n}-{p.name}", marks=needs_its_reader(n))
                                            for n, p in CORPUS if p.name.startswith("seed-")])
def test_the_seeds_are_valid_files(name, path, tmp_path):
    """A seed the reader refuses would start the fuzzer from junk: every seed reads cleanly."""
    if name == "idx":
        read_idx(path)
    elif name == "image":
        read_image(path, size=(28, 28))
    elif name == "mnist":
        images, _, labels = path.read_bytes().partition(targets.MNIST_SEPARATOR)
        for stem, data in zip(mnist.FILES["test"], (images, labels)):
            (tmp_path / stem).write_bytes(data)
        mnist.load("fashion-mnist", "test", tmp_path)
    elif name == "checkpoint":
        shutil.copy(path, tmp_path / checkpoint.WEIGHTS)
        checkpoint.load(tmp_path)
    elif name == "run_meta":
        (tmp_path / checkpoint.WEIGHTS).write_bytes(targets._run_meta_file(path.read_text()))
        config, _, _ = experiment.load_run(tmp_path)
        assert config.model == "lenet5"
    elif name == "pth":
        assert load_pth(path)
    elif name == "onnx":
        from convnet.onnx import load
        model = load(path)
        assert model(np.zeros((1, 1, 4, 4), np.float32)).shape[0] == 1
    else:
        assert name == "download"
        from convnet.data.download import decompressed_sha256
        decompressed_sha256(path)


@pytest.mark.parametrize(("tensors", "expected"), [
    ({"model.weight": np.ones(2, np.complex64)}, "tensor model.weight: expected real numbers, got complex64"),
    ({"model.weight": np.ones(2, np.float32), "optimizer.0.exp_avg": np.ones(2, np.float32)},
     "optimizer: expected the metadata of the optimizer whose state tensors (optimizer.*) are stored, got none"),
    ({"model.weight": np.ones(2, np.float32), "ema.weight": np.ones(2, np.float32)},
     "tensor ema.weight: expected a name model.<parameter or buffer>, training.<...> or optimizer.<...>"),
    ({"model.": np.ones(2, np.float32)},
     "tensor model.: expected a name model.<parameter or buffer>, training.<...> or optimizer.<...>"),
], ids=["complex weights", "optimizer tensors without an optimizer", "a tensor of neither", "a nameless weight"])
def test_what_a_checkpoint_would_load_silently_wrong_is_refused(tmp_path, tensors, expected):
    """Found beside the fuzzing, as nothing raised: complex weights lost their imaginary part when
    copied into a model, and optimizer tensors without the metadata to use them were dropped, and so
    was a tensor that belongs to neither the model nor the optimizer."""
    (tmp_path / checkpoint.WEIGHTS).write_bytes(save_tensors(tensors, metadata={"convnet": "{}"}))
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load(tmp_path)
    assert str(error.value) == f"{tmp_path / checkpoint.WEIGHTS}: not a readable convnet checkpoint ({expected})"
