"""ONNX's Pad (constant mode) and the pooling that no convnet layer expresses: windows over any
number of spatial axes (1-D and 3-D included), with dilation, padding wider than half the kernel,
``ceil_mode`` and MaxPool's second output, the indices of the maxima.

Pooling gathers each window's taps (one strided view of the padded input per kernel offset) into a
stack, (taps, N, C, *out), and reduces it: max, or sum over the count of positions each window
covers. `Taps` is the differentiable gather: its backward adds each tap's gradient back onto its
strided view, as col2im does. Along an axis of size H with padding (before, after), kernel k,
stride s and dilation d (ONNX's rule, which is PyTorch's):

    H' = floor((H + before + after - d*(k-1) - 1) / s) + 1                 (ceil_mode=0)
    H' = ceil(...) + 1, less one when the last window would start in the after-padding (ceil_mode=1)
"""

import itertools
import math

import numpy as np

from ..ops import Div, Sum
from ..tensor import Function, Tensor


def _pad_array(x, before, after, value):
    """x (N, C, *spatial) padded (or, for negative amounts, cropped) on its trailing axes."""
    index = [slice(None)] * x.ndim
    widths = [(0, 0)] * x.ndim
    lead = x.ndim - len(before)
    for axis, (b, a) in enumerate(zip(before, after), start=lead):
        index[axis] = slice(max(-b, 0), x.shape[axis] - max(-a, 0))
        widths[axis] = (max(b, 0), max(a, 0))
    cropped = x[tuple(index)]
    if not any(b or a for b, a in widths):
        return cropped
    return np.pad(cropped, widths, constant_values=np.asarray(value).astype(x.dtype))


class PadConstant(Function):
    """out = x padded with ``value`` by ``before`` and ``after`` on its last axes (negative: cropped);
    the gradient is the interior, zero where cropped."""

    def forward(self, x, before, after, value):
        self.shape, self.before, self.after = x.shape, before, after
        return _pad_array(x, before, after, value)

    def backward(self, grad):
        return _pad_array(grad, [-b for b in self.before], [-a for a in self.after], 0)


def pad_constant(x, before, after, value=0.0):
    """``x`` padded on its last ``len(before)`` axes with ``value``; a Tensor for a Tensor."""
    before, after = [int(b) for b in before], [int(a) for a in after]
    if isinstance(x, Tensor):
        return PadConstant.apply(x, before=before, after=after, value=value)
    return _pad_array(np.asarray(x), before, after, value)


def pooled_sizes(sizes, kernel, strides, dilations, before, after, ceil_mode):
    """The output's spatial sizes and, per axis, how far past the input its windows reach at the end."""
    out, reach = [], []
    for size, k, s, d, b, a in zip(sizes, kernel, strides, dilations, before, after):
        span = d * (k - 1) + 1
        count = (size + b + a - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (count - 1) * s >= size + b:
            count -= 1
        out.append(count)
        reach.append((count - 1) * s + span - size - b)
    return out, reach


def _tap_index(offsets, strides, dilations, out):
    return (slice(None), slice(None)) + tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                                              for o, s, d, n in zip(offsets, strides, dilations, out))


class Taps(Function):
    """The windows' taps, (taps, N, C, *out), from x (N, C, *spatial) padded with ``fill``."""

    def forward(self, x, kernel, strides, dilations, before, reach, out, fill):
        self.before, self.reach, self.geometry = before, reach, (strides, dilations, out)
        padded = _pad_array(x, before, reach, fill)
        self.padded_shape, self.offsets = padded.shape, list(itertools.product(*(range(k) for k in kernel)))
        return np.stack([padded[_tap_index(offsets, strides, dilations, out)] for offsets in self.offsets])

    def backward(self, grad):
        full = np.zeros(self.padded_shape, dtype=grad.dtype)
        for tap, offsets in zip(grad, self.offsets):
            full[_tap_index(offsets, *self.geometry)] += tap
        return _pad_array(full, [-b for b in self.before], [-r for r in self.reach], 0)


def window_pool(x, kind, kernel, strides, dilations, before, after, ceil_mode=0, count_include_pad=0,
                storage_order=0):
    """ONNX's MaxPool (``kind`` 'max') or AveragePool ('average') over x (N, C, *spatial) ->
    (N, C, *out); for 'max_with_indices' also the int64 indices of the maxima into x flattened
    (row-major planes, or column-major with ``storage_order``=1)."""
    sizes = x.shape[2:]
    out, reach = pooled_sizes(sizes, kernel, strides, dilations, before, after, ceil_mode)
    arguments = dict(kernel=kernel, strides=strides, dilations=dilations, before=before, reach=reach, out=out)
    data = x.data if isinstance(x, Tensor) else np.asarray(x)

    def taps_of(fill):
        return Taps.apply(x, fill=fill, **arguments) if isinstance(x, Tensor) else Taps().forward(data, fill=fill,
                                                                                                  **arguments)
    if kind == "average":
        taps = taps_of(0)
        # The positions each window covers: within the padded input, or within the input alone.
        covered, around = np.ones(sizes, dtype=data.dtype), (before, reach)
        if count_include_pad:
            covered, around = _pad_array(covered, before, after, 1), ([0] * len(sizes), np.subtract(reach, after))
        counts = Taps().forward(covered[None, None], kernel, strides, dilations, *around, out, 0).sum(axis=0)
        total = Sum.apply(taps, axis=0) if isinstance(taps, Tensor) else taps.sum(axis=0)
        return Div.apply(total, counts) if isinstance(total, Tensor) else (total / counts).astype(data.dtype)
    taps = taps_of(-np.inf if data.dtype.kind == "f" else np.iinfo(data.dtype).min)
    pooled = taps.max(axis=0)
    if kind == "max":
        return pooled
    return pooled, _indices(np.argmax(taps.data if isinstance(taps, Tensor) else taps, axis=0), data.shape,
                            kernel, strides, dilations, before, out, storage_order)


def _indices(tap, shape, kernel, strides, dilations, before, out, storage_order):
    """The flat index into x of each window's winning ``tap`` (an index into the kernel's offsets)."""
    offsets = np.unravel_index(tap, kernel)
    planes = np.arange(math.prod(shape[:2])).reshape(shape[:2] + (1,) * len(out))
    sizes = shape[2:]
    positions = []
    for axis, (offset, s, d, b, n) in enumerate(zip(offsets, strides, dilations, before, out)):
        grid = np.arange(n).reshape((-1,) + (1,) * (len(out) - axis - 1))
        positions.append(grid * s + offset * d - b)
    if storage_order:
        positions, sizes = positions[::-1], sizes[::-1]
    flat = np.zeros(tap.shape, dtype=np.int64)
    for position, size in zip(positions, sizes):
        flat = flat * size + position
    return (flat + planes * math.prod(shape[2:])).astype(np.int64)
