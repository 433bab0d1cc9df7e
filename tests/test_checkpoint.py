"""Checkpoints round-trip bit for bit, and every way of failing to read or write one is an error
that names the file, never a half-written file in place of the last good one."""

import datetime
import errno
import json
import os
import re

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save as save_tensors

import convnet.functional as F
from convnet import checkpoint, files, nn, optim


def small_model():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def trained_model_and_optimizer(steps=2):
    """A model whose batch norm buffers moved and an Adam whose state holds arrays and a step count."""
    model = small_model()
    optimizer = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    rng = np.random.default_rng(0)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(rng.standard_normal((4, 1, 6, 6)).astype(np.float32)), [0, 1, 1, 0]).backward()
        optimizer.step()
    return model, optimizer


META = {"epoch": np.int64(3), "accuracy": np.float32(0.9271), "finished": np.bool_(False),
        "per_class": np.array([0.5, 0.25]), "config": {"model": "small", "lr": 0.01, "schedule": None},
        "history": [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]}
# What JSON makes of META: NumPy scalars become Python numbers of the same value, arrays lists.
META_AS_JSON = {"epoch": 3, "accuracy": float(np.float32(0.9271)), "finished": False, "per_class": [0.5, 0.25],
                "config": {"model": "small", "lr": 0.01, "schedule": None},
                "history": [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]}


def test_model_optimizer_and_meta_round_trip_bit_for_bit(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    checkpoint.save(tmp_path, model, optimizer, META)
    model_state, optimizer_state, meta = checkpoint.load(tmp_path)

    expected = model.state_dict()
    assert sorted(model_state) == sorted(expected)  # safetensors stores its keys sorted
    for key, value in expected.items():
        assert model_state[key].dtype == value.dtype, key  # incl. num_batches_tracked's int64
        np.testing.assert_array_equal(model_state[key], value, err_msg=key)

    saved = optimizer.state_dict()
    assert sorted(optimizer_state["state"]) == sorted(saved["state"]) == list(range(len(list(model.parameters()))))
    for index, entries in saved["state"].items():
        loaded = optimizer_state["state"][index]
        assert loaded.keys() == entries.keys() and loaded["step"] == entries["step"] == 2
        for name in ("exp_avg", "exp_avg_sq"):
            assert loaded[name].dtype == entries[name].dtype
            np.testing.assert_array_equal(loaded[name], entries[name], err_msg=f"{index}.{name}")
    assert optimizer_state["param_groups"] == json.loads(json.dumps(saved["param_groups"]))  # betas become a list

    assert meta == META_AS_JSON
    assert type(meta["epoch"]) is int and type(meta["finished"]) is bool


def test_the_loaded_state_resumes_the_same_training(tmp_path):
    straight, straight_optimizer = trained_model_and_optimizer(steps=2)
    checkpoint.save(tmp_path, straight, straight_optimizer)

    model_state, optimizer_state, meta = checkpoint.load(tmp_path)
    resumed = small_model()
    resumed.load_state_dict(model_state)
    resumed_optimizer = optim.Adam(resumed.parameters(), lr=0.01, betas=(0.8, 0.99))
    resumed_optimizer.load_state_dict(optimizer_state)
    images = np.random.default_rng(1).standard_normal((4, 1, 6, 6)).astype(np.float32)
    for net, opt in ((straight, straight_optimizer), (resumed, resumed_optimizer)):
        opt.zero_grad()
        F.cross_entropy(net(images), [1, 0, 0, 1]).backward()
        opt.step()
    assert meta == {}
    for key, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value, err_msg=key)


def test_without_an_optimizer_none_comes_back(tmp_path):
    checkpoint.save(tmp_path, small_model(), None, {"epoch": 0})
    assert checkpoint.load(tmp_path)[1:] == (None, {"epoch": 0})


