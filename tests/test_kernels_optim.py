"""The compiled optimizer updates (convnet.kernels.optim) take the NumPy references' steps bit for bit."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convnet import Tensor, kernels, optim

SGD_CONFIGS = [dict(lr=0.05, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
               for momentum, dampening, nesterov, weight_decay in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True),
                                                                                     (0.0, 0.1))
               if not (nesterov and (momentum == 0 or dampening != 0)) and not (dampening and not momentum)]
ADAM_CONFIGS = [dict(lr=0.05, betas=betas, eps=eps, weight_decay=weight_decay)
                for betas, eps, weight_decay in itertools.product(((0.9, 0.999), (0.8, 0.99)), (1e-8, 1e-3), (0.0, 0.3))]
CONFIGS = ([("SGD", c) for c in SGD_CONFIGS] + [("Adam", c) for c in ADAM_CONFIGS]
           + [("AdamW", c) for c in ADAM_CONFIGS])
SHAPES = st.lists(st.sampled_from([(), (1,), (7,), (3, 5), (4, 3, 3, 3), (130, 2)]), min_size=1, max_size=4)


def trajectory(mode, name, config, starts, gradients, order="C"):
    """The parameters after one step per entry of ``gradients``, with the kernels in ``mode``."""
    with kernels.use(mode):
        params = [Tensor(np.array(s, order=order), requires_grad=True) for s in starts]
        opt = getattr(optim, name)(params, **config)
        for step in gradients:
            for p, g in zip(params, step):
                p.grad = Tensor(g * (1 + p.data))  # depends on the parameter, like a real loss's gradient
            opt.step()
        return [p.data for p in params], opt


def random_run(shapes, dtype, seed, steps=25):
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in shapes] for _ in range(steps)]
    return starts, gradients


@pytest.mark.parametrize("name, config", CONFIGS, ids=[f"{n}-{c}" for n, c in CONFIGS])
@given(shapes=SHAPES, dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_compiled_steps_equal_the_reference_bit_for_bit(name, config, shapes, dtype, seed):
    starts, gradients = random_run(shapes, dtype, seed)
    expected, reference_opt = trajectory("reference", name, config, starts, gradients)
    actual, compiled_opt = trajectory("compiled", name, config, starts, gradients)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype == dtype
        np.testing.assert_array_equal(a, e)
    for a, e in zip(compiled_opt.state_dict()["state"].values(), reference_opt.state_dict()["state"].values()):
        assert a.keys() == e.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], e[key])


@pytest.mark.parametrize("name, config", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
                                          ("AdamW", dict(lr=0.05, weight_decay=0.3))])
def test_arrays_that_cannot_be_flattened_in_place_take_the_reference_step(name, config):
    starts, gradients = random_run([(3, 4), (5, 2)], np.float32, seed=0)
    expected, _ = trajectory("reference", name, config, starts, gradients)
    actual, _ = trajectory("compiled", name, config, starts, gradients, order="F")  # Fortran order: no flat view
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("name, config", [("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
                                          ("Adam", dict(lr=0.05, weight_decay=0.1))])
def test_a_state_saved_by_one_mode_resumes_in_the_other(name, config):
    starts, gradients = random_run([(3, 4), (6,)], np.float32, seed=1)
    expected, _ = trajectory("reference", name, config, starts, gradients)
    middle, first_half = trajectory("compiled", name, config, starts, gradients[:10])
    with kernels.use("reference"):
        params = [Tensor(m.copy(), requires_grad=True) for m in middle]
        opt = getattr(optim, name)(params, **config)
        opt.load_state_dict(first_half.state_dict())
        for step in gradients[10:]:
            for p, g in zip(params, step):
                p.grad = Tensor(g * (1 + p.data))
            opt.step()
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.data, e)


def test_the_compiled_step_updates_the_parameters_arrays_in_place():
    param = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    array = param.data
    opt = optim.Adam([param], lr=0.1)
    param.grad = Tensor(np.ones((2, 3), np.float32))
    opt.step()
    assert param.data is array and not np.array_equal(array, np.ones((2, 3)))
    assert opt.state[param]["exp_avg"].shape == (2, 3)
