"""From a run's configuration to its objects: data, loaders, model, optimizer, schedule, and the
trainer with the callbacks that report on it. This module alone makes those choices.
"""

from dataclasses import asdict
from pathlib import Path

from .. import models, optim
from ..data import mnist, transforms
from ..data.loader import ArrayDataset, DataLoader
from ..distributed import synchronise_batch_norm
from ..errors import ConvnetError, InvalidValue
from ..random import manual_seed
from ..reports import EpochLog, ProgressBar, RunFolder, StepLog, TensorBoard
from ..train import ONE_PROCESS, EarlyStopping, Trainer


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


def absolute_data(data):
    """A --data folder as an absolute path, so a run means the same files from any directory."""
    return None if data is None else str(Path(data).resolve())


def data_changes(meta, datasets):
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
        raise InvalidValue(f"batch_size {config.batch_size} is larger than the training set ({len(train)} images); "
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
        callbacks += [StepLog(run_dir, asdict(config), train.classes, snapshot_every=config.snapshot_every,
                              effective=config.effective_settings),
                      RunFolder(run_dir, asdict(config), train.classes, config.train_conditions,
                                {"train": train.source, "test": test.source})]
        if config.tensorboard:
            callbacks.append(TensorBoard(run_dir, asdict(config)))
    callbacks = callbacks if group.rank == 0 else []
    if config.early_stop is not None:  # on every rank: they must stop together
        callbacks.append(EarlyStopping(config.early_stop, log if group.rank == 0 else lambda *_: None))
    return Trainer(model, train_loader, evaluation_loader(config, test), optimizer, schedule, config.label_smoothing,
                   callbacks, group, config.test_time_mirroring)
