"""A training run from start to end: `start` a new one into its folder (its epochs planned to fit a
time budget, its weights taken from elsewhere with --init-from), `resume` a saved one where it
stopped, `load_run` a saved one's model. ``convnet train`` calls the first two.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .. import checkpoint, models, run_folder
from ..data.loader import ArrayDataset
from ..errors import ConvnetError, InvalidValue, MissingFile
from ..train import ONE_PROCESS, Callback, Trainer, TrainingInterrupted
from .build import build_model, build_trainer
from .config import IMAGE_KINDS, RunConfig
from .sources import (DataChanged, absolute_data, data_changes, data_kind, describe_data, fingerprint,
                      load_datasets, recorded_input)


class RunExists(ConvnetError, FileExistsError):
    """A new run was pointed at a folder that already holds one."""


@dataclass
class Run:
    """A run's objects: its configuration, folder (or None), datasets, trainer, and a line naming its
    data (`sources.describe_data`); ``notes``: what was done that the user should hear of."""
    config: RunConfig
    run_dir: Path | None
    train: ArrayDataset
    test: ArrayDataset
    trainer: Trainer
    data_summary: str = ""
    notes: tuple = ()


def start(config, run_dir, progress=True, log=print, group=ONE_PROCESS):
    """A new run of ``config`` into ``run_dir``, which must not hold a run already (on rank 0, the
    one that writes it, when ``group`` is a distributed job's)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if group.rank == 0 and run_folder.has_checkpoint(run_dir):
        raise RunExists(f"{run_dir} already holds a run")
    if config.time_budget is not None and group.size > 1:
        raise InvalidValue("--time-budget plans the run of one process; under mpirun give --epochs")
    config.data = absolute_data(config.data)
    _take_kind(config, data_kind(config.data, config.dataset))
    if config.init_from is not None:
        config.init_from = str(Path(config.init_from).absolute())
        weights = initial_weights(config.init_from)  # read before the data: a bad file is refused at once
    train, test = load_datasets(config, progress=progress and group.rank == 0, group=group)
    _check_ranks_agree(group, config, train, test)
    if config.time_budget is not None:
        config.epochs = plan_epochs(config, train, test, started, log)
    trainer = build_trainer(config, train, test, run_dir, progress, log, group)
    notes = _start_from(trainer.model, weights, config.init_from) if config.init_from is not None else []
    _weights_from_rank_0(group, trainer)
    return Run(config, run_dir, train, test, trainer, describe_data(config, train, test), tuple(notes))


def _take_kind(config, kind):
    """Make ``config.dataset`` name what its data holds, refusing image settings for data that has
    its own shape and split (IDX, CIFAR)."""
    if kind not in IMAGE_KINDS:
        given = [f"--{name.replace('_', '-')}" for name, default in (("image_size", None), ("channels", None),
                                                                       ("skip_bad", False), ("val_split", 0.1))
                 if getattr(config, name) != default]
        if given:
            raise InvalidValue(f"{', '.join(given)} apply to an image folder or CSV manifest; the data "
                               f"{config.data or ''} holds {kind} files, whose images have one size and split")
    if kind != config.dataset and config.dataset != RunConfig.dataset:  # the default is no choice made
        raise InvalidValue(f"dataset {config.dataset} was asked for, and --data {config.data} holds {kind} data")
    config.dataset = kind


PROBE_WARMUP, PROBE_STEPS = 3, 20  # steps a time budget's probe trains untimed (compiling), then timed


def plan_epochs(config, train, test, started, log=print):
    """How many epochs of ``config`` fit in what is left of its ``time_budget`` since ``started``
    (a `time.perf_counter` reading), on this machine: a throwaway copy of the run trains a few
    steps and evaluates once, and each epoch is costed as its steps plus an evaluation, keeping one
    more evaluation for the command's final report. The run itself is then built from its seed,
    as if the probe had never run. Fewer than one epoch is a ValueError saying what would fit."""
    probe = build_trainer(replace(config, epochs=1), train, test, progress=False, log=lambda line: None)
    stopwatch = _Stopwatch(PROBE_WARMUP + PROBE_STEPS)
    probe.callbacks.append(stopwatch)
    try:
        probe.fit(1)
    except TrainingInterrupted:
        raise KeyboardInterrupt from None  # nothing to save: the run has not begun
    durations = np.diff(stopwatch.times)  # each step's, the first ones compiling kernels
    step_seconds = float(np.mean(durations[min(PROBE_WARMUP, len(durations) - 1):]))
    evaluated = time.perf_counter()
    probe.evaluate()
    evaluation_seconds = time.perf_counter() - evaluated
    epoch_seconds = len(probe.train_loader) * step_seconds + evaluation_seconds
    spent = time.perf_counter() - started
    epochs = int((config.time_budget - spent - evaluation_seconds) // epoch_seconds)
    if epochs < 1:
        raise InvalidValue(f"a time budget of {config.time_budget:g} s fits no epoch here: setting up took {spent:.0f} s "
                         f"and an epoch takes about {epoch_seconds:.0f} s; give at least "
                         f"{math.ceil(spent + epoch_seconds + evaluation_seconds)} s, or --epochs")
    log(f"time budget {config.time_budget:g} s: a step takes {step_seconds * 1000:.0f} ms here "
        f"({config.batch_size / step_seconds:,.0f} img/s) and an evaluation {evaluation_seconds:.1f} s, so an epoch "
        f"about {epoch_seconds:.0f} s; after {spent:.0f} s of setting up, {epochs} epoch{'s' if epochs > 1 else ''} "
        f"fit ({epochs * epoch_seconds / 60:.1f} min), and the learning-rate schedule spans them")
    return epochs


class _Stopwatch(Callback):
    """Notes when the loop starts and each step ends, and stops it after ``steps`` steps (or at
    the end of a shorter epoch)."""

    def __init__(self, steps):
        self.steps, self.times = steps, []

    def on_epoch_begin(self, trainer):
        self.times.append(time.perf_counter())

    def on_batch_end(self, trainer, loss):
        self.times.append(time.perf_counter())
        if len(self.times) > self.steps:
            trainer.request_stop()


def _check_ranks_agree(group, config, train, test):
    """Refuse a job whose ranks differ in settings, convnet version or data (`RanksDiffer`)."""
    from .. import __version__
    settings = asdict(config)
    settings.pop("data")  # each host may keep the files elsewhere; their contents must agree
    group.check_same("the run's settings and convnet version", json.dumps([settings, __version__], sort_keys=True))
    group.check_same("the data", fingerprint(train) + fingerprint(test))


def _weights_from_rank_0(group, trainer):
    """Every rank starts from rank 0's weights and buffers."""
    for tensor in [*trainer.model.parameters(), *trainer.model.buffers()]:
        group.broadcast(tensor.data)


def initial_weights(source, option="--init-from"):
    """{name: array} that a run starts from (``--init-from``; ``option`` names the command's option in
    messages): a run folder's weights, a PyTorch ``state_dict`` file's (.pth or .pt, read without
    PyTorch) or an ONNX file's initializers."""
    path = Path(source)
    if path.is_dir():
        return checkpoint.load(path)[0]
    if not path.is_file():
        raise MissingFile(f"{option} {source}: no such file or folder")
    if path.suffix in (".pth", ".pt"):
        from ..pth import load_pth
        return load_pth(path)
    if path.suffix == ".onnx":
        from ..onnx import load
        return load(path).state_dict()  # its keys are the graph's initializers' names
    raise InvalidValue(f"{option} {source}: expected a run folder, a PyTorch state_dict (.pth, .pt) or an ONNX "
                     f"file (.onnx)")


def _start_from(model, weights, source):
    """Copy ``weights`` into ``model``, refusing (all problems named at once) keys it lacks or does
    not know, other shapes, and values that are not finite. A missing ``num_batches_tracked``
    starts at 0, as PyTorch loads state_dicts written before it was counted (and ONNX has none).
    A classifier for another number of classes is left as initialised (`models.load_all_but_classifier`);
    returns a note saying so, or none."""
    own = model.state_dict()
    weights = {**{key: own[key] for key in own if key.endswith("num_batches_tracked") and key not in weights},
               **weights}
    broken = [key for key, value in weights.items()
              if np.asarray(value).dtype.kind == "f" and not np.isfinite(value).all()]
    if broken:
        raise InvalidValue(f"--init-from {source}: non-finite values (NaN or infinity) in {broken}")
    try:
        fresh = models.load_all_but_classifier(model, weights)
    except ValueError as error:
        raise InvalidValue(f"--init-from {source}: {error}") from None
    if not fresh:
        return []
    classifier = f"{fresh[0]}.weight"  # (classes, ...) for a Linear and a 1x1 convolution alike
    theirs, ours = np.shape(weights[classifier])[0], model.state_dict()[classifier].shape[0]
    return [f"--init-from {source}: its classifier ({', '.join(fresh)}) answers another number of classes ({theirs}; "
            f"this run has {ours}), so that layer starts from random weights (the run's seed); every other layer "
            f"starts from the file's"]


def resume(run_dir, data=None, progress=True, log=print, group=ONE_PROCESS):
    """The run saved in ``run_dir``, restored to where it stopped; ``data`` overrides where its
    dataset is read from, which must still hold the data the run recorded (`DataChanged`). In a
    distributed ``group`` rank 0 reads the checkpoint and sends it to the others, with any number
    of ranks (the checkpoint does not depend on it)."""
    run_dir = Path(run_dir)
    if group.rank == 0 and run_dir.is_dir() and not run_folder.has_checkpoint(run_dir):
        raise checkpoint.CheckpointError(f"no checkpoint in {run_dir}: the run stopped before its first epoch "
                                         f"ended, so there is nothing to resume; start it again with --out {run_dir}")
    model_state, optimizer_state, meta, training_state = group.broadcast_object(
        checkpoint.load_with_training(run_dir) if group.rank == 0 else None)
    config = _stored_config(run_dir, meta)
    if data is not None:
        config.data = absolute_data(data)
        kind = data_kind(config.data, config.dataset)
        if kind != config.dataset:
            raise DataChanged(f"{run_dir}: cannot resume: --data {data} holds {kind} data, and the run trained on "
                              f"{config.dataset} data")
    train, test = load_datasets(config, progress=progress and group.rank == 0, group=group)
    changes = data_changes(meta, {"train": train, "test": test})
    if changes:
        raise DataChanged(f"{run_dir}: cannot resume: {'; '.join(changes)} (pass --data with the run's files)")
    _check_ranks_agree(group, config, train, test)
    trainer = build_trainer(config, train, test, run_dir, progress, log, group)
    _restore(run_dir, config, lambda: trainer.restore(model_state, optimizer_state, meta, training_state))
    return Run(config, run_dir, train, test, trainer, describe_data(config, train, test))


def load_run(run_dir):
    """(config, model with the run's weights in eval mode, metadata) of a run folder."""
    run_dir = Path(run_dir)
    model_state, _, meta = checkpoint.load(run_dir)
    config = _stored_config(run_dir, meta)
    model = build_model(config, recorded_input(run_dir, meta, config))
    _restore(run_dir, config, lambda: model.load_state_dict(model_state))
    model.eval()
    return config, model, meta


def _stored_config(run_dir, meta):
    if "config" not in meta:
        raise checkpoint.CheckpointError(f"{run_dir}: the checkpoint has no run configuration")
    return RunConfig.from_dict(meta["config"])


def _restore(run_dir, config, load):
    try:
        load()
    except ValueError as error:
        raise checkpoint.CheckpointError(f"{run_dir}: the checkpoint does not fit a {config.model} run: "
                                         f"{error}") from None
