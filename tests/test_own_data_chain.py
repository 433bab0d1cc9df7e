"""The whole command-line chain on colour data that is not an image folder: a CSV manifest and a
CIFAR-10 folder each go train -> evaluate -> predict -> show -> export -> onnxruntime, and the
exported file evaluates as the run does (the image folder's chain: test_own_data_cli.py). The
oracles: Pillow's decoding and NumPy's arithmetic (test_own_data_cli.oracle_probabilities), the
kernel patches computed from the weights, and onnxruntime."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import requires
from convnet import experiment, nn
from convnet.cli import main
from convnet.data import shapes
from convnet.experiment.onnx_file import ONNX_DATA_OPTIONS
from convnet.tensor import Tensor, no_grad
from convnet.viz.colour import kernel_patches
from test_cifar import CIFAR10_NAMES, write_cifar10
from test_own_data_cli import CLASSES, oracle_probabilities, pixels_of


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # decoded images: never the user's cache


def csv_manifest(root):
    """A ``path,label`` CSV beside 4 classes of 24x24 RGB shapes (10 each); returns (CSV, class names)."""
    shapes(root / "s", per_class=10, val_per_class=0, size=24)
    rows = [[str(path.relative_to(root)), path.parent.name] for path in sorted(root.glob("s/train/*/*.png"))]
    with open(root / "labels.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([["path", "label"], *rows])
    return root / "labels.csv", CLASSES


def cifar_folder(root):
    """A CIFAR-10 folder (20 training, 4 test images of random pixels); returns (its parent, class names)."""
    write_cifar10(root / "cifar-10-batches-py", per_batch=4)
    return root, CIFAR10_NAMES


def run_chain(data, classes, image, tmp_path, capsys, options=()):
    """Train (with ``options``), evaluate, predict, show and export on ``data`` through `main`, checking
    each step's output against the oracles; ``image``: an RGB picture of the data's size to predict and show.
    Returns what ``evaluate FILE.onnx --data`` and ``evaluate RUN`` printed after "test accuracy"."""
    run, picture = tmp_path / "run", tmp_path / "picture.png"
    image.save(picture)
    assert main(["train", "--data", str(data), "--model", "lenet5", "--epochs", "1", "--batch-size", "8",
                 *options, "--out", str(run), "--no-progress"]) == 0
    assert ", 3 channels, " in capsys.readouterr().out
    config, model, meta = experiment.load_run(run)
    spec = experiment.recorded_input(run, meta, config)
    assert spec["classes"] == classes and spec["channels"] == 3

    assert main(["evaluate", str(run)]) == 0
    evaluated = capsys.readouterr().out
    assert "test accuracy: " in evaluated and all(f"  {name:<12s} " in evaluated for name in classes)

    answers = tmp_path / "answers.csv"
    assert main(["predict", str(run), str(picture), "--csv", str(answers)]) == 0
    rows = list(csv.DictReader(answers.open()))
    expected = oracle_probabilities(model, pixels_of([picture]), spec["mean"], spec["std"],
                                    config.test_time_mirroring)[0]
    assert [row["path"] for row in rows] == [str(picture)]
    assert rows[0]["class"] == classes[expected.argmax()]
    assert float(rows[0]["probability"]) == pytest.approx(expected.max(), abs=1e-5)
    assert {rows[0]["class_2"], rows[0]["class_3"]} <= set(classes)

    shown = tmp_path / "shown"
    assert main(["show", str(run), str(picture), "--out", str(shown)]) == 0
    drawn = Image.open(shown / "kernels.png")
    assert drawn.mode in ("RGB", "RGBA") and (shown / "kernels_channels.png").exists()
    pixels = {tuple(colour) for colour in np.asarray(drawn.convert("RGB")).reshape(-1, 3)}
    patches = np.round(kernel_patches(model[0].weight.data) * 255).astype(int).reshape(-1, 3)
    found = [any(max(abs(a - b) for a, b in zip(colour, pixel)) <= 1 for pixel in pixels) for colour in patches]
    assert np.mean(found) > 0.9  # the kernels' own colours, drawn as patches (not a colour map of one channel)

    ort = pytest.importorskip("onnxruntime", reason="the exported file is checked with onnxruntime (the onnx extra)")
    exported = tmp_path / "model.onnx"
    assert main(["export", str(run), str(exported)]) == 0
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, *spec["size"]]
    options = session.get_modelmeta().custom_metadata_map.get(ONNX_DATA_OPTIONS)
    # CIFAR has a split of its own: no options recorded
    assert (options and json.loads(options)["val_split"]) == (config.val_split if config.dataset == "csv" else None)
    prepared = ((pixels_of([picture]) - np.reshape(spec["mean"], (1, 3, 1, 1)))
                / np.reshape(spec["std"], (1, 3, 1, 1))).astype(np.float32)
    prepared = np.concatenate([prepared, np.random.default_rng(0).standard_normal(prepared.shape, np.float32)])
    with no_grad():
        ours = model(Tensor(prepared)).numpy()
    theirs = session.run(None, {session.get_inputs()[0].name: prepared})[0]
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    capsys.readouterr()
    assert main(["evaluate", str(exported), "--data", str(data)]) == main(["evaluate", str(run)]) == 0
    file_figures, run_figures = capsys.readouterr().out.split("test accuracy")[1:]
    return file_figures, run_figures


@pytest.mark.slow
def test_a_csv_manifest_goes_through_the_whole_chain(tmp_path, capsys):
    data, classes = csv_manifest(tmp_path / "data")
    image = Image.open(tmp_path / "data" / "s" / "train" / "star" / "00000.png").convert("RGB")
    file_figures, run_figures = run_chain(data, classes, image, tmp_path, capsys, ["--val-split", "0.2"])
    assert file_figures == run_figures  # the same images: the CSV split as the run drew it (0.2, not the default)


@pytest.mark.slow
def test_a_cifar_folder_goes_through_the_whole_chain(tmp_path, capsys):
    data, classes = cifar_folder(tmp_path / "data")
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    file_figures, run_figures = run_chain(data, classes, Image.fromarray(pixels, "RGB"), tmp_path, capsys)
    assert file_figures == run_figures  # the exported file scores CIFAR's own test batch, as the run does


@requires("onnx")
@pytest.mark.parametrize("split", ["2", "true", "\"0.2\""])
def test_a_file_whose_recorded_split_is_no_fraction_is_refused_naming_it(tmp_path, split):
    from convnet.onnx import OnnxError, export
    path = tmp_path / "model.onnx"
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))
    export(model, path, (1, 3, 8, 8), metadata={experiment.ONNX_DATASET: "csv", experiment.ONNX_VAL_SPLIT: split})
    with pytest.raises(OnnxError, match=f"its metadata convnet.val_split: expected a fraction between 0 and 1, got "
                                        f"'{split}'"):
        experiment.load_onnx_file(path)
