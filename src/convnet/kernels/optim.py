"""Optimizer updates as one loop over a parameter's flattened array, in place.

The NumPy references (`convnet.optim.SGD.step`, `convnet.optim.Adam.step`) make one pass per
operation, each allocating a temporary as large as the parameter; a kernel reads every array
once and writes the parameter and its state once. Each kernel repeats its reference's
operations in the same order and in the arrays' dtype, with scalars the caller has already
rounded to that dtype (as NumPy rounds a Python float when it meets a float32 array), and
without fastmath, so the results are bit for bit the reference's.
"""

import numpy as np
from numba import njit


# error_model="numpy": a division by zero gives inf or nan as in the NumPy reference, instead of
# Python's ZeroDivisionError, whose check in the loop kept LLVM from vectorising it (2x slower).
@njit(cache=True, nogil=True, error_model="numpy")
def adam_update(param, grad, exp_avg, exp_avg_sq, decay, l2, one_minus_beta1, beta2, one_minus_beta2, step_size,
                bias_correction2_sqrt, eps):
    """param, grad, exp_avg, exp_avg_sq: (P,), updated in place (grad is read). Scalars in param's dtype.

    param *= decay (AdamW's 1 - lr * weight_decay; 1 otherwise); g = grad + l2 * param (Adam's
    weight_decay; skipped when 0); m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g^2;
    param -= step_size * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), step_size = lr / (1 - beta1^t).
    """
    for i in range(param.shape[0]):
        p = param[i] * decay
        g = grad[i]
        if l2 != 0:
            g = g + l2 * p
        m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i])
        v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
        exp_avg[i], exp_avg_sq[i] = m, v
        param[i] = p - step_size * (m / (np.sqrt(v) / bias_correction2_sqrt + eps))


@njit(cache=True, nogil=True)
def sgd_update(param, grad, lr, weight_decay):
    """param, grad: (P,): param -= lr * (grad + weight_decay * param), in place. Scalars in param's dtype."""
    for i in range(param.shape[0]):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        param[i] = param[i] - lr * g


@njit(cache=True, nogil=True)
def sgd_momentum_update(param, grad, buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov, first):
    """param, grad, buffer: (P,), param and buffer updated in place. Scalars in param's dtype.

    g = grad + weight_decay * param; buffer = g on the ``first`` step, else momentum * buffer +
    (1 - dampening) * g; param -= lr * (g + momentum * buffer if ``nesterov`` else buffer).
    """
    for i in range(param.shape[0]):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        b = g if first else buffer[i] * momentum + one_minus_dampening * g
        buffer[i] = b
        if nesterov:
            g = g + momentum * b
        else:
            g = b
        param[i] = param[i] - lr * g
