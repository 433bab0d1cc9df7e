"""What unpickling a ``torch.save`` file's ``data.pkl`` builds, in place of torch's objects.

The records are immutable and checked only after unpickling, when the state_dict key each belongs
to is known (every field may hold anything the pickle put there).
"""

from typing import NamedTuple

# The storage types torch.save names (torch.<name>) for the dtypes read here, and their NumPy dtypes.
STORAGE_DTYPES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
                  "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                  "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
SUPPORTED = "float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8 and bool"


class StorageType(NamedTuple):
    """What the pickle's torch.<X>Storage stands for: the dtype of its elements."""
    dtype: str


class StorageRecord(NamedTuple):
    """A persistent reference ``('storage', type, key, location, numel)`` to the member data/<key>."""
    type: object
    key: object
    numel: object


class TensorRecord(NamedTuple):
    """A tensor: a view (offset, shape, stride, in elements) of a storage."""
    storage: object
    offset: object
    shape: object
    stride: object
    metadata: object


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stands in for torch._utils._rebuild_tensor_v2: records the view. Gradients and hooks
    are not part of a tensor's values."""
    return TensorRecord(storage, storage_offset, size, stride, metadata)


def rebuild_parameter(data, requires_grad, backward_hooks):
    """Stands in for torch._utils._rebuild_parameter (``state_dict(keep_vars=True)``): its data."""
    return data
