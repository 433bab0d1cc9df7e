"""Matplotlib set-up shared by every picture: the Agg backend (no screen needed), one style."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from ..files import atomic_write  # noqa: E402


def new_figure(rows=1, columns=1, size=(6, 4), **kwargs):
    return plt.subplots(rows, columns, figsize=size, layout="constrained", **kwargs)


def png_bytes(figure, dpi=110):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


def save(figure, path, dpi=110):
    """Write ``figure`` as a PNG atomically and close it."""
    atomic_write(path, png_bytes(figure, dpi))
