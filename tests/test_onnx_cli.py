"""ONNX from the command line: ``convnet export`` writes a run as an ONNX file that records how
it takes images, and every command that takes a model takes an ONNX file too, so a network
trained anywhere can be evaluated, asked and drawn; onnxruntime and PyTorch are the oracles."""

import sys

import numpy as np
import pytest
from conftest import requires_torch, torch
from PIL import Image

from convnet import checkpoint, experiment
from convnet.cli import main

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def exported(tiny_fashion, tmp_path, capsys):
    """A 1-epoch run on the tiny dataset, and its export."""
    run_dir, path = tmp_path / "run", tmp_path / "model.onnx"
    code, out, _ = run(capsys, "train", "--model", "lenet5", "--data", tiny_fashion, "--epochs", "1",
                       "--batch-size", "32", "--out", run_dir, "--no-progress")
    assert code == 0, out
    code, out, err = run(capsys, "export", run_dir, path)
    assert code == 0, err
    assert out == (f"wrote {path}: 12 nodes, opset 28, input 'input' (batch, 1, 28, 28); run it with onnxruntime, "
                   f"or: convnet evaluate {path}\n"
                   f"note: {run_dir} was evaluated with test-time mirroring, which the graph leaves out: average its "
                   f"outputs for each image and for the image mirrored left-right to get those figures (convnet "
                   f"evaluate and predict do, from the file's metadata convnet.test_mirror)\n")
    return run_dir, path


def test_an_exported_run_evaluates_and_predicts_as_the_run_does(exported, tiny_fashion, tmp_path, capsys):
    run_dir, path = exported
    code, from_run, _ = run(capsys, "evaluate", run_dir, "--data", tiny_fashion)
    assert code == 0
    code, from_onnx, err = run(capsys, "evaluate", path, "--data", tiny_fashion)
    assert code == 0 and err == ""  # the file says how it takes images: nothing to assume
    assert from_onnx == from_run
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(image)
    assert run(capsys, "predict", path, image)[1] == run(capsys, "predict", run_dir, image)[1]


def test_onnxruntime_computes_what_the_run_computes(exported):
    run_dir, path = exported
    _, model, _ = experiment.load_run(run_dir)
    images = np.random.default_rng(1).standard_normal((5, 1, 28, 28)).astype(np.float32)
    expected = model(images).numpy()
    got, = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": images})
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    metadata = {entry.key: entry.value for entry in onnx.load(path).metadata_props}
    assert metadata["convnet.dataset"] == "fashion-mnist" and metadata["convnet.normalization"] == "[0.286, 0.353]"
    assert metadata["convnet.classes"].startswith('["T-shirt/top", "Trouser"')
    assert metadata["convnet.test_mirror"] == "true"  # the run mirrored its training images, so its test images too


@pytest.mark.slow
def test_summary_show_and_init_from_take_the_onnx_file(exported, tiny_fashion, tmp_path, capsys):
    run_dir, path = exported
    code, out, _ = run(capsys, "summary", path)
    assert code == 0 and out.startswith("model.onnx (ONNX)\n") and "Conv2d" in out and "61,706" in out
    code, out, _ = run(capsys, "show", path, "--data", tiny_fashion, "--out", tmp_path / "pictures")
    assert code == 0 and (tmp_path / "pictures" / "index.html").exists()
    code, _, err = run(capsys, "train", "--model", "lenet5", "--data", tiny_fashion, "--epochs", "1",
                       "--init-from", path, "--out", tmp_path / "again", "--no-progress")
    assert code == 0, err
    started = experiment.start(experiment.RunConfig(model="lenet5", data=str(tiny_fashion), init_from=str(path)),
                               tmp_path / "third", progress=False)
    trained, _, _ = checkpoint.load(run_dir)
    for key, value in started.trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, trained[key], err_msg=key)


# torch's TorchScript exporter (dynamo=False) warns that it is the old one; it needs no onnxscript.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@requires_torch
def test_a_pytorch_model_ending_in_softmax_is_asked_without_softmax_twice(tiny_fashion, tmp_path, capsys):
    """A file convnet did not write says nothing of its scaling or classes: both are assumed, and
    said; a model that answers probabilities is not given a second softmax."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 13 * 13, 10), torch.nn.Softmax(dim=1)).eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    pixels = np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "image.png")
    code, out, _ = run(capsys, "predict", path, tmp_path / "image.png")
    assert code == 0
    assert f"note: {path} does not record how its pixels were scaled: they are given in [0, 1], unnormalised" in out
    assert f"note: {path} does not name its classes: they are taken as fashion-mnist's" in out
    with torch.no_grad():
        expected = net(torch.from_numpy(pixels[None, None] / np.float32(255)).float())[0].numpy()
    first = out.split("1. ")[1].split("\n")[0].split()
    assert float(first[-1]) == pytest.approx(float(expected.max()), abs=1e-4)
    code, out, err = run(capsys, "evaluate", path, "--data", tiny_fashion)
    assert code == 0 and "does not record how its pixels were scaled" in err and "test accuracy:" in out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@requires_torch
def test_what_cannot_be_done_with_an_onnx_file_is_said_in_one_line(exported, tiny_fashion, tmp_path, capsys,
                                                                   monkeypatch):
    run_dir, _ = exported
    rgb = tmp_path / "rgb.onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 30 * 30, 10))
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(rgb), dynamo=False)
    cases = [
        (["evaluate", rgb, "--data", tiny_fashion],
         f"{rgb} takes images of shape (3, 32, 32); fashion-mnist's are (1, 28, 28), so it cannot be evaluated on "
         f"them"),
        (["show", rgb, "--data", tiny_fashion, "--out", tmp_path / "p"],
         f"{rgb} takes images of shape (3, 32, 32), unlike fashion-mnist's: give an IMAGE to show it"),
        (["export", run_dir, tmp_path / "nowhere" / "m.onnx"],
         f"cannot write {tmp_path / 'nowhere' / 'm.onnx'}: the folder {tmp_path / 'nowhere'} does not exist"),
        (["export", run_dir, tmp_path / "m.onnx", "--opset", "5"], "export: expected opset between 13 and 28, got 5"),
        (["predict", tmp_path / "missing.onnx", tmp_path / "x.png"], f"{tmp_path / 'missing.onnx'}: cannot read it"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1 and err.startswith(f"convnet: error: {message}") and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "p").exists()
    from convnet import models
    from convnet.onnx import export
    for key, value, expected in [("convnet.normalization", "[0.5]", "[mean, std]"),
                                 ("convnet.classes", '["a", "b"]', "a list of 10 names"),
                                 ("convnet.dataset", "cifar", "dataset must be one of fashion-mnist, mnist"),
                                 ("convnet.test_mirror", "1", "true or false")]:
        export(models.lenet5(), tmp_path / "edited.onnx", metadata={key: value})
        code, _, err = run(capsys, "summary", tmp_path / "edited.onnx")
        assert code == 1 and err.startswith(f"convnet: error: {tmp_path / 'edited.onnx'}: its metadata {key}: ")
        assert expected in err
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    code, _, err = run(capsys, "export", run_dir, tmp_path / "m.onnx")
    assert code == 1 and err == ("convnet: error: ONNX files need the onnx package, which is not installed: "
                                 "pip install 'convnet-numpy[onnx]'\n")
