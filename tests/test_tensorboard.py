"""``convnet train --tensorboard``: the event files are read back record by record (TFRecord framing,
Event protobufs) and their figures compared with the run's own history."""

import io
import struct
import sys

import numpy as np
import pytest
from PIL import Image

from convnet import checkpoint, run_folder
from convnet.cli import main

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2",
                                reason="tensorboardX is not installed (pip install -e '.[test]')")


def events(folder):
    """Every Event in the folder's event files, from the TFRecord framing: length (8 bytes),
    its CRC (4), the record, its CRC (4)."""
    found = []
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            length, = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12:offset + 12 + length]
            assert len(record) == length, f"{path}: a record cut short"
            event = event_pb2.Event()
            event.ParseFromString(record)
            found.append((path.parent.name, event))
            offset += 12 + length + 4
    return found


def grey(image):
    """Whether a logged image (a PNG) is grey: red, green and blue equal in every pixel."""
    pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB")).astype(int)
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


@pytest.mark.slow
def test_tensorboard_logs_the_runs_own_figures_histograms_and_pictures(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs", "2", "--batch-size", "16",
                 "--tensorboard", "--out", str(run_dir), "--no-progress"]) == 0
    _, _, meta = checkpoint.load(run_dir)
    scalars, histograms, images, plugins = {}, set(), {}, set()
    for folder, event in events(run_dir / run_folder.TENSORBOARD):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            elif value.HasField("histo"):
                histograms.add(value.tag)
                assert value.histo.num > 0
            elif value.HasField("image"):
                images[value.tag] = (value.image.width, value.image.height, grey(value.image))
            if value.metadata.plugin_data.plugin_name:
                plugins.add(value.metadata.plugin_data.plugin_name)
    history = meta["history"]
    assert [step for step, _ in scalars["test/accuracy"]] == [16, 32]
    np.testing.assert_allclose([v for _, v in scalars["test/accuracy"]], [h["test_accuracy"] for h in history],
                               rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["test/loss"]], [h["test_loss"] for h in history], rtol=1e-6)
    assert [step for step, _ in scalars["train/loss"]] == [10, 20, 30]
    assert {"learning_rate", "images_per_second", "train/accuracy"} <= set(scalars)
    assert {"weights/0.weight", "gradients/0.weight", "weights/7.bias"} <= histograms
    assert images["first_conv/kernels"][0] > 0 and images["first_conv/feature_maps"][0] > 0
    assert images["first_conv/kernels"][2]  # a greyscale network's kernels in grey
    assert "hparams" in plugins


@pytest.mark.slow
def test_a_colour_networks_kernels_are_logged_in_colour(tmp_path):
    from convnet.data import shapes
    shapes(tmp_path / "shapes", per_class=6, val_per_class=2, size=32)
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "lenet5", "--data", str(tmp_path / "shapes"), "--epochs", "1",
                 "--batch-size", "8", "--tensorboard", "--out", str(run_dir), "--no-progress"]) == 0
    kernels = [value.image for _, event in events(run_dir / run_folder.TENSORBOARD)
               for value in event.summary.value if value.tag == "first_conv/kernels"]
    assert kernels and not any(grey(image) for image in kernels)


def test_without_tensorboardx_the_option_says_what_to_install(tiny_fashion, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    code = main(["train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs", "1", "--tensorboard",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 1 and capsys.readouterr().err == (
        "convnet: error: --tensorboard needs tensorboardX, which is not installed: "
        "pip install 'convnet-numpy[tensorboard]'\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_resumed_run_tells_tensorboard_to_drop_what_was_logged_past_its_checkpoint(tiny_fashion, tmp_path):
    """Events a killed run wrote after its last checkpoint would otherwise stay beside the resumed
    run's: the resumed writer starts with a SessionLog START at the checkpoint's step (purge_step),
    which makes TensorBoard discard every earlier event at or past that step."""
    from convnet.experiment import RunConfig, resume, start
    config = RunConfig(model="lenet5", data=str(tiny_fashion), epochs=2, batch_size=16, tensorboard=True)
    first = start(config, tmp_path / "run", progress=False, log=lambda *_: None)
    first.trainer.fit(1)  # a checkpoint at step 16, as a run killed in epoch 2 leaves it
    resumed = resume(tmp_path / "run", progress=False, log=lambda *_: None)
    resumed.trainer.fit(2)
    starts = [event.step for _, event in events(tmp_path / "run" / run_folder.TENSORBOARD)
              if event.HasField("session_log") and event.session_log.status == event.session_log.START]
    assert 16 in starts
