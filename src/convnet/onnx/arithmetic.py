"""The elementwise ops, reductions and activations a loaded model runs as functions: those ONNX's
functions expand into (Softmax as ReduceMax, Exp, ReduceSum; Gelu as Pow, Sqrt, Tanh, Erf; LeakyRelu
as Less and Where; CastLike; Max; Sum) and those exporters write around convolutions (Clip for ReLU6,
HardSigmoid, HardSwish, LayerNormalization, ...).

Each takes Tensors or NumPy arrays and returns a Tensor where any input is one (so gradients flow
through convnet's differentiable ops), a NumPy array otherwise (a constant, folded at load).
Comparisons and casts to integer or boolean types return NumPy arrays: nothing differentiates them.
"""

import functools

import numpy as np

from .. import functional as F
from ..ops import Abs, Add, Clip, Div, Exp, Log, Mul, Neg, Pow, Sqrt
from ..tensor import Function, Tensor


def _data(value):
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _any_tensor(*values):
    return any(isinstance(value, Tensor) for value in values)


def _elementwise(function_class, numpy_function):
    """A function of one value: ``function_class`` on a Tensor, ``numpy_function`` on an array."""
    def apply(x, **attributes):
        if isinstance(x, Tensor):
            return function_class.apply(x, **attributes)
        return np.asarray(numpy_function(np.asarray(x), **attributes)).astype(np.asarray(x).dtype, copy=False)
    apply.__name__ = function_class.__name__.lower()
    return apply


exp = _elementwise(Exp, np.exp)
log = _elementwise(Log, np.log)
sqrt = _elementwise(Sqrt, np.sqrt)
neg = _elementwise(Neg, np.negative)
absolute = _elementwise(Abs, np.abs)


def power(base, exponent):
    """base ** exponent, of base's dtype (as ONNX's Pow)."""
    if _any_tensor(base, exponent):
        return Pow.apply(base, np.asarray(exponent, dtype=_data(base).dtype) if not isinstance(exponent, Tensor)
                         else exponent)
    return np.power(base, exponent).astype(np.asarray(base).dtype, copy=False)


def reciprocal(x):
    return Div.apply(np.ones((), dtype=x.dtype), x) if isinstance(x, Tensor) else np.reciprocal(x)


class Where(Function):
    """out = a where condition else b (broadcast); each operand's gradient where it was chosen."""

    def forward(self, condition, a, b):
        self.condition, self.shapes = condition, (np.shape(a), np.shape(b))
        return np.where(condition, a, b)

    def backward(self, grad):
        from ..ops import unbroadcast
        zero = np.zeros((), dtype=grad.dtype)
        return (None, unbroadcast(np.where(self.condition, grad, zero), self.shapes[0]),
                unbroadcast(np.where(self.condition, zero, grad), self.shapes[1]))


def where(condition, a, b):
    condition = _data(condition).astype(bool)
    return Where.apply(condition, a, b) if _any_tensor(a, b) else np.where(condition, a, b)


def _pairwise(combine):
    """A variadic op (Max, Min, Sum, Mean: one or more broadcast inputs) folded over its inputs."""
    def apply(*values):
        return functools.reduce(combine, values)
    apply.__name__ = combine.__name__
    return apply


def maximum(a, b):
    return where(np.greater_equal(_data(a), _data(b)), a, b) if _any_tensor(a, b) else np.maximum(a, b)


def minimum(a, b):
    return where(np.less_equal(_data(a), _data(b)), a, b) if _any_tensor(a, b) else np.minimum(a, b)


def plus(a, b):
    return Add.apply(a, b) if _any_tensor(a, b) else np.add(a, b)


variadic_max, variadic_min, variadic_sum = _pairwise(maximum), _pairwise(minimum), _pairwise(plus)


def variadic_mean(*values):
    total = variadic_sum(*values)
    count = np.asarray(len(values), dtype=_data(total).dtype)
    return Div.apply(total, count) if isinstance(total, Tensor) else total / count


def compare(a, b, relation):
    """A comparison (np.less, np.equal, ...) or logical op of the values' data: a NumPy bool array."""
    return relation(_data(a), _data(b))


def logical_not(x):
    return np.logical_not(_data(x))


class Cast(Function):
    """out = x as another floating dtype; the gradient goes back as x's."""

    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.dtype)


