"""Scoring a model: its figures on a test set (``convnet evaluate``: `evaluate_run`, `evaluate_model`)
and its answers for image files (``convnet predict``: `Classifier`).
"""

from pathlib import Path

import numpy as np

from .. import functional as F
from .. import nn
from ..data import mnist
from ..data.loader import DataLoader
from ..errors import InvalidValue
from ..tensor import no_grad
from ..evaluation import evaluate
from .build import evaluation_loader
from .config import IMAGE_KINDS
from .load import load_model, with_mirroring
from .loaded_model import IMAGE_SHAPE
from .run import load_run
from .sources import (DataChanged, absolute_data, check_same_kind, data_changes, data_kind, load_datasets,
                      recorded_input)


def evaluate_run(run_dir, data=None, mirror=None):
    """(class names, `evaluate`'s result, warnings) of a run folder's model on its test set (an
    image folder's: its validation images), read from ``data`` if given. A test set other than the
    run's is refused (`DataChanged`) unless ``data`` asked for it; then the warnings say so, and
    other classes or another image shape are refused. ``mirror``: test-time mirroring on or off
    (None: as the run evaluated)."""
    config, model, meta = load_run(run_dir)
    spec = recorded_input(run_dir, meta, config)
    config = with_mirroring(config, mirror, run_dir)
    test = _test_set(config, spec, data, run_dir)
    changes = data_changes(meta, {"test": test})
    if changes and data is None:
        raise DataChanged(f"{run_dir}: {'; '.join(changes)} (pass --data with the run's files, or --data PATH to "
                          f"evaluate on other data on purpose)")
    warnings = [f"{run_dir}: {change}; the figures below are for {config.data}" for change in changes]
    return test.classes, evaluate(nn.fuse_for_inference(model), evaluation_loader(config, test, spec),
                                  mirror=config.test_time_mirroring, translate=config.test_translate), warnings


def _test_set(config, spec, data, where):
    """The test set of ``config``'s data, or of ``data`` (other data of the same classes and shape:
    an image folder is opened at the run's channels and size)."""
    if data is not None:
        config.data = absolute_data(data)
        kind = data_kind(config.data, config.dataset)
        if config.is_idx != (kind in mnist.CLASSES):
            trained = config.dataset if spec is None else f"{spec['kind']} data"
            raise InvalidValue(f"--data {data} holds {kind} data; {where} was trained on {trained}")
        config.dataset = kind
        if spec is not None and kind in IMAGE_KINDS:
            config.channels, config.image_size = spec["channels"], list(spec["size"])
    elif spec is not None and config.data is None:
        raise InvalidValue(f"{where} was trained on {spec['kind']} data; pass --data PATH with its images")
    test, = load_datasets(config, ("test",))
    if data is not None and spec is not None:
        check_same_kind(where, spec, test)
    return test


def evaluate_model(target, data=None, mirror=None):
    """`evaluate_run` for a run folder; for an ONNX file (or a zoo model) the same figures on its
    dataset's test set (an ONNX file of other data: on ``data``'s), with the notes on how it was
    read as the warnings."""
    if Path(target).is_dir():
        return evaluate_run(target, data, mirror)
    loaded = load_model(target, data, mirror)
    if loaded.spec is not None:
        test = _test_set(loaded.config, loaded.spec, data, target)
    elif loaded.input_shape != IMAGE_SHAPE:
        raise InvalidValue(f"{target} takes images of shape {loaded.input_shape}; {loaded.config.dataset}'s are "
                           f"{IMAGE_SHAPE}, so it cannot be evaluated on them")
    else:
        test, = load_datasets(loaded.config, ("test",))
    if len(loaded.classes) != len(test.classes):
        raise InvalidValue(f"{target} answers {len(loaded.classes)} classes; {loaded.config.dataset} has "
                           f"{len(test.classes)}")
    loader = DataLoader(test, 1000, transform=loaded.normalize)
    return (test.classes, evaluate(nn.fuse_for_inference(loaded.model), loader, mirror=loaded.mirror,
                                   translate=loaded.translate), loaded.notes)


class Classifier:
    """A `LoadedModel` that answers for image files, preprocessed as it was trained."""

    def __init__(self, loaded):
        self.loaded = loaded

    def probabilities(self, images):
        """Model inputs (N, C, H, W) -> class probabilities (N, classes)."""
        with no_grad():
            return F.softmax(nn.logits(self.loaded.model, images, self.loaded.mirror, self.loaded.translate),
                             dim=1).numpy()

    def top(self, path, k):
        """([(class name, probability)] of the ``k`` likeliest classes, conversion notes) of an image file."""
        image, notes = self.loaded.read(path)
        probabilities = self.probabilities(image[None])[0]
        return [(self.loaded.classes[i], float(probabilities[i])) for i in np.argsort(probabilities)[::-1][:k]], notes
