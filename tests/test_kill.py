"""kill -9 harness (the issue "Nothing silent, nothing lost"): a short ``convnet train`` SIGKILLed
at seeded random points and continued the way a user would must end with exactly the weights,
optimizer state and reports of an uninterrupted run, in a folder that is consistent after every
kill by its own rules.

Each training process runs ``convnet.cli.main`` with the command's arguments under a small
wrapper (`CHILD`) that changes nothing convnet does. It notes the loop's progress and each
atomic write's phases in a log (unbuffered, so it survives the kill), which says where each kill
landed; and it can SIGKILL itself at a chosen point, so that the schedule of a seed repeats:

* mid-write: at one phase of one write of a given file (checkpoint.safetensors,
  checkpoint.json, metrics.csv, curves.png, confusion.png): the temporary just created, half
  written, written and fsynced but not renamed, or just renamed into place (for the checkpoint:
  before its sidecar and the reports);
* mid-step: a random fraction of a step's time into a random training step (a timer armed as
  the step begins).

The third kind comes from outside, by timing alone: the parent SIGKILLs the process at a time
uniform over its expected duration (startup, data, Numba kernels, training, evaluation, writes).
"""

import csv
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from convnet import checkpoint
from convnet.run_folder import ACCURACY_MINUTES, CONFUSION, CURVES, LOCK, METRICS, SNAPSHOTS, STEPS, read_steps
from conftest import write_tiny_fashion

pytestmark = pytest.mark.system  # the harness SIGKILLs training processes

EPOCHS, BATCH_SIZE, TRAIN_IMAGES = 3, 32, 256
BATCHES = TRAIN_IMAGES // BATCH_SIZE
FILES = (checkpoint.WEIGHTS, checkpoint.SIDECAR, METRICS, CURVES, ACCURACY_MINUTES, CONFUSION)
PHASES = ("created", "partial", "written", "replaced")
PHASE_NAMES = {"created": "temporary created, empty", "partial": "temporary half-written",
               "written": "temporary written and fsynced, not renamed", "replaced": "just renamed into place"}
TIMING_COLUMNS = {"images_per_second", "seconds"}
STEP_LOG_TIMING = {"images_per_second", "time", "seconds"}
PNG_SIGNATURE, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
PROCESS_TIMEOUT = 300  # seconds for one training process: generous, for a loaded CI machine

CHILD = r"""
import os, signal, sys, threading, time
from pathlib import Path

log = os.open(os.environ["KILL_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def note(text):
    os.write(log, f"{time.monotonic():.6f} {text}\n".encode())


note("start")
target = os.environ.get("KILL_TEST_AT")  # FILE:OCCURRENCE:PHASE, the write phase to die at
if target:
    name, occurrence, phase = target.split(":")
    target = (name, int(occurrence), phase)
step_at = os.environ.get("KILL_TEST_STEP")  # STEP:SECONDS, to die SECONDS into this process's STEP-th step
if step_at:
    step_at, delay = step_at.split(":")
    step_at, delay = int(step_at), float(delay)


def die(what):
    note(f"kill {what}")
    os.kill(os.getpid(), signal.SIGKILL)

import convnet.files as files
import convnet.train as train

real_os, real_tempfile = files.os, files.tempfile
counts, names = {}, {}  # writes started per file name; file name of each temporary's descriptor


def point(name, phase):
    note(f"{phase} {name}")
    if (name, counts[name], phase) == target:
        die(name)


class Tempfile:
    def __getattr__(self, attribute):
        return getattr(real_tempfile, attribute)

    def mkstemp(self, *args, prefix="", **kwargs):
        handle, path = real_tempfile.mkstemp(*args, prefix=prefix, **kwargs)
        name = names[handle] = prefix[1:-1]  # ".metrics.csv." -> metrics.csv
        counts[name] = counts.get(name, 0) + 1
        point(name, "created")
        return handle, path


class Stream:
    def __init__(self, stream, name):
        self.stream, self.name = stream, name

    def __getattr__(self, attribute):
        return getattr(self.stream, attribute)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return self.stream.__exit__(*exception)

    def write(self, data):
        if (self.name, counts[self.name], "partial") == target:
            self.stream.write(data[:len(data) // 2])
            self.stream.flush()
        point(self.name, "partial")
        return self.stream.write(data)


class Os:
    def __getattr__(self, attribute):
        return getattr(real_os, attribute)

    def fdopen(self, handle, *args, **kwargs):
        stream = real_os.fdopen(handle, *args, **kwargs)
        name = names.pop(handle, None)
        return stream if name is None else Stream(stream, name)

    def replace(self, source, destination):
        name = Path(destination).name
        point(name, "written")
        real_os.replace(source, destination)
        point(name, "replaced")


files.os, files.tempfile = Os(), Tempfile()
tell = train.Trainer._tell
steps = 0


def logged_tell(self, hook, *args):
    global steps
    tell(self, hook, *args)
    steps += hook == "on_batch_end"
    if step_at and steps == step_at - 1 and (hook == "on_epoch_begin" or
                                             hook == "on_batch_end" and self.batch < len(self.train_loader)):
        timer = threading.Timer(delay, die, ["step"])  # the next step begins now
        timer.daemon = True
        timer.start()
    if hook == "on_batch_end":
        note(f"step {self.epoch} {self.batch}")
    elif hook in ("on_train_begin", "on_epoch_end", "on_train_end"):
        note(f"{hook[3:]} {self.epoch} {self.batch}")


train.Trainer._tell = logged_tell
from convnet.cli import main

sys.exit(main(sys.argv[1:]))
"""


