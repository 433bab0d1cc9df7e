"""The optimizer base: parameter groups, per-parameter state, and state_dict like PyTorch's."""

import copy
import math
import numbers

import numpy as np

from .. import kernels
from ..errors import InvalidType, InvalidValue
from ..tensor import Tensor


class Optimizer:
    """Holds ``param_groups`` (dicts of 'params' plus hyperparameters) and ``state`` (per parameter).

    Subclasses implement ``step()``, updating each parameter's array in place so that models and
    optimizers keep sharing the same tensors.
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        params = list(params)
        if not params:
            raise InvalidValue(f"{name}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        # A setting is a real number even when written as 1: only counts are integers, which lets a
        # saved state's kind be checked strictly (`same_kind`).
        defaults = {key: _as_real(value) for key, value in defaults.items()}
        self.defaults = defaults
        self.param_groups = []
        for group in groups:
            group_params = list(group["params"])
            for p in group_params:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    detail = " with requires_grad=False" if isinstance(p, Tensor) else ""
                    raise InvalidType(f"{name}: expected Tensors that require grad as parameters, "
                                    f"got a {type(p).__name__}{detail}")
            self.param_groups.append({**defaults, **{k: _as_real(v) for k, v in group.items() if k != "params"},
                                      "params": group_params})
        self.state = {}

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        raise NotImplementedError

    def _parameters_with_grad(self, group):
        return ((p, p.grad.data) for p in group["params"] if p.grad is not None)

    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}, like PyTorch."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: copy.deepcopy(s) for group in self.param_groups for p in group["params"]
                 if (s := self.state.get(p))}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        name = type(self).__name__
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise InvalidValue(f"{name}.load_state_dict: expected {len(self.param_groups)} parameter groups, "
                             f"got {len(saved)}")
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in saved] != sizes:
            raise InvalidValue(f"{name}.load_state_dict: expected groups of sizes {sizes}, "
                             f"got {[len(g['params']) for g in saved]}")
        problems = [problem for index, (group, saved_group) in enumerate(zip(self.param_groups, saved))
                    for problem in _hyperparameter_problems(index, group, saved_group)]
        if problems:
            raise InvalidValue(f"{name}.load_state_dict: {'; '.join(problems)}")
        self.state = {}
        for group, saved_group in zip(self.param_groups, saved):
            group.update({k: v for k, v in saved_group.items() if k != "params"})
            for p, i in zip(group["params"], saved_group["params"]):
                entry = state_dict["state"].get(i, state_dict["state"].get(str(i)))
                if entry:
                    self.state[p] = {k: np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v
                                     for k, v in copy.deepcopy(entry).items()}


def _hyperparameter_problems(index, group, saved_group):
    """A saved group's settings that this optimizer does not have, or of another kind than its own
    (a saved state may be anything a JSON file can hold)."""
    problems = []
    for key, value in saved_group.items():
        if key == "params":
            continue
        if key not in group:
            problems.append(f"group {index}: unexpected setting {key!r}")
        elif not same_kind(group[key], value):
            problems.append(f"group {index}: expected {key} like {group[key]!r}, got {value!r}")
    return problems


def same_kind(own, saved):
    """Whether a loaded ``saved`` value may stand where ``own`` does: a bool for a bool, an integer for an
    integer (a count: 1.5 steps is not one), a finite number for a real number (or for None), a list or
    tuple of the same length element by element, else the same type."""
    if isinstance(own, bool) or own is None:
        return isinstance(saved, bool) or (own is None and (saved is None or _is_real(saved)))
    if isinstance(own, numbers.Integral):
        return isinstance(saved, numbers.Integral) and not isinstance(saved, bool)
    if _is_real(own):
        return _is_real(saved) and math.isfinite(saved)
    if isinstance(own, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(own) and all(map(same_kind, own, saved))
    return type(saved) is type(own)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_real(value):
    """A setting as a float (1 -> 1.0), element by element in a tuple such as betas; anything else as given."""
    if _is_real(value):
        return float(value)
    if isinstance(value, tuple):
        return tuple(map(_as_real, value))
    return value


def check_hyperparameter(optimizer, name, value, low=0.0, high=None):
    if not isinstance(value, numbers.Real) or value < low or (high is not None and value >= high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high})"
        raise InvalidValue(f"{optimizer}: expected {name} {bounds}, got {value!r}")


def flat_views(param, grad, *state):
    """1-D views of a parameter's array and its state arrays, and its gradient flattened, for the
    compiled update kernels; or None where the reference update must run: kernels off, a dtype
    they are not compiled for, or an array that is not C-contiguous (a flattened copy of it would
    not write back)."""
    if not kernels.compiled() or param.dtype not in (np.float32, np.float64) or \
            not all(a.flags.c_contiguous and a.dtype == param.dtype for a in (param, *state)):
        return None
    return [param.reshape(-1), np.ascontiguousarray(grad, param.dtype).reshape(-1), *(a.reshape(-1) for a in state)]
