"""From a run's configuration to its objects: data, loaders, model, optimizer, schedule, trainer
and the callbacks that report on it. This module alone makes those choices.

``convnet train`` starts a run with `start` or continues one with `resume`; ``evaluate``,
``predict``, ``summary`` and ``show`` rebuild a model with `load_run` from the configuration
stored in a run folder's checkpoint.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import checkpoint, models, optim
from . import functional as F
from .data import mnist, read_image, transforms
from .data.loader import ArrayDataset, DataLoader
from .nn import Module
from .random import manual_seed
from .reports import CURVES, EpochLog, ProgressBar, RunFolder
from .tensor import Tensor, no_grad
from .train import Trainer, evaluate

DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}
OPTIMIZERS = tuple(DEFAULT_LR)
SCHEDULES = ("onecycle", "cosine", "step", "none")


@dataclass
class RunConfig:
    """Everything that defines a training run; ``convnet train``'s options, with these defaults."""
    model: str = "reference_cnn"
    dataset: str = "fashion-mnist"
    data: str | None = None
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = False
    seed: int = 0

    def __post_init__(self):
        problems = []
        # isinstance first: a stored value may be a JSON array or object, which `in` cannot hash.
        if not isinstance(self.model, str) or self.model not in models.MODELS:
            problems.append(f"model must be one of {', '.join(models.MODELS)}, got {self.model!r}")
        if not isinstance(self.dataset, str) or self.dataset not in mnist.CLASSES:
            problems.append(f"dataset must be one of {', '.join(mnist.CLASSES)}, got {self.dataset!r}")
        if self.data is not None and not isinstance(self.data, str):
            problems.append(f"data must be a folder's path or None, got {self.data!r}")
        if not isinstance(self.augment, bool):
            problems.append(f"augment must be true or false, got {self.augment!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.lr is not None and not (_is_real(self.lr) and self.lr > 0):
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not (_is_real(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (_is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def learning_rate(self):
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def train_conditions(self):
        """How training batches differ from test batches, to label train figures with."""
        conditions = ["augmented"] if self.augment else []
        if self.label_smoothing:
            conditions.append(f"label smoothing {self.label_smoothing:g}")
        return conditions

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _is_real(value):
    """A number a configuration can hold (a stored one may be anything a JSON file can)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunExists(FileExistsError):
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
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return (optim.Adam if config.optimizer == "adam" else optim.AdamW)(parameters, lr=lr,
                                                                      weight_decay=config.weight_decay)


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


class DataChanged(ValueError):
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
    if not config.augment:
        return normalize
    steps = [transforms.RandomCrop(28, padding=2)]
    if config.dataset == "fashion-mnist":  # clothes mirror well; digits do not
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose(*steps, normalize, transforms.RandomErasing(p=0.25))


def evaluation_loader(config, test):
    return DataLoader(test, 1000, transform=mnist.normalization(config.dataset))


def build_model(config):
    return models.build(config.model)


def build_trainer(config, train, test, run_dir=None, progress=True, log=print):
    """Seeded model, loaders, optimizer, schedule and reporting callbacks for ``config``, as a
    `Trainer`; with ``run_dir`` it keeps that folder's checkpoint and reports up to date."""
    if config.batch_size > len(train):
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({len(train)} images); "
                         f"expected at most {len(train)}")
    manual_seed(config.seed)
    model = build_model(config)
    train_loader = DataLoader(train, config.batch_size, shuffle=True, seed=config.seed,
                              transform=train_transform(config))
    optimizer = make_optimizer(config, model.parameters())
    schedule = make_schedule(config, optimizer, len(train_loader))
    callbacks = [ProgressBar(config.epochs)] if progress else []
    callbacks.append(EpochLog(config.epochs, log))
    if run_dir is not None:
        callbacks.append(RunFolder(run_dir, asdict(config), train.classes, config.train_conditions,
                                   {"train": train.source, "test": test.source}))
    return Trainer(model, train_loader, evaluation_loader(config, test), optimizer, schedule, config.label_smoothing,
                   callbacks)


def start(config, run_dir, progress=True, log=print):
    """A new run of ``config`` into ``run_dir``, which must not hold a run already."""
    run_dir = Path(run_dir)
    if (run_dir / checkpoint.WEIGHTS).exists():
        raise RunExists(f"{run_dir} already holds a run")
    config.data = _absolute(config.data)
    train, test = load_datasets(config)
    return Run(config, run_dir, train, test, build_trainer(config, train, test, run_dir, progress, log))


def resume(run_dir, data=None, progress=True, log=print):
    """The run saved in ``run_dir``, restored to where it stopped; ``data`` overrides where its
    dataset is read from, which must still hold the data the run recorded (`DataChanged`)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / checkpoint.WEIGHTS).exists():
        raise checkpoint.CheckpointError(f"no checkpoint in {run_dir}: the run stopped before its first epoch "
                                         f"ended, so there is nothing to resume; start it again with --out {run_dir}")
    model_state, optimizer_state, meta = checkpoint.load(run_dir)
    config = _stored_config(run_dir, meta)
    if data is not None:
        config.data = _absolute(data)
    train, test = load_datasets(config)
    changes = _changes(meta, {"train": train, "test": test})
    if changes:
        raise DataChanged(f"{run_dir}: cannot resume: {'; '.join(changes)} (pass --data with the run's files)")
    trainer = build_trainer(config, train, test, run_dir, progress, log)
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


def evaluate_run(run_dir, data=None):
    """(class names, `evaluate`'s result, warnings) of a run folder's model on its test set, read
    from ``data`` if given. A test set other than the run's is refused (`DataChanged`) unless
    ``data`` asked for it; then the warnings say so."""
    config, model, meta = load_run(run_dir)
    if data is not None:
        config.data = _absolute(data)
    test, = load_datasets(config, ("test",))
    changes = _changes(meta, {"test": test})
    if changes and data is None:
        raise DataChanged(f"{run_dir}: {'; '.join(changes)} (pass --data with the run's files, or --data DIR to "
                          f"evaluate on other data on purpose)")
    warnings = [f"{run_dir}: {change}; the figures below are for {config.data}" for change in changes]
    return test.classes, evaluate(model, evaluation_loader(config, test)), warnings


@dataclass
class Classifier:
    """A trained model that answers for image files, preprocessed as it was trained."""
    model: Module
    config: RunConfig

    @classmethod
    def from_run(cls, run_dir):
        config, model, _ = load_run(run_dir)
        return cls(model, config)

    def probabilities(self, pixels):
        """uint8 images (N, C, H, W) -> class probabilities (N, classes)."""
        with no_grad():
            return F.softmax(self.model(Tensor(mnist.preprocess(self.config.dataset, pixels))), dim=1).numpy()

    def top(self, path, k):
        """([(class name, probability)] of the ``k`` likeliest classes, conversion notes) of an image file."""
        pixels, notes = read_image(path, size=(28, 28), channels=1)
        probabilities = self.probabilities(pixels[None])[0]
        classes = mnist.CLASSES[self.config.dataset]
        return [(classes[i], float(probabilities[i])) for i in np.argsort(probabilities)[::-1][:k]], notes


def open_model(target, data=None):
    """(model, config, run folder or None, title) for a run folder or a model name (untrained,
    seed 0)."""
    if Path(target).is_dir():
        config, model, _ = load_run(target)
        return model, config, Path(target), f"{config.model} trained in {target}"
    if target in models.MODELS:
        config = RunConfig(model=target, data=data)
        manual_seed(0)
        return build_model(config), config, None, f"{target} (untrained)"
    raise ValueError(f"{target} is neither a run folder nor a model ({', '.join(models.MODELS)})")


@dataclass
class Subject:
    """What ``convnet show`` draws: a model, one image (C, H, W) as the model takes it, and words."""
    model: Module
    image: np.ndarray
    title: str
    classes: tuple = ()
    notes: list = field(default_factory=list)
    curves_png: bytes | None = None


LESSON_IMAGE = "grace_hopper.jpg"  # a photograph that matplotlib ships, so the lesson needs no download


def lesson_subject(image_path=None, seed=0):
    """The lesson's network (`models.lesson_network`, kernels drawn with ``seed``) on a 256x256
    photograph, or on the image at ``image_path``."""
    manual_seed(seed)
    model = models.lesson_network()
    if image_path is None:
        from matplotlib import cbook
        image_path = cbook.get_sample_data(LESSON_IMAGE, asfileobj=False)
    pixels, notes = read_image(image_path, size=(256, 256), channels=1)
    return Subject(model, transforms.unit_range(pixels), "The lesson: 100 kernels of 10x10 over a 256x256 image, "
                   "then 2x2 max pooling (untrained kernels)", notes=[f"{image_path}: {note}" for note in notes])


def open_subject(target, image_path=None, data=None):
    """A run folder's or zoo model's model on the image at ``image_path``, or on the first test
    image of its dataset."""
    model, config, run_dir, title = open_model(target, data)
    if image_path is None:
        images, labels = mnist.load(config.dataset, "test", config.data)
        pixels = images[:1]
        notes = [f"no IMAGE given: the first {config.dataset} test image "
                 f"({mnist.CLASSES[config.dataset][labels[0]]})"]
    else:
        pixels, notes = read_image(image_path, size=(28, 28), channels=1)
        notes = [f"{image_path}: {note}" for note in notes]
    curves = run_dir / CURVES if run_dir is not None else None
    return Subject(model, mnist.preprocess(config.dataset, pixels[None])[0], title, mnist.CLASSES[config.dataset],
                   notes, curves.read_bytes() if curves is not None and curves.exists() else None)
