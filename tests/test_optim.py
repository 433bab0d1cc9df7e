"""Optimizers and schedules follow torch.optim's trajectories."""

import numpy as np
import pytest

import convnet
from convnet import Tensor, optim
from convnet.optim import lr_scheduler
from conftest import requires_torch, torch


def quadratic_problem(rng):
    """A few parameters and a loss with different curvature per coordinate."""
    starts = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    target = rng.standard_normal((3, 4)).astype(np.float32)
    scales = rng.uniform(0.5, 3.0, (3, 4)).astype(np.float32)

    def loss(weight, bias, lib):
        diff = weight + bias - (torch.from_numpy(target) if lib is torch else target)
        return ((torch.from_numpy(scales) if lib is torch else scales) * diff * diff).sum()

    return starts, loss


def assert_same_trajectory_as_torch(make_ours, make_theirs, rng, steps=20, schedule=None):
    starts, loss = quadratic_problem(rng)
    ours = [Tensor(s.copy(), requires_grad=True) for s in starts]
    theirs = [torch.tensor(s, requires_grad=True) for s in starts]
    our_opt, their_opt = make_ours(ours), make_theirs(theirs)
    our_sched = their_sched = None
    if schedule:
        our_sched, their_sched = schedule[0](our_opt), schedule[1](their_opt)
    for _ in range(steps):
        our_opt.zero_grad()
        their_opt.zero_grad()
        loss(*ours, np).backward()
        loss(*theirs, torch).backward()
        our_opt.step()
        their_opt.step()
        if schedule:
            our_sched.step()
            their_sched.step()
            assert our_sched.get_last_lr() == pytest.approx(their_sched.get_last_lr(), rel=1e-9)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    return our_opt, their_opt


OPTIMIZERS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3)),
]


@requires_torch
@pytest.mark.parametrize("name, kwargs", OPTIMIZERS)
def test_optimizer_follows_torch_for_20_steps(name, kwargs, rng):
    assert_same_trajectory_as_torch(lambda p: getattr(optim, name)(p, **kwargs), lambda p: getattr(torch.optim, name)(p, **kwargs), rng)


SCHEDULES = [
    ("SGD", lambda o, lib: lib.StepLR(o, step_size=3, gamma=0.5)),
    ("SGD", lambda o, lib: lib.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    ("SGD", lambda o, lib: lib.OneCycleLR(o, max_lr=0.1, total_steps=21)),
    ("Adam", lambda o, lib: lib.OneCycleLR(o, max_lr=0.1, epochs=3, steps_per_epoch=7, pct_start=0.25,
                                           anneal_strategy="linear")),
]


@requires_torch
@pytest.mark.parametrize("name, make", SCHEDULES)
def test_schedules_follow_torch(name, make, rng):
    assert_same_trajectory_as_torch(lambda p: getattr(optim, name)(p, lr=0.05, **({"momentum": 0.9} if name == "SGD" else {})),
             lambda p: getattr(torch.optim, name)(p, lr=0.05, **({"momentum": 0.9} if name == "SGD" else {})),
             rng, schedule=(lambda o: make(o, lr_scheduler), lambda o: make(o, torch.optim.lr_scheduler)))


def test_one_cycle_refuses_to_step_past_its_end(rng):
    opt = optim.SGD([Tensor(np.zeros(1, np.float32), requires_grad=True)], lr=0.1)
    schedule = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        schedule.step()
    with pytest.raises(ValueError, match="tried to step 4 times; total_steps is 3"):
        schedule.step()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_state_dict_resumes_the_same_trajectory(name, rng):
    kwargs = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05)
    starts, loss = quadratic_problem(rng)

    def steps(params, opt, count):
        for _ in range(count):
            opt.zero_grad()
            loss(*params, np).backward()
            opt.step()

    straight = [Tensor(s.copy(), requires_grad=True) for s in starts]
    steps(straight, getattr(optim, name)(straight, **kwargs), 10)

    first = [Tensor(s.copy(), requires_grad=True) for s in starts]
    opt = getattr(optim, name)(first, **kwargs)
    steps(first, opt, 4)
    saved_state, saved_params = opt.state_dict(), [p.numpy().copy() for p in first]
    resumed = [Tensor(s, requires_grad=True) for s in saved_params]
    opt2 = getattr(optim, name)(resumed, **kwargs)
    opt2.load_state_dict(saved_state)
    steps(resumed, opt2, 6)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_optimizer_arguments_are_checked():
    param = [Tensor(np.zeros(2, np.float32), requires_grad=True)]
    with pytest.raises(ValueError, match="SGD: expected lr >= 0.0, got -1"):
        optim.SGD(param, lr=-1)
    with pytest.raises(ValueError, match=r"Adam: expected betas\[0\] in \[0.0, 1.0\), got 1.0"):
        optim.Adam(param, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="requires_grad=False"):
        optim.SGD([convnet.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        optim.SGD(param, lr=0.1, nesterov=True)
    opt = optim.SGD(param, lr=0.1)
    with pytest.raises(ValueError, match=r"expected groups of sizes \[1\], got \[2\]"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]})


def test_a_saved_state_with_settings_of_the_wrong_kind_is_refused_naming_them():
    model = convnet.nn.Linear(2, 2)
    optimizer = convnet.optim.AdamW(model.parameters(), lr=1e-3)
    saved = optimizer.state_dict()
    saved["param_groups"][0].update(lr="abc", betas=[0.9], momentum=0.9)
    with pytest.raises(ValueError) as refused:
        optimizer.load_state_dict(saved)
    assert str(refused.value) == ("AdamW.load_state_dict: group 0: expected lr like 0.001, got 'abc'; group 0: "
                                  "expected betas like (0.9, 0.999), got [0.9]; group 0: unexpected setting 'momentum'")
    assert optimizer.param_groups[0]["lr"] == 1e-3  # nothing was changed


def test_a_saved_schedule_with_values_of_the_wrong_kind_is_refused_naming_them():
    optimizer = convnet.optim.SGD(convnet.nn.Linear(2, 2).parameters(), lr=0.1)
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    saved = schedule.state_dict()
    with pytest.raises(ValueError, match=r"^OneCycleLR.load_state_dict: expected last_epoch like 0, got 'x'; "
                                         r"unexpected 'surprise'$"):
        schedule.load_state_dict({**saved, "last_epoch": "x", "surprise": 1})
    schedule.load_state_dict(saved)  # its own state loads


def test_a_count_in_a_saved_schedule_must_be_an_integer():
    optimizer = convnet.optim.SGD(convnet.nn.Linear(2, 2).parameters(), lr=0.1)
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    saved = schedule.state_dict()
    with pytest.raises(ValueError, match=r"^OneCycleLR.load_state_dict: expected total_steps like 10, got 1.5; "
                                         r"expected last_epoch like 0, got 2.0$"):
        schedule.load_state_dict({**saved, "total_steps": 1.5, "last_epoch": 2.0})


def test_a_setting_written_as_an_integer_is_a_real_number_so_a_decayed_state_loads_back():
    model = convnet.nn.Linear(2, 2)
    optimizer = convnet.optim.AdamW(model.parameters(), lr=1, betas=(0, 0.999))
    assert [type(beta) for beta in optimizer.param_groups[0]["betas"]] == [float, float]
    optimizer.param_groups[0]["lr"] = 0.5  # decayed by hand, as PyTorch users do
    fresh = convnet.optim.AdamW(model.parameters(), lr=1, betas=(0, 0.999))
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.5