class Child:
    """One ``convnet train`` process under `CHILD`: its output, log and how it ended."""

    count = 0

    def __init__(self, work, argv, kill_at=None, kill_in_step=None):
        Child.count += 1
        stem = work / f"process-{Child.count:03d}"
        self.argv, self.kill_at, self.log = argv, kill_at, stem.with_suffix(".log")
        self.out_path, self.err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
        env = dict(os.environ, KILL_TEST_LOG=str(self.log), PYTHONUNBUFFERED="1")
        for name in ("CONVNET_TRACEBACK", "KILL_TEST_AT", "KILL_TEST_STEP"):
            env.pop(name, None)
        if kill_at is not None:
            env["KILL_TEST_AT"] = ":".join(map(str, kill_at))
        if kill_in_step is not None:
            env["KILL_TEST_STEP"] = ":".join(map(str, kill_in_step))
        self.log.touch()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.started = time.monotonic()
            self.process = subprocess.Popen([sys.executable, "-c", CHILD, *argv], stdout=out, stderr=err, env=env,
                                            cwd=work, start_new_session=True)

    def events(self):
        """(seconds since the process started, event, arguments) per log line."""
        lines = self.log.read_text().split("\n")[:-1]  # whole lines only: the process may be writing one
        return [(float(stamp) - self.started, event, rest) for stamp, event, *rest in (line.split(" ") for line in lines)]

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)

    def wait(self):
        try:
            self.process.wait(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"convnet {' '.join(self.argv)} ran past {PROCESS_TIMEOUT} s; its log:\n"
                        f"{self.log.read_text()}")
        self.out, self.err = self.out_path.read_text(), self.err_path.read_text()
        return self

    @property
    def killed(self):
        return self.process.returncode == -signal.SIGKILL

    def landed(self):
        """(where the kill landed, "write", "step" or "other"), from the last events the process logged."""
        events = [(event, rest) for _, event, rest in self.events() if event != "kill"]
        event, rest = events[-1] if events else ("", [])
        if event in ("created", "partial", "written"):
            return f"mid-write of {rest[0]} ({PHASE_NAMES[event]})", "write"
        if event == "replaced":
            return f"just after {rest[0]} was renamed into place, before the next write", "write"
        if event == "step":
            epoch, batch = map(int, rest)
            if batch < BATCHES:
                return f"mid-step (epoch {epoch + 1}, batch {batch + 1})", "step"
            return f"evaluating epoch {epoch + 1} (or after it, before the checkpoint)", "other"
        if event in ("epoch_end", "train_begin") and int(rest[0]) < EPOCHS:
            return f"mid-step (epoch {int(rest[0]) + 1}, batch 1)", "step"
        if event in ("epoch_end", "train_begin", "train_end"):
            return "after training (final evaluation)", "other"
        return "at startup (imports, data, Numba kernels, rebuilding the reports)", "other"


