"""Tensor arithmetic, reductions and shape ops: each a Function with forward and backward.

Binary ops broadcast like NumPy; their backward sums the gradient back to each operand's
shape (`unbroadcast`). Non-tensor operands (Python numbers, arrays) are constants.
"""

import numpy as np

from .errors import InvalidValue
from .tensor import Function, Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Add(Function):
    """out = a + b (broadcast)."""

    def forward(self, a, b):
        self.shapes = np.shape(a), np.shape(b)
        return np.add(a, b)

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])


class Sub(Function):
    """out = a - b (broadcast)."""

    def forward(self, a, b):
        self.shapes = np.shape(a), np.shape(b)
        return np.subtract(a, b)

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(-grad, self.shapes[1])


class Mul(Function):
    """out = a * b (broadcast)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.multiply(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = unbroadcast(grad * b, np.shape(a)) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad * a, np.shape(b)) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    """out = a / b (broadcast)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.divide(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        grad_a = unbroadcast(grad / b, np.shape(a)) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-grad * a / (b * b), np.shape(b)) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Pow(Function):
    """out = base ** exponent (broadcast); d/dbase = e*b^(e-1), d/dexponent = b^e * log(b)."""

    def forward(self, base, exponent):
        self.base, self.exponent = base, exponent
        self.out = np.power(base, exponent)
        return self.out

    def backward(self, grad):
        base, exponent = self.base, self.exponent
        grad_base = grad_exponent = None
        if self.needs_input_grad[0]:
            grad_base = unbroadcast(grad * exponent * np.power(base, exponent - 1), np.shape(base))
        if self.needs_input_grad[1]:
            grad_exponent = unbroadcast(grad * self.out * np.log(base), np.shape(exponent))
        return grad_base, grad_exponent


class Neg(Function):
    """out = -a."""

    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class MatMul(Function):
    """out = a @ b with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m); 1-D operands allowed."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # Give the gradient back the axes that 1-D operands dropped from the product.
        grad = grad.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(grad @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ grad, b2.shape).reshape(b.shape)
        return grad_a, grad_b


def matmul(a, b):
    shapes = [np.shape(x.data if isinstance(x, Tensor) else x) for x in (a, b)]
    if not all(shapes):
        raise InvalidValue(f"matmul: both operands need at least 1 dimension, got shapes {shapes[0]} and {shapes[1]}")
    inner = shapes[0][-1], shapes[1][-2 if len(shapes[1]) > 1 else -1]
    if inner[0] != inner[1]:
        raise InvalidValue(f"matmul: cannot multiply shapes {shapes[0]} and {shapes[1]}: "
                         f"inner dimensions {inner[0]} and {inner[1]} differ")
    return MatMul.apply(a, b)


# -------------------------------------------------------------------------- reductions
def _expand_reduced(grad, shape, axis, keepdims):
    """Give a reduced gradient back the reduced axes so it broadcasts against ``shape``."""
    if axis is not None and not keepdims:
        axes = (axis,) if np.isscalar(axis) else axis
        grad = np.expand_dims(grad, tuple(a % len(shape) for a in axes))
    return grad


class Sum(Function):
    """out = a.sum(axis, keepdims)."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    def backward(self, grad):
        return np.broadcast_to(_expand_reduced(grad, self.shape, self.axis, self.keepdims), self.shape)