def test_the_readable_sidecar_equals_the_stored_meta(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    checkpoint.save(tmp_path, model, optimizer, META)
    with safe_open(str(tmp_path / checkpoint.WEIGHTS), "np") as stored:
        stored_meta = json.loads(stored.metadata()["convnet"])
    sidecar = json.loads((tmp_path / checkpoint.SIDECAR).read_text())
    assert sidecar.pop("note") == checkpoint.SIDECAR_NOTE and "editing this one changes nothing" in checkpoint.SIDECAR_NOTE
    assert sidecar == stored_meta
    assert {key: value for key, value in sidecar.items() if key not in ("optimizer", "sha256")} == META_AS_JSON
    assert set(sidecar["sha256"]) == {f"model.{key}" for key in model.state_dict()} | {
        f"optimizer.{index}.{name}" for index, entries in optimizer.state_dict()["state"].items()
        for name, value in entries.items() if isinstance(value, np.ndarray)}
    assert sidecar["optimizer"]["state"]["0"] == {"step": 2}  # the scalars; the arrays live in the tensors


def test_a_folder_without_a_checkpoint_is_named(tmp_path):
    with pytest.raises(checkpoint.CheckpointError,
                       match=f"^{re.escape(f'no checkpoint in {tmp_path} (expected checkpoint.safetensors)')}$"):
        checkpoint.load(tmp_path)


def safetensors_bytes(header):
    """A safetensors file: an 8-byte little-endian header length, then the header."""
    return len(header).to_bytes(8, "little") + header


@pytest.mark.parametrize("content", [
    b"not a checkpoint",
    b"",
    safetensors_bytes(b"{this is not JSON"),
    safetensors_bytes(b'{"__metadata__": {"convnet": "{not JSON either"}}'),
    save_tensors({"weight": np.zeros(3, np.float32)}),  # a valid safetensors file, but not convnet's
], ids=["text", "empty", "header not JSON", "metadata not JSON", "no convnet metadata"])
def test_a_file_that_is_not_a_convnet_checkpoint_is_refused(tmp_path, content):
    (tmp_path / checkpoint.WEIGHTS).write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError,
                       match=f"^{re.escape(str(tmp_path / checkpoint.WEIGHTS))}: not a readable convnet checkpoint "):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("keep", [4, 40, 0.5, -1])
def test_a_truncated_checkpoint_is_refused(tmp_path, keep):
    checkpoint.save(tmp_path, *trained_model_and_optimizer(), META)
    path = tmp_path / checkpoint.WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable convnet checkpoint"):
        checkpoint.load(tmp_path)


def test_meta_that_json_cannot_hold_is_refused_before_anything_is_written(tmp_path):
    checkpoint.save(tmp_path, small_model(), None, {"epoch": 1})
    before = {name: (tmp_path / name).read_bytes() for name in (checkpoint.WEIGHTS, checkpoint.SIDECAR)}
    with pytest.raises(TypeError, match="checkpoint: cannot store datetime in JSON"):
        checkpoint.save(tmp_path, small_model(), None, {"started": datetime.datetime(2026, 11, 28)})
    assert {name: (tmp_path / name).read_bytes() for name in sorted(os.listdir(tmp_path))} == before


def test_an_unwritable_folder_is_an_error_that_names_it(tmp_path):
    (tmp_path / "a file").write_text("")
    run_dir = tmp_path / "a file" / "run"  # refused even to root, unlike a read-only folder
    expected = f"cannot write {run_dir / checkpoint.WEIGHTS}: Not a directory"
    with pytest.raises(checkpoint.CheckpointError, match=f"^{re.escape(expected)}"):
        checkpoint.save(run_dir, small_model())


def disk_full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_disk_that_fails_mid_write_leaves_the_previous_checkpoint_and_no_temporary_files(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, small_model(), None, {"epoch": 1})
    before = {name: (tmp_path / name).read_bytes() for name in (checkpoint.WEIGHTS, checkpoint.SIDECAR)}
    model, optimizer = trained_model_and_optimizer()
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.save(tmp_path, model, optimizer, {"epoch": 2})
    assert str(error.value) == (f"cannot write {tmp_path / checkpoint.WEIGHTS}: No space left on device; "
                                f"the previous file, if any, is intact")
    assert {name: (tmp_path / name).read_bytes() for name in sorted(os.listdir(tmp_path))} == before
    monkeypatch.undo()
    assert checkpoint.load(tmp_path)[2] == {"epoch": 1}