def argv_new(reference, out):
    return ["train", "--data", str(reference["data"]), *reference["options"], "--epochs", str(EPOCHS), "--batch-size",
            str(BATCH_SIZE), "--out", str(out), "--no-progress"]


def argv_resume(out):
    return ["train", "--resume", str(out), "--no-progress"]


# ---------------------------------------------------------------------------- the reference
# The default model (batch norm: its running statistics are state too), and one with dropout, whose
# masks come from the random generator that the checkpoint saves, trained on augmented batches.
MODELS = {"reference_cnn": [], "simple_cnn": ["--model", "simple_cnn", "--augment"]}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The uninterrupted run of a model, made once: ``references(model)``."""
    work = tmp_path_factory.mktemp("kill")
    data = work / "data"
    data.mkdir()
    write_tiny_fashion(data, train=TRAIN_IMAGES)
    made = {}

    def reference(model):
        if model not in made:
            made[model] = run_reference(work / model, data, MODELS[model])
        return made[model]
    return reference


def run_reference(work, data, options):
    """The uninterrupted run, with its timings: startup, one training step, one epoch."""
    work.mkdir()
    reference = {"data": data, "options": options, "dir": work / "reference", "work": work}
    child = Child(work, argv_new(reference, reference["dir"])).wait()
    assert child.process.returncode == 0, child.err
    events = child.events()
    steps = [(seconds, rest) for seconds, event, rest in events if event == "step"]
    assert len(steps) == EPOCHS * BATCHES
    step_seconds = statistics.median(later[0] - earlier[0] for earlier, later in itertools.pairwise(steps)
                                     if later[1][0] == earlier[1][0])
    startup = next(seconds for seconds, event, _ in events if event == "train_begin")
    # the first steps may have compiled the Numba kernels (a fresh cache): time an epoch from the later ones
    epoch_seconds = (events[-1][0] - steps[BATCHES - 1][0]) / (EPOCHS - 1)
    return dict(reference, step_seconds=step_seconds, epoch_seconds=epoch_seconds, startup=startup)


def read_metrics(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def without_timing(rows):
    return [{key: value for key, value in row.items() if key not in TIMING_COLUMNS} for row in rows]


def assert_png(path):
    data = path.read_bytes()
    whole = data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END)
    assert whole, f"{path} is not a whole PNG ({len(data)} bytes)"


def step_log(run_dir):
    return [{key: value for key, value in entry.items() if key not in STEP_LOG_TIMING}
            for entry in read_steps(run_dir / STEPS)]


def temporaries(run_dir):
    return sorted(path.name for path in run_dir.glob(".*.tmp"))


# ---------------------------------------------------------------------------- consistency
def assert_consistent(run_dir, reference, previous_epoch):
    """The folder a kill left, by its own rules: only its files and atomic_write's temporaries;
    a checkpoint that loads, saved at an epoch's end (SIGKILL gives no chance to save mid-epoch),
    no older than the last one, with the reference's history; reports whole, at most one epoch
    behind it (a kill between the checkpoint and the reports: every start rebuilds them).
    Returns the checkpoint's epoch."""
    if not run_dir.exists():  # killed before the run's first start made its folder
        assert previous_epoch == 0, "the run folder disappeared"
        return 0
    names = {path.name for path in run_dir.iterdir()}
    if STEPS in names:  # append-only: what was written before the kill is the reference's start
        logged = step_log(run_dir)
        assert logged == step_log(reference["dir"])[:len(logged)], "the step log differs from the reference's"
        for entry in logged:  # every picture the log announces is there, whole
            for key in ("image", "kernels", "feature_maps") if entry["kind"] == "snapshot" else ():
                assert_png(run_dir / entry[key])
    if SNAPSHOTS in names:  # the pictures and atomic_write's temporaries, nothing else
        for path in (run_dir / SNAPSHOTS).iterdir():
            assert path.name.endswith(".tmp") or (path.suffix == ".png" and (
                path.read_bytes() == (reference["dir"] / SNAPSHOTS / path.name).read_bytes())), path
    for name in names - {LOCK, STEPS, SNAPSHOTS, *FILES}:
        assert name.endswith(".tmp") and any(name.startswith(f".{file}.") for file in FILES), \
            f"unexpected {name} in {run_dir}"
    if checkpoint.WEIGHTS not in names:
        assert previous_epoch == 0, "the checkpoint disappeared"
        assert not names & {checkpoint.SIDECAR, METRICS, CURVES, ACCURACY_MINUTES, CONFUSION}, \
            f"reports without a checkpoint: {names}"
        return 0
    _, optimizer_state, meta = checkpoint.load(run_dir)
    assert optimizer_state is not None
    epoch = meta["epoch"]
    assert 1 <= epoch <= EPOCHS and meta["batch"] == 0 and epoch >= previous_epoch, (epoch, meta["batch"])
    expected = without_timing(read_metrics(reference["dir"] / METRICS))
    assert without_timing([{key: str(value) for key, value in row.items()} for row in meta["history"]]) \
        == expected[:epoch]
    if METRICS in names:
        rows = without_timing(read_metrics(run_dir / METRICS))
        assert epoch - 1 <= len(rows) <= epoch and rows == expected[:len(rows)], rows
    for name in (CURVES, ACCURACY_MINUTES, CONFUSION):
        if name in names:
            assert_png(run_dir / name)
    if checkpoint.SIDECAR in names:  # a copy, rewritten only with the checkpoint: one kill per epoch can age it
        assert json.loads((run_dir / checkpoint.SIDECAR).read_text())["epoch"] <= epoch
    return epoch


