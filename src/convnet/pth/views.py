"""A storage's bytes as a NumPy array, and each tensor as a view of it, checked to lie inside."""

import math
import sys

import numpy as np

from .messages import PthError, describe
from .records import StorageRecord, StorageType

_MAX_DIMS = 64  # NumPy's


def view_problem(tensor):
    """What is wrong with ``tensor`` (a `TensorRecord`) as a view of its storage, in one line;
    None if nothing."""
    storage = tensor.storage
    if not isinstance(storage, StorageRecord):
        return f"expected a storage ('storage', torch.<type>Storage, key, location, numel), got {describe(storage)}"
    if not isinstance(storage.type, StorageType):
        return f"expected its storage's type to be torch.<type>Storage, got {describe(storage.type)}"
    if not isinstance(storage.key, str):
        return f"expected its storage's key to be a string, got {describe(storage.key)}"
    if not _is_count(storage.numel):
        return f"expected its storage's size to be an int >= 0, got {describe(storage.numel)}"
    if not _is_count(tensor.offset):
        return f"expected its storage offset to be an int >= 0, got {describe(tensor.offset)}"
    shape, stride = tensor.shape, tensor.stride
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS and all(_is_count(size) for size in shape)):
        return f"expected its shape to be a tuple of at most {_MAX_DIMS} ints >= 0, got {describe(shape)}"
    if not (isinstance(stride, tuple) and len(stride) == len(shape) and all(_is_count(step) for step in stride)):
        return f"expected its stride to be a tuple of {len(shape)} ints >= 0 (one per dimension), got {describe(stride)}"
    if tensor.metadata:
        return (f"holds tensor metadata ({describe(tensor.metadata)}): a lazily negated or conjugated view; save it "
                f"as t.resolve_neg() instead")
    if math.prod(shape) == 0:
        # NumPy refuses a shape whose nonzero sizes multiply past its byte count, even with no elements.
        if math.prod(size for size in shape if size) * 8 >= 2**63:
            return f"shape {shape} is too large for NumPy (even with no elements)"
        return None
    extent = 0  # the farthest element from the first, over the dimensions seen so far
    for step, size in sorted((step, size) for step, size in zip(stride, shape) if size > 1):
        # Each dimension, by increasing stride, must step past everything the smaller ones reach,
        # so no two indices share an element; that holds for all views made by slicing,
        # transposing and selecting, and fails for expanded ones (stride 0).
        if step <= extent:
            return (f"its elements overlap in storage (shape {shape}, stride {stride}), as an expanded view's do; "
                    f"load_pth reads tensors whose elements are distinct: save it as t.contiguous() instead")
        extent += step * (size - 1)
    if tensor.offset + extent >= storage.numel:
        return (f"its view (offset {tensor.offset}, shape {shape}, stride {stride}) reaches element "
                f"{tensor.offset + extent} of its storage {describe(storage.key)}, which holds {storage.numel} elements")
    return None


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def stored_dtype(dtype):
    """The NumPy dtype of a storage's bytes: bfloat16's are read as uint16 bit patterns."""
    return np.dtype(np.uint16 if dtype == "bfloat16" else dtype)


def storage_values(path, storage, raw, byteorder):
    """A storage's elements from its bytes ``raw`` (uint8), as a native-endian array (bfloat16
    widened to float32)."""
    values = raw.view(stored_dtype(storage.type.dtype))
    if byteorder != sys.byteorder:
        values.byteswap(inplace=True)
    if storage.type.dtype == "bool" and raw.size and raw.max() > 1:
        raise PthError(f"{path}: storage {describe(storage.key)} holds bool bytes other than 0 and 1 (the largest is "
                       f"{raw.max()})")
    if storage.type.dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values


def view(values, tensor):
    """``tensor``'s view of ``values`` (its storage), which `view_problem` found to lie inside it."""
    if math.prod(tensor.shape) == 0:
        return np.empty(tensor.shape, values.dtype)
    # A dimension of size 1 is never stepped along; its stride (any number in torch) is set to 0.
    strides = tuple(step * values.itemsize if size > 1 else 0 for step, size in zip(tensor.stride, tensor.shape))
    return np.ndarray(tensor.shape, values.dtype, buffer=values, offset=tensor.offset * values.itemsize,
                      strides=strides)
