"""Pictures of a training run: learning curves and the confusion matrix."""

import numpy as np

from .figures import fonts_for, new_figure, plt, save


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
