"""Pooling: each output summarises one local neighbourhood of its feature map.

Max pooling compares every value with its neighbourhood and keeps the maximum, giving a
smaller map; its gradient flows only to the position that won (the first one, on ties, as
PyTorch does). Average pooling keeps the mean.
"""

import numpy as np

from .. import _checks, kernels
from ..kernels import activation as activation_kernels
from ..kernels import pooling as pooling_kernels
from ..tensor import Function
from .activation import ReLU
from ._windows import channel_major, offset_view, output_size, pad, unpad

_NO_DILATION = (1, 1)


def window_stack(x, kernel, stride, padding, fill):
    """x: (N, C, H, W) -> (kH*kW, C, N, H', W'): every kernel tap's values at every output position.

    One contiguous array per tap makes the reductions over taps long, fast vectorised passes.
    Non-overlapping windows (stride = kernel, no padding, sizes divisible) are read straight
    from the input; otherwise from a copy padded with ``fill``.
    """
    xc = channel_major(x)
    c, n, h, w = xc.shape
    (kh, kw), (ph, pw) = kernel, padding
    out_hw = (output_size(h, kh, stride[0], 1, ph, ph), output_size(w, kw, stride[1], 1, pw, pw))
    stack = np.empty((kh * kw, c, n) + out_hw, dtype=x.dtype)
    if tiles_exactly(xc.shape, kernel, stride, padding):
        tiles = xc.reshape(c, n, out_hw[0], kh, out_hw[1], kw)
        for tap in range(kh * kw):
            stack[tap] = tiles[:, :, :, tap // kw, :, tap % kw]
    else:
        padded = pad(xc, (ph, ph, pw, pw), value=fill)
        for tap in range(kh * kw):
            stack[tap] = offset_view(padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)
    return stack


def unstack_windows(stack, input_shape, kernel, stride, padding, scale=None):
    """Adjoint of `window_stack`: (kH*kW, C, N, H', W') -> channel-major (C, N, H, W), overlaps summed.

    With ``scale`` (C, N, H', W'), scatters ``stack * scale`` without materialising the product.
    """
    taps, c, n, oh, ow = stack.shape
    (kh, kw), (ph, pw) = kernel, padding
    shape = (c, n) + tuple(input_shape[2:])
    tiled = tiles_exactly(shape, kernel, stride, padding)
    if tiled:
        grad = np.empty((c, n, oh, kh, ow, kw), dtype=stack.dtype if scale is None else scale.dtype)
    else:
        grad = np.zeros((c, n, shape[2] + 2 * ph, shape[3] + 2 * pw), dtype=stack.dtype if scale is None else scale.dtype)
    for tap in range(taps):
        values = stack[tap] if scale is None else np.multiply(stack[tap], scale)
        if tiled:
            grad[:, :, :, tap // kw, :, tap % kw] = values
        else:
            offset_view(grad, tap // kw, tap % kw, stride, _NO_DILATION, (oh, ow))[...] += values
    return grad.reshape(shape) if tiled else unpad(grad, (ph, ph, pw, pw))


def tiles_exactly(shape, kernel, stride, padding):
    return (tuple(stride) == tuple(kernel) and not any(padding)
            and shape[2] % kernel[0] == 0 and shape[3] % kernel[1] == 0)


class MaxPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'), H' = (H + 2*pH - kH) // sH + 1.

    Forward: each window's maximum. Backward: each output's gradient goes to the first position
    (in row-major window order) that holds the maximum, as in PyTorch. Compiled: one pass records
    the winners' positions and the backward scatters to them. Reference: the maximum over the
    window stack, the winners found again in the backward. ``rectify`` (compiled only; see
    `relu_max_pool2d`) applies ReLU to the maxima and masks their gradients before the scatter.
    """

    def forward(self, x, kernel, stride, padding, rectify=False):
        self.geometry = (x.shape, kernel, stride, padding)
        self.rectified = None
        if kernels.compiled():
            xc = channel_major(x)
            c, n, h, w = xc.shape
            out_hw = (output_size(h, kernel[0], stride[0], 1, padding[0], padding[0]),
                      output_size(w, kernel[1], stride[1], 1, padding[1], padding[1]))
            planes = xc.reshape(c * n, h, w)
            out = np.empty((c * n,) + out_hw, dtype=x.dtype)
            self.argmax = np.empty((c * n,) + out_hw, dtype=np.int32)
            if _is_2x2(kernel, stride, padding):
                pooling_kernels.max_pool_2x2_forward(planes, out, self.argmax)
            else:
                pooling_kernels.max_pool_forward(planes, *kernel, *stride, *padding, out, self.argmax)
            if rectify:
                activation_kernels.relu_forward(out.ravel(), out.ravel())
                self.rectified = out
            return out.reshape((c, n) + out_hw).transpose(1, 0, 2, 3)
        if rectify:
            raise ValueError("max_pool2d: rectify=True needs the compiled kernels (relu_max_pool2d composes "
                             "the two ops otherwise)")
        self.stack = window_stack(x, kernel, stride, padding, fill=-np.inf)
        self.out = self.stack.max(axis=0)
        return self.out.transpose(1, 0, 2, 3)

    def backward(self, grad):
        (n, c, h, w), kernel, stride, padding = self.geometry
        if kernels.compiled():
            grad_out = channel_major(grad).reshape(self.argmax.shape)
            if self.rectified is not None:
                masked = np.empty(self.argmax.shape, dtype=grad.dtype)
                activation_kernels.relu_backward(grad_out.ravel(), self.rectified.ravel(), masked.ravel())
                grad_out = masked
            if _is_2x2(kernel, stride, padding):
                grad_in = (np.zeros if h % 2 or w % 2 else np.empty)((c * n, h, w), dtype=grad.dtype)
                pooling_kernels.max_pool_2x2_backward(grad_out, self.argmax, grad_in)
            else:
                grad_in = np.zeros((c * n, h * w), dtype=grad.dtype)
                pooling_kernels.max_pool_backward(grad_out.reshape(c * n, -1), self.argmax.reshape(c * n, -1), grad_in)
            return grad_in.reshape(c, n, h, w).transpose(1, 0, 2, 3)
        winners = self.stack == self.out
        nan_windows = np.isnan(self.out)
        if nan_windows.any():  # NaN wins, the last one in its window, as in PyTorch's kernel
            nan_taps = np.isnan(self.stack)
            last_nan = len(nan_taps) - 1 - np.argmax(nan_taps[::-1], axis=0)
            taps = np.arange(len(nan_taps)).reshape((-1,) + (1,) * nan_windows.ndim)
            winners = np.where(nan_windows, taps == last_nan, winners)
        if any(padding):  # padding never wins, even over a window of -inf
            winners &= window_stack(np.ones((1, 1, h, w), dtype=bool), kernel, stride, padding, fill=False)
        taken = winners[0].copy()
        for tap in range(1, len(winners)):
            winners[tap] &= ~taken
            taken |= winners[tap]
        return unstack_windows(winners, *self.geometry, scale=channel_major(grad)).transpose(1, 0, 2, 3)


class AvgPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'); zero padding counts in the mean (PyTorch's default)."""

    def forward(self, x, kernel, stride, padding):
        self.geometry = (x.shape, kernel, stride, padding)
        return window_stack(x, kernel, stride, padding, fill=0.0).mean(axis=0).transpose(1, 0, 2, 3)

    def backward(self, grad):
        taps = self.geometry[1][0] * self.geometry[1][1]
        share = channel_major(grad) / taps
        return unstack_windows(np.broadcast_to(share, (taps,) + share.shape), *self.geometry).transpose(1, 0, 2, 3)


def _is_2x2(kernel, stride, padding):
    return tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and not any(padding)


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


def relu_max_pool2d(input, kernel_size, stride=None, padding=0):
    """``max_pool2d(relu(input), ...)`` with the same values and gradients, in fewer passes.

    ReLU is monotone, so it commutes with taking a maximum: the compiled path pools the input
    and rectifies only the maxima (a quarter of the values for 2x2 windows), and its backward
    masks the pooled gradient before the one scatter, instead of a ReLU pass each way over the
    whole input. The reference path runs the two ops. `nn.Sequential` calls this for an
    `nn.ReLU` followed by an `nn.MaxPool2d` (neither with hooks).

    >>> import convnet, convnet.functional as F
    >>> x = convnet.tensor([[[[-1., -2.], [-4., -3.]]], [[[1., 2.], [4., 3.]]]])
    >>> F.relu_max_pool2d(x, 2).numpy().ravel().tolist()
    [0.0, 4.0]
    """
    input, args = _pool_arguments("max_pool2d", input, kernel_size, stride, padding)
    if not kernels.compiled():
        return MaxPool2d.apply(ReLU.apply(input), **args)
    return MaxPool2d.apply(input, rectify=True, **args)


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
