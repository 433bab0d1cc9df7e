"""Tensor arithmetic, reductions, shape ops and the autograd engine."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
from conftest import finite_difference_check, requires_torch, torch, torch_check

BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((2, 3), ())]
BINARY = [
    (lambda a, b: a + b, lambda a, b: a + b),
    (lambda a, b: a - b, lambda a, b: a - b),
    (lambda a, b: a * b, lambda a, b: a * b),
    (lambda a, b: a / b, lambda a, b: a / b),
    (lambda a, b: a.abs() ** b, lambda a, b: a.abs() ** b),
]


BINARY_CASES = (st.sampled_from(range(len(BINARY))), st.sampled_from(BROADCAST_PAIRS), st.booleans(),
                st.integers(0, 2**16))


def binary_operands(op, shapes, swap, seed):
    rng = np.random.default_rng(seed)
    shapes = shapes[::-1] if swap else shapes
    a = rng.standard_normal(shapes[0])
    b = rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1, 1], shapes[1])
    if op == 4:
        a = a + np.sign(a) * 0.5  # keep the base away from 0 where |a|**b has a kink
    return a, b


@given(*BINARY_CASES)
def test_binary_ops_broadcast_and_reduce_gradients(op, shapes, swap, seed):
    ours, _ = BINARY[op]
    finite_difference_check(ours, list(binary_operands(op, shapes, swap, seed)))


@requires_torch
@given(*BINARY_CASES)
def test_binary_ops_match_torch(op, shapes, swap, seed):
    ours, theirs = BINARY[op]
    torch_check(ours, theirs, list(binary_operands(op, shapes, swap, seed)))


def test_scalar_operands_and_reflected_ops():
    finite_difference_check(lambda a: (2 - a) * 3 + 1 / (a + 5) - (a ** 2) / 4 + 2 ** a, [np.arange(4.0)])


@requires_torch
def test_scalar_operands_and_reflected_ops_match_torch():
    torch_check(lambda a: (2 - a) * 3 + 1 / (a + 5) - (a ** 2) / 4 + 2 ** a - (-a),
                lambda a: (2 - a) * 3 + 1 / (a + 5) - (a ** 2) / 4 + 2 ** a - (-a), [np.arange(4.0)])


MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((4,), (4,))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
def test_matmul(shapes, rng):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    finite_difference_check(lambda x, y: x @ y, [a, b])


@requires_torch
@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
def test_matmul_matches_torch(shapes, rng):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    torch_check(lambda x, y: x @ y, lambda x, y: x @ y, [a, b])


REDUCTIONS = ["sum", "mean", "max", "min"]


REDUCTION_CASES = (st.sampled_from(REDUCTIONS), st.sampled_from([None, 0, 1, -1, (0, 2)]), st.booleans(),
                   st.integers(0, 2**16))


@given(*REDUCTION_CASES)
def test_reductions(name, axis, keepdims, seed):
    x = np.random.default_rng(seed).standard_normal((3, 4, 2))
    finite_difference_check(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), [x])


@requires_torch
@given(*REDUCTION_CASES)
def test_reductions_match_torch(name, axis, keepdims, seed):
    x = np.random.default_rng(seed).standard_normal((3, 4, 2))
    ours = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    if name in ("max", "min"):
        reduce = getattr(torch, "amax" if name == "max" else "amin")
        theirs = lambda t: reduce(t, dim=() if axis is None else axis, keepdim=keepdims)  # noqa: E731
    else:
        method = getattr(torch, name)
        theirs = (lambda t: method(t)) if axis is None else (lambda t: method(t, dim=axis, keepdim=keepdims))
        if axis is None and keepdims:
            theirs = lambda t: method(t).reshape(1, 1, 1)  # noqa: E731
    torch_check(ours, theirs, [x])


@requires_torch
def test_max_shares_the_gradient_among_ties_like_torch_amax():
    torch_check(lambda t: t.max(axis=1), lambda t: torch.amax(t, dim=1), [[[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]])


SHAPE_OPS = [
    (lambda t: t.reshape(4, 6) * np.arange(24.0).reshape(4, 6), lambda t: t.reshape(4, 6) * torch.arange(24.0).reshape(4, 6)),
    (lambda t: t.view(-1), lambda t: t.view(-1)),
    (lambda t: t.flatten(1), lambda t: t.flatten(1)),
    (lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2)),
    (lambda t: t.permute(1, 2, 0), lambda t: t.permute(1, 2, 0)),
    (lambda t: t.T, lambda t: t.permute(2, 1, 0)),
    (lambda t: t[1, :, 1:3], lambda t: t[1, :, 1:3]),
    (lambda t: t[:, [0, 0, 2]], lambda t: t[:, [0, 0, 2]]),
    (lambda t: t[np.array([1, 0, 1]), np.array([2, 2, 0])], lambda t: t[[1, 0, 1], [2, 2, 0]]),
    (lambda t: t[t > 0], lambda t: t[t > 0]),
    (lambda t: t[..., ::-2], lambda t: t.flip(-1)[..., ::2]),
]


def test_shape_ops(rng):
    x = rng.standard_normal((2, 3, 4))
    for ours, _ in SHAPE_OPS:
        finite_difference_check(ours, [x])


@requires_torch
def test_shape_ops_match_torch(rng):
    x = rng.standard_normal((2, 3, 4))
    for ours, theirs in SHAPE_OPS:
        torch_check(ours, theirs, [x])


# (ours, PyTorch's, whether the input must be positive); PyTorch's side is looked up when called,
# so that this module collects without PyTorch.
ELEMENTWISE = [
    (lambda t: t.exp(), lambda t: torch.exp(t), False), (lambda t: t.log(), lambda t: torch.log(t), True),
    (lambda t: t.sqrt(), lambda t: torch.sqrt(t), True), (lambda t: t.abs(), lambda t: torch.abs(t), False),
    (lambda t: t.clip(-1.0, 1.5), lambda t: t.clamp(-1.0, 1.5), False),
    (lambda t: t.clip(min=0.5), lambda t: t.clamp(min=0.5), False),
]


def signed_and_positive_inputs(rng):
    x = rng.uniform(0.2, 3.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
    return x, np.abs(x)


def test_elementwise_functions(rng):
    x, positive = signed_and_positive_inputs(rng)
    for ours, _, needs_positive in ELEMENTWISE:
        finite_difference_check(ours, [positive if needs_positive else x])


@requires_torch
def test_elementwise_functions_match_torch(rng):
    x, positive = signed_and_positive_inputs(rng)
    for ours, theirs, needs_positive in ELEMENTWISE:
        torch_check(ours, theirs, [positive if needs_positive else x])


def test_concatenate_and_stack(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    finite_difference_check(lambda x, y: convnet.concatenate([x, y, x], axis=1), [a, b])


@requires_torch
def test_concatenate_and_stack_match_torch(rng):
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 1)), rng.standard_normal((2, 3))
    torch_check(lambda x, y: convnet.concatenate([x, y], axis=1), lambda x, y: torch.cat([x, y], dim=1), [a, b])
    torch_check(lambda x, y: convnet.stack([x, y], axis=1), lambda x, y: torch.stack([x, y], dim=1), [a, c])


def test_comparisons_give_boolean_tensors_without_gradients():
    x = convnet.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [(x > 2, [0, 0, 1]), (x >= 2, [0, 1, 1]), (x < 2, [1, 0, 0]), (x <= 2, [1, 1, 0]),
                             (x == 2, [0, 1, 0]), (x != 2, [1, 0, 1])]:
        assert result.dtype == np.bool_ and not result.requires_grad
        assert result.numpy().tolist() == [bool(e) for e in expected]


def test_dtypes_and_conversions():
    assert convnet.tensor([1.0, 2.0]).dtype == np.float32
    assert convnet.tensor([1, 2]).dtype == np.int64
    assert convnet.tensor(np.zeros(2)).dtype == np.float64
    assert convnet.tensor(np.zeros(2), dtype=np.float32).dtype == np.float32
    assert convnet.zeros(2, 3).dtype == np.float32 and convnet.randn(2, dtype=np.float64).dtype == np.float64
    x = convnet.tensor([[1.5, 2.5]])
    assert np.asarray(x) is x.numpy() and x.item is not None and x[0, 1].item() == 2.5
    assert x.shape == (1, 2) and x.ndim == 2 and x.numel() == 2 and x.size(1) == 2
    assert "requires_grad=True" in repr(convnet.ones(2, requires_grad=True))
    source = np.zeros(3, dtype=np.float32)
    copy = convnet.tensor(source)
    source[0] = 1
    assert copy.numpy()[0] == 0  # tensor() copies, like torch.tensor
    with pytest.raises(ValueError, match="only one-element tensors"):
        convnet.ones(2).item()


def test_gradients_accumulate_across_backward_calls_like_torch():
    x = convnet.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_a_tensor_used_twice_gets_both_contributions():
    x = convnet.tensor(3.0, requires_grad=True)
    y = x * x + x
    y.backward()
    assert x.grad.item() == 7.0


def test_backward_with_an_explicit_gradient_and_its_errors():
    x = convnet.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2, 20])
    with pytest.raises(RuntimeError, match=r"only for scalar outputs, got shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"expected gradient of shape \(2,\), got \(3,\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        convnet.ones(2).sum().backward()


def test_a_chain_of_thousands_of_ops_backpropagates_without_recursion():
    x = convnet.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001 + 0.0
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 5000, rel=1e-3)


def test_the_graph_is_freed_after_backward_unless_retained():
    x = convnet.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4, 8])
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()
    assert not hasattr(y.grad_fn, "inputs")  # saved arrays and inputs are gone


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = convnet.tensor([1.0], requires_grad=True)
    with convnet.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert convnet.is_grad_enabled()
    z = (x * 2).detach()
    assert not z.requires_grad and z.is_leaf


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(TypeError, match="only floating tensors can require gradients, got dtype int64"):
        convnet.tensor([1, 2], requires_grad=True)


def test_reshape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4,\)"):
        convnet.zeros(2, 3).reshape(4)


def test_manual_seed_repeats_random_tensors():
    convnet.manual_seed(3)
    a = convnet.randn(5).numpy()
    convnet.manual_seed(3)
    np.testing.assert_array_equal(a, convnet.randn(5).numpy())
    with pytest.raises(ValueError, match="non-negative integer seed, got -1"):
        convnet.manual_seed(-1)


def test_a_value_used_directly_and_through_a_deeper_path_gets_both_gradients():
    """x - max(x), x * sigmoid(x) and a residual x + f(x) read x directly (first) and through an op: the
    backward must take every path before x's own (a depth-first order marked on push lost the deeper one)."""
    x = convnet.Tensor(np.array([[1.0, 3.0, 2.0]]), requires_grad=True)
    (x - x.max(axis=1, keepdims=True)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, -2.0, 1.0]])
    x = convnet.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (x * x.exp()).sum().backward()  # d/dx x e^x = (1 + x) e^x
    np.testing.assert_allclose(x.grad.numpy(), (1 + x.numpy()) * np.exp(x.numpy()), rtol=1e-15)
    x = convnet.Tensor(np.array([2.0]), requires_grad=True)
    y = x * 3
    (y + (y * y).exp().log()).sum().backward()  # y + y^2: d/dx = 3 + 2 * y * 3 = 3 + 36
    np.testing.assert_array_equal(x.grad.numpy(), [39.0])
