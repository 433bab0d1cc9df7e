"""A run folder's layout: every file a training run leaves in its folder, named here and nowhere else.

A run folder holds

- ``checkpoint.safetensors`` (`WEIGHTS`), the run's single source of truth (`convnet.checkpoint`),
  and ``checkpoint.json`` (`SIDECAR`), a readable copy of its metadata;
- ``metrics.csv`` (`METRICS`), ``curves.png`` (`CURVES`), ``accuracy_minutes.png``
  (`ACCURACY_MINUTES`: test accuracy against wall-clock minutes) and ``confusion.png`` (`CONFUSION`),
  rewritten after every epoch (`convnet.reports.RunFolder`);
- ``steps.jsonl`` (`STEPS`), the run's log as it goes, one JSON object per line (`read_steps`),
  with pictures of its first convolution layer in ``snapshots/`` (`SNAPSHOTS`,
  `snapshot_pictures`; `convnet.reports.StepLog`);
- ``.lock`` (`LOCK`), held by the process training in the folder (`hold_lock`);
- ``tensorboard/`` (`TENSORBOARD`), event files, when the run asked for them.

Everything here only reads, names or removes files: it imports nothing of convnet but its errors,
so that whatever merely looks at a run (``convnet watch``) needs nothing else.
"""

import fcntl
import json
import os
import re
import shutil
import time
from pathlib import Path

from .errors import ConvnetError, InvalidValue

WEIGHTS, SIDECAR = "checkpoint.safetensors", "checkpoint.json"
METRICS, CURVES, CONFUSION = "metrics.csv", "curves.png", "confusion.png"
STEPS, SNAPSHOTS = "steps.jsonl", "snapshots"
LOCK = ".lock"  # held by the process training in the folder; it holds that process's PID
TENSORBOARD = "tensorboard"
ACCURACY_MINUTES = "accuracy_minutes.png"
REPORTS = (METRICS, CURVES, ACCURACY_MINUTES, CONFUSION)  # what a run shows of itself besides its log and snapshots
# The step log's pictures, as `snapshot_pictures` names them (paths within the run folder).
SNAPSHOT_PICTURE = re.compile(rf"{SNAPSHOTS}/(image|(kernels|feature_maps)-\d+)\.png")
# What a run that stopped before its first checkpoint leaves: nothing it could resume from.
UNSAVED = {LOCK, STEPS, SNAPSHOTS}


class RunLocked(ConvnetError, RuntimeError):
    """Another process is training in the run folder."""


def default_run_dir(model, now=None):
    """Where a new run of ``model`` goes unless told: ``runs/MODEL-YYYYmmdd-HHMMSS``, the local time
    ``now`` (a `time.localtime` tuple; default: now).

    >>> default_run_dir("lenet5", time.strptime("2026-12-06 16:03:27", "%Y-%m-%d %H:%M:%S")).as_posix()
    'runs/lenet5-20261206-160327'
    """
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S', now or time.localtime())}"


def has_checkpoint(run_dir):
    """Whether ``run_dir`` holds a checkpoint: a run that can be resumed or evaluated."""
    return (Path(run_dir) / WEIGHTS).exists()


def remove_if_unsaved(run_dir):
    """Remove ``run_dir`` if it holds nothing but what a run leaves before its first checkpoint (its
    lock, step log and snapshots: `UNSAVED`); return whether it did. Only for a folder the caller's
    own run made: a folder given to a run may hold other files, which are never touched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or {path.name for path in run_dir.iterdir()} - UNSAVED:
        return False
    shutil.rmtree(run_dir)
    return True


def hold_lock(run_dir):
    """Take ``run_dir``'s lock for this process, writing its PID into it; the open lock file is
    returned, and closing it (or the process ending, however it ends) releases the lock. An
    advisory flock, so a killed run leaves no stale lock; a second writer is refused at once
    (`RunLocked`, naming the holder's PID) instead of both runs overwriting each other's files."""
    run_dir = Path(run_dir)
    lock_file = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise RunLocked(f"{run_dir} is being trained by another process (PID {holder}); "
                        f"wait for it to end or choose another --out") from None
    lock_file.truncate(0)
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


def snapshot_pictures(step):
    """{"image", "kernels", "feature_maps"}: where the step log's pictures of ``step`` go, as
    paths within the run folder (the image is the same at every step).

    >>> snapshot_pictures(200)["kernels"]
    'snapshots/kernels-0000200.png'
    """
    return {"image": f"{SNAPSHOTS}/image.png", "kernels": f"{SNAPSHOTS}/kernels-{step:07d}.png",
            "feature_maps": f"{SNAPSHOTS}/feature_maps-{step:07d}.png"}


def report_file(run_dir, name):
    """The file ``name`` (a path within ``run_dir``, as a URL gives it) if it is one of the run's
    `REPORTS` or snapshot pictures and a file inside the folder; None for any other name, a file
    that is missing, and a symbolic link out of the folder.

    >>> report_file(".", "../etc/passwd") is None and report_file(".", "checkpoint.json") is None
    True
    """
    if name not in REPORTS and not SNAPSHOT_PICTURE.fullmatch(name):
        return None
    run_dir = Path(run_dir).resolve()
    target = (run_dir / name).resolve()
    return target if target.is_relative_to(run_dir) and target.is_file() else None


def read_steps(path):
    """The entries of a step log (`STEPS`), skipping a last line cut short (by a kill during its
    write); a damaged line elsewhere is a ValueError naming it."""
    lines = Path(path).read_text().split("\n")
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: its write was cut short
                break
            raise InvalidValue(f"{path}: line {number} is not a JSON object ({line[:60]!r})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
            raise InvalidValue(f"{path}: line {number}: expected an object with an integer step, got {line[:60]!r}")
        entries.append(entry)
    return entries


def whole_step_lines(run_dir):
    """The step log's lines that are whole (ended by a newline), as text; the last piece, a line
    still being written, is left out. [] while the run has written none."""
    log = Path(run_dir) / STEPS
    return log.read_text().split("\n")[:-1] if log.exists() else []
