"""A pooling window's geometry beyond the plain case: padding on four sides, ``ceil_mode`` and
dilation, as PyTorch defines them (and ONNX's MaxPool and AveragePool, for the four sides).

Along one axis of size H, with padding (before, after), kernel k, stride s and dilation d, a
window spans d*(k-1) + 1 positions and

    H' = floor((H + before + after - d*(k-1) - 1) / s) + 1                 (ceil_mode=False)
    H' = ceil((H + before + after - d*(k-1) - 1) / s) + 1, less one when
         the last window would start in the after-padding, (H'-1)*s >= H + before   (ceil_mode=True)

ceil_mode's extra windows reach past the padded input. The ops treat the stretch they reach as
more padding at the bottom and right (its ``reach``: -inf for max pooling, which never wins;
zeros for average pooling, which its divisor leaves out), so the plain window code runs them;
when ceil_mode adds no window the reach is the padding itself, and the fast kernels run as before.

Average pooling divides each window's sum by how many positions it covers: within the padded
input [-before, H + after) with count_include_pad (PyTorch's rule, which ONNX's AveragePool
follows for asymmetric padding too), within the input [0, H) without.
"""

import numpy as np

from .. import _checks
from ..errors import InvalidType, InvalidValue
from ._windows import four_sides


def pool_output_size(size, kernel, stride, dilation, before, after, ceil_mode):
    """H' of a pooling window along one axis, PyTorch's formula (see the module docstring)."""
    span = dilation * (kernel - 1) + 1
    out = (size + before + after - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


def pool_reach(input_hw, kernel, stride, padding, dilation, ceil_mode):
    """(out_hw, reach): the output's (H', W') and the padding (top, bottom, left, right) the
    windows reach, which ceil_mode's extra windows stretch at the bottom and right."""
    out_hw, reach = [], []
    for size, k, s, d, (before, after) in zip(input_hw, kernel, stride, dilation, (padding[:2], padding[2:])):
        out = pool_output_size(size, k, s, d, before, after, ceil_mode)
        out_hw.append(out)
        reach += [before, max(after, (out - 1) * s + d * (k - 1) + 1 - size - before)]
    return tuple(out_hw), tuple(reach)


def window_counts(input_hw, kernel, stride, padding, out_hw, count_include_pad):
    """How many positions each window covers: k*k' (an int) where every window lies within the
    padded input and the padding counts, else an (H', W') array of counts within [-before,
    H + after) (``count_include_pad``) or within the input [0, H)."""
    counts = []
    for size, k, s, (before, after), out in zip(input_hw, kernel, stride, (padding[:2], padding[2:]), out_hw):
        start = np.arange(out) * s - before
        low, high = (-before, size + after) if count_include_pad else (0, size)
        counts.append(np.minimum(start + k, high) - np.maximum(start, low))
    if count_include_pad and counts[0].min() == kernel[0] and counts[1].min() == kernel[1]:
        return kernel[0] * kernel[1]
    return np.outer(*counts)


def pool_arguments(op, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Check a pooling op's arguments -> (input, kernel, stride, padding, dilation, out_hw, reach).

    padding: an int, (pH, pW) or (top, bottom, left, right), each at most half the kernel (as
    PyTorch requires); out_hw and reach as `pool_reach` gives them.
    """
    input = _checks.as_tensor(op, "input", input)
    _checks.check_shape(op, "input", input, "(N, C, H, W)")
    kernel = _checks.pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else _checks.pair(op, "stride", stride, minimum=1)
    dilation = _checks.pair(op, "dilation", dilation, minimum=1)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise InvalidType(f"{op}: expected ceil_mode to be True or False, got {ceil_mode!r}")
    padding = four_sides(op, padding)
    if max(padding[:2]) > kernel[0] // 2 or max(padding[2:]) > kernel[1] // 2:
        raise InvalidValue(f"{op}: padding should be at most half the kernel size, got padding={padding} "
                         f"(top, bottom, left, right) for kernel_size={kernel}")
    input_hw = tuple(input.shape[2:])
    out_hw, reach = pool_reach(input_hw, kernel, stride, padding, dilation, bool(ceil_mode))
    if min(out_hw) < 1:
        span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
        padded = (input_hw[0] + padding[0] + padding[1], input_hw[1] + padding[2] + padding[3])
        dilated = "" if dilation == (1, 1) else f" with dilation {dilation} (spanning {span})"
        raise InvalidValue(f"{op}: kernel_size {kernel}{dilated} is larger than the padded input {padded} (input "
                         f"{input_hw}, padding {padding}): the output would be {out_hw}")
    return input, kernel, stride, padding, dilation, out_hw, reach


def dilated_max_pool_forward(planes, kernel, stride, dilation, top_left, out, argmax):
    """Max pooling with dilated windows, in NumPy: planes: (P, H, W) -> out, argmax: (P, H', W'),
    argmax the flat index iy*W + ix of each window's winner, by the rule of the compiled kernels
    (`convnet.kernels.pooling`): padding never wins, a window whose values are all -inf keeps its
    first real position, ties go to the first in row-major window order, NaN wins.

    Tap (i, j) of output (oy, ox) reads (oy*sH - top + i*dH, ox*sW - left + j*dW); the caller
    allocates out and argmax, with H' and W' as `pool_reach` gives them.
    """
    count, height, width = planes.shape
    rows = np.arange(out.shape[1])[:, None] * stride[0] - top_left[0]
    cols = np.arange(out.shape[2])[None, :] * stride[1] - top_left[1]
    best = np.zeros(out.shape, dtype=planes.dtype)
    where = np.full(out.shape, -1, dtype=np.int64)
    flat_planes = planes.reshape(count, -1)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            y, x = rows + i * dilation[0], cols + j * dilation[1]
            real = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            flat = np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)
            value = flat_planes[:, flat]
            take = real & ((where < 0) | (value > best) | np.isnan(value))
            best = np.where(take, value, best)
            where = np.where(take, flat, where)
    if (where < 0).any():
        raise InvalidValue(f"max_pool2d: a window of kernel {tuple(kernel)} dilated by {tuple(dilation)} covers no "
                         f"input pixel of the {height}x{width} input; expected every window to cover one")
    out[...] = best
    argmax[...] = where
