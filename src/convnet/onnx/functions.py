"""The functions a loaded model runs for ONNX's arithmetic and shape ops (Add, Gemm, Reshape,
Shape, Gather, Concat, ...), where no convnet layer stands for the node.

They take the graph's values as they come at run time: Tensors (activations, weights) or NumPy
arrays (constants, and the int64 shapes that torch's flatten computes with Shape, Gather,
Unsqueeze and Concat), and return a Tensor when any input is one, so that what depends only on
constants can run once, at load, in NumPy.
"""

import math

import numpy as np

from .. import functional as F
from ..errors import InvalidValue
from ..functional.special import erf_array as erf_approximation
from ..ops import Add, Div, Mul, Sub, concatenate, matmul
from ..tensor import Function, Tensor


def _any_tensor(*values):
    return any(isinstance(value, Tensor) for value in values)


def add(a, b):
    return Add.apply(a, b) if _any_tensor(a, b) else np.add(a, b)


def sub(a, b):
    return Sub.apply(a, b) if _any_tensor(a, b) else np.subtract(a, b)


def mul(a, b):
    return Mul.apply(a, b) if _any_tensor(a, b) else np.multiply(a, b)


def div(a, b):
    if _any_tensor(a, b):
        return Div.apply(a, b)
    if np.issubdtype(np.result_type(a, b), np.integer):
        return (np.abs(a) // np.abs(b)) * np.sign(a) * np.sign(b)  # ONNX truncates toward zero; // floors
    return np.divide(a, b)


def matrix_product(a, b):
    return matmul(a, b) if _any_tensor(a, b) else np.matmul(a, b)


def gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    """alpha * A' @ B' + beta * C, A' = A^T if transA (M, K), B' = B^T if transB (K, N), C broadcast to
    (M, N); the arguments are named as Gemm's attributes."""
    out = matrix_product(a.T if transA else a, b.T if transB else b)
    if alpha != 1:
        out = mul(out, np.asarray(alpha, dtype=out.dtype))
    if c is not None:
        out = add(out, c if beta == 1 else mul(c, np.asarray(beta, dtype=out.dtype)))
    return out


class Erf(Function):
    """out = erf(x) (Abramowitz & Stegun, |error| < 1.5e-7, as `F.gelu`'s); d/dx = 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_approximation(x).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad * (2 / math.sqrt(math.pi)) * np.exp(-self.x * self.x)


def erf(x):
    return Erf.apply(x) if isinstance(x, Tensor) else erf_approximation(x).astype(x.dtype, copy=False)


def identity(x):
    return x


def reshape(data, shape, allowzero=0):
    """``shape`` may hold -1 (inferred) and, unless ``allowzero``, 0 (the input's size there)."""
    target = [int(size) for size in shape]
    if not allowzero:
        target = [data.shape[axis] if size == 0 else size for axis, size in enumerate(target)]
    return data.reshape(tuple(target))


def flatten(data, axis=1):
    """(d0, ..., dr-1) -> (d0 * ... * d(axis-1), d(axis) * ... * dr-1)."""
    axis = axis + data.ndim if axis < 0 else axis
    return data.reshape(math.prod(data.shape[:axis]), math.prod(data.shape[axis:]))


def shape(data, start=0, end=None):
    return np.array(data.shape[start:end], dtype=np.int64)


def gather(data, indices, axis=0):
    indices = np.asarray(indices)
    if isinstance(data, Tensor):
        return data[(slice(None),) * (axis % data.ndim) + (indices,)]
    return np.take(data, indices, axis=axis)


def unsqueeze(data, axes):
    axes = [int(axis) for axis in np.atleast_1d(axes)]
    rank = data.ndim + len(axes)
    target = list(data.shape)
    for axis in sorted(axis % rank for axis in axes):
        target.insert(axis, 1)
    return data.reshape(tuple(target))


def squeeze(data, axes=None):
    if axes is None:
        axes = [axis for axis, size in enumerate(data.shape) if size == 1]
    axes = {int(axis) % data.ndim for axis in np.atleast_1d(axes)}
    if any(data.shape[axis] != 1 for axis in axes):
        raise InvalidValue(f"Squeeze: expected size 1 on axes {sorted(axes)}, got shape {tuple(data.shape)}")
    return data.reshape(tuple(size for axis, size in enumerate(data.shape) if axis not in axes))


def concat(*values, axis):
    return concatenate(values, axis=axis) if _any_tensor(*values) else np.concatenate(values, axis=axis)


def reduce_mean(data, axes, keepdims):
    """The mean over ``axes`` (None: all)."""
    mean = data.mean(axis=axes, keepdims=bool(keepdims))
    return mean if isinstance(data, Tensor) else np.asarray(mean)


def flattened_softmax(x, axis, log):
    """Softmax before opset 13: over the input flattened to 2-D at ``axis``, as one distribution per row."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    rows = flatten(x, axis)
    return (F.log_softmax if log else F.softmax)(rows, dim=1).reshape(x.shape)
