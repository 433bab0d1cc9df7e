"""An exported ONNX file records every option that decides which images of an image folder (or CSV)
a run scored and how they were prepared (`experiment.onnx_file.ONNX_DATA_OPTIONS`), so that
``convnet evaluate FILE.onnx --data PATH`` prints the figures ``convnet evaluate RUN`` prints; a file
of the previous version (``convnet.val_split`` alone) is still read, and a damaged record is refused
in one line naming the key. The oracle: the run's own evaluation, through the command line."""

import json
import re

import pytest

from conftest import requires
from convnet import experiment, nn
from convnet.cli import main
from convnet.data import shapes
from convnet.experiment.onnx_file import ONNX_DATA_OPTIONS, ONNX_VAL_SPLIT

OPTION_KEYS = ("val_split", "seed", "image_size", "channels", "skip_bad", "left_out")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # decoded images: never the user's cache


def folder_with_bad_images(root):
    """A folder of 4 classes of 24x24 RGB shapes (12 each, no split of its own) with one truncated
    PNG in each of two classes; returns (the folder, the bad files' relative paths)."""
    shapes(root / "s", per_class=12, val_per_class=0, size=24)
    folder = root / "s" / "train"
    bad = ["circle/zz_truncated.png", "star/zz_truncated.png"]
    for name in bad:
        whole = (folder / "circle" / "00000.png").read_bytes()
        (folder / name).write_bytes(whole[: len(whole) // 3])
    return folder, bad


def evaluations(run, exported, data, capsys):
    """What ``evaluate FILE.onnx --data`` and ``evaluate RUN`` print from "test accuracy" on."""
    capsys.readouterr()
    assert main(["evaluate", str(exported), "--data", str(data)]) == 0
    from_file = capsys.readouterr().out
    assert main(["evaluate", str(run)]) == 0
    from_run = capsys.readouterr().out
    return from_file.split("test accuracy")[1], from_run.split("test accuracy")[1]


def rewrite_metadata(source, target, change):
    """Copy the ONNX file ``source`` to ``target`` with ``change(dict of metadata_props)`` applied."""
    import onnx
    model = onnx.load(str(source))
    props = {prop.key: prop.value for prop in model.metadata_props}
    change(props)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))


@pytest.mark.slow
@requires("onnx")
def test_skipped_files_split_size_and_channels_travel_with_the_file(tmp_path, capsys):
    data, bad = folder_with_bad_images(tmp_path / "data")
    run, exported = tmp_path / "run", tmp_path / "model.onnx"
    assert main(["train", "--data", str(data), "--model", "lenet5", "--epochs", "1", "--batch-size", "8",
                 "--skip-bad", "--val-split", "0.25", "--image-size", "20", "--channels", "1",
                 "--out", str(run), "--no-progress"]) == 0
    assert "2 unreadable images left out" in capsys.readouterr().out
    assert main(["export", str(run), str(exported)]) == 0
    recorded = experiment.load_model(exported).spec["options"]
    assert recorded == {"val_split": 0.25, "seed": 0, "image_size": [20, 20], "channels": 1, "skip_bad": True,
                        "left_out": bad}
    file_figures, run_figures = evaluations(run, exported, data, capsys)
    assert file_figures == run_figures

    # Without the record of skip_bad, the file's evaluation meets the truncated files and refuses:
    # the record is what makes it score the run's images.
    old = tmp_path / "old.onnx"
    rewrite_metadata(exported, old, lambda props: props.pop(ONNX_DATA_OPTIONS))
    assert main(["evaluate", str(old), "--data", str(data)]) != 0
    assert "2 images cannot be read" in capsys.readouterr().err