@pytest.mark.parametrize("content", [b"\x00\x01 bytes", "text, written as UTF-8: \u00e9"])
def test_atomic_write_replaces_the_whole_file_readable_by_others(tmp_path, content):
    path = tmp_path / "report.txt"
    path.write_text("the previous content")
    files.atomic_write(path, content)
    assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())
    assert path.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["report.txt"]


@pytest.mark.parametrize("previous", [b"the previous content", None])
def test_atomic_write_on_a_failing_disk_keeps_the_previous_file_and_cleans_up(tmp_path, monkeypatch, previous):
    path = tmp_path / "report.txt"
    if previous is not None:
        path.write_bytes(previous)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(files.WriteError) as error:
        files.atomic_write(path, b"the new content")
    assert str(error.value) == f"cannot write {path}: No space left on device; the previous file, if any, is intact"
    assert isinstance(error.value, OSError)
    assert os.listdir(tmp_path) == ([] if previous is None else ["report.txt"])
    if previous is not None:
        assert path.read_bytes() == previous


def test_atomic_write_into_a_missing_folder_names_the_file(tmp_path):
    path = tmp_path / "missing" / "report.txt"
    with pytest.raises(files.WriteError, match=f"^{re.escape(f'cannot write {path}: No such file or directory')}$"):
        files.atomic_write(path, b"")


def test_check_writable_creates_the_folder_and_leaves_nothing_in_it(tmp_path):
    directory = tmp_path / "runs" / "first"
    files.check_writable(directory)
    assert directory.is_dir() and os.listdir(directory) == []


def test_check_writable_refuses_a_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "a file").write_text("")
    directory = tmp_path / "a file" / "run"
    with pytest.raises(files.WriteError, match=f"^{re.escape(f'cannot write to {directory}: Not a directory')}$"):
        files.check_writable(directory)


def test_a_damaged_tensor_is_refused_naming_it(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    checkpoint.save(tmp_path, model, optimizer, META)
    path = tmp_path / checkpoint.WEIGHTS
    data = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    header = json.loads(data[8:header_end])
    first = next(name for name, entry in header.items() if name != "__metadata__" and entry["data_offsets"][0] == 0)
    data[header_end + 3] ^= 0x40  # an exponent bit of the first tensor's first float32
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=rf"tensor {re.escape(first)} does not match its recorded "
                                                         r"SHA-256; the file is damaged"):
        checkpoint.load(tmp_path)


def test_non_finite_weights_are_refused_even_with_a_matching_checksum(tmp_path):
    model, optimizer = trained_model_and_optimizer()
    first = next(iter(model.parameters()))
    first.data.flat[0] = np.nan
    checkpoint.save(tmp_path, model, optimizer, META)
    with pytest.raises(checkpoint.CheckpointError, match=r"holds 1 non-finite values \(NaN or infinity\)"):
        checkpoint.load(tmp_path)


def rewrite_metadata(run_dir, edit):
    """Save a checkpoint, then rewrite its safetensors metadata {"convnet": text, ...} with ``edit``
    (a function of the metadata's dict and the parsed meta), as another program could."""
    model, optimizer = trained_model_and_optimizer()
    checkpoint.save(run_dir, model, optimizer, META)
    path = run_dir / checkpoint.WEIGHTS
    with safe_open(str(path), "np") as stored:
        metadata = stored.metadata()
        tensors = {name: stored.get_tensor(name) for name in stored.keys()}
    path.write_bytes(save_tensors(tensors, metadata=edit(metadata, json.loads(metadata["convnet"]))))
    return model


def test_a_checkpoint_from_before_checksums_still_loads(tmp_path):
    def as_before_checksums(metadata, meta):
        del meta["sha256"]
        return {"convnet": json.dumps(meta)}

    model = rewrite_metadata(tmp_path, as_before_checksums)
    state, _, loaded_meta = checkpoint.load(tmp_path)
    assert loaded_meta["epoch"] == META["epoch"] and set(state) == set(model.state_dict())


def test_edited_metadata_is_refused(tmp_path):
    rewrite_metadata(tmp_path, lambda metadata, meta: {**metadata, "convnet": json.dumps({**meta, "epoch": 10 ** 30})})
    with pytest.raises(checkpoint.CheckpointError, match=r"its metadata does not match their recorded SHA-256; the "
                                                         r"file was edited or damaged"):
        checkpoint.load(tmp_path)
