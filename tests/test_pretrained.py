"""The trained weights that ship with convnet: each reaches on the 10,000 test images exactly the
accuracy its card records, a damaged file is refused, and the commands take a model's name."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet import models, pretrained
from convnet.cli import main
from convnet.data import mnist
from convnet.experiment import Classifier, evaluate_model, load_model

SHIPPED = pretrained.available()
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not SYSTEM_FASHION.is_dir() and not os.environ.get("CI"),
                                   reason="needs Debian's Fashion-MNIST (make test installs it)")


def test_convnet_ships_the_default_network():
    assert "reference_cnn" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_each_card_says_how_its_weights_were_made(name):
    card = pretrained.card(name)
    data = (pretrained.WEIGHTS / card["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == card["sha256"]
    assert card["model"] == name and card["command"].startswith("convnet train")
    assert card["training_seconds"] > 0 and card["machine"] and len(card["per_class_accuracy"]) == 10
    assert card["history"][-1]["epoch"] == card["epochs"] and len(data) < 4_000_000  # a couple of MB at most


@pytest.mark.slow
@needs_fashion
@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_scores_exactly_what_its_card_records(name):
    """Evaluation is deterministic: the same weights give the same answers on the same images."""
    card = pretrained.card(name)
    classes, result, notes = evaluate_model(name)
    assert notes == [] and result["accuracy"] == card["test_accuracy"]
    assert dict(zip(classes, result["per_class_accuracy"])) == card["per_class_accuracy"]
    assert sum(map(sum, result["confusion"])) == 10_000
    # Trained on mirrored images, it is evaluated with test-time mirroring, and its card says what one pass gives.
    assert card["test_time_mirroring"] and card["test_accuracy_mirrored"] == card["test_accuracy"]
    assert evaluate_model(name, mirror=False)[1]["accuracy"] == card["test_accuracy_one_pass"]


@pytest.mark.parametrize("name", [name for name in models.MODELS if name not in models.IMAGENET])
def test_a_named_model_scores_an_image_alone_as_it_does_among_others(name):
    """`predict` and `show` score one image at a time: batch norm must answer with its running
    statistics, so that an image's probabilities do not depend on the images beside it. With the
    image's own statistics (training mode) the shipped ResNet-8 gave 0.19 to an ankle boot it
    scores 0.92."""
    classifier = Classifier(load_model(name))
    images = np.random.default_rng(0).standard_normal((6, 1, 28, 28)).astype(np.float32)
    together = classifier.probabilities(images)
    alone = np.concatenate([classifier.probabilities(image[None]) for image in images])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-7)


def test_pretrained_loads_the_card_checked_weights_into_the_default_model():
    model = models.reference_cnn(pretrained=True)
    stored = pretrained.state_dict("reference_cnn")
    assert set(model.state_dict()) == set(stored)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, stored[key])
    assert not np.array_equal(models.reference_cnn().state_dict()["0.weight"], stored["0.weight"])


def test_weights_convnet_does_not_ship_or_for_another_configuration_are_refused():
    unshipped = next(name for name in models.MODELS if name not in SHIPPED)
    with pytest.raises(pretrained.PretrainedError, match=f"^convnet ships no trained weights for {unshipped}; it "
                                                         f"ships weights for: {', '.join(SHIPPED)}$"):
        models.build(unshipped, pretrained=True)
    with pytest.raises(ValueError, match=r"^reference_cnn: the shipped weights fit its default configuration \(1x28x28, "
                                         r"10 classes\), so pretrained=True takes no other settings; got classes=5$"):
        models.reference_cnn(classes=5, pretrained=True)


@pytest.fixture
def copied_weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS, folder)
    monkeypatch.setattr(pretrained, "WEIGHTS", folder)
    return folder


def test_a_damaged_or_replaced_weights_file_is_refused(copied_weights):
    path = copied_weights / "reference_cnn.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.PretrainedError, match=r"reference_cnn.safetensors is damaged or was replaced: "
                                                         r"expected SHA-256 [0-9a-f]{64}, got [0-9a-f]{64}; reinstall"):
        models.reference_cnn(pretrained=True)
    path.unlink()
    with pytest.raises(pretrained.PretrainedError, match="cannot read reference_cnn's shipped weights .*: No such file"):
        models.reference_cnn(pretrained=True)


def test_a_card_for_a_broken_file_is_refused(copied_weights):
    path = copied_weights / "reference_cnn.safetensors"
    path.write_bytes(b"not safetensors")
    card = json.loads((copied_weights / "reference_cnn.json").read_text())
    card["sha256"] = hashlib.sha256(b"not safetensors").hexdigest()
    (copied_weights / "reference_cnn.json").write_text(json.dumps(card))
    with pytest.raises(pretrained.PretrainedError, match="is not a readable safetensors file"):
        pretrained.state_dict("reference_cnn")


@pytest.mark.slow
@needs_fashion
def test_the_commands_take_a_shipped_models_name(tmp_path, capsys):
    images, labels = mnist.load("fashion-mnist", "test")
    Image.fromarray(images[0].reshape(28, 28)).save(tmp_path / "first.png")
    assert main(["predict", "--model", "reference_cnn", str(tmp_path / "first.png")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith(f"  1. {mnist.CLASSES['fashion-mnist'][labels[0]]} ")
    assert main(["predict", "reference_cnn", str(tmp_path / "first.png")]) == 0  # the same, as the first argument
    assert capsys.readouterr().out == out
    assert main(["evaluate", "--model", "reference_cnn"]) == 0
    assert f"test accuracy: {pretrained.card('reference_cnn')['test_accuracy']:.4f}" in capsys.readouterr().out
    assert main(["show", "--model", "reference_cnn", "--out", str(tmp_path / "show")]) == 0
    assert "with the weights that ship with convnet" in (tmp_path / "show" / "index.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["evaluate"], "evaluate takes one RUN_DIR, MODEL or MODEL.onnx (or --model NAME)"),
    (["predict", "--model", "reference_cnn"], "predict takes RUN_DIR, MODEL or MODEL.onnx (or --model NAME), then "
                                              "one or more IMAGEs"),
    (["predict", "--model", "reference_cnn", "lenet5", "x.png"], "--model reference_cnn and lenet5 both name a model; "
                                                                 "give one"),
    (["show", "--lesson", "--model", "reference_cnn"], "--lesson draws the lesson's own network; give it without "
                                                        "--model"),
])
def test_naming_no_model_or_two_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 1
    assert capsys.readouterr().err == f"convnet: error: {message}\n"