@pytest.mark.slow
@requires("onnx")
def test_a_file_of_the_previous_version_recording_only_the_split_evaluates_as_the_run(tmp_path, capsys):
    shapes(tmp_path / "data", per_class=10, val_per_class=0, size=24)
    data, run, exported, old = tmp_path / "data" / "train", tmp_path / "run", tmp_path / "new.onnx", tmp_path / "o.onnx"
    assert main(["train", "--data", str(data), "--model", "lenet5", "--epochs", "1", "--batch-size", "8",
                 "--val-split", "0.3", "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), str(exported)]) == 0

    def previous_version(props):
        assert json.loads(props.pop(ONNX_DATA_OPTIONS))["val_split"] == 0.3
        props[ONNX_VAL_SPLIT] = "0.3"

    rewrite_metadata(exported, old, previous_version)
    file_figures, run_figures = evaluations(run, old, data, capsys)
    assert file_figures == run_figures
    # ... and the default split (0.1) would not be the run's images: the record is read, not assumed.
    rewrite_metadata(exported, old, lambda props: props.pop(ONNX_DATA_OPTIONS))
    file_figures, _ = evaluations(run, old, data, capsys)
    assert file_figures != run_figures


def options_file(tmp_path, text):
    from convnet.onnx import export
    path = tmp_path / "model.onnx"
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))
    export(model, path, (1, 3, 8, 8), metadata={experiment.ONNX_DATASET: "image folder", ONNX_DATA_OPTIONS: text,
                                                experiment.ONNX_NORMALIZATION: "[[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]"})
    return path


GOOD = {"val_split": 0.2, "seed": 0, "image_size": None, "channels": 3, "skip_bad": True, "left_out": ["a/b.png"]}


@requires("onnx")
@pytest.mark.parametrize("key, value, expected", [
    ("val_split", 1.5, "val_split a fraction between 0 and 1, got 1.5"),
    ("val_split", True, "val_split a fraction between 0 and 1, got true"),
    ("seed", 7, "seed 0 (the seed convnet splits with), got 7"),
    ("image_size", [20], "image_size null or [height, width], got [20]"),
    ("image_size", [20, 0], "image_size null or [height, width], got [20, 0]"),
    ("channels", 2, "channels null, 1 or 3, got 2"),
    ("skip_bad", "yes", "skip_bad true or false, got \"yes\""),
    ("left_out", "a/b.png", "left_out a list of file names, got \"a/b.png\""),
])
def test_a_damaged_option_is_refused_in_one_line_naming_it(tmp_path, key, value, expected):
    from convnet.onnx import OnnxError
    path = options_file(tmp_path, json.dumps({**GOOD, key: value}))
    message = f"{path}: its metadata convnet.data_options: expected {expected}"
    with pytest.raises(OnnxError, match=f"^{re.escape(message)}$"):
        experiment.load_onnx_file(path)


@requires("onnx")
@pytest.mark.parametrize("text", ["[0.2]", "not json", json.dumps({k: GOOD[k] for k in OPTION_KEYS[:-1]}),
                                  json.dumps({**GOOD, "augment": "flip"})])
def test_a_record_that_is_not_the_options_object_is_refused(tmp_path, text):
    from convnet.onnx import OnnxError
    path = options_file(tmp_path, text)
    with pytest.raises(OnnxError, match="its metadata convnet.data_options: expected an object of val_split, seed, "
                                        "image_size, channels, skip_bad, left_out, got"):
        experiment.load_onnx_file(path)


@requires("onnx")
def test_left_out_files_without_skip_bad_are_refused(tmp_path):
    from convnet.onnx import OnnxError
    path = options_file(tmp_path, json.dumps({**GOOD, "skip_bad": False}))
    with pytest.raises(OnnxError, match="expected no left_out files with skip_bad false, got 1"):
        experiment.load_onnx_file(path)


@requires("onnx")
def test_good_options_are_what_the_loaded_file_uses(tmp_path):
    loaded = experiment.load_onnx_file(options_file(tmp_path, json.dumps({**GOOD, "image_size": [8, 8]})),
                                       data=str(tmp_path))
    assert (loaded.config.val_split, loaded.config.image_size, loaded.config.channels, loaded.config.skip_bad) == (
        0.2, [8, 8], 3, True)
    assert loaded.spec["options"] == {**GOOD, "image_size": [8, 8]}
    assert loaded.classes == ("class 0", "class 1")  # image data names no IDX classes (was a KeyError)
