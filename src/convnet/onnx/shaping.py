"""ONNX's shape ops beyond Reshape and Concat, as a loaded model runs them: Transpose (ShuffleNet's
channel shuffle, ConvNeXt's channels-last LayerNorm), Slice, Split (and SplitToSequence), Pad, Expand,
ConstantOfShape.

Each takes a Tensor (gradients flow through convnet's Permute, Index and `windows.PadConstant`)
or a NumPy array (a constant, folded at load) and returns the same kind.
"""

import numpy as np

from ..ops import Add, Permute
from ..tensor import Tensor
from .windows import pad_constant


def _ints(values):
    return [int(value) for value in np.atleast_1d(np.asarray(values.data if isinstance(values, Tensor) else values))]


def transpose(data, perm=None):
    """The axes of ``data`` in the order ``perm`` (reversed when absent)."""
    perm = tuple(range(data.ndim))[::-1] if perm is None else tuple(int(axis) for axis in perm)
    return Permute.apply(data, dims=perm) if isinstance(data, Tensor) else np.transpose(data, perm)


def slice_(data, starts, ends, axes=None, steps=None):
    """data[starts:ends:steps] along ``axes`` (all leading axes when absent), ONNX's clamping of
    out-of-range bounds (INT64_MAX for 'to the end') being Python's."""
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else [axis % data.ndim for axis in _ints(axes)]
    steps = [1] * len(starts) if steps is None else _ints(steps)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        size = data.shape[axis]
        # ONNX clamps to [0, size] going forward and [-1, size - 1] going backward; beyond, Python's
        # negative indices would wrap, so a bound before the start is given as None.
        if step < 0 and end < -size:
            end = None
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def split(data, split=None, axis=0, num_outputs=None, outputs=1):
    """``data`` cut along ``axis`` into pieces of the sizes ``split`` or, without it, into
    ``outputs`` pieces as equal as ONNX makes them (the last one smaller)."""
    size = data.shape[axis]
    if split is None:
        pieces = num_outputs or outputs
        chunk = -(-size // pieces)
        split = [min(chunk, size - chunk * index) for index in range(pieces)]
    bounds = np.cumsum([0, *_ints(split)])
    index = [slice(None)] * data.ndim
    parts = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        index[axis % data.ndim] = slice(int(start), int(end))
        parts.append(data[tuple(index)])
    return tuple(parts)


def split_to_sequence(data, sizes=None, axis=0, keepdims=1):
    """ONNX's SplitToSequence: ``data`` cut along ``axis`` into a tuple of pieces of the ``sizes``
    given (a scalar: pieces of that size, the last one smaller), or without them into pieces of
    size 1, which lose the axis unless ``keepdims`` (the dynamo exporter's torch.chunk)."""
    size, axis = data.shape[axis], axis % data.ndim
    if sizes is None:
        pieces = split(data, [1] * size, axis)
        return pieces if keepdims else tuple(piece.reshape(piece.shape[:axis] + piece.shape[axis + 1:])
                                             for piece in pieces)
    sizes = np.asarray(sizes)
    if sizes.ndim == 0:
        whole, rest = divmod(size, int(sizes))
        sizes = [int(sizes)] * whole + ([rest] if rest else [])
    return split(data, sizes, axis)


def sequence_at(sequence, position):
    """ONNX's SequenceAt: the element at ``position`` (negative counts from the end)."""
    return sequence[int(position)]


def pad(data, pads, constant_value=None, axes=None):
    """``data`` padded with ``constant_value`` (0 when absent): pads [x1_begin, x2_begin, ...,
    x1_end, x2_end, ...] over ``axes`` (all when absent); a negative amount crops."""
    pads = _ints(pads)
    axes = list(range(data.ndim)) if axes is None else [axis % data.ndim for axis in _ints(axes)]
    before, after = [0] * data.ndim, [0] * data.ndim
    for position, axis in enumerate(axes):
        before[axis], after[axis] = pads[position], pads[position + len(axes)]
    value = 0 if constant_value is None else np.asarray(constant_value.data if isinstance(constant_value, Tensor)
                                                        else constant_value).item()
    return pad_constant(data, before, after, value)


def expand(data, shape):
    """``data`` broadcast with ``shape`` (ONNX's Expand: either may stretch the other's ones)."""
    target = np.broadcast_shapes(tuple(data.shape), tuple(_ints(shape)))
    if isinstance(data, Tensor):
        return data if tuple(data.shape) == target else Add.apply(data, np.zeros(target, dtype=data.dtype))
    return np.broadcast_to(data, target).copy()


def constant_of_shape(shape, value=None):
    """An array of ``shape`` filled with ``value`` (a one-element tensor; 0.0 float32 when absent)."""
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    return np.full(tuple(_ints(shape)) if np.size(shape) else (), value.reshape(-1)[0], dtype=value.dtype)
