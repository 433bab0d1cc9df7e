"""The run folder's owner: its lock, what it shows of itself, its default name, and removing a folder
that a run left with nothing saved (and only such a folder)."""

import ast
import os
import pathlib
import time

import pytest

from convnet import run_folder
from convnet.errors import ConvnetError


def test_a_second_holder_of_the_lock_is_refused_naming_the_first(tmp_path):
    first = run_folder.hold_lock(tmp_path)
    try:
        assert (tmp_path / run_folder.LOCK).read_text() == str(os.getpid())
        with pytest.raises(run_folder.RunLocked, match=rf"^{tmp_path} is being trained by another process "
                                                       rf"\(PID {os.getpid()}\); wait for it to end or choose "
                                                       rf"another --out$") as refused:
            run_folder.hold_lock(tmp_path)
        assert isinstance(refused.value, ConvnetError) and isinstance(refused.value, RuntimeError)
    finally:
        first.close()
    run_folder.hold_lock(tmp_path).close()  # closing released it


def test_only_a_folder_holding_nothing_saved_is_removed(tmp_path):
    unsaved = tmp_path / "unsaved"
    (unsaved / run_folder.SNAPSHOTS).mkdir(parents=True)
    for name in (run_folder.LOCK, run_folder.STEPS):
        (unsaved / name).write_text("")
    assert run_folder.remove_if_unsaved(unsaved) and not unsaved.exists()
    for kept in (run_folder.WEIGHTS, "notes.txt"):
        folder = tmp_path / kept
        folder.mkdir()
        (folder / run_folder.LOCK).write_text("")
        (folder / kept).write_text("")
        assert not run_folder.remove_if_unsaved(folder) and (folder / kept).exists()
    assert not run_folder.remove_if_unsaved(tmp_path / "missing")
    assert run_folder.has_checkpoint(tmp_path / run_folder.WEIGHTS) and not run_folder.has_checkpoint(tmp_path / "notes.txt")


def test_only_the_reports_and_snapshot_pictures_inside_the_folder_are_shown(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / run_folder.SNAPSHOTS).mkdir(parents=True)
    picture = run_folder.snapshot_pictures(40)["kernels"]
    for name in (run_folder.METRICS, run_folder.SIDECAR, picture):
        (run_dir / name).write_text("x")
    (tmp_path / "secret.txt").write_text("not yours")
    (run_dir / run_folder.CURVES).symlink_to(tmp_path / "secret.txt")
    assert run_folder.report_file(run_dir, run_folder.METRICS) == (run_dir / run_folder.METRICS).resolve()
    assert run_folder.report_file(run_dir, picture) == (run_dir / picture).resolve()
    for refused in (run_folder.SIDECAR, run_folder.CURVES, run_folder.CONFUSION, "../secret.txt",
                    f"{run_folder.SNAPSHOTS}/../{run_folder.METRICS}"):
        assert run_folder.report_file(run_dir, refused) is None, refused


def test_a_new_run_goes_to_a_folder_named_after_its_model_and_time():
    now = time.localtime()
    assert run_folder.default_run_dir("resnet8", now).as_posix() == time.strftime("runs/resnet8-%Y%m%d-%H%M%S", now)


def test_the_step_log_reads_what_was_whole_of_it(tmp_path):
    assert run_folder.whole_step_lines(tmp_path) == []
    (tmp_path / run_folder.STEPS).write_text('{"kind": "step", "step": 10}\n{"kind": "st')
    assert run_folder.whole_step_lines(tmp_path) == ['{"kind": "step", "step": 10}']
    assert run_folder.read_steps(tmp_path / run_folder.STEPS) == [{"kind": "step", "step": 10}]


def test_the_run_folders_file_names_are_written_in_run_folder_alone():
    package = pathlib.Path(run_folder.__file__).parent
    names = [run_folder.WEIGHTS, run_folder.SIDECAR, *run_folder.REPORTS, run_folder.STEPS, run_folder.LOCK]
    # An ordinary word: only a string that is the name counts (TENSORBOARD is also a setting's name, so it is left out).
    words = {run_folder.SNAPSHOTS}
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "run_folder.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value in words or any(name in node.value for name in names)):
                found.append(f"{path.relative_to(package)}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "ask convnet.run_folder for these: " + "; ".join(found)
