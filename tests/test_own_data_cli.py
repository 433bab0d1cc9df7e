"""Every command on the user's own data: ``--data PATH`` holding an image folder, a CSV manifest or
a CIFAR folder; the run records its data, a resume notices changed files, evaluate and predict
prepare images as training did, export writes the preprocessing, --init-from a run of other classes.
The oracles: Pillow's decoding and NumPy's arithmetic, written out here, and onnxruntime."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from convnet import checkpoint, experiment, nn
from convnet.cli import main
from convnet.data import shapes
from convnet.tensor import Tensor, no_grad

CLASSES = ["circle", "square", "star", "triangle"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # decoded images: never the user's cache


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """(image folder of 4 classes, 20 + 5 per class, 32x32 RGB; a lenet5 run of 1 epoch on it). Shared by the
    module's tests: about 3 s once, not per test."""
    root = tmp_path_factory.mktemp("colour")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        shapes(root / "shapes", per_class=20, val_per_class=5, size=32)
        code = main(["train", "--data", str(root / "shapes"), "--model", "lenet5", "--epochs", "1", "--batch-size",
                     "16", "--out", str(root / "run"), "--no-progress"])
    assert code == 0
    return root / "shapes", root / "run"


def pixels_of(paths, channels=3):
    """float64 (N, C, H, W) in [0, 1], decoded by Pillow."""
    mode = "RGB" if channels == 3 else "L"
    arrays = [np.asarray(Image.open(path).convert(mode), dtype=np.float64) / 255 for path in paths]
    return np.stack([array.transpose(2, 0, 1) if array.ndim == 3 else array[None] for array in arrays])


def oracle_probabilities(model, images, mean, std, mirror):
    """Softmax of the model's logits for ``images`` normalised per channel, averaged with the mirror's."""
    x = ((images - np.reshape(mean, (1, -1, 1, 1))) / np.reshape(std, (1, -1, 1, 1))).astype(np.float32)
    with no_grad():
        logits = model(Tensor(x)).numpy().astype(np.float64)
        if mirror:
            logits = (logits + model(Tensor(np.ascontiguousarray(x[..., ::-1]))).numpy()) / 2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_the_run_records_its_data_and_its_model_fits_it(colour_run, capsys):
    folder, run = colour_run
    _, _, meta = checkpoint.load(run)
    recorded = meta["data"]["images"]
    assert meta["config"]["dataset"] == "image folder" and meta["config"]["data"] == str(folder.resolve())
    assert recorded["classes"] == CLASSES and recorded["channels"] == 3 and recorded["size"] == [32, 32]
    trained = pixels_of(sorted(folder.glob("train/*/*.png")))
    np.testing.assert_allclose(recorded["mean"], trained.mean(axis=(0, 2, 3)), atol=1e-9)
    np.testing.assert_allclose(recorded["std"], trained.std(axis=(0, 2, 3)), atol=1e-9)
    assert len(recorded["manifest"]["text"].splitlines()) == 100
    config, model, _ = experiment.load_run(run)
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert convolutions[0].in_channels == 3 and linears[-1].out_features == 4 and config.augmentation == "crop,flip"


def test_evaluate_scores_the_recorded_validation_images_per_class_by_name(colour_run, capsys):
    folder, run = colour_run
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    _, model, meta = experiment.load_run(run)
    recorded = meta["data"]["images"]
    paths = [path for name in CLASSES for path in sorted((folder / "val" / name).glob("*.png"))]
    labels = np.repeat(np.arange(4), 5)
    predicted = oracle_probabilities(model, pixels_of(paths), recorded["mean"], recorded["std"], True).argmax(1)
    assert f"test accuracy: {np.mean(predicted == labels):.4f}" in out
    for index, name in enumerate(CLASSES):
        assert f"  {name:<12s} {np.mean(predicted[labels == index] == index):.4f}" in out


