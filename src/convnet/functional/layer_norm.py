"""Layer normalisation over an input's last dimensions (ConvNeXt's; LayerNorm2d runs it on channels)."""

import numbers

import numpy as np

from .. import _checks
from ..errors import InvalidValue
from ..tensor import Function
from .activation import _in_layout_of


class LayerNorm(Function):
    """x: (*, *normalized_shape); weight, bias: normalized_shape or None -> out: x's shape.

    out = (x - mean) / sqrt(var + eps) * weight + bias, with the mean and the biased variance of each
    row (the last ``dims`` dimensions) summed in float64. Every array keeps x's memory order, so a
    channels-last (N, C, H, W) input permuted to (N, H, W, C) normalises contiguous rows and hands its
    output and its input's gradient back in that order.
    """

    def forward(self, x, weight, bias, dims, eps):
        self.axes = tuple(range(x.ndim - dims, x.ndim))
        mean = x.mean(axis=self.axes, keepdims=True, dtype=np.float64)
        centered = np.subtract(x, mean.astype(x.dtype), out=np.empty_like(x))  # out=: x's memory order
        var = np.mean(np.square(centered, dtype=np.float64), axis=self.axes, keepdims=True)
        self.inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
        self.normalized, self.weight = np.multiply(centered, self.inv_std, out=centered), weight
        out = self.normalized if weight is None else np.multiply(self.normalized, weight, out=np.empty_like(x))
        if bias is not None:
            out = np.add(out, bias, out=out if out is not self.normalized else np.empty_like(x))
        return out

    def backward(self, grad):
        grad = _in_layout_of(self.normalized, grad)
        leading = tuple(range(grad.ndim - len(self.axes)))
        grad_weight = (grad * self.normalized).sum(axis=leading) if self.needs_input_grad[1] else None
        grad_bias = grad.sum(axis=leading) if self.needs_input_grad[2] else None
        if not self.needs_input_grad[0]:
            return None, grad_weight, grad_bias
        g = grad if self.weight is None else np.multiply(grad, self.weight, out=np.empty_like(grad))
        # d/dx of (x - mean) * inv_std: remove g's row mean and its projection on the normalized row.
        g_mean = g.mean(axis=self.axes, keepdims=True, dtype=np.float64).astype(g.dtype)
        projection = np.mean(g * self.normalized, axis=self.axes, keepdims=True, dtype=np.float64).astype(g.dtype)
        grad_x = np.subtract(g, g_mean, out=np.empty_like(g))
        grad_x -= self.normalized * projection
        grad_x *= self.inv_std
        return grad_x, grad_weight, grad_bias


def normalized_shape_tuple(op, normalized_shape):
    """An int or a sequence of positive ints as a tuple, like torch's ``normalized_shape``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise InvalidValue(f"{op}: expected normalized_shape to be a positive int or a non-empty sequence of "
                           f"positive ints, got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def check_eps(op, eps):
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps >= 0:
        raise InvalidValue(f"{op}: expected eps to be a number >= 0, got {eps!r}")
    return float(eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the last ``len(normalized_shape)`` dimensions, like
    ``torch.nn.functional.layer_norm``.

    input: (*, *normalized_shape); weight, bias: normalized_shape (or None) -> out: input's shape.
    Each row is normalised by its own mean and biased variance: nothing is kept between calls.
    """
    op = "layer_norm"
    input = _checks.as_tensor(op, "input", input)
    shape = normalized_shape_tuple(op, normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape or input.ndim < len(shape):
        expected = "(*, " + ", ".join(map(str, shape)) + ")"
        raise InvalidValue(f"{op}: expected input of shape {expected}, got {tuple(input.shape)}")
    affine = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            value = _checks.as_tensor(op, name, value)
            if tuple(value.shape) != shape:
                raise InvalidValue(f"{op}: expected {name} of shape {shape}, got {tuple(value.shape)}")
        affine.append(value)
    return LayerNorm.apply(input, *affine, dims=len(shape), eps=check_eps(op, eps))
