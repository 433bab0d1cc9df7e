"""Convolution on arrays: the five algorithms' kernels put together, forward and both gradients.

Three array-level functions (arrays in, arrays out, no Tensor) run any convolution:
`conv2d_forward`, `conv2d_input_grad` and `conv2d_weight_grad`, with a `ConvGeometry` saying
everything about it but its batch and channels. Each runs the algorithm `conv_algorithm` picks
for the shape: im2col (any geometry: kernels/columns.py, then one GEMM per group), its
channels-last form 'im2col_last' (groups 1: kernels/columns_channels_last.py, then one GEMM),
Winograd F(2x2, 3x3) or F(4x4, 3x3) (stride-1 3x3 kernels, groups 1: kernels/winograd.py), direct
(one input channel, stride 1, groups 1: kernels/direct.py; its input gradient is im2col's) or
depthwise (groups = input channels = output channels: kernels/depthwise.py, and
kernels/depthwise_channels_last.py for channels-last input). The forward returns
what its weight gradient needs as a `Saved`: the algorithm's name and its array;
`conv2d_weight_grad` follows the name it is given, so a forward and its backward agree even if
the choice changed in between. Every kernel is called as a `Kernel`, so each of the three runs
compiled or as the NumPy references alike.

Arrays are channel-major inside ((C, N, H, W) memory), or channels-last for 'im2col_last' and
channels-last depthwise ((N, H, W, C) memory, issue 30's layout; F(2x2, 3x3) Winograd reads either
for its input and output gradient, and writes channel-major): a GEMM's (O, N*H'*W') result,
or 'im2col_last''s (N*H'*W', O), is the output in that layout, returned as an (N, O, H', W') view,
and the next op reads it without a copy. Whatever the layout of their inputs, the functions give the same values.
"""

from typing import NamedTuple

import numpy as np

from . import col2im, col2im_last, conv_algorithm, depthwise_forward, depthwise_input_grad, depthwise_weight_grad, \
    depthwise_nhwc_forward, depthwise_nhwc_input_grad, depthwise_nhwc_weight_grad, \
    direct_forward, direct_weight_grad, im2col, im2col_last, winograd2, winograd4
from .winograd import Winograd

# Each Winograd algorithm by the name `conv_algorithm` and `Saved` give it.
WINOGRAD = {"winograd": Winograd("winograd", winograd2), "winograd4": Winograd("winograd4", winograd4)}


def output_size(size, kernel, stride, dilation, pad_before, pad_after):
    """Output length of a window op along one axis (PyTorch's formula, floor mode)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def channel_major(x):
    """(N, C, H, W) -> contiguous (C, N, H, W): free when x is a view of channel-major data."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


def channels_last(x):
    """(N, C, H, W) -> contiguous (N, H, W, C): free when x is a view of channels-last data."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def is_channels_last(x):
    """Whether the (N, C, H, W) array x is a view of contiguous (N, H, W, C) memory (so that
    `channels_last` costs nothing). One channel, or 1x1 planes, are both layouts at once."""
    return x.transpose(0, 2, 3, 1).flags.c_contiguous


def memory_layout(x):
    """'channels_last' or 'channel_major' where the (N, C, H, W) array x is a view of that
    contiguous memory (channels-last first: one channel, or 1x1 planes, are both), else None."""
    if is_channels_last(x):
        return "channels_last"
    return "channel_major" if x.transpose(1, 0, 2, 3).flags.c_contiguous else None


def nchw(channels_last_array):
    """(N, H, W, C) -> its (N, C, H, W) view: how a channels-last kernel's output is handed on."""
    return channels_last_array.transpose(0, 3, 1, 2)


