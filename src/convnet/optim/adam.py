"""Adam and AdamW (Kingma & Ba, 2015; Loshchilov & Hutter, 2019)."""

import math

import numpy as np

from ..kernels import optim as compiled_kernels
from .optimizer import Optimizer, check_hyperparameter, flat_views


class Adam(Optimizer):
    """Like ``torch.optim.Adam`` (weight_decay is L2, added to the gradient):

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        name = type(self).__name__
        check_hyperparameter(name, "lr", lr)
        check_hyperparameter(name, "eps", eps)
        check_hyperparameter(name, "weight_decay", weight_decay)
        for i, beta in enumerate(betas):
            check_hyperparameter(name, f"betas[{i}]", beta, 0.0, 1.0)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        for group in self.param_groups:
            self._step_group(group)

    def _step_group(self, group):
        for p, grad in self._parameters_with_grad(group):
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
            state["step"] += 1
            flat = flat_views(p.data, grad, state["exp_avg"], state["exp_avg_sq"])
            if flat is None:
                self._update(p, grad, state, group)
            else:
                self._update_compiled(*flat, state["step"], group)

    def _update(self, p, grad, state, group):
        """The NumPy reference: one pass per operation."""
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if weight_decay and self.decoupled_weight_decay:
            p.data *= 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (grad - m)
        v *= beta2
        v += (1 - beta2) * grad * grad
        step_size = lr / (1 - beta1 ** state["step"])
        denominator = np.sqrt(v) / math.sqrt(1 - beta2 ** state["step"]) + group["eps"]
        p.data -= step_size * (m / denominator)

    def _update_compiled(self, param, grad, exp_avg, exp_avg_sq, step, group):
        """`_update` as one loop (`convnet.kernels.optim.adam_update`) over the flattened arrays."""
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        decoupled = bool(weight_decay) and self.decoupled_weight_decay
        scalar = param.dtype.type  # NumPy rounds a Python float to the array's dtype; so do we
        compiled_kernels.adam_update(
            param, grad, exp_avg, exp_avg_sq, scalar(1 - lr * weight_decay if decoupled else 1.0),
            scalar(0.0 if decoupled else weight_decay), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2),
            scalar(lr / (1 - beta1 ** step)), scalar(math.sqrt(1 - beta2 ** step)), scalar(group["eps"]))


class AdamW(Adam):
    """Adam with decoupled weight decay, like ``torch.optim.AdamW``: p *= 1 - lr * weight_decay first."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
