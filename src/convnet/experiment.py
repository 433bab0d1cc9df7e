"""From a run's configuration to its objects: data, loaders, model, optimizer, schedule, trainer
and the callbacks that report on it. This module alone makes those choices.

``convnet train`` starts a run with `start` or continues one with `resume`; ``evaluate``,
``predict``, ``summary`` and ``show`` rebuild a model with `load_run` from the configuration
stored in a run folder's checkpoint.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from . import checkpoint, models, optim, pretrained
from . import functional as F
from . import nn
from .data import mnist, read_image, transforms
from .data.loader import ArrayDataset, DataLoader
from .language import words
from .nn import Module
from .random import manual_seed
from .reports import CURVES, SNAPSHOT_EVERY, EpochLog, ProgressBar, RunFolder, StepLog, TensorBoard
from .tensor import Tensor, no_grad
from .distributed import synchronise_batch_norm
from .train import ONE_PROCESS, Callback, EarlyStopping, Trainer, TrainingInterrupted, evaluate
from .errors import ConvnetError

DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}
# SGD's and Adam's weight decay is an L2 term in the gradient, AdamW's is decoupled from it (a
# shrinking of the weights by lr x decay per step), so their good values differ a hundredfold.
# 0.05 for AdamW was measured for issue 18 (README, docs/results.md).
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 5e-4, "adamw": 0.05}
# What varies training images at random, in the order it is applied: crops of the image padded by
# 2 pixels, left-right mirroring, and erasing a rectangle. `augment` names a comma-separated
# choice of them ("crop,flip"), "none", or "full": all that suit the dataset.
AUGMENTATION_STEPS = ("crop", "flip", "erase")
AUGMENTATIONS = ("none", "full", *AUGMENTATION_STEPS)
MIRRORING_DATASETS = ("fashion-mnist",)
# Clothes mirror well, digits do not. Mirroring alone won 0.004 for the reference CNN in 15 epochs,
# where crops and erasing lost (issue 18, docs/results.md).
DEFAULT_AUGMENT = {"fashion-mnist": "flip", "mnist": "none"}
OPTIMIZERS = tuple(DEFAULT_LR)
SCHEDULES = ("onecycle", "cosine", "step", "none")


@dataclass
class RunConfig:
    """Everything that defines a training run; ``convnet train``'s options, with these defaults."""
    model: str = "reference_cnn"
    dataset: str = "fashion-mnist"
    data: str | None = None
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    augment: str | None = None
    test_mirror: bool | None = None  # None: whenever training mirrors images (`test_time_mirroring`)
    seed: int = 0
    init_from: str | None = None
    sync_bn: bool = False
    early_stop: int | None = None
    tensorboard: bool = False
    snapshot_every: int = SNAPSHOT_EVERY
    time_budget: float | None = None  # seconds: epochs planned to fit them (`plan_epochs`)

    def __post_init__(self):
        problems = []
        # isinstance first: a stored value may be a JSON array or object, which `in` cannot hash.
        if not isinstance(self.model, str) or self.model not in models.MODELS:
            problems.append(f"model must be one of {', '.join(models.MODELS)}, got {self.model!r}")
        if not isinstance(self.dataset, str) or self.dataset not in mnist.CLASSES:
            problems.append(f"dataset must be one of {', '.join(mnist.CLASSES)}, got {self.dataset!r}")
        if self.data is not None and not isinstance(self.data, str):
            problems.append(f"data must be a folder's path or None, got {self.data!r}")
        if self.init_from is not None and not isinstance(self.init_from, str):
            problems.append(f"init_from must be a path or None, got {self.init_from!r}")
        if not (self.augment is None or isinstance(self.augment, str) and _is_augmentation(self.augment)):
            problems.append(f"augment must be none, full or a comma-separated choice of "
                            f"{', '.join(AUGMENTATION_STEPS)} (or None: the dataset's default), got {self.augment!r}")
        elif self.augment is not None and "flip" in self.augment.split(",") and self.dataset not in MIRRORING_DATASETS:
            problems.append(f"augment {self.augment} mirrors the images, and {self.dataset}'s do not mirror; "
                            f"choose from none, full, crop and erase")
        for name in ("sync_bn", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not (self.test_mirror is None or isinstance(self.test_mirror, bool)):
            problems.append(f"test_mirror must be true or false, got {self.test_mirror!r}")
        if self.test_mirror is True and not problems and not self.mirrors_training_images:
            problems.append(f"test_mirror averages each test image with its mirror image, which helps only a network "
                            f"trained on mirrored images and costs a network that never saw one 5 points "
                            f"(0.9276 -> 0.876 for the reference CNN); this run's training images are not "
                            f"mirrored (augment {self.augmentation} on {self.dataset}): choose an augment that "
                            f"flips (flip, crop,flip or full) on {', '.join(MIRRORING_DATASETS)}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        for name in ("epochs", "batch_size", "early_stop", "snapshot_every"):
            value = getattr(self, name)
            if (name != "early_stop" or value is not None) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1):
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.time_budget is not None and not (_is_real(self.time_budget) and self.time_budget > 0):
            problems.append(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        if self.lr is not None and not (_is_real(self.lr) and self.lr > 0):
            problems.append(f"lr must be positive, got {self.lr!r}")
        if self.weight_decay is not None and not (_is_real(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (_is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def learning_rate(self):
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def decay(self):
        """The weight decay: ``weight_decay``, or the optimizer's default."""
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else self.weight_decay

    @property
    def augmentation(self):
        """``augment`` as named, or the dataset's default."""
        return DEFAULT_AUGMENT.get(self.dataset, "none") if self.augment is None else self.augment

    @property
    def augmentation_steps(self):
        """The `AUGMENTATION_STEPS` training applies, in their order."""
        if self.augmentation == "full":
            return tuple(step for step in AUGMENTATION_STEPS
                         if step != "flip" or self.dataset in MIRRORING_DATASETS)
        chosen = self.augmentation.split(",")
        return tuple(step for step in AUGMENTATION_STEPS if step in chosen)

    @property
    def mirrors_training_images(self):
        """Whether training mirrors images at random: flip, or full on datasets that mirror."""
        return "flip" in self.augmentation_steps

    @property
    def test_time_mirroring(self):
        """Whether evaluation averages each image with its mirror image (`nn.logits`): ``test_mirror``,
        or by default whenever training mirrors images (it won 0.003 for the reference CNN)."""
        return self.mirrors_training_images if self.test_mirror is None else self.test_mirror

    @property
    def train_conditions(self):
        """How training batches differ from test batches, to label train figures with."""
        steps = self.augmentation_steps
        if not steps:
            conditions = []
        elif steps == ("flip",):
            conditions = ["mirrored at random"]
        elif self.augmentation == "full":
            conditions = ["augmented"]
        else:
            conditions = [f"augmented ({', '.join(steps)})"]
        if self.label_smoothing:
            conditions.append(f"label smoothing {self.label_smoothing:g}")
        return conditions

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if isinstance(values.get("augment"), bool):  # saved before augment named its kind: true meant full
            values["augment"] = "full" if values["augment"] else "none"
        values.setdefault("test_mirror", False)  # saved before test-time mirroring: evaluated without it
        return cls(**values)


def _is_augmentation(name):
    steps = name.split(",")
    return name in ("none", "full") or len(set(steps)) == len(steps) and set(steps) <= set(AUGMENTATION_STEPS)


def _is_real(value):
    """A number a configuration can hold (a stored one may be anything a JSON file can)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunExists(ConvnetError, FileExistsError):
    """A new run was pointed at a folder that already holds one."""


@dataclass
class Run:
    """A run's objects: its configuration, folder (or None), datasets and trainer."""
    config: RunConfig
    run_dir: Path | None
    train: ArrayDataset
    test: ArrayDataset
    trainer: Trainer


def make_optimizer(config, parameters):
    lr = config.learning_rate
    if config.optimizer == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.decay)
    return (optim.Adam if config.optimizer == "adam" else optim.AdamW)(parameters, lr=lr,
                                                                      weight_decay=config.decay)


def make_schedule(config, optimizer, steps_per_epoch):
    """A per-step schedule over the whole run (None for a constant learning rate)."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=max(total, 2))
    if config.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    if config.schedule == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return None


class DataChanged(ConvnetError, ValueError):
    """A run's dataset is not the one it was trained on."""


def load_datasets(config, splits=("train", "test")):
    """The datasets of ``splits``, each with its `ArrayDataset.source` (files and fingerprint)."""
    datasets = []
    for split in splits:
        images, labels, source = mnist.load_with_source(config.dataset, split, config.data)
        datasets.append(ArrayDataset(images, labels, mnist.CLASSES[config.dataset], source))
    return tuple(datasets)


def _absolute(data):
    """A --data folder as an absolute path, so a run means the same files from any directory."""
    return None if data is None else str(Path(data).resolve())


def _changes(meta, datasets):
    """For each split whose data differ from what the run recorded, a line saying how; runs
    saved before convnet recorded its data have nothing to compare."""
    recorded = meta.get("data") or {}
    lines = []
    for split, dataset in datasets.items():
        before = recorded.get(split)
        if before is not None and before["sha256"] != dataset.source["sha256"]:
            lines.append(f"its {split} set is not the one it was trained with: {', '.join(dataset.source['files'])} "
                         f"(SHA-256 {dataset.source['sha256'][:12]}...) instead of {', '.join(before['files'])} "
                         f"(SHA-256 {before['sha256'][:12]}...)")
    return lines


def train_transform(config):
    normalize = mnist.normalization(config.dataset)
    steps = config.augmentation_steps
    if not steps:
        return normalize
    on_pixels = {"crop": transforms.RandomCrop(28, padding=2), "flip": transforms.RandomHorizontalFlip()}
    # Erasing comes after normalising, so the erased rectangle holds the dataset's mean.
    erase = [transforms.RandomErasing(p=0.25)] if "erase" in steps else []
    return transforms.Compose(*(on_pixels[step] for step in steps if step in on_pixels), normalize, *erase)


def evaluation_loader(config, test):
    return DataLoader(test, 1000, transform=mnist.normalization(config.dataset))


def build_model(config):
    return models.build(config.model)


def build_trainer(config, train, test, run_dir=None, progress=True, log=print, group=ONE_PROCESS):
    """Seeded model, loaders, optimizer, schedule and reporting callbacks for ``config``, as a
    `Trainer`; with ``run_dir`` it keeps that folder's checkpoint and reports up to date. In a
    distributed ``group`` every rank trains and rank 0 alone reports and writes."""
    if config.batch_size > len(train):
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({len(train)} images); "
                         f"expected at most {len(train)}")
    manual_seed(config.seed)
    model = build_model(config)
    if config.sync_bn and group.size > 1:  # alone, the whole batch's statistics are its own
        synchronise_batch_norm(model, group)
    train_loader = DataLoader(train, config.batch_size, shuffle=True, seed=config.seed,
                              transform=train_transform(config))
    optimizer = make_optimizer(config, model.parameters())
    schedule = make_schedule(config, optimizer, len(train_loader))
    callbacks = [ProgressBar(config.epochs)] if progress else []
    callbacks.append(EpochLog(config.epochs, log))
    if run_dir is not None:
        callbacks += [StepLog(run_dir, asdict(config), train.classes, snapshot_every=config.snapshot_every),
                      RunFolder(run_dir, asdict(config), train.classes, config.train_conditions,
                                {"train": train.source, "test": test.source})]
        if config.tensorboard:
            callbacks.append(TensorBoard(run_dir, asdict(config)))
    callbacks = callbacks if group.rank == 0 else []
    if config.early_stop is not None:  # on every rank: they must stop together
        callbacks.append(EarlyStopping(config.early_stop, log if group.rank == 0 else lambda *_: None))
    return Trainer(model, train_loader, evaluation_loader(config, test), optimizer, schedule, config.label_smoothing,
                   callbacks, group, config.test_time_mirroring)


def start(config, run_dir, progress=True, log=print, group=ONE_PROCESS):
    """A new run of ``config`` into ``run_dir``, which must not hold a run already (on rank 0, the
    one that writes it, when ``group`` is a distributed job's)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if group.rank == 0 and (run_dir / checkpoint.WEIGHTS).exists():
        raise RunExists(f"{run_dir} already holds a run")
    if config.time_budget is not None and group.size > 1:
        raise ValueError("--time-budget plans the run of one process; under mpirun give --epochs")
    config.data = _absolute(config.data)
    if config.init_from is not None:
        config.init_from = str(Path(config.init_from).absolute())
        weights = initial_weights(config.init_from)  # read before the data: a bad file is refused at once
    train, test = load_datasets(config)
    _check_ranks_agree(group, config, train, test)
    if config.time_budget is not None:
        config.epochs = plan_epochs(config, train, test, started, log)
    trainer = build_trainer(config, train, test, run_dir, progress, log, group)
    if config.init_from is not None:
        _start_from(trainer.model, weights, config.init_from)
    _weights_from_rank_0(group, trainer)
    return Run(config, run_dir, train, test, trainer)


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
        raise ValueError(f"a time budget of {config.time_budget:g} s fits no epoch here: setting up took {spent:.0f} s "
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
    from . import __version__
    settings = asdict(config)
    settings.pop("data")  # each host may keep the files elsewhere; their contents must agree
    group.check_same("the run's settings and convnet version", json.dumps([settings, __version__], sort_keys=True))
    group.check_same("the data", train.source["sha256"] + test.source["sha256"])


def _weights_from_rank_0(group, trainer):
    """Every rank starts from rank 0's weights and buffers."""
    for tensor in [*trainer.model.parameters(), *trainer.model.buffers()]:
        group.broadcast(tensor.data)


def initial_weights(source):
    """{name: array} that a run starts from (``--init-from``): a run folder's weights, a PyTorch
    ``state_dict`` file's (.pth or .pt, read without PyTorch) or an ONNX file's initializers."""
    path = Path(source)
    if path.is_dir():
        return checkpoint.load(path)[0]
    if not path.is_file():
        raise FileNotFoundError(f"--init-from {source}: no such file or folder")
    if path.suffix in (".pth", ".pt"):
        from .pth import load_pth
        return load_pth(path)
    if path.suffix == ".onnx":
        from .onnx import load
        return load(path).state_dict()  # its keys are the graph's initializers' names
    raise ValueError(f"--init-from {source}: expected a run folder, a PyTorch state_dict (.pth, .pt) or an ONNX "
                     f"file (.onnx)")


def _start_from(model, weights, source):
    """Copy ``weights`` into ``model``, refusing (all problems named at once) keys it lacks or does
    not know, other shapes, and values that are not finite. A missing ``num_batches_tracked``
    starts at 0, as PyTorch loads state_dicts written before it was counted (and ONNX has none)."""
    own = model.state_dict()
    weights = {**{key: own[key] for key in own if key.endswith("num_batches_tracked") and key not in weights},
               **weights}
    broken = [key for key, value in weights.items()
              if np.asarray(value).dtype.kind == "f" and not np.isfinite(value).all()]
    if broken:
        raise ValueError(f"--init-from {source}: non-finite values (NaN or infinity) in {broken}")
    try:
        model.load_state_dict(weights)
    except ValueError as error:
        raise ValueError(f"--init-from {source}: {error}") from None


def resume(run_dir, data=None, progress=True, log=print, group=ONE_PROCESS):
    """The run saved in ``run_dir``, restored to where it stopped; ``data`` overrides where its
    dataset is read from, which must still hold the data the run recorded (`DataChanged`). In a
    distributed ``group`` rank 0 reads the checkpoint and sends it to the others, with any number
    of ranks (the checkpoint does not depend on it)."""
    run_dir = Path(run_dir)
    if group.rank == 0 and run_dir.is_dir() and not (run_dir / checkpoint.WEIGHTS).exists():
        raise checkpoint.CheckpointError(f"no checkpoint in {run_dir}: the run stopped before its first epoch "
                                         f"ended, so there is nothing to resume; start it again with --out {run_dir}")
    model_state, optimizer_state, meta = group.broadcast_object(checkpoint.load(run_dir) if group.rank == 0
                                                                else None)
    config = _stored_config(run_dir, meta)
    if data is not None:
        config.data = _absolute(data)
    train, test = load_datasets(config)
    changes = _changes(meta, {"train": train, "test": test})
    if changes:
        raise DataChanged(f"{run_dir}: cannot resume: {'; '.join(changes)} (pass --data with the run's files)")
    _check_ranks_agree(group, config, train, test)
    trainer = build_trainer(config, train, test, run_dir, progress, log, group)
    _restore(run_dir, config, lambda: trainer.restore(model_state, optimizer_state, meta))
    return Run(config, run_dir, train, test, trainer)


def load_run(run_dir):
    """(config, model with the run's weights in eval mode, metadata) of a run folder."""
    run_dir = Path(run_dir)
    model_state, _, meta = checkpoint.load(run_dir)
    config = _stored_config(run_dir, meta)
    model = build_model(config)
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


def evaluate_run(run_dir, data=None, mirror=None):
    """(class names, `evaluate`'s result, warnings) of a run folder's model on its test set, read
    from ``data`` if given. A test set other than the run's is refused (`DataChanged`) unless
    ``data`` asked for it; then the warnings say so. ``mirror``: test-time mirroring on or off
    (None: as the run evaluated)."""
    config, model, meta = load_run(run_dir)
    config = _with_mirroring(config, mirror, run_dir)
    if data is not None:
        config.data = _absolute(data)
    test, = load_datasets(config, ("test",))
    changes = _changes(meta, {"test": test})
    if changes and data is None:
        raise DataChanged(f"{run_dir}: {'; '.join(changes)} (pass --data with the run's files, or --data DIR to "
                          f"evaluate on other data on purpose)")
    warnings = [f"{run_dir}: {change}; the figures below are for {config.data}" for change in changes]
    return test.classes, evaluate(model, evaluation_loader(config, test), mirror=config.test_time_mirroring), warnings


def _with_mirroring(config, mirror, target):
    """``config`` with test-time mirroring as asked (None: as it is), refused for a model trained
    without mirrored images."""
    if mirror is None:
        return config
    try:
        return replace(config, test_mirror=mirror)
    except ValueError as error:
        raise ValueError(f"{target}: {error}") from None


def evaluate_model(target, data=None, mirror=None):
    """`evaluate_run` for a run folder; for an ONNX file (or a zoo model) the same figures on its
    dataset's test set, with the notes on how it was read as the warnings."""
    if Path(target).is_dir():
        return evaluate_run(target, data, mirror)
    opened = open_model(target, data, mirror)
    if opened.input_shape != IMAGE_SHAPE:
        raise ValueError(f"{target} takes images of shape {opened.input_shape}; {opened.config.dataset}'s are "
                         f"{IMAGE_SHAPE}, so it cannot be evaluated on them")
    test, = load_datasets(opened.config, ("test",))
    if len(opened.classes) != len(test.classes):
        raise ValueError(f"{target} answers {len(opened.classes)} classes; {opened.config.dataset} has "
                         f"{len(test.classes)}")
    loader = DataLoader(test, 1000, transform=opened.normalize)
    return test.classes, evaluate(opened.model, loader, mirror=opened.mirror), opened.notes


IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of the datasets' images, which the zoo's models take
# Where `export_onnx` records, in an ONNX file's metadata_props, what `open_model` needs to use it
# as it was trained: the dataset, the (mean, std) its [0, 1] pixels were normalised with, the class names.
ONNX_DATASET, ONNX_NORMALIZATION, ONNX_CLASSES = "convnet.dataset", "convnet.normalization", "convnet.classes"
# ... and whether its figures average each image with its mirror image (`nn.logits`), which the graph does not.
ONNX_TEST_MIRROR = "convnet.test_mirror"


@dataclass
class Opened:
    """A model that ``evaluate``, ``predict``, ``summary`` and ``show`` use, and what it takes:
    images of ``input_shape`` (C, H, W) with pixels in [0, 1], normalised by ``normalize`` (None:
    as they are); its outputs are logits of ``classes``, averaged with those of the mirror image
    where ``mirror`` (`nn.logits`). ``config``: its dataset and where that is read from.
    ``notes``: what had to be assumed, to be said."""
    model: Module
    config: RunConfig
    title: str
    input_shape: tuple = IMAGE_SHAPE
    classes: tuple = ()
    normalize: transforms.Normalize | None = None
    run_dir: Path | None = None
    notes: list = field(default_factory=list)
    mirror: bool = False

    def __post_init__(self):
        # Every use is inference, often of one image alone (`predict`): batch norm must answer with
        # its running statistics, not the statistics of the images it is given.
        self.model.eval()

    def preprocess(self, pixels):
        """uint8 images (N, C, H, W) -> the model's input."""
        scaled = transforms.unit_range(pixels)
        return scaled if self.normalize is None else self.normalize(scaled)

    def read(self, path):
        """(the image file at ``path`` as the model's input (C, H, W), conversion notes)."""
        channels, height, width = self.input_shape
        pixels, notes = read_image(path, size=(height, width), channels=channels)
        return self.preprocess(pixels[None])[0], notes


def open_model(target, data=None, mirror=None):
    """A run folder's model, a zoo model (with the weights that ship with convnet, else untrained
    from seed 0) or an ONNX file's, as `Opened`; ``mirror`` turns test-time mirroring on or off
    (None: as the run, the shipped weights or the exported file evaluated)."""
    path = Path(target)
    if path.is_dir():
        config, model, _ = load_run(path)
        return _convnet_model(model, _with_mirroring(config, mirror, target), f"{config.model} trained in {target}",
                              path)
    if target in pretrained.available():
        card = pretrained.card(target)
        config = _with_mirroring(replace(RunConfig.from_dict(card["config"]), data=data), mirror, target)
        return _convnet_model(models.build(target, pretrained=True), config,
                              f"{target} with the weights that ship with convnet (test accuracy "
                              f"{card['test_accuracy']:.4f})")
    if target in models.MODELS:
        config = RunConfig(model=target, data=data, test_mirror=bool(mirror))
        manual_seed(0)
        return _convnet_model(build_model(config), config, f"{target} (untrained)",
                              notes=[f"{target} is untrained (random weights, seed 0): convnet ships trained weights "
                                     f"for {', '.join(pretrained.available()) or 'no model'}"])
    if path.suffix == ".onnx":
        return _onnx_model(path, data, mirror)
    raise ValueError(f"{target} is neither a run folder, a model ({', '.join(models.MODELS)}) nor an ONNX file "
                     f"(.onnx)")


def _convnet_model(model, config, title, run_dir=None, notes=()):
    return Opened(model, config, title, IMAGE_SHAPE, mnist.CLASSES[config.dataset],
                  mnist.normalization(config.dataset), run_dir, list(notes), config.test_time_mirroring)


def export_onnx(target, path, opset=None):
    """Write ``target``'s model (`open_model`) to ``path`` as ONNX, recording in its metadata how
    it takes images and names its classes, so that `open_model` uses the file as it does the run."""
    from .onnx import export
    opened = open_model(target)
    mean, std = mnist.NORMALIZATION[opened.config.dataset]
    metadata = {ONNX_DATASET: opened.config.dataset, ONNX_NORMALIZATION: json.dumps([mean, std]),
                ONNX_CLASSES: json.dumps(list(opened.classes)), ONNX_TEST_MIRROR: json.dumps(opened.mirror)}
    return export(opened.model, path, (1, *opened.input_shape), opset, metadata)


def _onnx_model(path, data, mirror):
    """An ONNX file's model as `Opened`; what its metadata does not say is assumed and noted."""
    from .onnx import OnnxError, load
    model = load(path)
    recorded = model.metadata
    notes = []
    try:
        config = RunConfig(dataset=recorded.get(ONNX_DATASET, RunConfig.dataset), data=data)
    except ValueError as error:
        raise OnnxError(f"{path}: its metadata {ONNX_DATASET}: {error}") from None
    shape = model.input_shape
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int):
        raise OnnxError(f"{path}: expected a model of images (batch, C, H, W) with a fixed C, got input shape "
                        f"{shape}")
    channels, height, width = shape[1:]
    if not (isinstance(height, int) and isinstance(width, int)):
        height, width = IMAGE_SHAPE[1:]
        notes.append(f"{path} takes images of any size: they are given at {height}x{width}")
    normalize = None
    if ONNX_NORMALIZATION in recorded:
        normalize = _recorded(path, recorded, ONNX_NORMALIZATION, lambda v: transforms.Normalize(*v),
                              "[mean, std]")
    else:
        notes.append(f"{path} does not record how its pixels were scaled: they are given in [0, 1], unnormalised")
    with no_grad():
        outputs = model(np.zeros((1, channels, height, width), np.float32))
    if not isinstance(outputs, Tensor) or outputs.ndim != 2:
        raise OnnxError(f"{path}: expected one output of class scores (batch, classes), got "
                        f"{'several outputs' if isinstance(outputs, tuple) else f'shape {outputs.shape}'}")
    count = outputs.shape[1]
    if ONNX_CLASSES in recorded:
        classes = _recorded(path, recorded, ONNX_CLASSES, tuple, f"a list of {count} names",
                            lambda v: isinstance(v, list) and len(v) == count and all(isinstance(n, str) for n in v))
    elif count == len(mnist.CLASSES[config.dataset]):
        classes = mnist.CLASSES[config.dataset]
        notes.append(f"{path} does not name its classes: they are taken as {config.dataset}'s")
    else:
        classes = tuple(f"class {index}" for index in range(count))
    if mirror is None:
        mirror = ONNX_TEST_MIRROR in recorded and _recorded(path, recorded, ONNX_TEST_MIRROR, bool, "true or false",
                                                              lambda v: isinstance(v, bool))
    if model.answers_probabilities:
        model = _LogProbabilities(model)  # the rest of convnet takes logits; log p are logits of p
    return Opened(model, config, f"{path.name} (ONNX)", (channels, height, width), classes, normalize, notes=notes,
                  mirror=mirror)


def _recorded(path, recorded, key, convert, expected, accept=lambda value: True):
    """``recorded[key]`` (JSON text) converted, or `OnnxError` naming the key and what was expected."""
    from .onnx import OnnxError
    try:
        value = json.loads(recorded[key])
        if accept(value):
            return convert(value)
    except (ValueError, TypeError):
        pass
    raise OnnxError(f"{path}: its metadata {key}: expected {expected}, got {recorded[key][:80]!r}")


class _LogProbabilities(Module):
    """An ONNX model that ends in Softmax, answering log-probabilities: logits of the same
    probabilities (softmax(log p) = p), so evaluation's loss and ``show``'s bars mean what they do
    for a convnet model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).clip(np.finfo(np.float32).tiny, None).log()


class Classifier:
    """A model that answers for image files, preprocessed as it was trained."""

    def __init__(self, opened):
        self.opened = opened

    def probabilities(self, images):
        """Model inputs (N, C, H, W) -> class probabilities (N, classes)."""
        with no_grad():
            return F.softmax(nn.logits(self.opened.model, images, self.opened.mirror), dim=1).numpy()

    def top(self, path, k):
        """([(class name, probability)] of the ``k`` likeliest classes, conversion notes) of an image file."""
        image, notes = self.opened.read(path)
        probabilities = self.probabilities(image[None])[0]
        return [(self.opened.classes[i], float(probabilities[i])) for i in np.argsort(probabilities)[::-1][:k]], notes


@dataclass
class Subject:
    """What ``convnet show`` draws: a model, one image (C, H, W) as the model takes it, and words;
    ``mirror``: whether its answer averages the image's and the mirror image's (`Opened.mirror`)."""
    model: Module
    image: np.ndarray
    title: str
    classes: tuple = ()
    notes: list = field(default_factory=list)
    curves_png: bytes | None = None
    mirror: bool = False


LESSON_IMAGE = "grace_hopper.jpg"  # a photograph that matplotlib ships, so the lesson needs no download


def lesson_subject(image_path=None, seed=0, language="en"):
    """The lesson's network (`models.lesson_network`, kernels drawn with ``seed``) on a 256x256
    photograph, or on the image at ``image_path``; its title in ``language``."""
    manual_seed(seed)
    model = models.lesson_network()
    if image_path is None:
        from matplotlib import cbook
        image_path = cbook.get_sample_data(LESSON_IMAGE, asfileobj=False)
    pixels, notes = read_image(image_path, size=(256, 256), channels=1, crop=True)
    conv = model[0]
    title = words(language)["lesson.title"].format(kernels=conv.out_channels, size=conv.kernel_size[0],
                                                   height=pixels.shape[1], width=pixels.shape[2])
    return Subject(model, transforms.unit_range(pixels), title, notes=[f"{image_path}: {note}" for note in notes])


def open_subject(target, image_path=None, data=None, mirror=None):
    """A run folder's, zoo model's or ONNX file's model on the image at ``image_path``, or on the
    first test image of its dataset; ``mirror`` as for `open_model`."""
    opened = open_model(target, data, mirror)
    notes = list(opened.notes)
    if image_path is not None:
        image, read_notes = opened.read(image_path)
        notes += [f"{image_path}: {note}" for note in read_notes]
    elif opened.input_shape == IMAGE_SHAPE:
        images, labels = mnist.load(opened.config.dataset, "test", opened.config.data)
        image = opened.preprocess(images[:1])[0]
        notes.append(f"no IMAGE given: the first {opened.config.dataset} test image "
                     f"({mnist.CLASSES[opened.config.dataset][labels[0]]})")
    else:
        raise ValueError(f"{target} takes images of shape {opened.input_shape}, unlike {opened.config.dataset}'s: "
                         f"give an IMAGE to show it")
    curves = opened.run_dir / CURVES if opened.run_dir is not None else None
    return Subject(opened.model, image, opened.title, opened.classes, notes,
                   curves.read_bytes() if curves is not None and curves.exists() else None, opened.mirror)