class ConvGeometry(NamedTuple):
    """A convolution's geometry: kernel (kH, kW), stride (sH, sW), padding (top, bottom, left,
    right), dilation (dH, dW), groups G, input (H, W) before padding and output (H', W').

    ``output_hw`` is the natural size ``output_size(...)`` for `conv2d`. For `conv_transpose2d`
    it is that op's input size, which an ``output_padding`` not smaller than the stride makes
    smaller than the natural size: the convolution then counts only the first H' x W' positions.
    """
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    input_hw: tuple
    output_hw: tuple

    @classmethod
    def of_conv2d(cls, input_hw, kernel, stride, padding, dilation, groups):
        """The geometry of ``conv2d`` on an (H, W) input: H' = (H + top + bottom - dH*(kH-1) - 1) // sH + 1."""
        output_hw = (output_size(input_hw[0], kernel[0], stride[0], dilation[0], *padding[:2]),
                     output_size(input_hw[1], kernel[1], stride[1], dilation[1], *padding[2:]))
        return cls(kernel, stride, padding, dilation, groups, input_hw, output_hw)

    @classmethod
    def of_conv_transpose2d(cls, input_hw, kernel, stride, padding, output_padding, dilation, groups):
        """The geometry of the convolution whose input gradient is ``conv_transpose2d`` on an (H, W)
        input: that convolution maps (H_out, W_out) to (H, W), with padding (pH, pH, pW, pW) and
        H_out = (H - 1)*sH - 2*pH + dH*(kH-1) + output_padding_H + 1.
        """
        transposed_out = tuple((size - 1) * s - 2 * p + d * (k - 1) + extra + 1 for size, s, p, d, k, extra
                               in zip(input_hw, stride, padding, dilation, kernel, output_padding))
        return cls(kernel, stride, (padding[0], padding[0], padding[1], padding[1]), dilation, groups,
                   transposed_out, tuple(input_hw))

    @property
    def padded_hw(self):
        (h, w), (top, bottom, left, right) = self.input_hw, self.padding
        return h + top + bottom, w + left + right

    @property
    def top_left(self):
        """The padding's (top, left): the kernels take these; bottom and right follow from H' and W'."""
        return self.padding[0], self.padding[2]


class Saved(NamedTuple):
    """What `conv2d_forward` keeps for `conv2d_weight_grad`: the algorithm that ran ('im2col',
    'im2col_last', 'winograd', 'winograd4', 'direct', 'depthwise' or 'depthwise_last') and its array:
    im2col columns (G, C/G*kH*kW, N*H'*W'), channels-last columns (N*H'*W', kH*kW*C), Winograd's input tiles
    (16 or 36, C, N, tiles_h, tiles_w), direct's or depthwise's channel-major input (C, N, H, W),
    or depthwise_last's channels-last input (N, H, W, C). Winograd's also keeps its transformed
    weights U (16 or 36, O, C) for `conv2d_grads`' input gradient, None for the others.
    """
    algorithm: str
    array: np.ndarray
    transformed_weight: np.ndarray = None


def _algorithm(geometry, weight, x):
    """`conv_algorithm`'s choice for input x (N, C, H, W), told the layout x's memory has."""
    return conv_algorithm(geometry.kernel, geometry.stride, geometry.dilation, geometry.groups,
                          weight.shape[1] * geometry.groups, weight.shape[0], input_layout=memory_layout(x))


def _nchw(channel_major_array):
    return channel_major_array.transpose(1, 0, 2, 3)


def conv2d_columns(x, geometry):
    """x: (N, C, H, W) -> Saved('im2col', columns), columns: (G, C/G*kH*kW, N*H'*W'), the im2col
    matrix of the padded input split by group: column (n, y, x) holds the values under the kernel
    at output position (y, x)."""
    image = channel_major(x)
    (c, n), (oh, ow), (kh, kw) = image.shape[:2], geometry.output_hw, geometry.kernel
    columns = np.empty((c, kh, kw, n, oh, ow), dtype=image.dtype)
    im2col(image, geometry.stride, geometry.dilation, geometry.top_left, columns)
    return Saved("im2col", columns.reshape(geometry.groups, -1, n * oh * ow))


def conv2d_columns_last(x, geometry):
    """x: (N, C, H, W) -> Saved('im2col_last', columns), columns: (N*H'*W', kH*kW*C), the
    channels-last im2col matrix (groups 1): row (n, y, x) holds the taps under the kernel at
    output position (y, x), each tap the C channels in a row. A 1x1 kernel with stride 1 and no
    padding needs no copy: its columns are the channels-last input itself."""
    image = channels_last(x)
    n, c = image.shape[0], image.shape[3]
    if _is_pointwise(geometry):
        return Saved("im2col_last", image.reshape(-1, c))
    columns = np.empty((n,) + geometry.output_hw + geometry.kernel + (c,), dtype=image.dtype)
    im2col_last(image, geometry.stride, geometry.dilation, geometry.top_left, columns)
    return Saved("im2col_last", columns.reshape(n * geometry.output_hw[0] * geometry.output_hw[1], -1))