def assert_same_as_reference(run_dir, reference):
    """Weights and optimizer state bit for bit, the rest of the checkpoint, the metrics but for
    their timings, the pictures byte for byte; nothing left over."""
    model, optimizer, meta = checkpoint.load(run_dir)
    expected_model, expected_optimizer, expected_meta = checkpoint.load(reference["dir"])
    assert sorted(model) == sorted(expected_model)
    for key, value in expected_model.items():
        assert model[key].dtype == value.dtype, key
        np.testing.assert_array_equal(model[key], value, err_msg=key)
    assert optimizer["param_groups"] == expected_optimizer["param_groups"]
    assert sorted(optimizer["state"]) == sorted(expected_optimizer["state"])
    for index, entries in expected_optimizer["state"].items():
        assert sorted(optimizer["state"][index]) == sorted(entries), index
        for name, value in entries.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(optimizer["state"][index][name], value, err_msg=f"{index}.{name}")
            else:
                assert optimizer["state"][index][name] == value, f"{index}.{name}"
    for record in meta["history"] + expected_meta["history"]:
        for column in TIMING_COLUMNS:
            record.pop(column)
    assert meta == expected_meta
    rows, expected = read_metrics(run_dir / METRICS), read_metrics(reference["dir"] / METRICS)
    assert len(rows) == EPOCHS and list(rows[0]) == list(expected[0])
    assert without_timing(rows) == without_timing(expected)
    for name in (CURVES, CONFUSION):
        assert_png(run_dir / name)
        assert (run_dir / name).read_bytes() == (reference["dir"] / name).read_bytes(), name
    assert_png(run_dir / ACCURACY_MINUTES)  # drawn from wall-clock seconds: no two runs' bytes agree
    assert step_log(run_dir) == step_log(reference["dir"])  # no step lost, none written twice
    assert temporaries(run_dir) == []
    assert {path.name for path in run_dir.iterdir()} == {LOCK, STEPS, SNAPSHOTS, *FILES}


