"""Datasets and loading: IDX files (MNIST, Fashion-MNIST), image folders, batching and augmentation."""

from . import mnist, transforms
from .idx import IdxError, read_idx, write_idx
from .images import ImageError, image_folder, read_image
from .loader import ArrayDataset, DataLoader
from .mnist import CLASSES, DatasetNotFound

__all__ = ["mnist", "transforms", "read_idx", "write_idx", "IdxError", "DatasetNotFound", "CLASSES", "ArrayDataset",
           "DataLoader", "image_folder", "read_image", "ImageError"]
