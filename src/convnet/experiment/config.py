"""A training run's settings: `RunConfig`, the choices each setting takes and the defaults it leaves
to convnet (the optimizer's learning rate and weight decay, the dataset's augmentation, test-time
mirroring where training mirrors). A run folder's checkpoint stores `RunConfig`'s fields as JSON
(`dataclasses.asdict`), and `RunConfig.from_dict` reads them back, those of older versions included.
"""

from dataclasses import dataclass, fields

from .. import models
from ..data import mnist
from ..errors import InvalidValue
from ..reports import SNAPSHOT_EVERY
from . import recipes

# Muon scales its updates to AdamW's size ("match_rms_adamw"), so it takes AdamW's settings.
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "muon": 2e-3}
# SGD's and Adam's weight decay is an L2 term in the gradient, AdamW's is decoupled from it (a
# shrinking of the weights by lr x decay per step), so their good values differ a hundredfold.
# 0.05 for AdamW was measured for issue 18 (README, docs/results.md).
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 5e-4, "adamw": 0.05, "muon": 0.05}
# What varies training images, in the order it is applied: crops of the image padded by 2 pixels,
# left-right mirroring at random, mirroring of each image in every other epoch (airbench's
# alternating flip: half the images mirrored in each epoch, as flip, but each seen both ways in any
# two epochs), and erasing a rectangle. `augment` names a comma-separated choice of them
# ("crop,flip"), "none", or "full": all that suit the dataset (flip, not altflip).
AUGMENTATION_STEPS = ("crop", "flip", "altflip", "erase")
MIRRORING_STEPS = ("flip", "altflip")
AUGMENTATIONS = ("none", "full", *AUGMENTATION_STEPS)
# What ``--data PATH`` may hold besides IDX files: a run's ``dataset`` names it once it is recognised
# (`build.data_kind`), so a stored run says what it trained on.
IMAGE_KINDS = ("image folder", "csv")
CIFAR_KINDS = ("cifar10", "cifar100")
DATASETS = (*mnist.CLASSES, *IMAGE_KINDS, *CIFAR_KINDS)
MIRRORING_DATASETS = ("fashion-mnist", *IMAGE_KINDS, *CIFAR_KINDS)
# Clothes mirror well, digits do not. Mirroring alone won 0.004 for the reference CNN in 15 epochs,
# where crops and erasing lost (issue 18, docs/results.md). Photographs and CIFAR mirror too, and
# objects there sit anywhere in the frame: crops and flips are CIFAR's standard recipe (He et al., 2016).
DEFAULT_AUGMENT = {"fashion-mnist": "flip", "mnist": "none",
                   **{kind: "crop,flip" for kind in (*IMAGE_KINDS, *CIFAR_KINDS)}}
