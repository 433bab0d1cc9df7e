"""From a run's configuration to its objects: data, loaders, model, optimizer, schedule, and the
trainer with the callbacks that report on it. This module alone makes those choices.
"""

from collections import OrderedDict
from dataclasses import asdict

import numpy as np

from .. import models, nn, optim
from ..data import transforms
from ..data.datasets import batch_of
from ..data.loader import DataLoader
from ..distributed import synchronise_batch_norm
from ..errors import InvalidValue
from ..random import manual_seed
from ..reports import EpochLog, ProgressBar, RunFolder, StepLog, TensorBoard
from ..train import ONE_PROCESS, EarlyStopping, FreezeAfter, Trainer
from .sources import IDX_SIZE, data_record, input_spec, normalization, rank_share


def make_optimizer(config, model):
    """``config``'s optimizer over ``model``'s trainable parameters: batch norm's in a group of their
    own at ``bn_lr_scale`` times the learning rate and without weight decay where that is not 1, the
    hidden layers' weights in groups of their own for Muon, and wrapped in `optim.Lookahead` where
    ``lookahead``."""
    lr = config.learning_rate
    if config.bn_lr_scale != 1:
        parameters = optim.batch_norm_groups(model, lr, config.bn_lr_scale, config.decay, bn_weight_decay=0.0)
    else:
        parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.decay)
    elif config.optimizer == "muon":
        optimizer = optim.Muon(optim.muon_groups(model, parameters), lr=lr, weight_decay=config.decay)
    else:
        optimizer = (optim.Adam if config.optimizer == "adam" else optim.AdamW)(parameters, lr=lr,
                                                                               weight_decay=config.decay)
    return optim.Lookahead(optimizer, k=5, alpha=0.5) if config.lookahead else optimizer