def sidecar_matches(run_dir):
    """Whether checkpoint.json is the copy of the checkpoint's metadata it says it is."""
    path = run_dir / checkpoint.SIDECAR
    if not path.exists():
        return False
    sidecar = json.loads(path.read_text())
    sidecar.pop("note")
    data = (run_dir / checkpoint.WEIGHTS).read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return sidecar == json.loads(header["__metadata__"]["convnet"])


# ---------------------------------------------------------------------------- the user
class Harness:
    """Runs, kills and continues one run folder as a user would: after a kill, try --resume; if
    convnet says there is no checkpoint (no epoch had finished), run the same command again; and
    the same command again is refused, saying to use --resume, once there is one. Each answer is
    checked once per run; after that the harness goes straight to the command that works."""

    def __init__(self, reference, name):
        self.reference, self.work = reference, reference["work"] / name
        self.work.mkdir()
        self.run_dir = self.work / "run"
        self.epoch, self.landed, self.pending, self.finished_message = 0, [], set(), False
        self.told_to_resume = self.told_no_checkpoint = False

    def launch(self, kill_at=None, kill_in_step=None):
        """The next training process: the same command again, or --resume when convnet asks for it."""
        if self.epoch and not self.told_to_resume:
            self.refused(argv_new(self.reference, self.run_dir),
                         f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir}")
            self.told_to_resume = True
        # A kill before the run made its folder leaves nothing to refuse a resume of.
        if not self.epoch and self.landed and not self.told_no_checkpoint and self.run_dir.exists():
            self.refused(argv_resume(self.run_dir), f"no checkpoint in {self.run_dir}: the run stopped before its "
                                                    f"first epoch ended, so there is nothing to resume; start it "
                                                    f"again with --out {self.run_dir}")
            self.told_no_checkpoint = True
        if self.epoch:
            return Child(self.work, argv_resume(self.run_dir), kill_at, kill_in_step)
        return Child(self.work, argv_new(self.reference, self.run_dir), kill_at, kill_in_step)

    def refused(self, argv, message):
        child = Child(self.work, argv).wait()
        assert child.process.returncode == 1 and message in child.err and "Traceback" not in child.err, child.err
        assert [event for _, event, _ in child.events()] == ["start"]  # refused before any work

    def after(self, child, aimed=None):
        """Check what a process left (``aimed``: how a kill was aimed at it); True once the run
        has finished. Temporaries a kill left must be gone once the next process starts training."""
        present = set(temporaries(self.run_dir)) if self.run_dir.exists() else set()
        if any(event == "train_begin" for _, event, _ in child.events()):
            assert not self.pending & present, f"stale temporaries kept: {sorted(self.pending & present)}"
            self.pending = present
        else:
            self.pending |= present
        if child.killed:
            where, kind = child.landed()
            self.landed.append((aimed, kind, where, child.kill_at))
            self.epoch = assert_consistent(self.run_dir, self.reference, self.epoch)
            return False
        assert child.process.returncode == 0, f"exit {child.process.returncode}: {child.err}"
        assert "Traceback" not in child.err
        if aimed is not None:
            self.landed.append((aimed, "late", "after the process ended", child.kill_at))
        if f"{self.run_dir} finished its {EPOCHS} epochs already" in child.out:
            self.finished_message = True
        else:
            assert "test accuracy:" in child.out and f"epoch {EPOCHS}/{EPOCHS}" in child.out
        if self.epoch:
            assert f"resuming {self.run_dir} at epoch {self.epoch + 1}, batch 0" in child.out \
                or self.finished_message, child.out
        self.epoch = EPOCHS
        return True

    # ------------------------------------------------------------------ kinds of kill
    def remaining_epochs(self):
        return EPOCHS - self.epoch

    def kill_mid_write(self, name, phase, rng):
        """SIGKILL at ``phase`` of one of this process's writes of ``name``, picked at random. A
        finished run writes no checkpoint: then the kill lands in the rebuild of a report."""
        reports = (METRICS, CURVES, CONFUSION)
        if self.epoch == EPOCHS and name not in reports:
            name = rng.choice(reports)
        writes = self.remaining_epochs()
        if name in reports and self.epoch:
            writes += 1  # a resumed run rebuilds its reports first
        child = self.launch((name, rng.randint(1, writes), phase))
        return self.after(child.wait(), "write")

    def kill_mid_step(self, rng):
        """SIGKILL at a random moment within a random training step of this process (a finished
        run has none: then at a random time)."""
        if self.epoch == EPOCHS:
            return self.kill_at_random_time(rng)
        step = rng.randint(1, self.remaining_epochs() * BATCHES)
        child = self.launch(kill_in_step=(step, rng.uniform(0, self.reference["step_seconds"])))
        return self.after(child.wait(), "step")

    def kill_at_random_time(self, rng):
        """SIGKILL at a time uniform over this process's expected duration."""
        child = self.launch()
        reference = self.reference
        expected = reference["startup"] + self.remaining_epochs() * reference["epoch_seconds"]
        if self.epoch:  # a resumed run first rebuilds its reports: about an epoch's end
            expected += reference["epoch_seconds"] - BATCHES * reference["step_seconds"]
        try:
            child.process.wait(timeout=rng.uniform(0, expected))
        except subprocess.TimeoutExpired:
            child.kill()
        return self.after(child.wait(), "time")

    def finish(self):
        """Continue until the run has finished, then check the resume of a finished run says so."""
        while not self.after(self.launch().wait()):
            pass
        if not self.finished_message:
            child = self.launch().wait()
            assert child.process.returncode == 0, child.err
            assert f"{self.run_dir} finished its {EPOCHS} epochs already" in child.out, child.out
            assert f"epoch {EPOCHS + 1}" not in child.out
            self.after(child)


