"""Fuzz targets: one per reader of outside bytes. Each takes the fuzz input (bytes), writes it
where the reader looks (readers take paths), calls the reader and lets only the reader's
documented errors through; anything else escaping is a bug, and so is a documented error whose
message is not one line naming the file. `fuzz/run.py` drives them with atheris;
`tests/test_fuzz_corpus.py` replays the corpus through them.

The targets import nothing from atheris, so the corpus replay runs without it.
"""

import atexit
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save as save_tensors

from convnet import PthError, checkpoint, experiment, load_pth, models
from convnet.data import IdxError, ImageError, download, mnist, read_idx, read_image

# Where the targets write each input (readers take paths): fuzz/run.py names a folder of its own,
# reused run after run, as libFuzzer ends the process without running atexit; otherwise (the
# corpus replay) a temporary folder, on the ramdisk where there is one.
if os.environ.get("CONVNET_FUZZ_FILES"):
    _ROOT = Path(os.environ["CONVNET_FUZZ_FILES"])
else:
    _ROOT = Path(tempfile.mkdtemp(prefix="convnet-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
# What separates the images file from the labels file in an `mnist` input.
MNIST_SEPARATOR = b"\n--labels--\n"


class FuzzFinding(AssertionError):
    """A documented error that breaks its own contract (not one line, or not naming the file)."""


def _one_line_naming(error, *names):
    message = str(error)
    if "\n" in message or not message.strip():
        raise FuzzFinding(f"{type(error).__name__} message is not one line: {message!r}")
    if names and not any(str(name) in message for name in names):
        raise FuzzFinding(f"{type(error).__name__} message names none of {[str(n) for n in names]}: {message!r}")


def _write(name, data):
    path = _ROOT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------- IDX
def fuzz_idx(data):
    """`read_idx` on the bytes as a file (gzip-compressed or not: it sniffs the magic)."""
    path = _write("idx/input", data)
    try:
        array = read_idx(path)
    except IdxError as error:
        _one_line_naming(error, path)
        return
    if not isinstance(array, np.ndarray) or not array.dtype.isnative:
        raise FuzzFinding(f"read_idx returned {type(array).__name__} {getattr(array, 'dtype', '')}")


def fuzz_mnist(data):
    """`mnist.load` of a folder whose test images and labels are the two halves of the input
    (split at `MNIST_SEPARATOR`): the IDX reader plus the dataset's consistency checks."""
    images, _, labels = data.partition(MNIST_SEPARATOR)
    folder = _ROOT / "mnist"
    _write("mnist/t10k-images-idx3-ubyte", images)
    _write("mnist/t10k-labels-idx1-ubyte", labels)
    try:
        images, labels = mnist.load("fashion-mnist", "test", folder)
    except IdxError as error:
        _one_line_naming(error, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        return
    if images.dtype != np.uint8 or images.ndim != 3 or labels.dtype != np.int64 or len(images) != len(labels):
        raise FuzzFinding(f"mnist.load returned {images.dtype} {images.shape} and {labels.dtype} {labels.shape}")


# ---------------------------------------------------------------------- images
def fuzz_image(data):
    """`read_image` as `convnet predict` calls it (grayscale, resized to 28x28) and as RGB at its own size."""
    path = _write("image/input", data)
    for size, channels in (((28, 28), 1), (None, 3)):
        try:
            array, notes = read_image(path, size=size, channels=channels)
        except ImageError as error:
            _one_line_naming(error, path)
            return
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] != channels or (
                size is not None and array.shape[1:] != size):
            raise FuzzFinding(f"read_image(size={size}, channels={channels}) returned {array.dtype} {array.shape}")
        if not all(isinstance(note, str) and "\n" not in note for note in notes):
            raise FuzzFinding(f"read_image notes are not one-line strings: {notes!r}")


# ---------------------------------------------------------------------- checkpoints
def _load_checkpoint_and_run(run_dir):
    """`checkpoint.load`, then, if that succeeded, `experiment.load_run` on the same folder."""
    try:
        checkpoint.load(run_dir)
    except checkpoint.CheckpointError as error:
        _one_line_naming(error, run_dir)
        return
    try:
        experiment.load_run(run_dir)
    except checkpoint.CheckpointError as error:
        _one_line_naming(error, run_dir)
    except ValueError as error:  # documented for a bad stored configuration (RunConfig's own check)
        _one_line_naming(error)


def fuzz_checkpoint(data):
    """The bytes as a run folder's checkpoint.safetensors: the safetensors header, the tensors and
    the metadata as stored (a mutated metadata mostly fails its SHA-256; `run_meta` goes past it)."""
    run_dir = _ROOT / "checkpoint"
    _write(f"checkpoint/{checkpoint.WEIGHTS}", data)
    _load_checkpoint_and_run(run_dir)


def run_meta_tensors():
    """The tensors of the `run_meta` target's checkpoint: a zeroed LeNet-5 and AdamW state for its
    first two parameters, as `checkpoint.save` names them. Zeros, so their SHA-256s do not depend
    on any initialiser and the seed metadata's recorded digests stay valid."""
    model = models.build("lenet5")
    tensors = {f"model.{key}": np.zeros_like(value) for key, value in model.state_dict().items()}
    for index, parameter in enumerate(model.parameters()):
        if index < 2:
            for name in ("exp_avg", "exp_avg_sq"):
                tensors[f"optimizer.{index}.{name}"] = np.zeros_like(parameter.data)
    return tensors


_RUN_META_FILE = None


def _run_meta_file(text):
    """The bytes of a checkpoint holding `run_meta_tensors` and ``text`` as metadata, with the
    metadata's SHA-256 recorded beside it the way `checkpoint.save` does."""
    global _RUN_META_FILE
    if _RUN_META_FILE is None:
        _RUN_META_FILE = run_meta_tensors()
    return save_tensors(_RUN_META_FILE, metadata={"convnet": text, "convnet_sha256": checkpoint._text_digest(text)})


def fuzz_run_meta(data):
    """The bytes as the JSON metadata of an otherwise valid LeNet-5 checkpoint, its SHA-256
    recomputed: what `checkpoint.load` and `experiment.load_run` make of a metadata that passes the
    integrity check (an edited file whose editor also fixed the digest, or a convnet bug)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # safetensors metadata is a JSON string: it cannot hold what is not UTF-8
    run_dir = _ROOT / "run_meta"
    _write(f"run_meta/{checkpoint.WEIGHTS}", _run_meta_file(text))
    _load_checkpoint_and_run(run_dir)


# ---------------------------------------------------------------------- foreign weights and models
def fuzz_pth(data):
    """`load_pth` on the bytes as a PyTorch state_dict file (a zip holding a pickle and storages)."""
    path = _write("pth/weights.pth", data)
    try:
        tensors = load_pth(path)
    except PthError as error:
        _one_line_naming(error, path)
        return
    if not all(isinstance(key, str) and isinstance(value, np.ndarray) for key, value in tensors.items()):
        raise FuzzFinding(f"load_pth returned {[(type(k).__name__, type(v).__name__) for k, v in tensors.items()]}")


def fuzz_onnx(data):
    """`convnet.onnx.load` on the bytes as an ONNX file, then the model run once on zeros of the
    input shape it declares (1 for a dimension it leaves open), which may refuse the input."""
    from convnet.onnx import OnnxError, load
    path = _write("onnx/model.onnx", data)
    try:
        model = load(path)
    except OnnxError as error:
        _one_line_naming(error, path)
        return
    shape = tuple(size if isinstance(size, int) and 0 < size <= 64 else 1 for size in model.input_shape or (1, 1))
    try:
        model(np.zeros(shape, np.float32))
    except (ValueError, TypeError) as error:  # documented: a node that cannot take the input, named
        _one_line_naming(error)


# ---------------------------------------------------------------------- downloads
def fuzz_download(data):
    """The downloader's check of a file (a cached one, or a finished transfer): it must say
    verified or not (True or False), whatever the file holds."""
    path = _write("download/train-images-idx3-ubyte.gz", data)
    verified = download._verified(path, "0" * 64, download.decompressed_sha256)
    if verified is not False:
        raise FuzzFinding(f"_verified returned {verified!r} for a file that cannot match")


@dataclass(frozen=True)
class Target:
    function: object
    reader: str


TARGETS = {
    "idx": Target(fuzz_idx, "convnet.data.read_idx"),
    "mnist": Target(fuzz_mnist, "convnet.data.mnist.load"),
    "image": Target(fuzz_image, "convnet.data.read_image"),
    "checkpoint": Target(fuzz_checkpoint, "convnet.checkpoint.load, convnet.experiment.load_run"),
    "run_meta": Target(fuzz_run_meta, "checkpoint metadata (JSON) -> convnet.checkpoint.load, load_run"),
    "download": Target(fuzz_download, "convnet.data.download._verified"),
    "pth": Target(fuzz_pth, "convnet.load_pth"),
    "onnx": Target(fuzz_onnx, "convnet.onnx.load, then the loaded model's forward"),
}

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus_files(name=None):
    """(target name, path) of every file in the committed corpus (of ``name`` only, if given)."""
    names = [name] if name else sorted(TARGETS)
    return [(target, path) for target in names for path in sorted((CORPUS / target).glob("*")) if path.is_file()]


def replay(name, path):
    TARGETS[name].function(Path(path).read_bytes())


if __name__ == "__main__":
    print(json.dumps({name: target.reader for name, target in TARGETS.items()}, indent=1))
