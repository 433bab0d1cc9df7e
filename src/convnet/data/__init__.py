"""Datasets and loading: IDX files (MNIST, Fashion-MNIST)."""

from . import mnist
from .idx import IdxError, read_idx, write_idx
from .mnist import CLASSES, DatasetNotFound

__all__ = ["mnist", "read_idx", "write_idx", "IdxError", "DatasetNotFound", "CLASSES"]
