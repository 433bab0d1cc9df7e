"""Scoring a model: its figures on a test set (``convnet evaluate``: `evaluate_run`, `evaluate_model`)
and its answers for image files (``convnet predict``: `Classifier`).
"""

from pathlib import Path

import numpy as np

from .. import functional as F
from .. import nn
from ..data.loader import DataLoader
from ..errors import InvalidValue
from ..tensor import no_grad
from ..train import evaluate
from .build import DataChanged, absolute_data, data_changes, evaluation_loader, load_datasets
from .load import load_model, with_mirroring
from .loaded_model import IMAGE_SHAPE
from .run import load_run


def evaluate_run(run_dir, data=None, mirror=None):
    """(class names, `evaluate`'s result, warnings) of a run folder's model on its test set, read
    from ``data`` if given. A test set other than the run's is refused (`DataChanged`) unless
    ``data`` asked for it; then the warnings say so. ``mirror``: test-time mirroring on or off
    (None: as the run evaluated)."""
    config, model, meta = load_run(run_dir)
    config = with_mirroring(config, mirror, run_dir)
    if data is not None:
        config.data = absolute_data(data)
    test, = load_datasets(config, ("test",))
    changes = data_changes(meta, {"test": test})
    if changes and data is None:
        raise DataChanged(f"{run_dir}: {'; '.join(changes)} (pass --data with the run's files, or --data DIR to "
                          f"evaluate on other data on purpose)")
    warnings = [f"{run_dir}: {change}; the figures below are for {config.data}" for change in changes]
    return test.classes, evaluate(model, evaluation_loader(config, test), mirror=config.test_time_mirroring), warnings


def evaluate_model(target, data=None, mirror=None):
    """`evaluate_run` for a run folder; for an ONNX file (or a zoo model) the same figures on its
    dataset's test set, with the notes on how it was read as the warnings."""
    if Path(target).is_dir():
        return evaluate_run(target, data, mirror)
    loaded = load_model(target, data, mirror)
    if loaded.input_shape != IMAGE_SHAPE:
        raise InvalidValue(f"{target} takes images of shape {loaded.input_shape}; {loaded.config.dataset}'s are "
                         f"{IMAGE_SHAPE}, so it cannot be evaluated on them")
    test, = load_datasets(loaded.config, ("test",))
    if len(loaded.classes) != len(test.classes):
        raise InvalidValue(f"{target} answers {len(loaded.classes)} classes; {loaded.config.dataset} has "
                         f"{len(test.classes)}")
    loader = DataLoader(test, 1000, transform=loaded.normalize)
    return test.classes, evaluate(loaded.model, loader, mirror=loaded.mirror), loaded.notes


class Classifier:
    """A `LoadedModel` that answers for image files, preprocessed as it was trained."""

    def __init__(self, loaded):
        self.loaded = loaded

    def probabilities(self, images):
        """Model inputs (N, C, H, W) -> class probabilities (N, classes)."""
        with no_grad():
            return F.softmax(nn.logits(self.loaded.model, images, self.loaded.mirror), dim=1).numpy()

    def top(self, path, k):
        """([(class name, probability)] of the ``k`` likeliest classes, conversion notes) of an image file."""
        image, notes = self.loaded.read(path)
        probabilities = self.probabilities(image[None])[0]
        return [(self.loaded.classes[i], float(probabilities[i])) for i in np.argsort(probabilities)[::-1][:k]], notes
