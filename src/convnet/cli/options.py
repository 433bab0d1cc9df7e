"""The command line's options: value checks, the option groups several commands share, and
``convnet train``'s options, derived from `experiment.RunConfig`'s fields so that a new setting
of a run is an option of ``train`` without a line here (its help excepted: `TRAIN_HELP`)."""

import argparse
import re
import typing
from dataclasses import MISSING, fields

from ..language import LANGUAGES


def _argument_type(convert, accept, expected):
    """An argparse type that converts with ``convert`` and rejects values failing ``accept``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


positive_int = _argument_type(int, lambda value: value >= 1, "a positive integer")
nonnegative_int = _argument_type(int, lambda value: value >= 0, "a whole number >= 0")
positive_float = _argument_type(float, lambda value: value > 0, "a positive number")
fraction = _argument_type(float, lambda value: 0 <= value < 1, "a number in [0, 1)")
open_fraction = _argument_type(float, lambda value: 0 < value < 1, "a number between 0 and 1")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def duration(text):
    """``300``, ``300s``, ``5m``, ``5min`` or ``1.5h`` as seconds.

    >>> duration("5m"), duration("1.5h")
    (300.0, 5400.0)
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min|h)?", text.strip())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 300s, 5m or 1.5h, got {text!r}")
    return float(match[1]) * DURATION_UNITS[match[2] or ""]


def image_size(text):
    """``64`` or ``64x48`` (height x width) as [H, W].

    >>> image_size("64"), image_size("64x48")
    ([64, 64], [64, 48])
    """
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text.strip().lower())
    if not match or int(match[1]) < 1 or match[2] is not None and int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"expected a size in pixels such as 64 or 64x48 (height x width), "
                                         f"got {text!r}")
    return [int(match[1]), int(match[2] or match[1])]


# ---------------------------------------------------------------------------- shared option groups
DATA_HELP = ("the data, recognised by what PATH holds: a folder of IDX files (Fashion-MNIST, MNIST; default: the "
             "system's copy or the user cache), a CIFAR-10/100 python folder, an image folder (PATH/<class>/<images>, "
             "or PATH/train/ and PATH/val/) or a CSV manifest (path,label)")
LANGUAGE_HELP = ("language of the pages and pictures: en (default) or ko (Korean, the lesson's own; needs a font with "
                 "Hangul, e.g. Debian's fonts-nanum)")
TEST_MIRROR_HELP = ("average each image's class scores with its mirror image's (test-time mirroring; for networks "
                    "trained on mirrored images); --no-test-mirror: one pass")


def shared_groups():
    """The option groups several commands take, as argparse parents: {name: parser}."""
    from ..models import MODELS
    groups = {name: argparse.ArgumentParser(add_help=False) for name in ("model", "data", "test_mirror", "lang")}
    groups["model"].add_argument("--model", choices=list(MODELS), help="a zoo model with the trained weights that "
                                 "ship with convnet (where it ships them; else untrained), instead of a RUN_DIR or "
                                 "MODEL.onnx")
    groups["data"].add_argument("--data", metavar="PATH", help=DATA_HELP)
    groups["test_mirror"].add_argument("--test-mirror", action=argparse.BooleanOptionalAction, help=(
        f"{TEST_MIRROR_HELP} (default: as the run, the shipped weights or the exported file were evaluated)"))
    groups["lang"].add_argument("--lang", choices=LANGUAGES, default="en", help=LANGUAGE_HELP)
    return groups


