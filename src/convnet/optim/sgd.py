"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

import numpy as np

from ..errors import InvalidValue
from ..kernels import optim as compiled_kernels
from .optimizer import Optimizer, check_hyperparameter, flat_views


class SGD(Optimizer):
    """Like ``torch.optim.SGD``:

    g = grad + weight_decay * p
    buf = g (first step) or momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov) or buf;  p -= lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            check_hyperparameter("SGD", name, value)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InvalidValue(f"SGD: nesterov needs momentum > 0 and dampening 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def step(self):
        for group in self.param_groups:
            for p, grad in self._parameters_with_grad(group):
                state = self.state.setdefault(p, {}) if group["momentum"] else {}
                buffer = state.get("momentum_buffer")
                flat = flat_views(p.data, grad, *(() if buffer is None else (buffer,)))
                if flat is None:
                    self._update(p, grad, state, group)
                else:
                    self._update_compiled(p, flat[0], flat[1], state, group)

    def _update(self, p, grad, state, group):
        """The NumPy reference: one pass per operation."""
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay:
            grad = grad + weight_decay * p.data
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                # np.array, not grad.copy(): for a 0-d parameter grad may be a NumPy scalar, whose
                # copy is a scalar too, and the in-place updates below would leave the state behind.
                buffer = state["momentum_buffer"] = np.array(grad)
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        p.data -= group["lr"] * grad

    def _update_compiled(self, p, param, grad, state, group):
        """`_update` as one loop (`convnet.kernels.optim`) over the flattened param: (P,) and grad: (P,)."""
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        scalar = param.dtype.type  # NumPy rounds a Python float to the array's dtype; so do we
        if not momentum:
            compiled_kernels.sgd_update(param, grad, scalar(group["lr"]), scalar(weight_decay))
            return
        first = "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = np.empty_like(p.data)  # C-contiguous like p.data; the kernel fills it
        compiled_kernels.sgd_momentum_update(
            param, grad, state["momentum_buffer"].reshape(-1), scalar(group["lr"]), scalar(momentum),
            scalar(1 - group["dampening"]), scalar(weight_decay), bool(group["nesterov"]), first)
