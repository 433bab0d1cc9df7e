"""ReLU as single passes over flat arrays.

NumPy's ``np.maximum(x, 0)`` and ``grad * (out > 0)`` cost two passes and a boolean temporary
for the backward; one compiled loop does each in one. The arrays are flat views of memory laid
out alike (the op hands over ``ravel(order='K')`` of arrays with equal strides). Each has its
NumPy reference after it.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def relu_forward(x, out):
    """x: (M,) -> out: (M,) = max(x, 0); NaN stays NaN, as in torch.relu."""
    for i in prange(x.shape[0]):
        value = x[i]
        out[i] = 0 if value <= 0 else value


def relu_forward_reference(x, out):
    """`relu_forward` in NumPy."""
    np.copyto(out, np.where(x <= 0, 0, x))


@njit(cache=True, nogil=True, parallel=True)
def relu_backward(grad, out, grad_in):
    """grad, out: (M,) -> grad_in: (M,) = 0 where out <= 0 (even for an infinite grad), else grad
    (NaN outputs pass their gradient, as in torch's threshold_backward)."""
    for i in prange(grad.shape[0]):
        grad_in[i] = 0 if out[i] <= 0 else grad[i]


def relu_backward_reference(grad, out, grad_in):
    """`relu_backward` in NumPy."""
    np.copyto(grad_in, np.where(out <= 0, 0, grad))
