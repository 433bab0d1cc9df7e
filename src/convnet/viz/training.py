"""Pictures of a training run: learning curves, test accuracy against wall-clock minutes, and the
confusion matrix; and the minutes a run took to reach an accuracy (`minutes_to_reach`), the number
the accuracy-against-minutes picture shows, so that a table and the picture agree."""

import numpy as np

from ..errors import ConvnetError, InvalidValue
from .figures import fonts_for, new_figure, plt, save

# Issue 32's targets: test accuracies to reach within as few minutes of training as possible.
ACCURACY_TARGETS = (0.93, 0.94, 0.945, 0.95)


class UnknownMinutes(ConvnetError, ValueError):
    """The history reached an accuracy at an epoch whose wall-clock time it does not hold."""


def curves_figure(history, train_conditions=()):
    """Loss and accuracy per epoch, train and test, from a run's metric records.

    ``train_conditions`` (e.g. ``["augmented", "label smoothing 0.1"]``) go into the train
    legend: they are why train loss can sit far above test loss without anything being wrong.
    """
    epochs = [record["epoch"] for record in history]
    train_label = f"train ({', '.join(train_conditions)})" if train_conditions else "train"
    figure, (loss_axes, accuracy_axes) = new_figure(1, 2, size=(10, 4))
    loss_axes.plot(epochs, [r["train_loss"] for r in history], "o-", label=train_label)
    loss_axes.plot(epochs, [r["test_loss"] for r in history], "s-", label="test")
    loss_axes.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    accuracy_axes.plot(epochs, [r["train_accuracy"] for r in history], "o-", label=train_label)
    accuracy_axes.plot(epochs, [r["test_accuracy"] for r in history], "s-", label="test")
    accuracy_axes.set(title="Accuracy", xlabel="epoch", ylabel="fraction correct")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    return figure


def confusion_figure(confusion, classes):
    """Rows: true class; columns: predicted class; each row normalised to fractions. Class names
    in any script are drawn in a font that has their letters (`fonts_for`)."""
    families = fonts_for("".join(classes))
    with plt.rc_context({"font.family": families} if families else {}):
        return _confusion_figure(np.asarray(confusion), classes)


def _confusion_figure(confusion, classes):
    fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = max(6.0, 0.6 * len(classes) + 2)
    figure, axes = new_figure(size=(size, size * 0.85))
    image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row-normalised)")
    for (row, column), value in np.ndenumerate(fractions):
        if value >= 0.005:
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return figure


def save_curves(history, path, train_conditions=()):
    save(curves_figure(history, train_conditions), path)


def save_confusion(confusion, classes, path):
    save(confusion_figure(confusion, classes), path)


def cumulative_minutes(history):
    """Wall-clock minutes of training (steps and test evaluation: each record's ``"seconds"``, as
    `convnet.train.Trainer` records them) done by the end of each epoch of ``history`` (one record
    per epoch): a list as long as it. None from the first epoch without ``"seconds"`` on (a run
    trained before convnet timed its epochs), since every later epoch's total is unknown too.

    >>> cumulative_minutes([{"seconds": 30.0}, {"seconds": 90.0}, {}, {"seconds": 60.0}])
    [0.5, 2.0, None, None]
    """
    minutes, total = [], 0.0
    for record in history:
        total = total + record["seconds"] / 60 if total is not None and "seconds" in record else None
        minutes.append(total)
    return minutes


def minutes_to_reach(history, target):
    """The wall-clock minutes of training (`cumulative_minutes`) at the end of the first epoch of
    ``history`` whose ``test_accuracy`` is at least ``target`` (a fraction in [0, 1]); None if no
    epoch reaches it. `UnknownMinutes` if the first that does ends at an unknown time.

    >>> history = [{"test_accuracy": 0.92, "seconds": 60.0}, {"test_accuracy": 0.94, "seconds": 90.0}]
    >>> minutes_to_reach(history, 0.94), minutes_to_reach(history, 0.95)
    (2.5, None)
    """
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 <= target <= 1:
        raise InvalidValue(f"minutes_to_reach: expected a target accuracy in [0, 1], got {target!r}")
    minutes = cumulative_minutes(history)
    for index, record in enumerate(history):
        if record["test_accuracy"] >= target:
            if minutes[index] is None:
                untimed = next(k for k, total in enumerate(minutes) if total is None)
                raise UnknownMinutes(f"epoch {index + 1} reached test accuracy {record['test_accuracy']:.4f} >= "
                                     f"{target}, but epoch {untimed + 1} has no wall-clock seconds (trained before "
                                     f"convnet timed its epochs): the minutes to reach it are unknown")
            return minutes[index]
    return None


def accuracy_minutes_figure(runs, targets=ACCURACY_TARGETS):
    """Test accuracy against wall-clock minutes of training: for each of ``runs`` ((label, history)
    pairs, a history being one record per epoch) a line with a dot per epoch at (`cumulative_minutes`,
    ``test_accuracy``), and a dashed line at each of ``targets``. Epochs of unknown time are not
    drawn; a run with none is named under the axes instead of being drawn."""
    runs = list(runs)
    if not runs:
        raise InvalidValue("accuracy_minutes_figure: expected at least one (label, history) pair, got none")
    figure, axes = new_figure(size=(7, 4.5))
    untimed = []
    for label, history in runs:
        points = [(minutes, record["test_accuracy"])
                  for minutes, record in zip(cumulative_minutes(history), history) if minutes is not None]
        if not points:
            untimed.append(str(label))
            continue
        minutes, accuracy = zip(*points)
        axes.plot(minutes, accuracy, "o-", markersize=4, label=str(label))
    for target in targets:  # labels starting with "_" stay out of the legend
        axes.axhline(target, linestyle="--", linewidth=0.8, color="0.45", label=f"_target {target}")
        axes.annotate(f"{target:g}", (1, target), xycoords=("axes fraction", "data"), xytext=(3, 0),
                      textcoords="offset points", va="center", fontsize=8, color="0.35")
    axes.set(title="Test accuracy against wall-clock minutes of training", xlabel="minutes (training and test "
             "evaluation)", ylabel="test accuracy")
    axes.set_xlim(left=0)  # the run's start: a recipe's head start in setting up would show
    axes.grid(alpha=0.3)
    if len(untimed) < len(runs):
        axes.legend(loc="lower right")
    if untimed:
        axes.text(0.01, 0.01, f"not drawn, their epochs were not timed: {', '.join(untimed)}",
                  transform=axes.transAxes, fontsize=8, color="0.35")
    return figure


def save_accuracy_minutes(runs, path, targets=ACCURACY_TARGETS):
    save(accuracy_minutes_figure(runs, targets), path)