def cast(x, dtype):
    """``x`` as ``dtype`` (a NumPy dtype): differentiable between floating types, an array otherwise."""
    dtype = np.dtype(dtype)
    if isinstance(x, Tensor) and dtype.kind == "f":
        return x if x.dtype == dtype else Cast.apply(x, dtype=dtype)
    return _data(x).astype(dtype)  # floats to integers truncate toward zero, as ONNX's Cast does


def cast_like(x, like):
    return cast(x, _data(like).dtype)


def reduce(data, axes, keepdims, kind):
    """The ``kind`` ('sum', 'mean', 'max', 'min') of ``data`` over ``axes`` (None: all of them)."""
    axes = None if axes is None else tuple(int(axis) for axis in axes)
    if isinstance(data, Tensor):
        return getattr(data, kind)(axis=axes, keepdims=bool(keepdims))
    reduced = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[kind](data, axis=axes,
                                                                                   keepdims=bool(keepdims))
    return np.asarray(reduced).astype(data.dtype, copy=False)


def clip(x, low=None, high=None):
    """x limited to [low, high] (either may be absent): ONNX's Clip, ReLU6 when they are 0 and 6."""
    low = None if low is None else _data(low).item()
    high = None if high is None else _data(high).item()
    if low is None and high is None:
        return x
    if isinstance(x, Tensor):
        return Clip.apply(x, low=low, high=high)
    return np.clip(x, low, high).astype(x.dtype, copy=False)


def hard_sigmoid(x, alpha=0.2, beta=0.5):
    """max(0, min(1, alpha * x + beta))."""
    dtype = _data(x).dtype
    scaled = plus(Mul.apply(x, np.asarray(alpha, dtype)) if isinstance(x, Tensor) else x * np.asarray(alpha, dtype),
                  np.asarray(beta, dtype))
    return clip(scaled, np.asarray(0.0), np.asarray(1.0))


def hard_swish(x):
    """x * max(0, min(1, x / 6 + 1/2)): `F.hardswish` on a Tensor."""
    return F.hardswish(x) if isinstance(x, Tensor) else x * hard_sigmoid(x, 1 / 6, 0.5)


class Elu(Function):
    """out = x for x > 0, alpha * (exp(x) - 1) else (scaled by gamma for Selu); d/dx = gamma or
    gamma * alpha * exp(x)."""

    def forward(self, x, alpha, gamma=1.0):
        self.x, self.alpha, self.gamma = x, x.dtype.type(alpha), x.dtype.type(gamma)
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))) * self.gamma

    def backward(self, grad):
        x = self.x
        return grad * self.gamma * np.where(x > 0, 1, self.alpha * np.exp(np.minimum(x, 0))).astype(x.dtype)


def elu(x, alpha=1.0):
    return Elu.apply(x, alpha=alpha) if isinstance(x, Tensor) else Elu().forward(np.asarray(x), alpha)


def selu(x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    return Elu.apply(x, alpha=alpha, gamma=gamma) if isinstance(x, Tensor) else Elu().forward(np.asarray(x), alpha,
                                                                                                gamma)


class Softplus(Function):
    """out = log(1 + exp(x)), computed as logaddexp(0, x) (no overflow); d/dx = sigmoid(x)."""

    def forward(self, x):
        self.x = x
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad / (1 + np.exp(-self.x))


def softplus(x):
    return Softplus.apply(x) if isinstance(x, Tensor) else Softplus().forward(np.asarray(x))


def prelu(x, slope):
    """x where x >= 0, slope * x elsewhere (slope broadcast against x)."""
    negative = Mul.apply(x, slope) if _any_tensor(x, slope) else np.multiply(x, slope)
    return where(_data(x) < 0, negative, x)


def layer_normalization(x, scale, bias=None, axis=-1, epsilon=1e-5):
    """(x - mean) / sqrt(var + epsilon) * scale + bias, mean and (biased) variance over the axes from
    ``axis`` to the last (ONNX's LayerNormalization): `F.layer_norm` over x.shape[axis:], with scale
    and bias broadcast to that shape where ONNX lets them be smaller."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    shape = tuple(x.shape[axis % x.ndim:])
    scale, bias = (None if value is None else expand_to(value, shape) for value in (scale, bias))
    return F.layer_norm(x, shape, scale, bias, epsilon)


def expand_to(value, shape):
    """``value`` broadcast to ``shape`` (differentiably for a Tensor)."""
    if tuple(np.shape(_data(value))) == tuple(shape):
        return value
    if isinstance(value, Tensor):
        return Add.apply(value, np.zeros(shape, dtype=value.dtype))
    return np.broadcast_to(value, shape).copy()
