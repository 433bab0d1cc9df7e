"""From a run's configuration to its objects: data, loaders, model, optimizer, trainer.

``convnet train`` builds a run from a `RunConfig`; ``evaluate``, ``predict`` and ``summary``
rebuild the model from the configuration stored in a run folder's checkpoint.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import checkpoint, models
from .data import mnist, transforms
from .data.loader import ArrayDataset, DataLoader
from .random import manual_seed
from .train import DEFAULT_LR, OPTIMIZERS, SCHEDULES, Trainer, make_optimizer, make_schedule

NORMALIZATION = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}


@dataclass
class RunConfig:
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
        if self.model not in models.MODELS:
            problems.append(f"model must be one of {', '.join(models.MODELS)}, got {self.model!r}")
        if self.dataset not in NORMALIZATION:
            problems.append(f"dataset must be one of {', '.join(NORMALIZATION)}, got {self.dataset!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def learning_rate(self):
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def load_datasets(config):
    classes = mnist.CLASSES[config.dataset]
    train = ArrayDataset(*mnist.load(config.dataset, "train", config.data), classes=classes)
    test = ArrayDataset(*mnist.load(config.dataset, "test", config.data), classes=classes)
    return train, test


def normalize(config):
    return transforms.Normalize(*NORMALIZATION[config.dataset])


def train_transform(config):
    if not config.augment:
        return normalize(config)
    steps = [transforms.RandomCrop(28, padding=2)]
    if config.dataset == "fashion-mnist":  # clothes mirror well; digits do not
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose(*steps, normalize(config), transforms.RandomErasing(p=0.25))


def build_model(config):
    return models.build(config.model)


def build_trainer(config, train, test, run_dir, progress=True, log=print):
    """Seeded model, loaders, optimizer and schedule for ``config``, as a Trainer."""
    manual_seed(config.seed)
    model = build_model(config)
    train_loader = DataLoader(train, config.batch_size, shuffle=True, seed=config.seed,
                              transform=train_transform(config))
    test_loader = DataLoader(test, 1000, transform=normalize(config))
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.learning_rate, config.weight_decay)
    schedule = make_schedule(config.schedule, optimizer, config.epochs, len(train_loader))
    return Trainer(model, train_loader, test_loader, optimizer, schedule, run_dir, config.label_smoothing,
                   config=asdict(config), progress=progress, log=log)


def load_run(run_dir):
    """(config, model with the run's weights, metadata) of a run folder."""
    run_dir = Path(run_dir)
    model_state, _, meta = checkpoint.load(run_dir)
    if "config" not in meta:
        raise checkpoint.CheckpointError(f"{run_dir}: the checkpoint has no run configuration")
    config = RunConfig.from_dict(meta["config"])
    model = build_model(config)
    try:
        model.load_state_dict(model_state)
    except ValueError as error:
        raise checkpoint.CheckpointError(f"{run_dir}: the checkpoint does not fit a {config.model}: {error}") from None
    model.eval()
    return config, model, meta
