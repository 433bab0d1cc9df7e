"""The error function and the normal CDF over arrays of any shape and memory order, in float64.

NumPy has neither; `kernels.special` computes them with libm's erf and erfc (through Numba), so
erf keeps its relative precision near 0 and the normal CDF far into its lower tail, where
1 + erf(x / sqrt(2)) would cancel to nothing (torch's float32 GELU does)."""

import math

import numpy as np

from .. import _checks, kernels
from ..tensor import Function

_SQRT_PI = math.sqrt(math.pi)


def _float64_like(kernel, x):
    """x: any shape -> float64 of x's shape and memory order, ``kernel`` applied to each value."""
    dense = np.empty_like(x)
    if dense.strides != x.strides:  # gaps or a mixed order: one copy, so the flat views correspond
        np.copyto(dense, x)
        x = dense
    out = np.empty_like(x, dtype=np.float64)
    kernel(x.ravel(order="K"), out.ravel(order="K"))
    return out


def erf_array(z):
    """erf(z): any shape -> float64, same shape and memory order."""
    return _float64_like(kernels.erf, np.asarray(z))


def normal_cdf_array(x):
    """P(Z <= x) for a standard normal Z: any shape -> float64, same shape and memory order."""
    return _float64_like(kernels.normal_cdf, np.asarray(x))


class Erf(Function):
    """out = erf(x), computed in float64 and given back in x's dtype; d/dx = 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_array(x).astype(x.dtype, copy=False)

    def backward(self, grad):
        derivative = np.exp(-self.x * self.x)  # laid out like x
        derivative *= 2 / _SQRT_PI
        derivative *= grad  # in place, so the input's gradient keeps x's memory order
        return derivative


def erf(input):
    """The error function elementwise, like ``torch.erf``: 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."""
    return Erf.apply(_checks.as_tensor("erf", "input", input))
