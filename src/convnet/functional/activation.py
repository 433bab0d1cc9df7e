"""Elementwise nonlinearities and (log-)softmax. Shapes: any input shape, same output shape.

The elementwise ops keep their input's memory order (NumPy's ufuncs and ``np.empty_like`` follow
it), so a channels-last or channel-major activation is never copied into NCHW order, and their
input's gradient is handed back in that order too."""

import math
import numbers

import numpy as np

from .. import _checks, kernels
from ..errors import InvalidValue
from ..tensor import Function
from .special import normal_cdf_array


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


class Hardtanh(Function):
    """out = clip(x, min_val, max_val); d/dx = 1 strictly between the ends and 0 at and beyond them
    (as torch's hardtanh_backward, so ReLU6's gradient at 0 and at 6 is 0)."""

    def forward(self, x, min_val, max_val):
        self.inside = (x > min_val) & (x < max_val)
        return np.clip(x, min_val, max_val)

    def backward(self, grad):
        return np.where(self.inside, _in_layout_of(self.inside, grad), 0)


class Hardsigmoid(Function):
    """out = min(max(x + 3, 0), 6) / 6 (torch's order of operations, so float32 results agree bit for
    bit); d/dx = 1/6 strictly inside (-3, 3), 0 elsewhere."""

    def forward(self, x):
        self.inside = (x > -3) & (x < 3)
        out = x + 3
        np.clip(out, 0, 6, out=out)
        out /= 6
        return out

    def backward(self, grad):
        return np.where(self.inside, _in_layout_of(self.inside, grad) / 6, 0)


class Hardswish(Function):
    """out = x * min(max(x + 3, 0), 6) / 6; d/dx = 0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 for x >= 3
    (torch's hardswish_backward, ends included)."""

    def forward(self, x):
        self.x = x
        out = x + 3
        np.clip(out, 0, 6, out=out)
        out *= x
        out /= 6
        return out

    def backward(self, grad):
        x, grad = self.x, _in_layout_of(self.x, grad)
        return np.where(x <= -3, 0, np.where(x < 3, grad * (x / 3 + 0.5), grad))


class SiLU(Function):
    """out = x * sigmoid(x), computed as torch does, x / (1 + exp(-x)): accurate to the last bits for
    very negative x too (exp overflows to inf there and the quotient is -0, as it should);
    d/dx = s * (1 + x * (1 - s)) with s = sigmoid(x)."""

    def forward(self, x):
        self.x = x
        with np.errstate(over="ignore"):
            denominator = 1 + np.exp(-x)
        self.sigmoid = 1 / denominator
        return x / denominator

    def backward(self, grad):
        s = self.sigmoid
        return _in_layout_of(s, grad) * s * (1 + self.x * (1 - s))


class GELU(Function):
    """out = x * Phi(x), Phi the normal CDF = erfc(-x / sqrt(2)) / 2 in float64 (`special.normal_cdf_array`, so
    far negative x keeps its relative precision: torch's float32 1 + erf(x / sqrt(2)) cancels there), or
    the tanh approximation when approximate='tanh'; d/dx = Phi(x) + x * phi(x)."""

    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            self.inner = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
            return 0.5 * x * (1 + self.inner)
        cdf = normal_cdf_array(x)  # float64, x's layout
        self.cdf = cdf.astype(x.dtype, copy=False)
        return (cdf * x).astype(x.dtype, copy=False)

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


def relu(input, inplace=False):
    """max(input, 0) elementwise, like ``torch.nn.functional.relu``."""
    check_inplace("relu", inplace)
    return ReLU.apply(_checks.as_tensor("relu", "input", input))


def leaky_relu(input, negative_slope=0.01):
    return LeakyReLU.apply(_checks.as_tensor("leaky_relu", "input", input), negative_slope=negative_slope)


def sigmoid(input):
    return Sigmoid.apply(_checks.as_tensor("sigmoid", "input", input))


def tanh(input):
    return Tanh.apply(_checks.as_tensor("tanh", "input", input))


def check_inplace(op, inplace):
    """``inplace`` is PyTorch's flag; convnet accepts it so model code carries over, and always
    returns a new tensor (autograd keeps the input for the backward)."""
    if not isinstance(inplace, bool):
        raise InvalidValue(f"{op}: expected inplace to be True or False, got {inplace!r}")


def check_hardtanh_range(op, min_val, max_val):
    for name, value in (("min_val", min_val), ("max_val", max_val)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value):
            raise InvalidValue(f"{op}: expected {name} to be a number, got {value!r}")
    if min_val > max_val:
        raise InvalidValue(f"{op}: expected min_val <= max_val, got min_val={min_val}, max_val={max_val}")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clip(input, min_val, max_val) elementwise, like ``torch.nn.functional.hardtanh``."""
    check_inplace("hardtanh", inplace)
    check_hardtanh_range("hardtanh", min_val, max_val)
    return Hardtanh.apply(_checks.as_tensor("hardtanh", "input", input), min_val=min_val, max_val=max_val)


def relu6(input, inplace=False):
    """min(max(input, 0), 6) elementwise, like ``torch.nn.functional.relu6`` (MobileNetV2)."""
    check_inplace("relu6", inplace)
    return Hardtanh.apply(_checks.as_tensor("relu6", "input", input), min_val=0.0, max_val=6.0)


def hardsigmoid(input, inplace=False):
    """relu6(input + 3) / 6 elementwise, like ``torch.nn.functional.hardsigmoid`` (MobileNetV3's gates)."""
    check_inplace("hardsigmoid", inplace)
    return Hardsigmoid.apply(_checks.as_tensor("hardsigmoid", "input", input))


def hardswish(input, inplace=False):
    """input * relu6(input + 3) / 6 elementwise, like ``torch.nn.functional.hardswish`` (MobileNetV3)."""
    check_inplace("hardswish", inplace)
    return Hardswish.apply(_checks.as_tensor("hardswish", "input", input))


def silu(input, inplace=False):
    """input * sigmoid(input) elementwise (swish), like ``torch.nn.functional.silu`` (EfficientNet)."""
    check_inplace("silu", inplace)
    return SiLU.apply(_checks.as_tensor("silu", "input", input))


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
