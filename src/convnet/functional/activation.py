"""Elementwise nonlinearities and (log-)softmax. Shapes: any input shape, same output shape.

The elementwise ops keep their input's memory order (NumPy's ufuncs and ``np.empty_like`` follow
it), so a channels-last or channel-major activation is never copied into NCHW order, and their
input's gradient is handed back in that order too."""

import math

import numpy as np

from .. import _checks, kernels
from ..errors import InvalidValue
from ..tensor import Function


def _laid_out_like(array, dense):
    """Whether ``array`` has the strides of ``dense`` (an ``np.empty_like`` result, so without
    gaps): then both ``ravel(order='K')`` are views whose elements correspond."""
    return array.strides == dense.strides


def _in_layout_of(saved, grad):
    """``grad`` laid out like ``saved`` (what the forward kept, in its input's memory order), copied
    once if it is not: NumPy gives an expression of arrays of two layouts C order, so the input's
    gradient would otherwise leave a channels-last (or channel-major) producer in NCHW order."""
    like = np.empty_like(saved, dtype=grad.dtype)  # dense, in saved's memory order
    if grad.strides == like.strides:
        return grad
    np.copyto(like, grad)
    return like


class ReLU(Function):
    """out = max(x, 0); d/dx = 1 where x > 0: one pass each way (`kernels.relu_forward`, `relu_backward`)
    over arrays laid out alike, a NumPy expression otherwise (an input with gaps, a gradient of
    another dtype). The output and the input's gradient keep the input's memory order (a gradient
    in another layout is copied into it first)."""

    def forward(self, x):
        self.out = np.empty_like(x)
        if _laid_out_like(x, self.out):
            kernels.relu_forward(x.ravel(order="K"), self.out.ravel(order="K"))
            return self.out
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, grad):
        if grad.dtype != self.out.dtype:
            return np.where(self.out <= 0, 0, grad)  # as torch: 0 even for an infinite grad
        laid_out = _in_layout_of(self.out, grad)
        grad_in = laid_out if laid_out is not grad else np.empty_like(self.out)  # a copy of ours: work in place
        kernels.relu_backward(laid_out.ravel(order="K"), self.out.ravel(order="K"), grad_in.ravel(order="K"))
        return grad_in


class LeakyReLU(Function):
    """out = x if x > 0 else slope * x."""

    def forward(self, x, negative_slope):
        self.positive, self.slope = x > 0, negative_slope
        return np.where(self.positive, x, x * negative_slope)

    def backward(self, grad):
        grad = _in_layout_of(self.positive, grad)
        return np.where(self.positive, grad, grad * self.slope)


class Sigmoid(Function):
    """out = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 so large |x| never overflows."""

    def forward(self, x):
        self.out = 0.5 * (1 + np.tanh(0.5 * x))
        return self.out

    def backward(self, grad):
        return _in_layout_of(self.out, grad) * self.out * (1 - self.out)


class Tanh(Function):
    """out = tanh(x); d/dx = 1 - tanh(x)^2, from the output."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad):
        return _in_layout_of(self.out, grad) * (1 - self.out * self.out)


def erf_approximation(x):
    """Error function, Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7; NumPy has no erf)."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1 - poly * np.exp(-x * x))


class GELU(Function):
    """out = x * Phi(x) (Phi the normal CDF), or its tanh approximation when approximate='tanh'."""

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            self.inner = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
            return 0.5 * x * (1 + self.inner)
        self.cdf = 0.5 * (1 + erf_approximation(x / math.sqrt(2)))
        return x * self.cdf

    def backward(self, grad):
        x, grad = self.x, _in_layout_of(self.x, grad)
        if self.approximate == "tanh":
            d_inner = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
            return grad * (0.5 * (1 + self.inner) + 0.5 * x * (1 - self.inner ** 2) * d_inner)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad * (self.cdf + x * pdf)


class Softmax(Function):
    """out = exp(x - max) / sum(exp(x - max)) along ``dim``; d/dx = out * (g - sum(g * out))."""

    def forward(self, x, dim):
        shifted = np.exp(x - x.max(axis=dim, keepdims=True))
        self.out, self.dim = shifted / shifted.sum(axis=dim, keepdims=True), dim
        return self.out

    def backward(self, grad):
        return self.out * (grad - (grad * self.out).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    """out = x - max - log(sum(exp(x - max))) along ``dim``; d/dx = g - softmax * sum(g)."""

    def forward(self, x, dim):
        self.out, self.dim = log_softmax_array(x, dim), dim
        return self.out

    def backward(self, grad):
        return grad - np.exp(self.out) * grad.sum(axis=self.dim, keepdims=True)


def log_softmax_array(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def relu(input):
    """max(input, 0) elementwise, like ``torch.relu``."""
    return ReLU.apply(_checks.as_tensor("relu", "input", input))


def leaky_relu(input, negative_slope=0.01):
    return LeakyReLU.apply(_checks.as_tensor("leaky_relu", "input", input), negative_slope=negative_slope)


def sigmoid(input):
    return Sigmoid.apply(_checks.as_tensor("sigmoid", "input", input))


def tanh(input):
    return Tanh.apply(_checks.as_tensor("tanh", "input", input))


def gelu(input, approximate="none"):
    """Gaussian error linear unit, like ``torch.nn.functional.gelu`` (approximate 'none' or 'tanh')."""
    if approximate not in ("none", "tanh"):
        raise InvalidValue(f"gelu: expected approximate to be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(_checks.as_tensor("gelu", "input", input), approximate=approximate)


def _dim(op, input, dim):
    if not isinstance(dim, int) or not -input.ndim <= dim < max(input.ndim, 1):
        raise InvalidValue(f"{op}: dim={dim!r} is out of range for input of shape {input.shape}")
    return dim


def softmax(input, dim=-1):
    """Numerically stable softmax along ``dim``: any shape -> same shape, summing to 1 along ``dim``."""
    input = _checks.as_tensor("softmax", "input", input)
    return Softmax.apply(input, dim=_dim("softmax", input, dim))


def log_softmax(input, dim=-1):
    """log(softmax(input)) along ``dim``, computed without overflow or log(0)."""
    input = _checks.as_tensor("log_softmax", "input", input)
    return LogSoftmax.apply(input, dim=_dim("log_softmax", input, dim))
