"""An exponential moving average of a model's weights, and batch norm statistics recomputed for it.

Semantics of ``torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``
and ``torch.optim.swa_utils.update_bn(loader, model)``.
"""

import copy
import numbers

import numpy as np

from ..errors import InvalidType, InvalidValue
from ..tensor import no_grad
from .groups import is_batch_norm


class ExponentialMovingAverage:
    """A copy of ``model`` (``.module``) whose parameters follow an exponential moving average:

    first ``update()``:   ema = p   (copied, like PyTorch's ``n_averaged == 0``)
    later ``update()``s:  ema = ema + (1 - decay) * (p - ema)

    with every parameter and ``ema`` of the same shape. Call ``update()`` after each optimizer step.
    With ``use_buffers=False`` (PyTorch's default) the buffers (batch norm's running statistics) are
    copied from ``model`` at each update; recompute them for the averaged weights with
    ``update_bn(batches, ema.module)`` before evaluating. With ``use_buffers=True`` floating buffers
    are averaged like the parameters and integer ones (``num_batches_tracked``) as PyTorch does,
    truncated toward zero.

    ``ema.module`` (or calling ``ema(x)``) is the evaluation copy, and `with_statistics` recomputes its
    batch norm statistics once per update; ``state_dict()`` / ``load_state_dict()`` resume it exactly.
    """

    def __init__(self, model, decay=0.999, use_buffers=False):
        if not hasattr(model, "named_parameters"):
            raise InvalidType(f"ExponentialMovingAverage: expected a Module, got a {type(model).__name__}")
        if not isinstance(decay, numbers.Real) or isinstance(decay, bool) or not 0.0 <= decay <= 1.0:
            raise InvalidValue(f"ExponentialMovingAverage: expected decay in [0, 1], got {decay!r}")
        if not isinstance(use_buffers, bool):
            raise InvalidType(f"ExponentialMovingAverage: expected use_buffers True or False, got {use_buffers!r}")
        self.decay, self.use_buffers = float(decay), use_buffers
        self.module = copy.deepcopy(model)
        self.module.zero_grad()  # the copy never trains: its gradients would only hold memory
        self.n_averaged = 0
        self._statistics_for = None  # the update count whose weights the module's statistics were computed for

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _pairs(self, model, kind):
        """(averaged array, model array, name) for each tensor of ``kind`` ('parameters' or 'buffers')."""
        averaged = dict(getattr(self.module, f"named_{kind}")())
        current = dict(getattr(model, f"named_{kind}")())
        if list(averaged) != list(current):
            raise InvalidValue(f"ExponentialMovingAverage.update: expected a model with {kind} {list(averaged)}, "
                               f"got {list(current)}")
        pairs = [(averaged[name].data, current[name].data, name) for name in averaged]
        wrong = [f"{name}: expected shape {a.shape}, got {b.shape}" for a, b, name in pairs if a.shape != b.shape]
        if wrong:
            raise InvalidValue("ExponentialMovingAverage.update: " + "; ".join(wrong))
        return pairs

    def update(self, model):
        """Fold ``model``'s current weights (the model being trained) into the average."""
        averaged = self._pairs(model, "parameters")
        buffers = self._pairs(model, "buffers")
        if self.use_buffers:
            averaged += buffers
        else:
            for ema, value, _ in buffers:
                ema[...] = value
        for ema, value, _ in averaged:
            if self.n_averaged == 0:
                ema[...] = value
            elif np.issubdtype(ema.dtype, np.floating):
                ema += ema.dtype.type(1.0 - self.decay) * (value - ema)
            else:
                ema[...] = np.trunc(ema * self.decay + value * (1.0 - self.decay))
        self.n_averaged += 1

    def with_statistics(self, batches):
        """``module``, its batch norm statistics recomputed for the averaged weights by `update_bn` over
        ``batches()`` (a function that returns the batches) unless that was done since the last `update`."""
        if self._statistics_for != self.n_averaged:
            update_bn(batches(), self.module)
            self._statistics_for = self.n_averaged
        return self.module

    def state_dict(self):
        """{'module': the averaged model's state_dict, 'n_averaged': int, 'decay': float, 'use_buffers': bool}."""
        return {"module": self.module.state_dict(), "n_averaged": self.n_averaged, "decay": self.decay,
                "use_buffers": self.use_buffers}

    def load_state_dict(self, state_dict):
        for key, kinds in (("decay", numbers.Real), ("use_buffers", bool)):
            if not isinstance(state_dict.get(key), kinds) or state_dict[key] != getattr(self, key):
                raise InvalidValue(f"ExponentialMovingAverage.load_state_dict: expected {key}={getattr(self, key)!r}, "
                                   f"got {state_dict.get(key)!r}")
        n_averaged = state_dict.get("n_averaged")
        if not isinstance(n_averaged, numbers.Integral) or isinstance(n_averaged, bool) or n_averaged < 0:
            raise InvalidValue(f"ExponentialMovingAverage.load_state_dict: expected n_averaged a count >= 0, "
                               f"got {n_averaged!r}")
        self.module.load_state_dict(state_dict["module"])
        self.n_averaged, self._statistics_for = int(n_averaged), None


def update_bn(batches, model):
    """Recompute the running statistics of ``model``'s batch norm layers by one pass over ``batches``.

    Like ``torch.optim.swa_utils.update_bn``: each batch norm's running_mean, running_var and
    num_batches_tracked are reset, its momentum set to None (a cumulative average over the batches),
    the model runs in training mode without a graph over every batch (an (N, C, H, W) array or
    Tensor, or a tuple/list whose first element is one, e.g. (images, labels)), and then momenta and
    the training flag are put back. A model without batch norm is left untouched.
    """
    if not hasattr(model, "modules"):
        raise InvalidType(f"update_bn: expected a Module, got a {type(model).__name__}")
    norms = [module for module in model.modules() if is_batch_norm(module) and module.track_running_stats]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.running_mean.data[...] = 0
        norm.running_var.data[...] = 1
        norm.num_batches_tracked.data[...] = 0
        norm.momentum = None
    was_training = model.training
    model.train()
    try:
        with no_grad():
            for batch in batches:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