def report(harness):
    """Where each kill landed (shown with -s)."""
    lines = [f"  aimed {aimed:5s} landed {kind:5s} {where}" + (f" [at {':'.join(map(str, at))}]" if at else "")
             for aimed, kind, where, at in harness.landed]
    print(f"\n{harness.work.name}: kills\n" + "\n".join(lines))


# ---------------------------------------------------------------------------- the tests
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_at_random_points_resumes_to_the_uninterrupted_run(references, seed):
    """Per seed: two kills mid-write (together the seeds cover every file the folder holds, the
    phase of the write at random), one mid-step and one at a random time, in a random order;
    odd seeds train the model with dropout, on augmented batches."""
    reference = references(list(MODELS)[seed % 2])
    rng = random.Random(seed)
    harness = Harness(reference, f"seed-{seed}")
    kills = [("write", FILES[(2 * seed + k) % len(FILES)]) for k in range(2)] + [("step", None), ("time", None)]
    rng.shuffle(kills)
    for kind, name in kills:  # those after the run finished land in the rebuild of its reports
        if kind == "write":
            harness.kill_mid_write(name, rng.choice(PHASES), rng)
        elif kind == "step":
            harness.kill_mid_step(rng)
        else:
            harness.kill_at_random_time(rng)
    harness.finish()
    report(harness)
    assert [kind for aimed, kind, _, _ in harness.landed if aimed == "write"] == ["write", "write"], \
        "a kill aimed at a write did not land there: does CHILD still hook convnet.files.atomic_write's steps?"
    assert_same_as_reference(harness.run_dir, reference)
    assert sidecar_matches(harness.run_dir), "checkpoint.json is not the checkpoint's metadata"


def test_a_kill_between_the_last_checkpoint_and_its_sidecar(references):
    reference = references("reference_cnn")
    harness = Harness(reference, "sidecar")
    harness.after(harness.launch((checkpoint.WEIGHTS, EPOCHS, "replaced")).wait(), "write")
    assert harness.landed[0][1] == "write" and harness.epoch == EPOCHS
    harness.finish()
    assert_same_as_reference(harness.run_dir, reference)
    assert sidecar_matches(harness.run_dir), "checkpoint.json is not the checkpoint's metadata"
