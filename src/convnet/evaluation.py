"""Evaluation: a model's loss, accuracy and confusion matrix over a loader's batches, as the
training loop scores every epoch and ``convnet evaluate`` scores a run."""

import numpy as np

from . import functional as F
from . import nn
from .distributed import ONE_PROCESS, batch_share
from .errors import ConvnetError
from .tensor import no_grad


class NonFiniteOutput(ConvnetError, ValueError):
    """A model answered NaN or infinity: its figures would be meaningless, so there are none."""


def evaluate(model, loader, group=ONE_PROCESS, mirror=False, translate=0):
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` over ``loader`` (with
    ``mirror``, of its outputs averaged over each image and its mirror image, and with ``translate``
    over views shifted by that many pixels too: `nn.logits`), whether they were ``mirrored`` and by how
    many pixels views were shifted (``translate``);
    `NonFiniteOutput` if any output is NaN or infinite (an argmax over NaN is not a prediction).
    With the ranks of a distributed ``group``, each takes its share of every batch and the sums
    are summed: every rank gets one process's figures."""
    classes = len(loader.dataset.classes)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    total_loss, count = 0.0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for images, labels in loader.batches(0):
            images, labels = batch_share(group, images, labels)
            logits = nn.logits(model, images, mirror, translate)
            finite = np.isfinite(logits.numpy()).all(axis=1)
            if not finite.all():
                model.train(was_training)
                raise NonFiniteOutput(f"evaluate: the model's outputs are NaN or infinite for {int((~finite).sum())} "
                                      f"of {len(labels)} images in a batch; its weights are damaged or diverged")
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            np.add.at(confusion, (labels, logits.numpy().argmax(axis=1)), 1)
            count += len(labels)
    if group.size > 1:
        group.sum(confusion)
        totals = np.array([total_loss, count], dtype=np.float64)
        group.sum(totals)
        total_loss, count = float(totals[0]), int(totals[1])
    model.train(was_training)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"loss": total_loss / max(count, 1), "accuracy": float(np.trace(confusion) / max(count, 1)),
            "per_class_accuracy": per_class.tolist(), "confusion": confusion.tolist(), "mirrored": bool(mirror),
            "translate": int(translate)}
