"""Muon (Keller Jordan, 2024): momentum orthogonalised by a Newton-Schulz iteration for the hidden
layers' weights, AdamW for every other parameter.

An orthogonalised update moves every direction of a weight matrix by the same amount, where plain
momentum moves mostly along its few largest singular directions; the CIFAR-10 speed records
(airbench94_muon) train their convolution kernels so.
"""

import math
import numbers

import numpy as np

from ..errors import InvalidValue
from .adam import AdamW
from .optimizer import check_hyperparameter

# torch.optim.Muon's quintic iteration, whose slope at zero is as steep as still converges near one
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalise(matrix, steps=5, eps=1e-7):
    """About ``U V^T`` for ``matrix = U S V^T``: the singular vectors are kept and each singular
    value s, divided by the matrix's Frobenius norm, goes ``steps`` times through
    s -> a s + b s^3 + c s^5, which after five steps takes any value from 0.1 to 1 to between 0.68
    and 1.14, and from 0.001 to 1 to between 0.47 and 1.21 (not 1: the iteration is tuned to be fast,
    not exact). torch.optim.Muon's iteration x <- (a + b x x^T + c (x x^T)^2) x, computed as
    x_k = q_k x with q_k as small as the shorter side: each step then multiplies small matrices,
    and the long side is read twice, not twice per step (for a 128 x 3136 matrix five times fewer
    multiplications); in float64 (q undoes the matrix's conditioning, which float32 would blur),
    where torch's rounds to bfloat16, and returned in the matrix's dtype."""
    a, b, c = NEWTON_SCHULZ
    tall = matrix.shape[0] > matrix.shape[1]
    wide = (matrix.T if tall else matrix).astype(np.float64)  # the shorter side's Gram matrix is the smaller
    gram = wide @ wide.T
    q = np.eye(len(gram)) / max(math.sqrt(np.trace(gram)), eps)  # x / its Frobenius norm
    for _ in range(steps):
        gram_k = q @ gram @ q.T  # x_k x_k^T
        q = (a * np.eye(len(gram)) + b * gram_k + c * (gram_k @ gram_k)) @ q
    result = (q @ wide).astype(matrix.dtype)
    return result.T if tall else result


class Muon(AdamW):
    """``torch.optim.Muon`` with ``adjust_lr_fn="match_rms_adamw"`` for the groups marked
    ``"muon": True``, and `AdamW` for the others (biases, batch norm, the output layer), as Keller
    Jordan's MuonWithAuxAdam splits them; `groups.muon_groups` marks a model's hidden weights.
    Convolution kernels are viewed as out x (in * kh * kw) matrices, as in Jordan's Muon, where
    torch's takes only matrices. Per matrix (A x B) and step:

    buf = momentum * buf + (1 - momentum) * g
    u = (1 - momentum) * g + momentum * buf  (nesterov)  or  buf
    p *= 1 - lr * weight_decay;  p -= lr * 0.2 * sqrt(max(A, B)) * orthogonalise(u)

    The 0.2 sqrt(max(A, B)) gives the update AdamW's typical size (Moonshot's "Muon is Scalable
    for LLM Training"), so both halves share one learning rate, weight decay and schedule; the
    decay defaults to AdamW's 1e-2 (torch's Muon: 0.1).
    """

    def __init__(self, params, lr=1e-3, momentum=0.95, nesterov=True, ns_steps=5, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2):
        check_hyperparameter("Muon", "momentum", momentum, 0.0, 1.0)
        if not isinstance(ns_steps, numbers.Integral) or isinstance(ns_steps, bool) or not 1 <= ns_steps <= 20:
            raise InvalidValue(f"Muon: expected ns_steps a whole number from 1 to 20, got {ns_steps!r}")
        super().__init__(params, lr, betas, eps, weight_decay)
        settings = {"muon": False, "momentum": float(momentum), "nesterov": bool(nesterov), "ns_steps": int(ns_steps)}
        self.defaults.update(settings)
        for index, group in enumerate(self.param_groups):
            for key, value in settings.items():
                group.setdefault(key, value)
            flat = [tuple(p.shape) for p in group["params"] if group["muon"] and p.ndim < 2]
            if flat:
                raise InvalidValue(f"Muon: group {index} is marked muon, so expected matrices or kernels, "
                                   f"got a parameter of shape {flat[0]}")

    def _step_group(self, group):
        if not group["muon"]:
            super()._step_group(group)
            return
        for p, grad in self._parameters_with_grad(group):
            self._muon_update(p, grad, self.state.setdefault(p, {}), group)

    def _muon_update(self, p, grad, state, group):
        momentum, lr = group["momentum"], group["lr"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p.data)
        buffer = state["momentum_buffer"]
        buffer += (1 - momentum) * (grad - buffer)
        update = grad + momentum * (buffer - grad) if group["nesterov"] else buffer
        rows = len(update)
        columns = update.size // rows
        orthogonal = orthogonalise(update.reshape(rows, columns), group["ns_steps"])
        p.data *= 1 - lr * group["weight_decay"]
        p.data -= (lr * 0.2 * math.sqrt(max(rows, columns))) * orthogonal.reshape(p.shape)
