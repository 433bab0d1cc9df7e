"""Losses. Classification losses take integer class targets, like PyTorch's."""

import numpy as np

from .. import _checks
from ..errors import InvalidType, InvalidValue
from ..tensor import Function, Tensor
from .activation import log_softmax_array

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def _reduce_grad(grad, count, reduction):
    """The per-sample gradient scale for each reduction: grad is () or (N,)."""
    if reduction == "none":
        return grad
    return grad / count if reduction == "mean" else grad


class CrossEntropy(Function):
    """logits: (N, C), target: (N,) ints -> loss: () or (N,) for reduction='none'.

    loss_n = -sum_c q_nc log softmax(logits_n)_c with q = (1 - e) one_hot(target) + e / C
    (label smoothing e). d/dlogits = softmax - q, scaled by the reduction.
    """

    def forward(self, logits, target, label_smoothing, reduction):
        n, c = logits.shape
        log_probs = log_softmax_array(logits, axis=1)
        self.q = np.full_like(log_probs, label_smoothing / c)
        self.q[np.arange(n), target] += 1 - label_smoothing
        self.probs, self.reduction = np.exp(log_probs), reduction
        return np.asarray(_reduce(-(self.q * log_probs).sum(axis=1), reduction))

    def backward(self, grad):
        scale = _reduce_grad(grad, len(self.q), self.reduction)
        return (self.probs - self.q) * (scale[:, None] if np.ndim(scale) else scale), None


class NLLLoss(Function):
    """log_probs: (N, C), target: (N,) ints -> loss: () or (N,); loss_n = -log_probs[n, target_n]."""

    def forward(self, log_probs, target, reduction):
        self.shape, self.target, self.reduction = log_probs.shape, target, reduction
        return np.asarray(_reduce(-log_probs[np.arange(len(target)), target], reduction))

    def backward(self, grad):
        n = self.shape[0]
        grad_log_probs = np.zeros(self.shape, dtype=grad.dtype)
        grad_log_probs[np.arange(n), self.target] = -_reduce_grad(grad, n, self.reduction)
        return grad_log_probs, None


def _class_arguments(op, input, target, reduction):
    input = _checks.as_tensor(op, "input", input)
    _checks.check_shape(op, "input", input, "(N, C)")
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    n, c = input.shape
    if not np.issubdtype(target.dtype, np.integer):
        raise InvalidType(f"{op}: expected target to hold integer class indices, got dtype {target.dtype}")
    if target.shape != (n,):
        raise InvalidValue(f"{op}: expected target of shape ({n},) for input of shape {input.shape}, got {target.shape}")
    if n and (target.min() < 0 or target.max() >= c):
        bad = target[(target < 0) | (target >= c)]
        raise InvalidValue(f"{op}: expected target classes in [0, {c - 1}], got {bad[:5].tolist()}")
    if reduction not in _REDUCTIONS:
        raise InvalidValue(f"{op}: expected reduction in {_REDUCTIONS}, got {reduction!r}")
    return input, target


def cross_entropy(input, target, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy from logits, like ``torch.nn.functional.cross_entropy``.

    input: (N, C) logits; target: (N,) integer classes in [0, C); returns a scalar
    (or (N,) with reduction='none'). Fused log-softmax: stable for any logit size.

    >>> import convnet, convnet.functional as F
    >>> round(F.cross_entropy(convnet.zeros(2, 4), [0, 3]).item(), 4)  # log(4)
    1.3863
    """
    input, target = _class_arguments("cross_entropy", input, target, reduction)
    label_smoothing = _checks.probability("cross_entropy", "label_smoothing", label_smoothing)
    return CrossEntropy.apply(input, target, label_smoothing=label_smoothing, reduction=reduction)


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood of log-probabilities, like ``torch.nn.functional.nll_loss``.

    input: (N, C) log-probabilities; target: (N,) integer classes.
    """
    input, target = _class_arguments("nll_loss", input, target, reduction)
    return NLLLoss.apply(input, target, reduction=reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error; input and target must have the same shape (no silent broadcasting)."""
    input = _checks.as_tensor("mse_loss", "input", input)
    target = _checks.as_tensor("mse_loss", "target", target)
    if input.shape != target.shape:
        raise InvalidValue(f"mse_loss: expected target of shape {input.shape} like the input, got {target.shape}")
    if reduction not in _REDUCTIONS:
        raise InvalidValue(f"mse_loss: expected reduction in {_REDUCTIONS}, got {reduction!r}")
    diff = input - target
    return _reduce(diff * diff, reduction)
