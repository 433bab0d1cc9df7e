"""Datasets and loading: IDX files (MNIST, Fashion-MNIST), image folders, batching and augmentation."""

from . import mnist, transforms
from .idx import IdxError, read_idx, write_idx
from .images import ImageError, read_image
from .loader import ArrayDataset, DataLoader
from .datasets import CachedImages  # the Dataset protocol: see datasets' docstring
from .folders import Manifest, recognise
from .own_images import CsvImages, ImageData, ImageFolder, open_images
from .mnist import CLASSES, DatasetNotFound
from . import cifar
from .shapes import shapes  # so convnet.data.shapes(root, ...) is the generator function, not its module

__all__ = ["mnist", "transforms", "read_idx", "write_idx", "IdxError", "DatasetNotFound", "CLASSES", "ArrayDataset",
           "DataLoader", "read_image", "ImageError"]
__all__ += ["CachedImages", "Manifest", "recognise", "CsvImages", "ImageData", "ImageFolder", "open_images"]
__all__ += ["cifar", "shapes"]
