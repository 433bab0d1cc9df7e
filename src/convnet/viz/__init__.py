"""Pictures of what happens inside a CNN and of its training (matplotlib, no screen needed)."""

from .training import confusion_figure, curves_figure, save_confusion, save_curves

__all__ = ["curves_figure", "confusion_figure", "save_curves", "save_confusion"]
