"""``convnet train --init-from``: a run starts from a run folder's, a PyTorch state_dict's or an
ONNX file's weights, matched by name; whatever does not fit is refused, every problem at once,
before any data is read or any folder made."""

import numpy as np
import pytest
from conftest import requires_torch, torch

from convnet import experiment, models
from convnet.cli import main


def config(data, model="lenet5", **options):
    return experiment.RunConfig(model=model, data=str(data), epochs=1, batch_size=16, **options)


@pytest.fixture
def finished_run(tiny_fashion, tmp_path):
    run = experiment.start(config(tiny_fashion), tmp_path / "first", progress=False, log=lambda *_: None)
    run.trainer.fit(1)
    return run


def weights_of(run):
    return {key: value.copy() for key, value in run.trainer.model.state_dict().items()}


def test_a_run_starts_from_another_runs_weights_and_records_where_from(finished_run, tiny_fashion, tmp_path):
    second = experiment.start(config(tiny_fashion, init_from=str(finished_run.run_dir)), tmp_path / "second",
                              progress=False)
    for key, value in weights_of(finished_run).items():
        np.testing.assert_array_equal(second.trainer.model.state_dict()[key], value, err_msg=key)
    assert second.config.init_from == str(finished_run.run_dir.absolute())


@requires_torch
def test_a_pytorch_state_dict_is_read_without_pytorch_and_batch_counts_may_be_missing(tiny_fashion, tmp_path):
    source = models.build("reference_cnn")
    state = {key: torch.from_numpy(np.array(value) + 0.5) for key, value in source.state_dict().items()
             if not key.endswith("num_batches_tracked")}  # ONNX files, and old PyTorch files, have none
    torch.save(state, tmp_path / "weights.pth")
    run = experiment.start(config(tiny_fashion, "reference_cnn", init_from=str(tmp_path / "weights.pth")),
                           tmp_path / "run", progress=False)
    loaded = run.trainer.model.state_dict()
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value.numpy(), err_msg=key)
    assert all(loaded[key] == 0 for key in loaded if key.endswith("num_batches_tracked"))


def test_weights_of_another_architecture_are_refused_naming_every_problem(finished_run, tiny_fashion, tmp_path,
                                                                          capsys):
    code = main(["train", "--model", "reference_cnn", "--data", str(tiny_fashion), "--init-from",
                 str(finished_run.run_dir), "--out", str(tmp_path / "other"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"convnet: error: --init-from {finished_run.run_dir.absolute()}: load_state_dict for "
                          f"Sequential: missing keys: [")
    assert "unexpected keys: [" in err and "wrong shapes: " in err
    assert not (tmp_path / "other").exists()


@requires_torch
@pytest.mark.parametrize(("name", "expected"), [
    ("weights.txt", "expected a run folder, a PyTorch state_dict (.pth, .pt) or an ONNX file (.onnx)"),
    ("missing.pth", "no such file or folder"),
    ("nan.pth", "non-finite values (NaN or infinity) in ['0.weight']"),
])
def test_files_that_cannot_start_a_run_are_refused(tiny_fashion, tmp_path, capsys, name, expected):
    state = {key: torch.from_numpy(np.array(value)) for key, value in models.build("lenet5").state_dict().items()}
    state["0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    (tmp_path / "weights.txt").write_text("not weights")
    code = main(["train", "--model", "lenet5", "--data", str(tiny_fashion), "--init-from", str(tmp_path / name),
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 1 and capsys.readouterr().err == f"convnet: error: --init-from {tmp_path / name}: {expected}\n"
    assert not (tmp_path / "run").exists()
