"""Dense layers and dropout."""

import numpy as np

from .. import _checks
from .. import random as _random
from ..errors import InvalidValue
from ..tensor import Function


class Linear(Function):
    """x: (*, in), weight: (out, in), bias: (out,) or None -> out: (*, out) = x @ weight^T + bias."""

    def forward(self, x, weight, bias):
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        out = x @ weight.T
        return out + bias if bias is not None else out

    def backward(self, grad):
        grad_x = grad @ self.weight if self.needs_input_grad[0] else None
        grad_rows = grad.reshape(-1, grad.shape[-1])
        grad_weight = grad_rows.T @ self.x.reshape(-1, self.x.shape[-1]) if self.needs_input_grad[1] else None
        grad_bias = grad_rows.sum(axis=0) if self.has_bias and self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(input, weight, bias=None):
    """input @ weight.T + bias, like ``torch.nn.functional.linear``.

    input: (*, in_features), weight: (out_features, in_features), bias: (out_features,).
    """
    op = "linear"
    input = _checks.as_tensor(op, "input", input)
    weight = _checks.as_tensor(op, "weight", weight)
    _checks.check_shape(op, "weight", weight, "(out_features, in_features)")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise InvalidValue(f"{op}: expected input of shape (*, {weight.shape[1]}), got {input.shape}")
    if bias is not None:
        bias = _checks.as_tensor(op, "bias", bias)
        _checks.check_shape(op, "bias", bias, "(out_features,)", out_features=weight.shape[0])
    return Linear.apply(input, weight, bias)


class Dropout(Function):
    """out = x * mask / (1 - p), mask ~ Bernoulli(1 - p); the same mask scales the gradient."""

    def forward(self, x, p, generator):
        self.scale = (_random.resolve(generator).random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
        return x * self.scale

    def backward(self, grad):
        return grad * self.scale


def dropout(input, p=0.5, training=True, generator=None):
    """Zero each element with probability ``p`` while training and scale the rest by 1/(1-p)."""
    input = _checks.as_tensor("dropout", "input", input)
    p = _checks.probability("dropout", "p", p)
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return Dropout.apply(input, p=p, generator=generator)