class Mean(Function):
    """out = a.mean(axis, keepdims)."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        out = np.asarray(a.mean(axis=axis, keepdims=keepdims))
        self.count = a.size // max(out.size, 1) if a.size else 1
        return out

    def backward(self, grad):
        grad = _expand_reduced(grad, self.shape, self.axis, self.keepdims) / self.count
        return np.broadcast_to(grad, self.shape)


class Extremum(Function):
    """out = a.max(...) or a.min(...); the gradient is shared equally among tied extremes."""

    def forward(self, a, axis=None, keepdims=False, reduce=np.max):
        if a.size == 0:
            raise InvalidValue(f"{reduce.__name__}: cannot reduce an empty tensor of shape {a.shape}")
        self.a, self.axis, self.keepdims = a, axis, keepdims
        self.out = np.asarray(reduce(a, axis=axis, keepdims=True))
        return self.out if keepdims else np.asarray(reduce(a, axis=axis, keepdims=False))

    def backward(self, grad):
        mask = self.a == self.out
        grad = _expand_reduced(grad, self.a.shape, self.axis, self.keepdims)
        return grad * mask / mask.sum(axis=self.axis, keepdims=True)


# -------------------------------------------------------------------------- shape
class Reshape(Function):
    """out = a.reshape(shape); the gradient is reshaped back to a's shape."""

    def forward(self, a, shape):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise InvalidValue(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                             f"into {shape}") from None

    def backward(self, grad):
        return grad.reshape(self.shape)


def flatten(a, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one, like ``torch.flatten``."""
    shape = a.shape
    if a.ndim == 0:
        return a.reshape(1)
    start, end = start_dim % a.ndim, end_dim % a.ndim
    if start > end:
        raise InvalidValue(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim}) for shape {shape}")
    return a.reshape(shape[:start] + (-1,) + shape[end + 1:])


class Permute(Function):
    """out = a.transpose(dims); the gradient goes back through the inverse permutation."""

    def forward(self, a, dims):
        if sorted(d % a.ndim for d in dims) != list(range(a.ndim)):
            raise InvalidValue(f"permute: expected a permutation of {tuple(range(a.ndim))}, got {dims}")
        self.dims = dims
        return a.transpose(dims)

    def backward(self, grad):
        return grad.transpose(np.argsort([d % grad.ndim for d in self.dims]))


class Index(Function):
    """out = a[index] for basic slices, integer arrays and boolean masks."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return np.asarray(a[index])

    def backward(self, grad):
        full = np.zeros(self.shape, dtype=self.dtype)
        np.add.at(full, self.index, grad)  # integer indices may repeat: each occurrence adds
        return full


# -------------------------------------------------------------------------- elementwise
class Exp(Function):
    """out = exp(a); d/da = exp(a), the output itself."""

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Function):
    """out = log(a); d/da = 1/a."""

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, grad):
        return grad / self.a


class Sqrt(Function):
    """out = sqrt(a); d/da = 1 / (2*sqrt(a))."""

    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Function):
    """out = |a|; d/da = sign(a), 0 at a = 0 (as torch.abs)."""

    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, grad):
        return grad * np.sign(self.a)


class Clip(Function):
    """out = clip(a, low, high); the gradient passes where low <= a <= high (as torch.clamp)."""

    def forward(self, a, low=None, high=None):
        if low is None and high is None:
            raise InvalidValue("clip: at least one of min and max must be given")
        self.a, self.low, self.high = a, low, high
        return np.clip(a, low, high)

    def backward(self, grad):
        keep = np.ones(self.a.shape, dtype=bool)
        if self.low is not None:
            keep &= self.a >= self.low
        if self.high is not None:
            keep &= self.a <= self.high
        return grad * keep


class Concatenate(Function):
    """out = concatenate(tensors, axis); the gradient is split back at the joins."""

    def forward(self, *arrays, axis=0):
        if not arrays:
            raise InvalidValue("concatenate: expected at least one tensor")
        self.axis = axis
        self.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        shape = list(arrays[0].shape)
        shape[axis] = sum(a.shape[axis] for a in arrays)
        # In the first input's memory order (a channels-last DenseNet stays channels-last).
        out = np.empty_like(arrays[0], shape=shape, dtype=np.result_type(*arrays))
        return np.concatenate(arrays, axis=axis, out=out)

    def backward(self, grad):
        return tuple(np.split(grad, self.splits, axis=self.axis))