def conv2d_forward(x, weight, geometry):
    """x: (N, C, H, W), weight: (O, C/G, kH, kW) -> out: (N, O, H', W'), saved: the `Saved` that
    `conv2d_weight_grad` needs.

    out[n, o, y, x] = sum_{c, i, j} weight[o, c, i, j] * x_padded[n, g*C/G + c, y*sH + i*dH, x*sW + j*dW]
    with g = o // (O/G). im2col: `conv2d_columns` then one matrix product per group,
    (O/G, C/G*kH*kW) @ (C/G*kH*kW, N*H'*W'). 'im2col_last': `conv2d_columns_last` then
    (N*H'*W', kH*kW*C) @ (kH*kW*C, O), the channels-last output itself, returned as its
    (N, O, H', W') view without a copy.
    """
    algorithm = _algorithm(geometry, weight, x)
    if algorithm == "im2col_last":
        saved = conv2d_columns_last(x, geometry)
        out = np.matmul(saved.array, _weight_rows(weight).T)
        return nchw(out.reshape((x.shape[0],) + geometry.output_hw + (weight.shape[0],))), saved
    if algorithm in WINOGRAD:
        winograd = WINOGRAD[algorithm]
        last = winograd.reads_channels_last and is_channels_last(x)  # read as it lies: no copy
        image = channels_last(x) if last else channel_major(x)
        out, tiles, transformed_weight = winograd.forward(image, np.ascontiguousarray(weight), geometry, last)
        return _nchw(out), Saved(algorithm, tiles, transformed_weight)
    if algorithm == "direct":
        image = channel_major(x)
        out = np.empty((weight.shape[0], x.shape[0]) + geometry.output_hw, dtype=image.dtype)
        direct_forward(image, np.ascontiguousarray(weight), geometry.dilation, geometry.top_left, out)
        return _nchw(out), Saved("direct", image)
    if algorithm == "depthwise" and is_channels_last(x):  # why only then: kernels/depthwise_channels_last.py
        image, taps = channels_last(x), np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))  # (kH, kW, C)
        out = np.empty((x.shape[0],) + geometry.output_hw + (x.shape[1],), dtype=image.dtype)
        depthwise_nhwc_forward(image, taps, geometry.stride, geometry.dilation, geometry.top_left, out)
        return nchw(out), Saved("depthwise_last", image)
    if algorithm == "depthwise":
        image = channel_major(x)
        out = np.empty(image.shape[:2] + geometry.output_hw, dtype=image.dtype)
        depthwise_forward(image, np.ascontiguousarray(weight[:, 0]), geometry.stride, geometry.dilation,
                          geometry.top_left, out)
        return _nchw(out), Saved("depthwise", image)
    o, groups = weight.shape[0], geometry.groups
    saved = conv2d_columns(x, geometry)
    out = np.matmul(weight.reshape(groups, o // groups, -1), saved.array)
    return _nchw(out.reshape(o, x.shape[0], *geometry.output_hw)), saved


def conv2d_input_grad(grad_out, weight, geometry):
    """grad_out: (N, O, H', W'), weight: (O, C/G, kH, kW) -> grad_x: (N, C, H, W).

    Per group, d_columns = weight^T @ d_out, (C/G*kH*kW, O/G) @ (O/G, N*H'*W'), then col2im sums
    each column back onto the input positions it was read from, dropping the taps in the padding.
    Direct has no input gradient of its own: this one needs no columns, and a first layer needs
    none at all.
    """
    algorithm = _algorithm(geometry, weight, grad_out)
    if algorithm == "im2col_last":
        return _input_grad_last(_grad_rows(grad_out), weight, geometry, grad_out.shape[0])
    if algorithm == "depthwise" and is_channels_last(grad_out):
        grad_x = np.empty((grad_out.shape[0],) + geometry.input_hw + (grad_out.shape[1],), dtype=grad_out.dtype)
        depthwise_nhwc_input_grad(channels_last(grad_out), np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0)),
                                  geometry.stride, geometry.dilation, geometry.top_left, grad_x)
        return nchw(grad_x)
    if algorithm in WINOGRAD:
        winograd = WINOGRAD[algorithm]
        transformed = _winograd_output_grad(winograd, grad_out, geometry)
        return _nchw(winograd.input_grad(transformed, winograd.weight(weight), geometry, grad_out.shape[0]))
    grad_c = channel_major(grad_out)
    n = grad_c.shape[1]
    if algorithm == "depthwise":
        grad_x = np.empty(grad_c.shape[:2] + geometry.input_hw, dtype=grad_c.dtype)
        depthwise_input_grad(grad_c, np.ascontiguousarray(weight[:, 0]), geometry.stride, geometry.dilation,
                             geometry.top_left, grad_x)
        return _nchw(grad_x)
    o, groups = weight.shape[0], geometry.groups
    c, (kh, kw), (oh, ow) = weight.shape[1] * groups, geometry.kernel, geometry.output_hw
    weight_t = weight.reshape(groups, o // groups, -1).transpose(0, 2, 1)
    columns = np.matmul(weight_t, grad_c.reshape(groups, o // groups, -1))
    grad_x = np.empty((c, n) + geometry.input_hw, dtype=columns.dtype)
    col2im(columns.reshape(c, kh, kw, n, oh, ow), geometry.stride, geometry.dilation, geometry.top_left, grad_x)
    return _nchw(grad_x)


def conv2d_weight_grad(grad_out, saved, geometry):
    """grad_out: (N, O, H', W'), saved: the `Saved` from `conv2d_forward` (or `conv2d_columns`,
    `conv2d_columns_last`) of the input -> grad_weight: (O, C/G, kH, kW).

    im2col: per group, d_weight = d_out @ columns^T, (O/G, N*H'*W') @ (N*H'*W', C/G*kH*kW);
    'im2col_last': d_weight = d_out_rows^T @ columns, (O, N*H'*W') @ (N*H'*W', kH*kW*C).
    """
    if saved.algorithm == "im2col_last":
        return _weight_grad_last(_grad_rows(grad_out), saved.array, geometry)
    if saved.algorithm == "depthwise_last":
        grad_taps = np.empty(geometry.kernel + (grad_out.shape[1],), dtype=grad_out.dtype)
        depthwise_nhwc_weight_grad(channels_last(grad_out), saved.array, geometry.stride, geometry.dilation,
                                   geometry.top_left, grad_taps)
        return np.ascontiguousarray(grad_taps.transpose(2, 0, 1))[:, None]
    if saved.algorithm in WINOGRAD:
        winograd = WINOGRAD[saved.algorithm]
        return winograd.weight_grad(_winograd_output_grad(winograd, grad_out, geometry), saved.array)
    grad_c, o = channel_major(grad_out), grad_out.shape[1]
    if saved.algorithm == "direct":
        grad_weight = np.empty((o, 1) + geometry.kernel, dtype=grad_c.dtype)
        direct_weight_grad(grad_c, saved.array, geometry.dilation, geometry.top_left, grad_weight)
        return grad_weight
    if saved.algorithm == "depthwise":
        grad_weight = np.empty((o,) + geometry.kernel, dtype=grad_c.dtype)
        depthwise_weight_grad(grad_c, saved.array, geometry.stride, geometry.dilation, geometry.top_left,
                              grad_weight)
        return grad_weight[:, None]
    columns, groups = saved.array, geometry.groups
    grad_grouped = grad_c.reshape(groups, o // groups, -1)
    if groups == 1 and o * columns.shape[1] <= SMALL_PRODUCT_MAX_ENTRIES:
        grad_weight = _small_product_of_long_rows(grad_grouped[0], columns[0])
    else:
        grad_weight = np.matmul(grad_grouped, columns.transpose(0, 2, 1))
    return grad_weight.reshape((o, columns.shape[1] // (geometry.kernel[0] * geometry.kernel[1])) + geometry.kernel)


def in_backward_layout(grad_out, saved):
    """grad_out: (N, O, H', W') as a view of the memory that the backward of ``saved``'s algorithm
    reads: channels-last for 'im2col_last' and 'depthwise_last' (and F(2x2, 3x3) Winograd's when
    grad_out already is channels-last: its transform reads either), channel-major for the others. At
    most one copy, free when grad_out already is in that layout, after which every gradient reads it
    for free."""
    winograd_reads_it = saved.algorithm in WINOGRAD and WINOGRAD[saved.algorithm].reads_channels_last
    if saved.algorithm in ("im2col_last", "depthwise_last") or (winograd_reads_it and is_channels_last(grad_out)):
        return nchw(channels_last(grad_out))
    return _nchw(channel_major(grad_out))


def conv2d_grads(grad_out, weight, saved, geometry):
    """Both gradients of `conv2d_forward`: (grad_x, grad_weight) as `conv2d_input_grad` and
    `conv2d_weight_grad` give them, except that Winograd's two share one transform of grad_out (dM)."""
    if saved.algorithm == "im2col_last":
        grad_rows = _grad_rows(grad_out)
        return (_input_grad_last(grad_rows, weight, geometry, grad_out.shape[0]),
                _weight_grad_last(grad_rows, saved.array, geometry))
    if saved.algorithm not in WINOGRAD:
        return conv2d_input_grad(grad_out, weight, geometry), conv2d_weight_grad(grad_out, saved, geometry)
    winograd = WINOGRAD[saved.algorithm]
    transformed = _winograd_output_grad(winograd, grad_out, geometry)
    # The forward's transformed weights (the same weight): saves 0.6 ms at 256x256 channels, 2.9 at 512x512.
    return (_nchw(winograd.input_grad(transformed, saved.transformed_weight, geometry, grad_out.shape[0])),
            winograd.weight_grad(transformed, saved.array))


def _winograd_output_grad(winograd, grad_out, geometry):
    """grad_out: (N, O, H', W') -> Winograd's dM (P, O, N*tH*tW), read channels-last where grad_out
    lies so and the tile size has that transform, else channel-major."""
    if winograd.reads_channels_last and is_channels_last(grad_out):
        return winograd.output_grad(channels_last(grad_out), geometry, last=True)
    return winograd.output_grad(channel_major(grad_out), geometry)


# ------------------------------------------------------------------ channels-last im2col ('im2col_last')
def _weight_rows(weight):
    """weight: (O, C, kH, kW) -> (O, kH*kW*C), the order of a channels-last column's taps."""
    return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _is_pointwise(geometry):
    """A 1x1 kernel, stride 1, no padding, output as large as the input (a transposed convolution's
    output padding can make it smaller): each output position reads its own input pixel."""
    return (tuple(geometry.kernel) == (1, 1) and tuple(geometry.stride) == (1, 1) and not any(geometry.padding)
            and tuple(geometry.input_hw) == tuple(geometry.output_hw))


def _grad_rows(grad_out):
    """grad_out: (N, O, H', W') -> (N*H'*W', O), channels-last (free when grad_out already is)."""
    return channels_last(grad_out).reshape(-1, grad_out.shape[1])


def _input_grad_last(grad_rows, weight, geometry, n):
    """grad_rows: (N*H'*W', O) -> grad_x: (N, C, H, W), a view of channels-last memory:
    d_columns = grad_rows @ weight as (O, kH*kW*C), then col2im."""
    c, (oh, ow) = weight.shape[1], geometry.output_hw
    columns = np.matmul(grad_rows, _weight_rows(weight))
    if _is_pointwise(geometry):
        return nchw(columns.reshape((n,) + geometry.input_hw + (c,)))
    grad_x = np.empty((n,) + geometry.input_hw + (c,), dtype=columns.dtype)
    col2im_last(columns.reshape((n, oh, ow) + geometry.kernel + (c,)), geometry.stride, geometry.dilation,
                geometry.top_left, grad_x)
    return nchw(grad_x)


def _weight_grad_last(grad_rows, columns, geometry):
    """grad_rows: (N*H'*W', O), columns: (N*H'*W', kH*kW*C) -> grad_weight: (O, C, kH, kW)."""
    o, taps = grad_rows.shape[1], columns.shape[1]
    if o * taps <= SMALL_PRODUCT_MAX_ENTRIES:
        grad_weight = _small_product_of_long_rows(grad_rows.T, columns.T)
    else:
        grad_weight = np.matmul(grad_rows.T, columns)
    c = taps // (geometry.kernel[0] * geometry.kernel[1])
    return np.ascontiguousarray(grad_weight.reshape((o,) + geometry.kernel + (c,)).transpose(0, 3, 1, 2))


# A first layer's weight gradient is a small matrix, (O, C*kH*kW) = (32, 9) for the reference
# CNN, summed over N*H'*W' = 100,352 positions. OpenBLAS runs such a product at a third of its
# speed; as a batch of products over runs of 2048 positions, summed after, it took 0.2-0.6x the
# time (O x rows: 8x9 0.20, 6x25 0.19, 16x16 0.38, 32x9 0.50, 32x12 0.59) and stopped paying at
# about 500 entries (32x16 0.98, 64x9 0.99, 32x27 1.06); measured for issue 13. On channels-last
# columns ('im2col_last', the same product as (N*H'*W', O)^T @ (N*H'*W', kH*kW*C)) it still pays:
# 32x9 0.23x, 32x27 0.54, 32x16 0.98, 64x9 1.06, 16x147 0.95 (1 thread, a busy machine: too
# rough to move the threshold; issue 30).
SMALL_PRODUCT_MAX_ENTRIES = 450
_RUN = 2048


def _small_product_of_long_rows(a, b):
    """a: (M, K), b: (R, K) -> a @ b.T (M, R), summed run by run over K (a fixed order, so the
    result does not depend on the threads)."""
    (m, k), r = a.shape, b.shape[0]
    runs = k // _RUN
    whole = runs * _RUN
    product = np.matmul(a[:, :whole].reshape(m, runs, _RUN).transpose(1, 0, 2),
                        b[:, :whole].reshape(r, runs, _RUN).transpose(1, 2, 0)).sum(axis=0)
    if whole < k:
        product += a[:, whole:] @ b[:, whole:].T
    return product
