"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from .optimizer import Optimizer, check_hyperparameter


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
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def step(self):
        for group in self.param_groups:
            momentum, weight_decay = group["momentum"], group["weight_decay"]
            for p, grad in self._parameters_with_grad(group):
                if weight_decay:
                    grad = grad + weight_decay * p.data
                if momentum:
                    state = self.state.setdefault(p, {})
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = state["momentum_buffer"] = grad.copy()
                    else:
                        buffer *= momentum
                        buffer += (1 - group["dampening"]) * grad
                    grad = grad + momentum * buffer if group["nesterov"] else buffer
                p.data -= group["lr"] * grad