def test_predict_walks_folders_and_answers_as_training_prepared_images(colour_run, tmp_path, capsys):
    folder, run = colour_run
    pictures = tmp_path / "pictures"
    shutil.copytree(folder / "val" / "star", pictures / "nested" / "deeper")
    Image.open(folder / "val" / "circle" / "00000.png").resize((48, 40)).save(pictures / "wide.png")  # cropped, resized
    (pictures / "notes.txt").write_text("not an image")
    out_csv = tmp_path / "answers.csv"
    assert main(["predict", str(run), str(pictures), "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [row["path"] for row in rows] == sorted(str(p) for p in pictures.rglob("*.png"))
    _, model, meta = experiment.load_run(run)
    recorded = meta["data"]["images"]
    wide = Image.open(pictures / "wide.png").convert("RGB").crop((4, 0, 44, 40)).resize((32, 32), Image.BILINEAR)
    images = np.concatenate([pixels_of(sorted((pictures / "nested" / "deeper").glob("*.png"))),
                             (np.asarray(wide, dtype=np.float64) / 255).transpose(2, 0, 1)[None]])
    expected = oracle_probabilities(model, images, recorded["mean"], recorded["std"], True)
    for row, probabilities in zip(rows, expected):
        assert row["class"] == CLASSES[probabilities.argmax()]
        assert float(row["probability"]) == pytest.approx(probabilities.max(), abs=1e-5)
        assert row["class_2"] in CLASSES and float(row["probability_2"]) <= float(row["probability"])


def test_evaluate_on_other_data_of_other_classes_is_refused_in_one_line(colour_run, tmp_path, capsys):
    _, run = colour_run
    other = tmp_path / "other"
    for name in ("cat", "dog"):
        (other / name).mkdir(parents=True)
        for index in range(4):
            Image.new("RGB", (32, 32), (index * 40, 0, 0)).save(other / name / f"{index}.png")
    assert main(["evaluate", str(run), "--data", str(other)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "trained on 4 classes (circle, square, star, triangle)" in error
    assert "2 (cat, dog)" in error


def test_resume_refuses_changed_files_naming_them(colour_run, tmp_path, capsys):
    folder, run = colour_run
    data, copy = tmp_path / "shapes", tmp_path / "run"
    shutil.copytree(folder, data)
    shutil.copytree(run, copy)
    shutil.copy(data / "train" / "star" / "00000.png", data / "train" / "star" / "extra.png")
    (data / "train" / "circle" / "00003.png").unlink()
    assert main(["train", "--resume", str(copy), "--data", str(data), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "1 added (train/star/extra.png)" in error and "1 removed (train/circle/00003.png)" in error


def test_a_run_without_recorded_data_is_never_taken_for_fashion_mnist(colour_run, tmp_path, capsys):
    _, run = colour_run
    bare = tmp_path / "bare"
    _, _, meta = checkpoint.load(run)
    model = experiment.load_run(run)[1]
    bare.mkdir()
    checkpoint.save(bare, model, None, {"config": {"model": "lenet5"}, "data": None})
    for command in (["evaluate", str(bare)], ["predict", str(bare), str(tmp_path)]):
        assert main(command) == 1
        error = capsys.readouterr().err.strip()
        assert "does not record the data it was trained on" in error and "--data PATH" in error
        assert "\n" not in error and "T-shirt" not in error
    meta["data"]["images"]["std"] = [0.2, 0.0, 0.2]
    checkpoint.save(bare, model, None, meta)
    with pytest.raises(experiment.DataNotRecorded, match="expected std to be a positive number per channel"):
        experiment.load_run(bare)


def test_data_that_is_none_of_the_kinds_is_refused_and_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    assert main(["train", "--data", str(tmp_path / "notes"), "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert "expected IDX files" in error and "a CIFAR folder" in error and "an image folder" in error
    assert "a CSV manifest" in error and not (tmp_path / "run").exists()


def test_an_image_too_small_for_the_model_is_refused_and_leaves_no_folder(tmp_path, capsys):
    shapes(tmp_path / "s", per_class=3, val_per_class=1, size=16)
    assert main(["train", "--data", str(tmp_path / "s"), "--model", "lenet5", "--image-size", "8",
                 "--batch-size", "4", "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert "too small" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_image_options_are_refused_for_idx_data(tiny_fashion, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_fashion), "--channels", "3", "--out", str(tmp_path / "run")]) == 1
    assert "--channels apply to an image folder or CSV manifest" in capsys.readouterr().err


def test_stored_configs_of_older_runs_load_with_the_new_fields_defaulted():
    old = experiment.RunConfig.from_dict({"model": "lenet5", "dataset": "mnist", "epochs": 3})
    assert (old.val_split, old.image_size, old.channels, old.skip_bad) == (0.1, None, None, False)
    assert experiment.RunConfig(image_size=64).image_size == [64, 64]
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        experiment.RunConfig(channels=2)


def test_crops_are_padded_by_an_eighth_of_the_side():
    spec = {"kind": "image folder", "path": "p", "classes": ["a", "b"], "channels": 3, "size": [32, 32],
            "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}
    transform = experiment.train_transform(experiment.RunConfig(dataset="image folder", augment="crop"), spec)
    assert repr(transform.transforms[0]) == "RandomCrop(size=(32, 32), padding=4)"
    batch = np.full((1, 3, 32, 32), 0.5, np.float32)
    np.testing.assert_allclose(transform.transforms[1](batch)[0, :, 0, 0], (0.5 - np.array([0.5, 0.4, 0.3])) / 0.2,
                               rtol=1e-6)


@pytest.mark.slow
def test_a_csv_manifest_trains_and_evaluates(tmp_path, capsys):
    shapes(tmp_path / "s", per_class=8, val_per_class=0, size=24)
    rows = [[str(path.relative_to(tmp_path)), path.parent.name] for path in sorted(tmp_path.glob("s/train/*/*.png"))]
    with open(tmp_path / "labels.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([["path", "label"], *rows])
    assert main(["train", "--data", str(tmp_path / "labels.csv"), "--model", "lenet5", "--epochs", "1",
                 "--batch-size", "8", "--val-split", "0.25", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "csv, 3 channels, 24x24, 4 classes, 24 training / 8 validation images" in out
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert "  triangle " in capsys.readouterr().out


@pytest.mark.slow
def test_a_cifar_folder_trains_with_its_channel_statistics(tmp_path, capsys):
    from test_cifar import CIFAR10_NAMES, write_cifar10
    written = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=4)
    assert main(["train", "--data", str(tmp_path), "--model", "resnet8", "--epochs", "1", "--batch-size", "10",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "CIFAR-10 train, 3 channels, 32x32, 10 classes, 20 images for training, 4 test images" in \
        capsys.readouterr().out
    _, _, meta = checkpoint.load(tmp_path / "run")
    images = written["train"][0].astype(np.float64) / 255
    np.testing.assert_allclose(meta["data"]["train"]["mean"], images.mean(axis=(0, 2, 3)), atol=1e-9)
    np.testing.assert_allclose(meta["data"]["train"]["std"], images.std(axis=(0, 2, 3)), atol=1e-9)
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert f"  {CIFAR10_NAMES[0]:<12s}" in capsys.readouterr().out


def test_export_writes_the_preprocessing_and_onnxruntime_agrees(colour_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="the exported file is checked with onnxruntime (the onnx extra)")
    folder, run = colour_run
    out = tmp_path / "model.onnx"
    assert main(["export", str(run), str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    _, model, meta = experiment.load_run(run)
    recorded = meta["data"]["images"]
    preprocessing = json.loads(metadata[experiment.ONNX_PREPROCESSING])
    assert preprocessing["channels"] == 3 and preprocessing["size"] == [32, 32]
    assert preprocessing["mean"] == recorded["mean"] and preprocessing["std"] == recorded["std"]
    assert json.loads(metadata[experiment.ONNX_CLASSES]) == CLASSES
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]
    images = pixels_of(sorted(folder.glob("val/*/*.png")))
    x = ((images - np.reshape(recorded["mean"], (1, 3, 1, 1))) / np.reshape(recorded["std"], (1, 3, 1, 1)))
    x = x.astype(np.float32)
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    with no_grad():
        ours = model(Tensor(x)).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    assert main(["predict", str(out), str(folder / "val" / "star" / "00000.png")]) == 0
    assert main(["predict", str(run), str(folder / "val" / "star" / "00000.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4:] == lines[-8:-4]  # the file answers as the run does, preprocessing from its metadata
    assert main(["evaluate", str(out)]) == 1
    assert "pass --data PATH with its images" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--data", str(folder)]) == main(["evaluate", str(run)]) == 0
    file_figures, run_figures = capsys.readouterr().out.split("test accuracy")[1:]
    assert file_figures == run_figures


@pytest.mark.slow
def test_init_from_a_run_of_other_classes_starts_a_new_classifier_and_says_so(colour_run, tmp_path, capsys):
    folder, run = colour_run
    three = tmp_path / "three"
    for split in ("train", "val"):
        for name in CLASSES[:3]:
            shutil.copytree(folder / split / name, three / split / name)
    assert main(["train", "--data", str(three), "--model", "lenet5", "--epochs", "1", "--batch-size", "16",
                 "--init-from", str(run), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "its classifier (11) answers another number of classes (4; this run has 3)" in out
    before, _, _ = checkpoint.load(run)
    model = experiment.load_run(tmp_path / "run")[1]
    assert model[-1].out_features == 3 and before["11.weight"].shape == (4, 84)
    started = experiment.start(experiment.RunConfig(model="lenet5", data=str(three), init_from=str(run), batch_size=16),
                               tmp_path / "unstarted", progress=False, log=lambda line: None)
    model = started.trainer.model  # before any step: every layer but the classifier is the file's
    np.testing.assert_array_equal(model[0].weight.data, before["0.weight"])
    np.testing.assert_array_equal(model[9].weight.data, before["9.weight"])
    assert model[11].weight.shape == (3, 84) and started.notes



@pytest.mark.parametrize(("channels", "size", "batch"), [(None, None, 1000), (3, 64, 341), (3, 224, 27), (1, 4096, 1)])
def test_evaluation_batches_hold_at_most_4m_input_values_and_1000_images(channels, size, batch):
    from convnet.data import ArrayDataset
    images = ArrayDataset(np.zeros((2, 1, 2, 2), np.uint8), np.zeros(2, np.int64))
    spec = None if channels is None else {"channels": channels, "size": [size, size], "mean": [0.5] * channels,
                                          "std": [0.25] * channels}
    assert experiment.evaluation_loader(experiment.RunConfig(), images, spec).batch_size == batch


def test_a_whitened_run_on_an_image_folder_whitens_its_colour_patches(colour_run, tmp_path):
    """The whitening layer reads the training images through the dataset's batches (a decoded cache
    here, not IDX arrays): its first 12 filters make the normalised 2x2 RGB patches' second moment
    near the identity; the oracle reads the images one by one and normalises them by NumPy."""
    folder, _ = colour_run
    assert main(["train", "--data", str(folder), "--model", "lenet5", "--whiten", "--epochs", "1", "--batch-size",
                 "16", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    config, model, _ = experiment.load_run(tmp_path / "run")
    train, _ = experiment.load_datasets(config)
    spec = experiment.build.input_spec(config, train)
    mean, std = (np.reshape(spec[key], (1, -1, 1, 1)) for key in ("mean", "std"))
    images = (np.stack([train[i][0] for i in range(len(train))]) / 255 - mean) / std
    patches = np.stack([images[:, :, i:i + 31, j:j + 31] for i in (0, 1) for j in (0, 1)], axis=2)
    patches = patches.transpose(0, 3, 4, 1, 2).reshape(-1, 12)  # (c, i, j) order, as the filters'
    filters = model.whiten.weight.numpy().reshape(24, 12).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))[::-1]
    np.testing.assert_allclose(filters[:12] @ (patches.T @ patches / len(patches)) @ filters[:12].T,
                               np.diag(eigenvalues / (eigenvalues + 5e-4)), atol=1e-4)