# ---------------------------------------------------------------------------- convnet train's options
def _train_help():
    from .. import experiment

    def per_optimizer(values):
        return ", ".join(f"{name} {value:g}" for name, value in values.items())

    return {
        "model": "the network to train",
        "dataset": "which IDX dataset to train on (other data is named by --data PATH)",
        "data": DATA_HELP,
        "epochs": "passes over the training set",
        "batch_size": "images per step",
        "optimizer": "the optimizer; muon: Muon for the hidden layers' weights, AdamW for the rest",
        "lr": f"peak learning rate (default: {per_optimizer(experiment.DEFAULT_LR)})",
        "weight_decay": "AdamW's and Muon's decoupled decay, SGD's and Adam's L2 term (default: "
                        f"{per_optimizer(experiment.DEFAULT_WEIGHT_DECAY)})",
        "schedule": "learning-rate schedule, per step",
        "label_smoothing": "the share of each label's probability spread over the other classes",
        "augment": "what varies the training images at random: none; crop (padded by 2 pixels on IDX images, an "
                   "eighth of the side on others), flip (left-right) or erase (a rectangle, a quarter of the images), "
                   "alone or comma-separated (crop,flip); full (also --augment alone): all three, without flips on "
                   "MNIST. Default: flip on Fashion-MNIST, none on MNIST, crop,flip on image folders, CSV and CIFAR",
        "test_mirror": f"{TEST_MIRROR_HELP} (default: on when training mirrors images; the run keeps the choice for "
                       "its evaluations and for evaluate, predict, show and export)",
        "seed": "the seed of every random choice; the same seed repeats a run bit for bit",
        "init_from": "start from these weights: a run folder's, a PyTorch state_dict (.pth, .pt; read without "
                     "PyTorch) or an ONNX file's, matched by name",
        "sync_bn": "with --distributed: batch norm's statistics span the whole batch, as in one process (default: "
                   "each rank's share, as DDP)",
        "early_stop": "stop when the test loss has not improved for PATIENCE epochs (the run folder keeps the last "
                      "epoch's weights)",
        "tensorboard": "also write TensorBoard event files into RUN_DIR/tensorboard (needs the tensorboard extra: "
                       "tensorboardX)",
        "snapshot_every": "draw the first convolution layer's kernels and feature maps for the live page every STEPS "
                          "steps, besides at the start and after every epoch",
        "time_budget": "instead of --epochs: as many epochs as fit in DURATION (300s, 5m, 1.5h) on this machine, "
                       "measured by a short probe before the run; the learning-rate schedule spans them",
        "val_split": "an image folder or CSV without a split of its own: the share of each class held out for "
                     "validation (drawn from seed 0: the same images for every --seed, recorded with the run)",
        "image_size": "an image folder or CSV: resize every image's shorter side and centre-crop it to H x W (H "
                      "alone: square) (default: the images' own size, when they all have one)",
        "channels": "an image folder or CSV: 1 (greyscale) or 3 (RGB) (default: 1 when every image is greyscale, "
                    "else 3)",
        "skip_bad": "an image folder or CSV: leave unreadable images out (the run records which) instead of refusing",
        "recipe": "start from a named recipe's settings (options given beside it win; the run keeps its name): "
                  + "; ".join(f"{name}: {recipe['about']} ("
                              + ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in recipe["settings"].items())
                              + ")" for name, recipe in experiment.RECIPES.items()),
        "whiten": "put a frozen patch-whitening layer and a GELU first (airbench): 2x2 filters that decorrelate the "
                  "training images' patches, computed from the first 5,000, and their negatives; the network then "
                  "reads their 2C x 4 channels",
        "whiten_bias_epochs": "with --whiten: train the whitening layer's bias (zero at the start) for the first EPOCHS "
                              "epochs, then freeze it (default 3, airbench's; 0: never trained)",
        "dirac": "start each convolution's first in_channels kernels as the identity (airbench's partial Dirac "
                 "initialisation), the others random",
        "bn_lr_scale": "train batch norm's weights and biases at this multiple of the learning rate, without weight "
                       "decay (airbench trains its biases at 64x with SGD)",
        "lookahead": "Lookahead (Zhang et al., 2019): every 5 steps the weights move halfway back towards where they "
                     "were 5 steps before",
        "ema_decay": "evaluate and save an exponential moving average of the weights, each step keeping this share "
                     "of it (0.999: about the last 1,000 steps), with batch norm's statistics recomputed for it",
        "test_translate": "test-time views also shifted by this many pixels down-right and up-left (airbench's TTA; "
                          "0: none; with --test-mirror, each shift mirrored too)",
    }


def _train_value_rules():
    """argparse keywords beyond what a RunConfig field's type says: value checks, choices, metavars."""
    from .. import experiment
    from ..data.mnist import CLASSES
    from ..models import MODELS
    return {
        "model": {"choices": list(MODELS)},
        "dataset": {"choices": list(CLASSES)},
        "data": {"metavar": "PATH"},
        "epochs": {"type": positive_int},
        "batch_size": {"type": positive_int},
        "optimizer": {"choices": experiment.OPTIMIZERS},
        "lr": {"type": positive_float},
        "schedule": {"choices": experiment.SCHEDULES},
        "label_smoothing": {"type": fraction},
        "augment": {"nargs": "?", "const": "full", "metavar": "{" + ",".join(experiment.AUGMENTATIONS) + "}"},
        "init_from": {"metavar": "RUN_DIR|FILE"},
        "early_stop": {"type": positive_int, "metavar": "PATIENCE"},
        "snapshot_every": {"type": positive_int, "metavar": "STEPS"},
        "time_budget": {"type": duration, "metavar": "DURATION"},
        "val_split": {"type": open_fraction, "metavar": "FRACTION"},
        "image_size": {"type": image_size, "metavar": "H[xW]"},
        "channels": {"type": int, "choices": [1, 3]},
        "recipe": {"choices": list(experiment.RECIPES)},
        "whiten_bias_epochs": {"type": nonnegative_int, "metavar": "EPOCHS"},
        "bn_lr_scale": {"type": positive_float, "metavar": "SCALE"},
        "ema_decay": {"type": open_fraction, "metavar": "DECAY"},
        "test_translate": {"type": int, "choices": range(5), "metavar": "PIXELS"},
    }


def given_settings(args):
    """The RunConfig fields given on ``convnet train``'s command line: {name: value}."""
    from .. import experiment
    return {field.name: getattr(args, field.name) for field in fields(experiment.RunConfig)
            if getattr(args, field.name) is not None}


def add_train_options(parser):
    """One option per RunConfig field, ``--batch-size`` for ``batch_size``. Each defaults to None
    (not given), so the run takes RunConfig's default and ``--resume`` can tell what was given."""
    from .. import experiment
    helps, rules = _train_help(), _train_value_rules()
    types = typing.get_type_hints(experiment.RunConfig)
    for field in fields(experiment.RunConfig):
        # A KeyError here names a new RunConfig field whose help `_train_help` still lacks.
        keywords = {"help": helps[field.name] + _stated_default(field), **rules.get(field.name, {})}
        kind = types[field.name]
        if kind is bool or bool in typing.get_args(kind):  # --no-X too: a recipe's true may be turned off
            keywords["action"] = argparse.BooleanOptionalAction
        else:
            keywords.setdefault("type", next(arg for arg in typing.get_args(kind) or [kind] if arg is not type(None)))
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None, **keywords)


def _stated_default(field):
    """`` (default X)`` for a field whose default is a value, not None (decided elsewhere) or false."""
    if field.default is MISSING or field.default is None or field.default is False:
        return ""
    return f" (default {field.default})"