def make_schedule(config, optimizer, steps_per_epoch):
    """A per-step schedule over the whole run (None for a constant learning rate); each parameter
    group keeps its own share of the learning rate."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups],
                                             total_steps=max(total, 2))
    if config.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    if config.schedule == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return None


def train_transform(config, spec=None):
    """The training batches' transform: the augmentations ``config`` asks for, then the
    normalisation of its data (``spec``: `sources.input_spec`, None for IDX)."""
    normalize = normalization(config, spec)
    steps = config.augmentation_steps
    if not steps:
        return normalize
    size = IDX_SIZE if spec is None else spec["size"]
    # IDX keeps the 2 pixels of padding its recipe was measured with; other data are padded by an eighth
    # of the shorter side, CIFAR's 4 pixels at 32x32 (He et al., 2016), the same share of any image.
    padding = 2 if spec is None else max(1, min(size) // 8)
    on_pixels = {"crop": transforms.RandomCrop(tuple(size), padding=padding), "flip": transforms.RandomHorizontalFlip(),
                 "altflip": transforms.AlternatingFlip()}
    # Erasing comes after normalising, so the erased rectangle holds the dataset's mean.
    erase = [transforms.RandomErasing(p=0.25)] if "erase" in steps else []
    return transforms.Compose(*(on_pixels[step] for step in steps if step in on_pixels), normalize, *erase)


# Evaluation batches hold at most this many input values (16 MB of float32) and at most 1,000
# images: 1,000 28x28 images as always, 341 at 64x64 in colour, 27 at 224x224, whose activations
# (a ResNet-18 stem's output alone is 3.2 MB an image) would otherwise take gigabytes.
EVALUATION_BATCH_VALUES = 1 << 22


def evaluation_loader(config, test, spec=None):
    channels, (height, width) = (1, IDX_SIZE) if spec is None else (spec["channels"], spec["size"])
    batch = max(1, min(1000, EVALUATION_BATCH_VALUES // (channels * height * width)))
    return DataLoader(test, batch, transform=normalization(config, spec))


WHITENING_KERNEL = 2  # airbench's: 2x2 patches, so 8 filters for greyscale images and 24 for colour
WHITENING_IMAGES = 5000  # the training images whose patches are whitened (airbench: the first 5,000)


def build_model(config, spec=None):
    """``config.model`` for the data ``spec`` describes (None: IDX's 1x28x28 images of 10 classes,
    the zoo's defaults), given only what differs from those defaults, so an IDX run's model is the
    one it always was. With ``config.whiten``, a 2x2 convolution (`whitening_layer`) and a GELU come
    first, named ``whiten`` and ``gelu``, and the model (``network``) takes their 2 C 4 channels at
    (H - 1, W - 1), as airbench's network does."""
    channels, size = (1, tuple(IDX_SIZE)) if spec is None else (spec["channels"], tuple(spec["size"]))
    classes = 10 if spec is None else len(spec["classes"])
    whiten = whitening_layer(channels) if config.whiten else None
    if whiten is not None:
        channels, size = whiten.out_channels, tuple(side - WHITENING_KERNEL + 1 for side in size)
    shape = {key: value for key, value in {"in_channels": channels, "image_size": size, "classes": classes}.items()
             if value != {"in_channels": 1, "image_size": tuple(IDX_SIZE), "classes": 10}[key]}
    model = models.build(config.model, **shape)
    return model if whiten is None else nn.Sequential(OrderedDict(whiten=whiten, gelu=nn.GELU(), network=model))


def whitening_layer(channels):
    """airbench's first layer: a 2x2 convolution without padding whose 2 C 4 filters
    `nn.init.patch_whitening_` sets from the training images, frozen; its bias starts at zero, frozen
    too until `build_trainer` trains it for a run's first ``whitening_bias_epochs``."""
    layer = nn.Conv2d(channels, 2 * channels * WHITENING_KERNEL ** 2, WHITENING_KERNEL)
    nn.init.zeros_(layer.bias)
    for p in layer.parameters():
        p.requires_grad = False
    return layer


def initialise(model, config, train, spec):
    """The methods that set a new run's starting weights: the whitening layer's filters from the
    first `WHITENING_IMAGES` normalised training images, and partial identity kernels (``dirac``)."""
    if config.dirac:
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.groups == 1 and module.weight.requires_grad:
                nn.init.partial_dirac_(module.weight)
    if config.whiten:
        images, _ = batch_of(train, np.arange(min(len(train), WHITENING_IMAGES)))
        images = normalization(config, spec)(images)
        nn.init.patch_whitening_(model.whiten, images)


def build_trainer(config, train, test, run_dir=None, progress=True, log=print, group=ONE_PROCESS):
    """Seeded model, loaders, optimizer, schedule and reporting callbacks for ``config``, as a
    `Trainer`; with ``run_dir`` it keeps that folder's checkpoint and reports up to date. In a
    distributed ``group`` every rank trains and rank 0 alone reports and writes; each rank's loader
    reads only its share of a batch (`rank_share`), while the starting weights (whitening) come from
    the whole training set, the same on every rank."""
    if config.batch_size > len(train):
        raise InvalidValue(f"batch_size {config.batch_size} is larger than the training set ({len(train)} images); "
                         f"expected at most {len(train)} (--batch-size)")
    spec = input_spec(config, train)
    manual_seed(config.seed)
    model = build_model(config, spec)
    initialise(model, config, train, spec)
    if config.whitening_bias_epochs:  # in the optimizer from the start, so its state is the same on resume
        model.whiten.bias.requires_grad = True
    if config.sync_bn and group.size > 1:  # alone, the whole batch's statistics are its own
        synchronise_batch_norm(model, group)
    average = optim.ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay is not None else None
    train_loader = DataLoader(rank_share(train, group), config.batch_size, shuffle=True, seed=config.seed,
                              transform=train_transform(config, spec))
    optimizer = make_optimizer(config, model)
    schedule = make_schedule(config, optimizer, len(train_loader))
    callbacks = [ProgressBar(config.epochs)] if progress else []
    callbacks.append(EpochLog(config.epochs, log))
    if run_dir is not None:
        callbacks += [StepLog(run_dir, asdict(config), train.classes, snapshot_every=config.snapshot_every,
                              effective=config.effective_settings),
                      RunFolder(run_dir, asdict(config), train.classes, config.train_conditions,
                                data_record(config, train, test))]
        if config.tensorboard:
            callbacks.append(TensorBoard(run_dir, asdict(config)))
    callbacks = callbacks if group.rank == 0 else []
    if config.whitening_bias_epochs:  # on every rank: they must freeze together
        callbacks.append(FreezeAfter([model.whiten.bias], config.whitening_bias_epochs))
    if config.early_stop is not None:  # on every rank: they must stop together
        callbacks.append(EarlyStopping(config.early_stop, log if group.rank == 0 else lambda *_: None))
    return Trainer(model, train_loader, evaluation_loader(config, test, spec), optimizer, schedule,
                   config.label_smoothing, callbacks, group, config.test_time_mirroring, config.test_translate,
                   average)
