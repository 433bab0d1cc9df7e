"""Pooling: each output summarises one local neighbourhood of its feature map.

Max pooling compares every value with its neighbourhood and keeps the maximum, giving a
smaller map; its gradient flows only to the position that won (the first one, on ties, as
PyTorch does). Average pooling keeps the mean. Padding on four sides, ceil_mode and dilation
reach the same code through `pooling_modes` (their geometry; a NumPy path for dilated windows).
"""

import numpy as np

from .. import _checks, kernels
from ..kernels.convolution import channel_major, channels_last, is_channels_last, nchw, output_size
from ..tensor import Function
from ._windows import offset_view, pad, unpad
from .pooling_modes import dilated_max_pool_forward, pool_arguments, window_counts

_NO_DILATION = (1, 1)


def pooled_hw(input_hw, kernel, stride, padding, dilation=_NO_DILATION):
    """(H', W') of a window op; padding: (top, bottom, left, right), the reach of ceil_mode's
    windows included (`pooling_modes.pool_reach`)."""
    return (output_size(input_hw[0], kernel[0], stride[0], dilation[0], *padding[:2]),
            output_size(input_hw[1], kernel[1], stride[1], dilation[1], *padding[2:]))


def window_stack(x, kernel, stride, padding):
    """x: (N, C, H, W) -> (kH*kW, C, N, H', W'): every kernel tap's values at every output position;
    padding: (top, bottom, left, right), with zeros.

    One contiguous array per tap makes the reductions over taps long, fast vectorised passes.
    Non-overlapping windows (stride = kernel, no padding, sizes divisible) are read straight
    from the input; otherwise from a padded copy.
    """
    xc = channel_major(x)
    c, n, h, w = xc.shape
    kh, kw = kernel
    out_hw = pooled_hw((h, w), kernel, stride, padding)
    stack = np.empty((kh * kw, c, n) + out_hw, dtype=x.dtype)
    if tiles_exactly(xc.shape, kernel, stride, padding):
        tiles = xc.reshape(c, n, out_hw[0], kh, out_hw[1], kw)
        for tap in range(kh * kw):
            stack[tap] = tiles[:, :, :, tap // kw, :, tap % kw]
    else:
        padded = pad(xc, padding)
        for tap in range(kh * kw):
            stack[tap] = offset_view(padded, tap // kw, tap % kw, stride, _NO_DILATION, out_hw)
    return stack


def unstack_windows(stack, input_shape, kernel, stride, padding):
    """Adjoint of `window_stack`: (kH*kW, C, N, H', W') -> channel-major (C, N, H, W), overlaps summed."""
    taps, c, n, oh, ow = stack.shape
    (kh, kw), (top, bottom, left, right) = kernel, padding
    shape = (c, n) + tuple(input_shape[2:])
    tiled = tiles_exactly(shape, kernel, stride, padding)
    if tiled:
        grad = np.empty((c, n, oh, kh, ow, kw), dtype=stack.dtype)
    else:
        grad = np.zeros((c, n, shape[2] + top + bottom, shape[3] + left + right), dtype=stack.dtype)
    for tap in range(taps):
        if tiled:
            grad[:, :, :, tap // kw, :, tap % kw] = stack[tap]
        else:
            offset_view(grad, tap // kw, tap % kw, stride, _NO_DILATION, (oh, ow))[...] += stack[tap]
    return grad.reshape(shape) if tiled else unpad(grad, padding)


def tiles_exactly(shape, kernel, stride, padding):
    return (tuple(stride) == tuple(kernel) and not any(padding)
            and shape[2] % kernel[0] == 0 and shape[3] % kernel[1] == 0)


class MaxPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'), H' = (H + top + bottom - dH*(kH-1) - 1) // sH + 1,
    ``padding`` (top, bottom, left, right) being the windows' reach (ceil_mode's included).

    Forward: each window's maximum, recording where it was (`kernels.max_pool_forward`).
    Backward: each output's gradient goes to that position, the first in row-major window order
    that holds the maximum, as in PyTorch (`kernels.max_pool_backward`). ``rectify`` (see
    `relu_max_pool2d`) applies ReLU to the maxima and masks their gradients before the scatter.
    The kernels run channels-last or channel-major as `pools_channels_last` chooses; the output
    and the input's gradient are views of that memory, the values the same either way. Dilated
    windows run channel-major, their forward in NumPy (`dilated_max_pool_forward`), their
    backward the same scatter.
    """

    def forward(self, x, kernel, stride, padding, dilation=_NO_DILATION, rectify=False):
        n, c, h, w = x.shape
        out_hw = pooled_hw((h, w), kernel, stride, padding, dilation)
        square = _is_2x2(kernel, stride, padding, dilation)
        self.channels_last = pools_channels_last(x, kernel, stride, padding, dilation)
        if self.channels_last:
            xl = channels_last(x)
            out = np.empty((n,) + out_hw + (c,), dtype=x.dtype)
            self.argmax = np.empty(out.shape, dtype=np.int32)
            if square:
                kernels.max_pool_2x2_nhwc_forward(xl, out, self.argmax)
            else:
                kernels.max_pool_nhwc_forward(xl, *kernel, *stride, *padding[::2], out, self.argmax)
        else:
            planes = channel_major(x).reshape(c * n, h, w)
            out = np.empty((c * n,) + out_hw, dtype=x.dtype)
            self.argmax = np.empty(out.shape, dtype=np.int32)
            if square:
                kernels.max_pool_2x2_forward(planes, out, self.argmax)
            elif dilation != _NO_DILATION:
                dilated_max_pool_forward(planes, kernel, stride, dilation, padding[::2], out, self.argmax)
            else:
                kernels.max_pool_forward(planes, *kernel, *stride, *padding[::2], out, self.argmax)
        self.rectified = None
        if rectify:
            kernels.relu_forward(out.ravel(), out.ravel())
            self.rectified = out
        self.geometry = (x.shape, kernel, stride, padding, dilation)
        return nchw(out) if self.channels_last else out.reshape((c, n) + out_hw).transpose(1, 0, 2, 3)

    def backward(self, grad):
        (n, c, h, w), kernel, stride, padding, dilation = self.geometry
        square = _is_2x2(kernel, stride, padding, dilation)
        grad_out = (channels_last(grad) if self.channels_last else channel_major(grad)).reshape(self.argmax.shape)
        if self.rectified is not None:
            masked = np.empty(self.argmax.shape, dtype=grad.dtype)
            kernels.relu_backward(grad_out.ravel(), self.rectified.ravel(), masked.ravel())
            grad_out = masked
        if self.channels_last:
            grad_in = np.empty((n, h, w, c), dtype=grad.dtype)
            if square:
                kernels.max_pool_2x2_nhwc_backward(grad_out, self.argmax, grad_in)
            else:
                kernels.max_pool_nhwc_backward(grad_out, self.argmax, *kernel, *stride, *padding[::2], grad_in)
            return nchw(grad_in)
        if square:
            grad_in = (np.zeros if h % 2 or w % 2 else np.empty)((c * n, h, w), dtype=grad.dtype)
            kernels.max_pool_2x2_backward(grad_out, self.argmax, grad_in)
        else:
            grad_in = np.zeros((c * n, h * w), dtype=grad.dtype)
            kernels.max_pool_backward(grad_out.reshape(c * n, -1), self.argmax.reshape(c * n, -1), grad_in)
        return grad_in.reshape(c, n, h, w).transpose(1, 0, 2, 3)


# When max pooling runs channels-last, measured for issue 30 (forward + backward through the op,
# batch 128, float32, the output gradient in the input's layout; time channels-last / channel-major,
# 1-128 channels, a 2-core AMD EPYC shared with other jobs, so rough). 3x3/2 at 30 px, from 8
# channels up: 0.22-0.49x on channels-last input, 0.44-0.57x on NCHW input (both paths copy it),
# 0.50-0.82x on channel-major input (the channels-last path copies it); with 1-4 channels 0.6-2.5x,
# no gain on the whole. 2x2/2 at 28 px, from 8 channels up: 0.27-0.61x on channels-last input but
# 1.1-1.5x on NCHW and 1.4-3.2x on channel-major input (the channel-major kernel vectorises along
# rows, and the copy costs more than the pooling); with 2-4 channels 1.1-2x on any input.
MIN_CHANNELS_LAST_CHANNELS = 8
# Average pooling of channels-last input (batch 64, as above): the channels-last kernels took 0.2-0.6x
# the time of NumPy's passes over channel-major memory (copying the input) from 24 channels up
# (3x3/2 from 12), but 1.3-4x with 3-16 channels at 2x2/2, where those passes tile the input
# without a padded copy. Other input keeps to NumPy's passes (not measured channels-last).
AVG_MIN_CHANNELS_LAST_CHANNELS = 24


def pools_channels_last(x, kernel, stride, padding, dilation=_NO_DILATION):
    """Whether max pooling of the (N, C, H, W) array x runs channels-last (the channel-major
    kernels otherwise): from MIN_CHANNELS_LAST_CHANNELS channels up, for 2x2/2 windows only when
    x already is channels-last memory, for other undilated windows whatever its layout (see the
    figures above)."""
    if x.shape[1] < MIN_CHANNELS_LAST_CHANNELS or dilation != _NO_DILATION:
        return False
    return is_channels_last(x) or not _is_2x2(kernel, stride, padding, dilation)


class AvgPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, H', W'), each window's sum over ``divisor`` (an int, or
    (H', W'): `pooling_modes.window_counts`), ``padding`` (top, bottom, left, right) being the
    windows' reach, with zeros. Channels-last input from AVG_MIN_CHANNELS_LAST_CHANNELS channels up
    runs the channels-last kernels (`kernels.window_sum`), handing on channels-last memory; other
    input NumPy's tap-by-tap passes over channel-major memory."""

    def forward(self, x, kernel, stride, padding, divisor):
        self.geometry = (x.shape, kernel, stride, padding)
        self.divisor = divisor if np.isscalar(divisor) else divisor.astype(x.dtype)
        self.channels_last = is_channels_last(x) and x.shape[1] >= AVG_MIN_CHANNELS_LAST_CHANNELS
        if self.channels_last:
            n, c, h, w = x.shape
            out = np.empty((n,) + pooled_hw((h, w), kernel, stride, padding) + (c,), dtype=x.dtype)
            kernels.window_sum(channels_last(x), *kernel, *stride, *padding[::2], out)
            out /= self._per_pixel_divisor()
            return nchw(out)
        return (window_stack(x, kernel, stride, padding).sum(axis=0) / self.divisor).transpose(1, 0, 2, 3)

    def backward(self, grad):
        (n, c, h, w), kernel, stride, padding = self.geometry
        if self.channels_last:
            share = channels_last(grad) / self._per_pixel_divisor()
            grad_in = np.empty((n, h, w, c), dtype=share.dtype)
            kernels.window_sum_backward(share, *kernel, *stride, *padding[::2], grad_in)
            return nchw(grad_in)
        share = channel_major(grad) / self.divisor
        return unstack_windows(np.broadcast_to(share, (kernel[0] * kernel[1],) + share.shape),
                               *self.geometry).transpose(1, 0, 2, 3)

    def _per_pixel_divisor(self):
        """The divisor as it broadcasts against (N, H', W', C): an int, or (H', W', 1)."""
        return self.divisor if np.isscalar(self.divisor) else self.divisor[:, :, None]


def _is_2x2(kernel, stride, padding, dilation):
    return tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and not any(padding) and dilation == _NO_DILATION


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over each kH x kW window, like ``torch.nn.functional.max_pool2d``.

    input: (N, C, H, W) -> (N, C, H', W'), H' = (H + top + bottom - dH*(kH-1) - 1) // sH + 1, or
    rounded up with ``ceil_mode`` (less a window that would start in the bottom padding; see
    `pooling_modes`); stride defaults to kernel_size; padding (an int, (pH, pW) or (top, bottom,
    left, right), each side at most half the kernel) pads with -inf; dilation spaces the taps.

    >>> import convnet, convnet.functional as F
    >>> x = convnet.tensor([[[[1., 2.], [4., 3.]]]])
    >>> F.max_pool2d(x, 2).numpy().tolist()
    [[[[4.0]]]]
    >>> F.max_pool2d(convnet.ones(1, 1, 5, 5), 2, ceil_mode=True).shape
    (1, 1, 3, 3)
    """
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, rectify=False)


def relu_max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``max_pool2d(relu(input), ...)`` with the same values and gradients, in fewer passes.

    ReLU is monotone, so it commutes with taking a maximum: this pools the input and rectifies
    only the maxima (a quarter of the values for 2x2 windows), and its backward masks the pooled
    gradient before the one scatter, instead of a ReLU pass each way over the whole input.
    `nn.Sequential` calls this for an `nn.ReLU` followed by an `nn.MaxPool2d` (neither with hooks).

    >>> import convnet, convnet.functional as F
    >>> x = convnet.tensor([[[[-1., -2.], [-4., -3.]]], [[[1., 2.], [4., 3.]]]])
    >>> F.relu_max_pool2d(x, 2).numpy().ravel().tolist()
    [0.0, 4.0]
    """
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, rectify=True)


def _max_pool(op, input, kernel_size, stride, padding, dilation, ceil_mode, rectify):
    input, kernel, stride, _, dilation, _, reach = pool_arguments(op, input, kernel_size, stride, padding, dilation,
                                                                   ceil_mode)
    return MaxPool2d.apply(input, kernel=kernel, stride=stride, padding=reach, dilation=dilation, rectify=rectify)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each kH x kW window, like ``torch.nn.functional.avg_pool2d``.

    input: (N, C, H, W) -> (N, C, H', W'), H' as in `max_pool2d` (no dilation); padding as
    there, with zeros. The divisor: the window's positions within the padded input
    (``count_include_pad``, for every window but ceil_mode's last, which reaches past it, the
    kernel's area), or only the input pixels it covers (ONNX's count_include_pad=0);
    ``divisor_override``, a positive int, replaces it for every window.

    >>> import convnet, convnet.functional as F
    >>> x = convnet.ones(1, 1, 2, 2)
    >>> F.avg_pool2d(x, 2, stride=1, padding=1).numpy().ravel().tolist()
    [0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25]
    >>> F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False).numpy().ravel().tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> F.avg_pool2d(convnet.ones(1, 1, 3, 3), 2, ceil_mode=True).numpy().ravel().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    op = "avg_pool2d"
    input, kernel, stride, padding, _, out_hw, reach = pool_arguments(op, input, kernel_size, stride, padding, 1,
                                                                      ceil_mode)
    if divisor_override is not None:
        divisor = _checks.positive_int(op, "divisor_override", divisor_override)
    else:
        divisor = window_counts(tuple(input.shape[2:]), kernel, stride, padding, out_hw, bool(count_include_pad))
    return AvgPool2d.apply(input, kernel=kernel, stride=stride, padding=reach, divisor=divisor)


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
