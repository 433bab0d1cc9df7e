"""Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back")."""

import numbers

import numpy as np

from ..errors import InvalidType, InvalidValue
from .optimizer import Optimizer


class Lookahead:
    """Wraps any convnet optimizer (the fast weights' optimizer) with slow weights:

    slow = copy of each parameter when the Lookahead is built
    every step:          optimizer.step()               (the fast weights move)
    every k-th step:     slow += alpha * (fast - slow);  fast = slow

    Each slow array has its parameter's shape and dtype. ``param_groups``, ``defaults`` and
    ``state`` are the wrapped optimizer's, so learning-rate schedulers drive it unchanged.
    ``state_dict()`` holds the wrapped optimizer's state, the step count and the slow weights, so a
    resumed run continues exactly. Build it after the model's weights are loaded: the slow weights
    start as a copy of the parameters at that moment.

    Example: ``optimizer = Lookahead(SGD(model.parameters(), lr=0.1, momentum=0.9), k=5, alpha=0.5)``.
    """

    def __init__(self, optimizer, k=5, alpha=0.5):
        if not isinstance(optimizer, Optimizer):
            raise InvalidType(f"Lookahead: expected a convnet optimizer, got a {type(optimizer).__name__}")
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise InvalidValue(f"Lookahead: expected k an integer >= 1, got {k!r}")
        if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not 0.0 < alpha <= 1.0:
            raise InvalidValue(f"Lookahead: expected alpha in (0, 1], got {alpha!r}")
        self.optimizer, self.k, self.alpha = optimizer, int(k), float(alpha)
        self.steps = 0
        self.slow = [p.data.copy() for p in self._parameters()]

    def _parameters(self):
        """Each parameter once, in the order the wrapped optimizer's state_dict numbers them."""
        unique = {}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                unique.setdefault(id(p), p)
        return list(unique.values())

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def defaults(self):
        return self.optimizer.defaults

    @property
    def state(self):
        return self.optimizer.state

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        self.optimizer.step()
        self.steps += 1
        if self.steps % self.k == 0:
            for p, slow in zip(self._parameters(), self.slow):
                if p.requires_grad:
                    slow += slow.dtype.type(self.alpha) * (p.data - slow)
                    p.data[...] = slow
                else:  # frozen since (`train.FreezeAfter`): it stays where it is
                    slow[...] = p.data

    def state_dict(self):
        """The wrapped optimizer's state_dict, laid out like every convnet optimizer's (so
        ``convnet.checkpoint.save`` stores it unchanged), with each parameter's slow weights added to
        its state as ``lookahead_slow`` and ``lookahead_k``, ``lookahead_alpha``, ``lookahead_step``
        added to every group."""
        saved = self.optimizer.state_dict()
        for index, slow in enumerate(self.slow):
            saved["state"].setdefault(index, {})["lookahead_slow"] = slow.copy()
        for group in saved["param_groups"]:
            group.update(lookahead_k=self.k, lookahead_alpha=self.alpha, lookahead_step=self.steps)
        return saved

    def load_state_dict(self, state_dict):
        name = "Lookahead.load_state_dict"
        groups = state_dict["param_groups"]
        for key, own in (("lookahead_k", self.k), ("lookahead_alpha", self.alpha)):
            if any(group.get(key) != own for group in groups):
                raise InvalidValue(f"{name}: expected {key}={own!r} in every group, "
                                   f"got {[group.get(key) for group in groups]}")
        steps = groups[0].get("lookahead_step") if groups else None
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 0:
            raise InvalidValue(f"{name}: expected lookahead_step a count >= 0, got {steps!r}")
        entries = {int(index): entry for index, entry in state_dict["state"].items()}
        params = self._parameters()
        slow = [np.asarray(entries.get(index, {}).get("lookahead_slow")) for index in range(len(params))]
        shapes = [p.shape for p in params]
        if [s.shape for s in slow] != shapes:
            raise InvalidValue(f"{name}: expected slow weights of shapes {shapes}, got {[s.shape for s in slow]}")
        inner_groups = [{k: v for k, v in group.items() if not k.startswith("lookahead_")} for group in groups]
        inner_state = {index: rest for index, entry in entries.items()
                       if (rest := {k: v for k, v in entry.items() if k != "lookahead_slow"})}
        self.optimizer.load_state_dict({"state": inner_state, "param_groups": inner_groups})
        self.slow = [np.array(s, dtype=p.dtype) for s, p in zip(slow, params)]
        self.steps = int(steps)