class Stack(Function):
    """out = stack(tensors, axis): a new axis of length len(tensors)."""

    def forward(self, *arrays, axis=0):
        if not arrays:
            raise InvalidValue("stack: expected at least one tensor")
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, grad):
        return tuple(np.moveaxis(grad, self.axis, 0))


def concatenate(tensors, axis=0):
    """Like ``torch.cat``: tensors joined along an existing ``axis``."""
    return Concatenate.apply(*tensors, axis=axis)


def cat(tensors, dim=0):
    """``torch.cat``: tensors (a sequence) of one shape but along ``dim`` joined along it."""
    shapes = [tuple(np.shape(t.data if isinstance(t, Tensor) else t)) for t in tensors]
    if not shapes or len({len(s) for s in shapes}) > 1 or not -len(shapes[0]) <= dim < len(shapes[0]):
        raise InvalidValue(f"cat: expected tensors of one number of dimensions and dim among them, got shapes "
                           f"{shapes} and dim={dim}")
    dim %= len(shapes[0])
    if len({s[:dim] + s[dim + 1:] for s in shapes}) > 1:
        raise InvalidValue(f"cat: expected shapes that differ only in dim {dim}, got {shapes}")
    return Concatenate.apply(*tensors, axis=dim)


class Narrow(Function):
    """out = a[..., start:start + length, ...] along ``axis`` (a view); the gradient fills that slice of
    zeros laid out like a."""

    def forward(self, a, axis, start, length):
        self.a, self.index = a, (slice(None),) * axis + (slice(start, start + length),)
        return a[self.index]

    def backward(self, grad):
        full = np.zeros_like(self.a, dtype=grad.dtype)
        full[self.index] = grad
        return full


def split(tensor, split_size_or_sections, dim=0):
    """``torch.split``: pieces of ``split_size_or_sections`` along ``dim`` (an int: that size each, the
    last smaller; a list: those sizes, summing to the dim's); each a view, with its gradient."""
    if not -tensor.ndim <= dim < tensor.ndim:
        raise InvalidValue(f"split: expected dim in [{-tensor.ndim}, {tensor.ndim}), got {dim} for {tensor.shape}")
    size = tensor.shape[dim]
    sections = split_size_or_sections
    if isinstance(sections, (int, np.integer)) and not isinstance(sections, bool) and sections > 0:
        sections = [min(sections, size - start) for start in range(0, size, sections)] or [0]
    elif not (isinstance(sections, (list, tuple)) and sum(sections) == size and all(n >= 0 for n in sections)):
        raise InvalidValue(f"split: expected a positive int or sizes summing to {size} (dim {dim} of "
                           f"{tensor.shape}), got {split_size_or_sections!r}")
    starts = np.cumsum([0, *sections[:-1]])
    return tuple(Narrow.apply(tensor, axis=dim % tensor.ndim, start=int(start), length=int(length))
                 for start, length in zip(starts, sections))


def chunk(tensor, chunks, dim=0):
    """``torch.chunk``: at most ``chunks`` pieces of ceil(size / chunks) along ``dim`` (ShuffleNetV2's halves)."""
    if not isinstance(chunks, (int, np.integer)) or isinstance(chunks, bool) or chunks < 1:
        raise InvalidValue(f"chunk: expected chunks to be a positive int, got {chunks!r}")
    if not -tensor.ndim <= dim < tensor.ndim:
        raise InvalidValue(f"chunk: expected dim in [{-tensor.ndim}, {tensor.ndim}), got {dim} for {tensor.shape}")
    return split(tensor, max(-(-tensor.shape[dim] // chunks), 1), dim)


def stack(tensors, axis=0):
    """Like ``torch.stack``: tensors joined along a new ``axis``."""
    return Stack.apply(*tensors, axis=axis)


Tensor.chunk, Tensor.split = chunk, split  # x.chunk(2, dim=1), as in torch: methods defined here, beside them