OPTIMIZERS = tuple(DEFAULT_LR)
SCHEDULES = ("onecycle", "cosine", "step", "none")
# airbench94's whiten_bias_epochs: its whitening layer's bias trains this long, then freezes to save
# its gradient ("no change to epochs or accuracy", its ablation table).
WHITENING_BIAS_EPOCHS = 3


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
    # For an image folder or CSV manifest (`data.open_images`); the split is always drawn from seed 0,
    # so runs of different seeds score on the same validation images.
    val_split: float = 0.1
    image_size: list | None = None  # [H, W]: resize the shorter side and centre-crop (None: the images' own)
    channels: int | None = None  # 1 or 3 (None: 1 when every image is greyscale, else 3)
    skip_bad: bool = False  # leave unreadable images out (recorded) instead of refusing them
    # The fast-training methods of the CIFAR-10 speed records (issue 32; docs/results.md measures each).
    recipe: str | None = None  # the `recipes.RECIPES` entry the settings came from (`from_recipe`), or None
    whiten: bool = False  # a frozen patch-whitening first layer and a GELU (`build.whitening_layer`) before the model
    whiten_bias_epochs: int | None = None  # the whitening layer's bias trains this many epochs (None: airbench's 3)
    dirac: bool = False  # each convolution's first in_channels kernels start as the identity (`nn.init.partial_dirac_`)
    bn_lr_scale: float = 1.0  # batch norm's weights and biases at this multiple of the lr, without weight decay
    lookahead: bool = False  # slow weights pulled halfway to the fast ones every 5 steps (`optim.Lookahead`)
    # An exponential moving average of the weights with this decay per step, evaluated and saved with
    # batch norm statistics recomputed for it (`optim.ExponentialMovingAverage`); None: the weights trained.
    ema_decay: float | None = None
    test_translate: int = 0  # test-time views also shifted by this many pixels (`nn.logits`' translate)

    def __post_init__(self):
        problems = []
        # isinstance first: a stored value may be a JSON array or object, which `in` cannot hash.
        if not isinstance(self.model, str) or self.model not in models.MODELS:
            problems.append(f"model must be one of {', '.join(models.MODELS)}, got {self.model!r}")
        if not isinstance(self.dataset, str) or self.dataset not in DATASETS:
            problems.append(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.data is not None and not isinstance(self.data, str):
            problems.append(f"data must be a folder's path or None, got {self.data!r}")
        if self.init_from is not None and not isinstance(self.init_from, str):
            problems.append(f"init_from must be a path or None, got {self.init_from!r}")
        if not (self.augment is None or isinstance(self.augment, str) and _is_augmentation(self.augment)):
            problems.append(f"augment must be none, full or a comma-separated choice of "
                            f"{', '.join(AUGMENTATION_STEPS)} (or None: the dataset's default), got {self.augment!r}")
        elif self.augment is not None and set(MIRRORING_STEPS) <= set(self.augment.split(",")):
            problems.append(f"augment {self.augment} mirrors the images twice over; choose flip (at random) or "
                            f"altflip (every other epoch)")
        elif (self.augment is not None and set(MIRRORING_STEPS) & set(self.augment.split(","))
              and self.dataset not in MIRRORING_DATASETS):
            problems.append(f"augment {self.augment} mirrors the images, and {self.dataset}'s do not mirror; "
                            f"choose from none, full, crop and erase")
        problems += self._image_problems()
        for name in ("sync_bn", "tensorboard", "skip_bad"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not (self.test_mirror is None or isinstance(self.test_mirror, bool)):
            problems.append(f"test_mirror must be true or false, got {self.test_mirror!r}")
        if self.test_mirror is True and not problems and not self.mirrors_training_images:
            mirroring = self.dataset if self.dataset in MIRRORING_DATASETS else "fashion-mnist"
            problems.append(f"test_mirror averages each test image with its mirror image, which helps only a network "
                            f"trained on mirrored images and costs a network that never saw one 5 points "
                            f"(0.9276 -> 0.876 for the reference CNN); this run's training images are not "
                            f"mirrored (augment {self.augmentation} on {self.dataset}): choose an augment that "
                            f"flips (flip, crop,flip or full) on {mirroring}")
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
        problems += self._method_problems()
        if problems:
            raise InvalidValue("; ".join(problems))

    def _method_problems(self):
        problems = []
        if self.recipe is not None and (not isinstance(self.recipe, str) or self.recipe not in recipes.RECIPES):
            problems.append(f"recipe must be one of {', '.join(recipes.RECIPES)} or None, got {self.recipe!r}")
        for name in ("whiten", "dirac", "lookahead"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        epochs = self.whiten_bias_epochs
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0):
            problems.append(f"whiten_bias_epochs must be a whole number of epochs >= 0 (or None: "
                            f"{WHITENING_BIAS_EPOCHS}), got {epochs!r}")
        elif epochs is not None and self.whiten is False:
            problems.append(f"whiten_bias_epochs {epochs} trains the patch-whitening layer's bias, and this run has "
                            f"no whitening layer: add --whiten")
        if not (_is_real(self.bn_lr_scale) and self.bn_lr_scale > 0):
            problems.append(f"bn_lr_scale must be a positive number, got {self.bn_lr_scale!r}")
        if self.ema_decay is not None and not (_is_real(self.ema_decay) and 0 < self.ema_decay < 1):
            problems.append(f"ema_decay must be a number between 0 and 1 (or None: no average), got {self.ema_decay!r}")
        if not isinstance(self.test_translate, int) or isinstance(self.test_translate, bool) or not (
                0 <= self.test_translate <= 4):
            problems.append(f"test_translate must be a whole number of pixels from 0 to 4, got {self.test_translate!r}")
        elif self.test_translate and not problems and "crop" not in self.augmentation_steps:
            pixels = f"{self.test_translate} pixel{'s' if self.test_translate > 1 else ''}"
            problems.append(f"test_translate {self.test_translate} adds test views shifted by {pixels}, which can "
                            f"help only a network trained on shifted crops and costs one that never saw any (0.9373 "
                            f"-> 0.9314 for the reference CNN at 1 pixel); this run's training images are not cropped "
                            f"(augment {self.augmentation}): add crop to --augment")
        return problems

    def _image_problems(self):
        if isinstance(self.image_size, int) and not isinstance(self.image_size, bool):
            self.image_size = [self.image_size, self.image_size]  # as stored: JSON has lists, not tuples
        elif isinstance(self.image_size, tuple):
            self.image_size = list(self.image_size)
        problems = []
        if not (_is_real(self.val_split) and 0 < self.val_split < 1):
            problems.append(f"val_split must be a fraction between 0 and 1, got {self.val_split!r}")
        if self.image_size is not None and not (
                isinstance(self.image_size, list) and len(self.image_size) == 2
                and all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in self.image_size)):
            problems.append(f"image_size must be [height, width] in pixels or None, got {self.image_size!r}")
        if self.channels is not None and (self.channels not in (1, 3) or isinstance(self.channels, bool)):
            problems.append(f"channels must be 1, 3 or None (chosen by the images), got {self.channels!r}")
        return problems

    @property
    def is_idx(self):
        """Whether the run trains on IDX files (Fashion-MNIST, MNIST), whose shape and normalisation
        its ``dataset`` names; other data's are recorded with the run."""
        return self.dataset in mnist.CLASSES

    @property
    def learning_rate(self):
        """The peak learning rate: ``lr``, or the optimizer's default."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def whitening_bias_epochs(self):
        """The epochs the whitening layer's bias trains before it is frozen: ``whiten_bias_epochs``,
        or airbench's `WHITENING_BIAS_EPOCHS`; 0 without whitening."""
        if not self.whiten:
            return 0
        return WHITENING_BIAS_EPOCHS if self.whiten_bias_epochs is None else self.whiten_bias_epochs

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
                         if step != "altflip" and (step != "flip" or self.dataset in MIRRORING_DATASETS))
        chosen = self.augmentation.split(",")
        return tuple(step for step in AUGMENTATION_STEPS if step in chosen)

    @property
    def mirrors_training_images(self):
        """Whether training mirrors images: flip or altflip, or full on datasets that mirror."""
        return bool(set(MIRRORING_STEPS) & set(self.augmentation_steps))

    @property
    def test_time_mirroring(self):
        """Whether evaluation averages each image with its mirror image (`nn.logits`): ``test_mirror``,
        or by default whenever training mirrors images (it won 0.003 for the reference CNN)."""
        return self.mirrors_training_images if self.test_mirror is None else self.test_mirror

    @property
    def effective_settings(self):
        """{field: the value the run uses} for each field whose None leaves the choice to convnet.

        >>> RunConfig(optimizer="sgd").effective_settings
        {'lr': 0.05, 'weight_decay': 0.0005, 'augment': 'flip', 'test_mirror': True}
        """
        return {"lr": self.learning_rate, "weight_decay": self.decay, "augment": self.augmentation,
                "test_mirror": self.test_time_mirroring,
                **({"whiten_bias_epochs": self.whitening_bias_epochs} if self.whiten else {})}

    @property
    def train_conditions(self):
        """How training batches differ from test batches, to label train figures with."""
        steps = self.augmentation_steps
        if not steps:
            conditions = []
        elif steps == ("flip",):
            conditions = ["mirrored at random"]
        elif steps == ("altflip",):
            conditions = ["mirrored in every other epoch"]
        elif self.augmentation == "full":
            conditions = ["augmented"]
        else:
            conditions = [f"augmented ({', '.join(steps)})"]
        if self.label_smoothing:
            conditions.append(f"label smoothing {self.label_smoothing:g}")
        return conditions

    @classmethod
    def from_recipe(cls, name, **settings):
        """A run of the recipe ``name`` (`recipes.RECIPES`), ``settings`` given over its own; the run
        records the recipe's name. ``RunConfig(recipe=name)`` only records the name.

        >>> RunConfig.from_recipe("fast", seed=1).recipe
        'fast'
        """
        if name not in recipes.RECIPES:
            raise InvalidValue(f"recipe must be one of {', '.join(recipes.RECIPES)}, got {name!r}")
        return cls(**{**recipes.RECIPES[name]["settings"], **settings, "recipe": name})

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
