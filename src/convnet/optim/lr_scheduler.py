"""Learning-rate schedules with PyTorch's formulas. Call ``step()`` once per epoch (StepLR,
CosineAnnealingLR) or once per batch (OneCycleLR), after ``optimizer.step()``."""

import math

from .optimizer import check_hyperparameter, same_kind
from ..errors import InvalidValue


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Take a `state_dict`'s values; one that this scheduler does not have, or of another kind than
        its own, is refused (a saved state may be anything a JSON file can hold), naming each."""
        own = self.state_dict()
        problems = [f"unexpected {key!r}" if key not in own else f"expected {key} like {own[key]!r}, got {value!r}"
                    for key, value in state_dict.items() if key not in own or not same_kind(own[key], value)]
        if problems:
            raise InvalidValue(f"{type(self).__name__}.load_state_dict: {'; '.join(problems)}")
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if not isinstance(step_size, int) or step_size < 1:
            raise InvalidValue(f"StepLR: expected step_size to be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if not isinstance(T_max, int) or T_max < 1:
            raise InvalidValue(f"CosineAnnealingLR: expected T_max to be a positive int, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2017), like ``torch.optim.lr_scheduler.OneCycleLR``.

    The lr rises from max_lr/div_factor to max_lr over the first pct_start of the steps, then
    anneals to max_lr/(div_factor*final_div_factor); momentum (or Adam's beta1) moves the
    opposite way between max_momentum and base_momentum. ``max_lr`` is one number for every param
    group or a list of one per group (as PyTorch's).
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, last_epoch=-1):
        if total_steps is None:
            if not epochs or not steps_per_epoch:
                raise InvalidValue("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps < 2:
            raise InvalidValue(f"OneCycleLR: expected total_steps to be an int >= 2, got {total_steps!r}")
        check_hyperparameter("OneCycleLR", "pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise InvalidValue(f"OneCycleLR: expected anneal_strategy 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy = total_steps, anneal_strategy
        self.phases = [(float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                       (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self.use_beta1 = "betas" in optimizer.defaults
        self.cycle_momentum = cycle_momentum
        if cycle_momentum and not self.use_beta1 and "momentum" not in optimizer.defaults:
            raise InvalidValue("OneCycleLR: cycle_momentum needs an optimizer with momentum or betas")
        peaks = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(optimizer.param_groups)
        if len(peaks) != len(optimizer.param_groups):
            raise InvalidValue(f"OneCycleLR: expected max_lr for each of the {len(optimizer.param_groups)} param "
                               f"groups, got {len(peaks)}")
        for group, peak in zip(optimizer.param_groups, peaks):
            group["initial_lr"] = peak / div_factor
            group["max_lr"], group["min_lr"] = peak, peak / div_factor / final_div_factor
            if cycle_momentum:
                group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
                self._set_momentum(group, max_momentum)
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum,) + tuple(group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise InvalidValue(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr_from, lr_to, momentum_from, momentum_to) in enumerate(self.phases):
                if step <= end_step or i == len(self.phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[momentum_from], group[momentum_to], pct))
                    break
                start_step = end_step
        return lrs
