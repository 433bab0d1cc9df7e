"""The convolutions, normalisation and dropout that no convnet layer holds: weights that the graph
computes or takes as inputs (``model(x, w)``), ConvTranspose with padding that differs on opposite
sides or an ``output_shape``, BatchNormalization in training mode or over other ranks, and Dropout's
mask. Each runs as a function over the graph's values, made of convnet's differentiable ops (the
pooling no layer holds is `windows.window_pool`).
"""

import numpy as np

from .. import functional as F
from .. import nn
from .. import random as _random
from ..ops import Add, Div, Mul, Sqrt, Sub
from ..tensor import Tensor
from .arithmetic import plus
from .windows import pad_constant


def _channel_vector(value, rank):
    """A (C,) value shaped (1, C, 1, ...) to broadcast against an input of ``rank`` dimensions."""
    return value.reshape((1, -1) + (1,) * (rank - 2))


def conv(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """ONNX's Conv of a weight known only at run time: `F.conv2d`."""
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def conv_transpose_padding(input_sizes, kernel, stride, dilation, output_padding, pads, auto_pad, output_shape):
    """(before, after) padding per spatial axis of ONNX's ConvTranspose: ``pads`` as given, or what
    ``output_shape`` (or auto_pad SAME_*: the input's size times the stride) implies, the odd row at
    the end for SAME_UPPER and at the start otherwise (as ONNX's reference and onnxruntime place it)."""
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        half = len(pads) // 2
        return list(pads[:half]), list(pads[half:])
    before, after = [], []
    for axis, size in enumerate(input_sizes):
        wanted = output_shape[axis] if output_shape is not None else size * stride[axis]
        total = stride[axis] * (size - 1) + output_padding[axis] + (kernel[axis] - 1) * dilation[axis] + 1 - wanted
        small, large = total // 2, total - total // 2
        before.append(small if auto_pad == "SAME_UPPER" else large)
        after.append(large if auto_pad == "SAME_UPPER" else small)
    return before, after


def conv_transpose(x, weight, bias=None, stride=(1, 1), dilation=(1, 1), groups=1, output_padding=(0, 0),
                   pads=(0, 0, 0, 0), auto_pad="NOTSET", output_shape=None):
    """ONNX's ConvTranspose: `F.conv_transpose2d` unpadded, then the output cropped by the padding
    at each end and extended by ``output_padding`` at the end (zeros, then the bias)."""
    kernel = tuple(weight.shape[2:])
    before, after = conv_transpose_padding(x.shape[2:], kernel, stride, dilation, output_padding, pads, auto_pad,
                                           output_shape)
    full = F.conv_transpose2d(x, weight, None, stride, 0, 0, groups, dilation)
    out = pad_constant(full, [-b for b in before], [extra - a for extra, a in zip(output_padding, after)])
    return out if bias is None else Add.apply(out, _channel_vector(bias, out.ndim))


def batch_normalization(x, scale, bias, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0):
    """(x - mean) / sqrt(var + epsilon) * scale + bias, per channel (axis 1), over any rank.

    With ``training_mode`` the batch's own mean and (biased) variance normalise, and the running
    statistics come out too: (y, mean * momentum + batch mean * (1 - momentum), var * momentum +
    batch variance * (1 - momentum)), as ONNX's reference computes them."""
    rank = x.ndim
    if training_mode and rank in (2, 4):
        # F.batch_norm normalises with the batch's statistics (one Function, its own backward); the
        # running statistics it would update are copies, ONNX's come out below.
        y = F.batch_norm(x, _data(mean).copy(), _data(var).copy(), scale, bias, True, 0.0, epsilon)
        axes = (0,) + tuple(range(2, rank))
        batch_mean, batch_var = _data(x).mean(axis=axes), _data(x).var(axis=axes)
        return (y, *((_data(statistic) * momentum + batch * (1 - momentum)).astype(x.dtype)
                     for statistic, batch in ((mean, batch_mean), (var, batch_var))))
    if training_mode:
        axes = (0,) + tuple(range(2, rank))
        batch_mean = x.mean(axis=axes, keepdims=True)
        centred = Sub.apply(x, batch_mean)
        batch_var = Mul.apply(centred, centred).mean(axis=axes, keepdims=True)
    else:
        centred = Sub.apply(x, _channel_vector(mean, rank))
        batch_var = _channel_vector(var, rank)
    deviation = Sqrt.apply(plus(batch_var, np.asarray(epsilon, dtype=x.dtype)))
    y = Add.apply(Mul.apply(Div.apply(centred, deviation), _channel_vector(scale, rank)), _channel_vector(bias, rank))
    if not training_mode:
        return y
    running = [_data(statistic) * momentum + _data(batch).reshape(-1) * (1 - momentum)
               for statistic, batch in ((mean, batch_mean), (var, batch_var))]
    return (y, *(statistic.astype(x.dtype) for statistic in running))


def _data(value):
    return value.data if isinstance(value, Tensor) else np.asarray(value)


class DropoutWithMask(nn.Module):
    """ONNX's Dropout with its mask read, or its ratio given at run time: in evaluation the input
    and a mask of ones; in training each element kept with probability 1 - ratio and scaled by
    1 / (1 - ratio), and the mask of those kept. forward(x (any shape), ratio=None) -> (out, mask)."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x, ratio=None):
        p = self.p if ratio is None else float(_data(ratio))
        if not self.training or p == 0:
            return x, np.ones(x.shape, dtype=bool)
        mask = _random.default_generator().random(x.shape) >= p
        return Mul.apply(x, (mask / (1 - p)).astype(x.dtype)), mask

    def extra_repr(self):
        return f"p={self.p}"
