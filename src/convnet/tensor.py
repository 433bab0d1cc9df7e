"""Tensor and reverse-mode autograd over a dynamic (define-by-run) graph.

A `Tensor` wraps an array. Every differentiable op is a `Function` subclass with ``forward``
(arrays in, array out) and ``backward`` (output gradient in, one gradient per input out) side
by side. Calling ``Op.apply(*tensors, **params)`` runs the forward and, when gradients are
enabled and an input requires them, records the op as the output's ``grad_fn``.
``Tensor.backward()`` visits the recorded graph in reverse topological order without
recursion, so graphs thousands of ops deep are fine, and frees it afterwards.
"""

import threading
from contextlib import contextmanager

import numpy as np

from . import random as _random
from .errors import InvalidType, InvalidValue

DEFAULT_DTYPE = np.float32  # torch's default; float64 doubles time and memory for nothing a CNN needs

_grad_mode = threading.local()


def is_grad_enabled():
    return getattr(_grad_mode, "enabled", True)


@contextmanager
def set_grad_enabled(enabled):
    previous = is_grad_enabled()
    _grad_mode.enabled = bool(enabled)
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def no_grad():
    """Context manager: ops inside record no graph (evaluation, parameter updates).

    Thread-local, like PyTorch's, so a data-loading thread never switches off another's graph.
    """
    return set_grad_enabled(False)


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward``.

    ``forward(*arrays, **params)`` receives the inputs' arrays (``None`` stays ``None``) and
    keeps on ``self`` only what ``backward`` needs. ``backward(grad)`` returns one gradient
    (or ``None``) per positional input. ``self.needs_input_grad`` says which inputs want one.
    """

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        output = Tensor(fn.forward(*arrays, **params))
        if is_grad_enabled() and any(fn.needs_input_grad):
            fn.inputs = inputs
            output.requires_grad = True
            output.grad_fn = fn
        return output

    def release(self):
        """Drop what the forward kept, so the graph's memory is freed after backward."""
        self.__dict__.clear()
        self.released = True


def _as_array(data, dtype):
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, (np.ndarray, np.generic)):
        return np.asarray(data)
    array = np.asarray(data)
    # Python floats become float32 (torch.tensor's default); Python ints stay int64 for labels.
    return array.astype(DEFAULT_DTYPE) if array.dtype == np.float64 else array


class Tensor:
    """An n-dimensional array with an optional gradient.

    >>> import convnet
    >>> x = convnet.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.numpy().tolist()
    [[2.0, 4.0], [6.0, 8.0]]

    Python floats become float32; NumPy arrays keep their dtype (float64 stays float64,
    integer labels stay integers). Only floating tensors can require gradients.
    """

    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ basics
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise InvalidType(f"requires_grad: only floating tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def numel(self):
        return self.data.size

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise InvalidValue(f"item: only one-element tensors convert to a Python number, got shape {self.shape}")
        return self.data.item()

    def detach(self):
        """A tensor sharing this data, cut from the graph."""
        return Tensor(self.data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required unless ``self`` has one element. The graph is freed afterwards
        unless ``retain_graph`` is true.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got shape {self.shape}; "
                    "pass gradient=... with the output's shape")
            gradient = np.ones_like(self.data)
        else:
            gradient = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if gradient.shape != self.shape:
                raise InvalidValue(f"backward: expected gradient of shape {self.shape}, got {gradient.shape}")
        grads = {id(self): gradient}
        for node in reversed(_topological_order(self)):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            fn = node.grad_fn
            if fn is None:
                node._accumulate(grad)
                continue
            if getattr(fn, "released", False):
                raise RuntimeError("backward: the graph was already freed by an earlier backward(); "
                                   "pass retain_graph=True to the first call to backward twice")
            input_grads = fn.backward(grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, parent_grad in zip(fn.inputs, input_grads):
                if parent_grad is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
            if not retain_graph:
                fn.release()

    def _accumulate(self, grad):
        if grad.shape != self.shape:
            raise RuntimeError(f"internal: gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        grad = np.asarray(grad, dtype=self.dtype)
        # order="K" keeps the gradient's memory layout: a channels-last one is copied, not transposed.
        self.grad = Tensor(grad.copy(order="K")) if self.grad is None else Tensor(self.grad.data + grad)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(self, other)

    def __radd__(self, other):
        return ops.Add.apply(other, self)

    def __sub__(self, other):
        return ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return ops.Sub.apply(other, self)

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return ops.Div.apply(other, self)

    def __pow__(self, exponent):
        return ops.Pow.apply(self, exponent)

    def __rpow__(self, base):
        return ops.Pow.apply(base, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __lt__(self, other):
        return Tensor(self.data < _data(other))

    def __le__(self, other):
        return Tensor(self.data <= _data(other))

    def __gt__(self, other):
        return Tensor(self.data > _data(other))

    def __ge__(self, other):
        return Tensor(self.data >= _data(other))

    def __eq__(self, other):
        return Tensor(self.data == _data(other))

    def __ne__(self, other):
        return Tensor(self.data != _data(other))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.Extremum.apply(self, axis=axis, keepdims=keepdims, reduce=np.max)

    def min(self, axis=None, keepdims=False):
        return ops.Extremum.apply(self, axis=axis, keepdims=keepdims, reduce=np.min)

    def argmax(self, axis=None):
        return Tensor(np.argmax(self.data, axis=axis))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, dims=tuple(dims))

    def transpose(self, dim0=-2, dim1=-1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return ops.Permute.apply(self, dims=tuple(dims))

    @property
    def T(self):
        return ops.Permute.apply(self, dims=tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        return ops.Index.apply(self, index=_index_arrays(index))

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clip(self, min=None, max=None):
        return ops.Clip.apply(self, low=min, high=max)


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _index_arrays(index):
    if isinstance(index, tuple):
        return tuple(_data(i) for i in index)
    return _data(index)


def _topological_order(root):
    """Post-order of the graph under ``root``, iteratively (deep graphs overflow recursion). A node is
    marked when it is expanded, not when it is pushed: marked on pushing, a value used directly and
    through a deeper path (x - x.max()) was emitted before the deeper path's op, losing its gradient."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        fn = node.grad_fn
        if fn is None or getattr(fn, "released", False):
            continue
        stack.extend((parent, False) for parent in fn.inputs
                     if isinstance(parent, Tensor) and parent.requires_grad and id(parent) not in visited)
    return order


# ---------------------------------------------------------------------- factories
def tensor(data, requires_grad=False, dtype=None):
    """Like ``torch.tensor``: copy ``data`` into a new tensor."""
    return Tensor(_as_array(data, dtype).copy(), requires_grad=requires_grad)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    data = _random.resolve(generator).standard_normal(_shape(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    data = _random.resolve(generator).random(_shape(shape), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


from . import ops  # noqa: E402  (ops subclass Function, defined above)

__all__ = ["Tensor", "Function", "no_grad", "set_grad_enabled", "is_grad_enabled", "tensor", "zeros", "ones",
           "randn", "rand"]
