"""Batch normalisation over (N, C) or (N, C, H, W), with PyTorch's running statistics."""

import numpy as np

from .. import _checks
from ..tensor import Function, Tensor


class BatchNorm(Function):
    """x: (N, C) or (N, C, H, W); weight, bias: (C,) or None -> out: x's shape.

    Training: normalise with the batch mean and biased variance over every axis but C.
    Evaluation: normalise with the running statistics.
    out = (x - mean) / sqrt(var + eps) * weight + bias.
    """

    def forward(self, x, weight, bias, mean, var, eps):
        self.axes = (0,) + tuple(range(2, x.ndim))
        channel_shape = (1, -1) + (1,) * (x.ndim - 2)
        self.inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype).reshape(channel_shape)
        self.x_hat = (x - mean.reshape(channel_shape)) * self.inv_std
        self.weight = None if weight is None else weight.reshape(channel_shape)
        out = self.x_hat if weight is None else self.x_hat * self.weight
        return out + bias.reshape(channel_shape) if bias is not None else out

    def backward(self, grad):
        grad_x_hat = grad if self.weight is None else grad * self.weight
        grad_x = grad_x_hat * self.inv_std
        if self.batch_statistics:
            # The batch mean and variance depend on x too: remove the gradient's mean and its
            # projection on x_hat.
            grad_x = grad_x - self.inv_std * (grad_x_hat.mean(axis=self.axes, keepdims=True)
                                              + self.x_hat * (grad_x_hat * self.x_hat).mean(axis=self.axes, keepdims=True))
        grad_weight = (grad * self.x_hat).sum(axis=self.axes) if self.needs_input_grad[1] else None
        grad_bias = grad.sum(axis=self.axes) if self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class BatchNormTrain(BatchNorm):
    batch_statistics = True


class BatchNormEval(BatchNorm):
    batch_statistics = False


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation, like ``torch.nn.functional.batch_norm``.

    input: (N, C) or (N, C, H, W); running_mean, running_var, weight, bias: (C,).
    When ``training``, normalises with batch statistics and updates the running statistics in
    place: running = (1 - momentum) * running + momentum * batch, with the *unbiased* variance
    stored (the biased one normalises). Otherwise normalises with the running statistics.
    """
    op = "batch_norm"
    input = _checks.as_tensor(op, "input", input)
    if input.ndim not in (2, 4):
        raise ValueError(f"{op}: expected input of shape (N, C) or (N, C, H, W), got {input.shape}")
    channels = input.shape[1]
    for name, value in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and tuple(np.shape(value.data if isinstance(value, Tensor) else value)) != (channels,):
            raise ValueError(f"{op}: expected {name} of shape ({channels},), got {np.shape(value)}")
    mean = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    var = running_var.data if isinstance(running_var, Tensor) else running_var
    if training:
        axes = (0,) + tuple(range(2, input.ndim))
        count = input.data.size // channels
        if count < 2:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got input of shape "
                             f"{input.shape}")
        batch_mean = input.data.mean(axis=axes)
        batch_var = input.data.var(axis=axes)
        if mean is not None:
            mean *= 1 - momentum
            mean += momentum * batch_mean
        if var is not None:
            var *= 1 - momentum
            var += momentum * batch_var * count / (count - 1)
        return BatchNormTrain.apply(input, weight, bias, mean=batch_mean, var=batch_var, eps=eps)
    if mean is None or var is None:
        raise ValueError(f"{op}: running_mean and running_var are needed when not training")
    return BatchNormEval.apply(input, weight, bias, mean=mean, var=var, eps=eps)
