"""Pooling: each output summarises one local neighbourhood of its feature map.

Max pooling compares every value with its neighbourhood and keeps the maximum, giving a
smaller map; its gradient flows only to the position that won (the first one, on ties, as
PyTorch does). Average pooling keeps the mean.
"""

import numpy as np

from .. import _checks
from ..tensor import Function
from ._windows import offset_view, output_size, pad, unpad

_NO_DILATION = (1, 1)


class MaxPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'), H' = (H + 2*pH - kH) // sH + 1.

    Forward keeps, per output, the index (i*kW + j) of the winning kernel tap.
    Backward routes each output gradient to that tap.
    """

    def forward(self, x, kernel, stride, padding):
        (kh, kw), (ph, pw) = kernel, padding
        out_hw = (output_size(x.shape[2], kh, stride[0], 1, ph, ph), output_size(x.shape[3], kw, stride[1], 1, pw, pw))
        padded = pad(x, (ph, ph, pw, pw), value=-np.inf)
        out = offset_view(padded, 0, 0, stride, _NO_DILATION, out_hw).copy()
        winner = np.zeros(out.shape, dtype=np.int16)
        for tap in range(1, kh * kw):
            candidate = offset_view(padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)
            better = (candidate > out) | np.isnan(candidate)  # NaN wins and propagates, as in PyTorch
            np.copyto(out, candidate, where=better)
            np.copyto(winner, tap, where=better)
        self.winner, self.geometry = winner, (padded.shape, kernel, stride, padding, out_hw)
        return out

    def backward(self, grad):
        padded_shape, (kh, kw), stride, (ph, pw), out_hw = self.geometry
        grad_padded = np.zeros(padded_shape, dtype=grad.dtype)
        for tap in range(kh * kw):
            offset_view(grad_padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)[...] += \
                np.where(self.winner == tap, grad, 0)
        return unpad(grad_padded, (ph, ph, pw, pw))


class AvgPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'); zero padding counts in the mean (PyTorch's default)."""

    def forward(self, x, kernel, stride, padding):
        (kh, kw), (ph, pw) = kernel, padding
        out_hw = (output_size(x.shape[2], kh, stride[0], 1, ph, ph), output_size(x.shape[3], kw, stride[1], 1, pw, pw))
        padded = pad(x, (ph, ph, pw, pw))
        out = np.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for tap in range(kh * kw):
            out += offset_view(padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)
        self.geometry = (padded.shape, kernel, stride, padding, out_hw)
        return out / (kh * kw)

    def backward(self, grad):
        padded_shape, (kh, kw), stride, (ph, pw), out_hw = self.geometry
        grad_padded = np.zeros(padded_shape, dtype=grad.dtype)
        share = grad / (kh * kw)
        for tap in range(kh * kw):
            offset_view(grad_padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)[...] += share
        return unpad(grad_padded, (ph, ph, pw, pw))


def _pool_arguments(op, input, kernel_size, stride, padding):
    input = _checks.as_tensor(op, "input", input)
    _checks.check_shape(op, "input", input, "(N, C, H, W)")
    kernel = _checks.pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else _checks.pair(op, "stride", stride, minimum=1)
    padding = _checks.pair(op, "padding", padding, minimum=0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding should be at most half the kernel size, got padding={padding} "
                         f"for kernel_size={kernel}")
    h, w = input.shape[2] + 2 * padding[0], input.shape[3] + 2 * padding[1]
    if kernel[0] > h or kernel[1] > w:
        raise ValueError(f"{op}: kernel_size {kernel} is larger than the padded input {(h, w)}")
    return input, dict(kernel=kernel, stride=stride, padding=padding)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """Max over each kH x kW window, like ``torch.nn.functional.max_pool2d``.

    input: (N, C, H, W) -> (N, C, H', W'), H' = (H + 2*pH - kH) // sH + 1; stride defaults
    to kernel_size; padding (at most half the kernel) pads with -inf.

    >>> import convnet, convnet.functional as F
    >>> x = convnet.tensor([[[[1., 2.], [4., 3.]]]])
    >>> F.max_pool2d(x, 2).numpy().tolist()
    [[[[4.0]]]]
    """
    input, args = _pool_arguments("max_pool2d", input, kernel_size, stride, padding)
    return MaxPool2d.apply(input, **args)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """Mean over each kH x kW window, like ``torch.nn.functional.avg_pool2d`` (count_include_pad=True).

    input: (N, C, H, W) -> (N, C, H', W'), H' = (H + 2*pH - kH) // sH + 1.
    """
    input, args = _pool_arguments("avg_pool2d", input, kernel_size, stride, padding)
    return AvgPool2d.apply(input, **args)


def _adaptive_bins(size, bins):
    """PyTorch's adaptive bins: bin i covers [floor(i*size/bins), ceil((i+1)*size/bins))."""
    return [(i * size // bins, -(-(i + 1) * size // bins)) for i in range(bins)]


class AdaptiveAvgPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, oH, oW), each output the mean of its adaptive bin."""

    def forward(self, x, output_size):
        rows, cols = _adaptive_bins(x.shape[2], output_size[0]), _adaptive_bins(x.shape[3], output_size[1])
        out = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        self.shape, self.bins = x.shape, (rows, cols)
        return out

    def backward(self, grad):
        grad_x = np.zeros(self.shape, dtype=grad.dtype)
        rows, cols = self.bins
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                grad_x[:, :, r0:r1, c0:c1] += grad[:, :, i:i + 1, j:j + 1] / ((r1 - r0) * (c1 - c0))
        return grad_x


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, like ``torch.nn.functional.adaptive_avg_pool2d``.

    input: (N, C, H, W) -> (N, C, oH, oW); ``output_size=1`` is global average pooling.
    """
    op = "adaptive_avg_pool2d"
    input = _checks.as_tensor(op, "input", input)
    _checks.check_shape(op, "input", input, "(N, C, H, W)")
    output_size = _checks.pair(op, "output_size", output_size, minimum=1)
    return AdaptiveAvgPool2d.apply(input, output_size=output_size)
