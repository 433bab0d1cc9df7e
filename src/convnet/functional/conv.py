"""2-D convolution, as deep learning defines it: cross-correlation, and its transpose.

``out[n, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * in[n, c, y*s + i*d, x*s + j*d]``

The kernel is *not* flipped. Signal processing's convolution flips it first, so
``conv2d(x, w)`` equals ``scipy.signal.convolve2d(x, w[::-1, ::-1], 'valid')`` and
``scipy.signal.correlate2d(x, w, 'valid')`` (tests/test_conv_scipy.py shows both). Since the
kernel is learned, the flip makes no difference to what a network can represent.

Both ops are built from three array-level functions (arrays in, arrays out, no Tensor):
`conv2d_forward`, `conv2d_input_grad` and `conv2d_weight_grad`, with a `ConvGeometry` saying
everything about the convolution but its batch and channels. A transposed convolution is a
convolution's input gradient, so it uses the same three the other way round.

Each of the three runs one of five algorithms, which `kernels.conv_algorithm` picks per shape:
im2col (any geometry), Winograd F(2x2, 3x3) or F(4x4, 3x3) (stride-1 3x3 kernels, groups 1; see
kernels/winograd.py and winograd4.py), direct (one input channel, stride 1, groups 1;
kernels/direct.py; its input gradient is im2col's) or depthwise (groups = input channels =
output channels; kernels/depthwise.py). The forward returns what its weight gradient needs as a
`Saved`: the algorithm's name and its array; `conv2d_weight_grad` follows the name it is given, so a
forward and its backward agree even if the choice changed in between.
"""

from typing import NamedTuple

import numpy as np

from .. import _checks, kernels
from ..kernels import depthwise, direct
from ..kernels import im2col as compiled
from ..kernels import winograd, winograd4
from ..tensor import Function
from ._windows import channel_major, col2im, col2im_wide, im2col, output_size, pad, unpad


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


class Saved(NamedTuple):
    """What `conv2d_forward` keeps for `conv2d_weight_grad`: the algorithm that ran ('im2col',
    'winograd', 'winograd4', 'direct' or 'depthwise') and its array: im2col columns
    (G, C/G*kH*kW, N*H'*W'), Winograd's input tiles (16 or 36, C, N, tiles_h, tiles_w), or
    direct's or depthwise's channel-major input (C, N, H, W).
    ``np.asarray(saved)`` is the array.
    """
    algorithm: str
    array: np.ndarray


# ------------------------------------------------------------------ the three array functions
def conv2d_columns(x, geometry):
    """x: (N, C, H, W) -> Saved('im2col', columns), columns: (G, C/G*kH*kW, N*H'*W'), the im2col
    matrix of the padded input split by group: column (n, y, x) holds the values under the kernel
    at output position (y, x).

    The compiled kernel reads x unpadded and writes the padding's zeros itself; the reference
    pads a copy first.
    """
    image = channel_major(x)
    (c, n), (oh, ow), (kh, kw) = image.shape[:2], geometry.output_hw, geometry.kernel
    if kernels.compiled():
        columns = np.empty((c, kh, kw, n, oh, ow), dtype=image.dtype)
        compiled.im2col(image, geometry.stride, geometry.dilation, geometry.padding[::2], columns)
    else:
        columns = im2col(pad(image, geometry.padding), geometry.kernel, geometry.stride, geometry.dilation,
                         geometry.output_hw)
    return Saved("im2col", columns.reshape(geometry.groups, -1, n * oh * ow))


def _algorithm(geometry, weight):
    return kernels.conv_algorithm(geometry.kernel, geometry.stride, geometry.dilation, geometry.groups,
                                  weight.shape[1] * geometry.groups, weight.shape[0])


def conv2d_forward(x, weight, geometry):
    """x: (N, C, H, W), weight: (O, C/G, kH, kW) -> out: (N, O, H', W'), saved: the `Saved` that
    `conv2d_weight_grad` needs.

    out[n, o, y, x] = sum_{c, i, j} weight[o, c, i, j] * x_padded[n, g*C/G + c, y*sH + i*dH, x*sW + j*dW]
    with g = o // (O/G). im2col: `conv2d_columns` then one matrix product per group,
    (O/G, C/G*kH*kW) @ (C/G*kH*kW, N*H'*W'), whose (O, N*H'*W') result is ``out`` in channel-major
    memory (returned as an NCHW view). Winograd: `_winograd_forward`; direct: `_direct_forward`.
    """
    algorithm = _algorithm(geometry, weight)
    if algorithm in WINOGRAD:
        return _winograd_forward(x, weight, geometry, algorithm)
    if algorithm == "direct":
        return _direct_forward(x, weight, geometry)
    if algorithm == "depthwise":
        return _depthwise_forward(x, weight, geometry)
    o, groups = weight.shape[0], geometry.groups
    saved = conv2d_columns(x, geometry)
    out = np.matmul(weight.reshape(groups, o // groups, -1), saved.array)
    return out.reshape(o, x.shape[0], *geometry.output_hw).transpose(1, 0, 2, 3), saved


def conv2d_input_grad(grad_out, weight, geometry):
    """grad_out: (N, O, H', W'), weight: (O, C/G, kH, kW) -> grad_x: (N, C, H, W).

    Per group, d_columns = weight^T @ d_out, (C/G*kH*kW, O/G) @ (O/G, N*H'*W'), then col2im sums
    each column back onto the input positions it was read from. The compiled kernel drops the
    taps that fall in the padding; the reference sums into a padded array and cuts the padding
    off, and for stride 1 computes the columns wide (see `col2im_wide`). Returned as an NCHW view
    of channel-major memory. Winograd: `_winograd_input_grad`. Direct has no input gradient of its
    own: this one needs no columns, and a first layer needs none at all.
    """
    algorithm = _algorithm(geometry, weight)
    if algorithm in WINOGRAD:
        return _winograd_input_grad(grad_out, weight, geometry, WINOGRAD[algorithm])
    if algorithm == "depthwise":
        return _depthwise_input_grad(grad_out, weight, geometry)
    o, groups = weight.shape[0], geometry.groups
    c = weight.shape[1] * groups
    grad_c = channel_major(grad_out)
    n, (kh, kw), (oh, ow) = grad_c.shape[1], geometry.kernel, geometry.output_hw
    weight_t = weight.reshape(groups, o // groups, -1).transpose(0, 2, 1)
    if kernels.compiled():
        columns = np.matmul(weight_t, grad_c.reshape(groups, o // groups, -1))
        grad_x = np.empty((c, n) + geometry.input_hw, dtype=columns.dtype)
        compiled.col2im(columns.reshape(c, kh, kw, n, oh, ow), geometry.stride, geometry.dilation,
                        geometry.padding[::2], grad_x)
        return grad_x.transpose(1, 0, 2, 3)
    padded_shape = (c, n) + geometry.padded_hw
    if geometry.stride == (1, 1):
        wide = np.zeros(grad_c.shape[:3] + (padded_shape[3],), dtype=grad_c.dtype)
        wide[..., :ow] = grad_c
        columns = np.matmul(weight_t, wide.reshape(groups, o // groups, -1))
        padded = col2im_wide(columns, padded_shape, geometry.kernel, geometry.dilation, oh)
    else:
        columns = np.matmul(weight_t, grad_c.reshape(groups, o // groups, -1))
        padded = col2im(columns, padded_shape, geometry.kernel, geometry.stride, geometry.dilation, geometry.output_hw)
    return unpad(padded, geometry.padding).transpose(1, 0, 2, 3)


def conv2d_weight_grad(grad_out, saved, geometry):
    """grad_out: (N, O, H', W'), saved: the `Saved` from `conv2d_forward` (or `conv2d_columns`) of
    the input -> grad_weight: (O, C/G, kH, kW).

    im2col: per group, d_weight = d_out @ columns^T, (O/G, N*H'*W') @ (N*H'*W', C/G*kH*kW).
    Winograd: `_winograd_weight_grad`; direct: `_direct_weight_grad`.
    """
    if saved.algorithm in WINOGRAD:
        return _winograd_weight_grad(grad_out, saved.array, geometry, WINOGRAD[saved.algorithm])
    if saved.algorithm == "direct":
        return _direct_weight_grad(grad_out, saved.array, geometry)
    if saved.algorithm == "depthwise":
        return _depthwise_weight_grad(grad_out, saved.array, geometry)
    columns = saved.array
    o, groups = grad_out.shape[1], geometry.groups
    grad_grouped = channel_major(grad_out).reshape(groups, o // groups, -1)
    if groups == 1 and o * columns.shape[1] <= SMALL_PRODUCT_MAX_ENTRIES:
        grad_weight = _small_product_of_long_rows(grad_grouped[0], columns[0])
    else:
        grad_weight = np.matmul(grad_grouped, columns.transpose(0, 2, 1))
    return grad_weight.reshape((o, columns.shape[1] // (geometry.kernel[0] * geometry.kernel[1])) + geometry.kernel)


# A first layer's weight gradient is a small matrix, (O, C*kH*kW) = (32, 9) for the reference
# CNN, summed over N*H'*W' = 100,352 positions. OpenBLAS runs such a product at a third of its
# speed; as a batch of products over runs of 2048 positions, summed after, it took 0.2-0.6x the
# time (O x rows: 8x9 0.20, 6x25 0.19, 16x16 0.38, 32x9 0.50, 32x12 0.59) and stopped paying at
# about 500 entries (32x16 0.98, 64x9 0.99, 32x27 1.06); measured for issue 13.
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


# ------------------------------------------------------------------ direct, one input channel
def _direct_forward(x, weight, geometry):
    """x: (N, 1, H, W), weight: (O, 1, kH, kW) -> out: (N, O, H', W'), Saved('direct', image (1, N, H, W)).

    Stride 1: each output plane summed tap by tap from the image (kernels/direct.py).
    """
    image, top_left = channel_major(x), geometry.padding[::2]
    if not kernels.compiled():
        out = direct.forward_reference(image, weight, geometry.dilation, top_left, geometry.output_hw)
    else:
        out = np.empty((weight.shape[0], x.shape[0]) + geometry.output_hw, dtype=image.dtype)
        direct.forward(image, np.ascontiguousarray(weight), geometry.dilation, top_left, out)
    return out.transpose(1, 0, 2, 3), Saved("direct", image)


def _direct_weight_grad(grad_out, image, geometry):
    """grad_out: (N, O, H', W'), image: (1, N, H, W) from `_direct_forward` -> (O, 1, kH, kW)."""
    grad_c, top_left = channel_major(grad_out), geometry.padding[::2]
    if not kernels.compiled():
        return direct.weight_grad_reference(grad_c, image, geometry.dilation, top_left, geometry.kernel)
    grad_weight = np.empty((grad_c.shape[0], 1) + geometry.kernel, dtype=grad_c.dtype)
    direct.weight_grad(grad_c, image, geometry.dilation, top_left, grad_weight)
    return grad_weight


# ------------------------------------------------------------------ depthwise: groups = in = out channels
def _depthwise_forward(x, weight, geometry):
    """x: (N, C, H, W), weight: (C, 1, kH, kW) -> out: (N, C, H', W'), Saved('depthwise', image (C, N, H, W))."""
    image, kernel = channel_major(x), np.ascontiguousarray(weight[:, 0])
    arguments = (geometry.stride, geometry.dilation, geometry.padding[::2])
    if not kernels.compiled():
        out = depthwise.forward_reference(image, kernel, *arguments, geometry.output_hw)
    else:
        out = np.empty(image.shape[:2] + geometry.output_hw, dtype=image.dtype)
        depthwise.forward(image, kernel, *arguments, out)
    return out.transpose(1, 0, 2, 3), Saved("depthwise", image)


def _depthwise_input_grad(grad_out, weight, geometry):
    """grad_out: (N, C, H', W'), weight: (C, 1, kH, kW) -> grad_x: (N, C, H, W)."""
    grad_c, kernel = channel_major(grad_out), np.ascontiguousarray(weight[:, 0])
    arguments = (geometry.stride, geometry.dilation, geometry.padding[::2])
    if not kernels.compiled():
        grad_x = depthwise.input_grad_reference(grad_c, kernel, *arguments, geometry.input_hw)
    else:
        grad_x = np.empty(grad_c.shape[:2] + geometry.input_hw, dtype=grad_c.dtype)
        depthwise.input_grad(grad_c, kernel, *arguments, grad_x)
    return grad_x.transpose(1, 0, 2, 3)


def _depthwise_weight_grad(grad_out, image, geometry):
    """grad_out: (N, C, H', W'), image: (C, N, H, W) from `_depthwise_forward` -> (C, 1, kH, kW)."""
    grad_c = channel_major(grad_out)
    arguments = (geometry.stride, geometry.dilation, geometry.padding[::2])
    if not kernels.compiled():
        grad_weight = depthwise.weight_grad_reference(grad_c, image, *arguments, geometry.kernel)
    else:
        grad_weight = np.empty((grad_c.shape[0],) + geometry.kernel, dtype=grad_c.dtype)
        depthwise.weight_grad(grad_c, image, *arguments, grad_weight)
    return grad_weight[:, None]


# ------------------------------------------------------------------ Winograd F(2x2, 3x3) and F(4x4, 3x3), groups 1
# Each algorithm's transforms, by the name `Saved` records; both modules have the same functions.
WINOGRAD = {"winograd": winograd, "winograd4": winograd4}


def _winograd_forward(x, weight, geometry, algorithm):
    """x: (N, C, H, W), weight: (O, C, 3, 3) -> out: (N, O, H', W'), tiles: (P, C, N, tH, tW),
    P = 16 (F(2x2, 3x3): 4x4 patches, 2x2 output tiles) or 36 (F(4x4, 3x3): 6x6 and 4x4).

    tiles = B^T d B over the input's patches, U = G g G^T, then the P products
    (P, O, C) @ (P, C, N*tH*tW) and A^T m A back onto channel-major output. The P-plane arrays
    come from `winograd.planes` (staggered, so the kernels' P streams do not collide).
    """
    method, image, weight = WINOGRAD[algorithm], channel_major(x), np.ascontiguousarray(weight)
    (c, n), o, top_left, planes = image.shape[:2], weight.shape[0], geometry.padding[::2], method.PLANES
    tiles_hw = method.tiles_hw(geometry.output_hw)
    if not kernels.compiled():
        tiles = method.reference.input_transform(image, top_left, tiles_hw)
        products = np.matmul(_winograd_weight(weight, method), tiles.reshape(planes, c, -1))
        out = method.reference.output_transform(products.reshape((planes, o, n) + tiles_hw), geometry.output_hw)
        return out.transpose(1, 0, 2, 3), Saved(algorithm, tiles)
    tiles = winograd.planes((c, n) + tiles_hw, image.dtype, planes)
    method.input_transform(image, top_left, tiles)
    products = winograd.planes((o, n * tiles_hw[0] * tiles_hw[1]), image.dtype, planes)
    np.matmul(_winograd_weight(weight, method), tiles.reshape(planes, c, -1), out=products)
    out = np.empty((o, n) + geometry.output_hw, dtype=image.dtype)
    method.output_transform(products.reshape((planes, o, n) + tiles_hw), out)
    return out.transpose(1, 0, 2, 3), Saved(algorithm, tiles)


def _winograd_weight(weight, method):
    """weight: (O, C, 3, 3) -> U = G g G^T: (P, O, C)."""
    if not kernels.compiled():
        return method.reference.weight_transform(weight)
    transformed = np.empty((method.PLANES,) + weight.shape[:2], dtype=weight.dtype)
    method.weight_transform(np.ascontiguousarray(weight), transformed)
    return transformed


def _winograd_output_grad(grad_out, geometry, method):
    """grad_out: (N, O, H', W') -> A dY A^T over its output tiles: (P, O, N*tH*tW)."""
    grad_c, tiles_hw = channel_major(grad_out), method.tiles_hw(geometry.output_hw)
    if kernels.compiled():
        transformed = winograd.planes(grad_c.shape[:2] + tiles_hw, grad_c.dtype, method.PLANES)
        method.output_grad_transform(grad_c, transformed)
    else:
        transformed = method.reference.output_grad_transform(grad_c, tiles_hw)
    return transformed.reshape(method.PLANES, grad_c.shape[0], -1)


def _winograd_input_grad(grad_out, weight, geometry, method, grad_transformed=None):
    """grad_out: (N, O, H', W'), weight: (O, C, 3, 3) -> grad_x: (N, C, H, W).

    dV = U^T @ dM, (P, C, O) @ (P, O, N*tH*tW), then B dV B^T added back onto the input.
    ``grad_transformed``: dM from `_winograd_output_grad`, when the caller has it already.
    """
    n, c, planes = grad_out.shape[0], weight.shape[1], method.PLANES
    tiles_hw, top_left = method.tiles_hw(geometry.output_hw), geometry.padding[::2]
    if grad_transformed is None:
        grad_transformed = _winograd_output_grad(grad_out, geometry, method)
    weight_t = _winograd_weight(weight, method).transpose(0, 2, 1)
    if not kernels.compiled():
        tiles_grad = np.matmul(weight_t, grad_transformed).reshape((planes, c, n) + tiles_hw)
        grad_x = method.reference.input_grad_transform(tiles_grad, top_left, (c, n) + geometry.input_hw)
        return grad_x.transpose(1, 0, 2, 3)
    tiles_grad = winograd.planes((c, grad_transformed.shape[2]), grad_transformed.dtype, planes)
    np.matmul(weight_t, grad_transformed, out=tiles_grad)
    grad_x = np.empty((c, n) + geometry.input_hw, dtype=tiles_grad.dtype)
    method.input_grad_transform(tiles_grad.reshape((planes, c, n) + tiles_hw), top_left, grad_x)
    return grad_x.transpose(1, 0, 2, 3)


def _winograd_weight_grad(grad_out, tiles, geometry, method, grad_transformed=None):
    """grad_out: (N, O, H', W'), tiles: (P, C, N, tH, tW) from `_winograd_forward` -> (O, C, 3, 3).

    dU = dM @ tiles^T, (P, O, N*tH*tW) @ (P, N*tH*tW, C), then G^T dU G. ``grad_transformed``:
    dM, when the caller has it already.
    """
    c = tiles.shape[1]
    if grad_transformed is None:
        grad_transformed = _winograd_output_grad(grad_out, geometry, method)
    transformed = np.matmul(grad_transformed, tiles.reshape(method.PLANES, c, -1).transpose(0, 2, 1))
    if not kernels.compiled():
        return method.reference.weight_grad_transform(transformed)
    grad_weight = np.empty(transformed.shape[1:] + (3, 3), dtype=transformed.dtype)
    method.weight_grad_transform(transformed, grad_weight)
    return grad_weight


def _channel_sums(grad):
    """grad: (N, C, H, W) -> (C,): the bias gradient."""
    return channel_major(grad).reshape(grad.shape[1], -1).sum(axis=1)


# ------------------------------------------------------------------ autograd Functions
class Conv2d(Function):
    """x: (N, C, H, W), weight: (O, C/G, kH, kW), bias: (O,) or None -> out: (N, O, H', W').

    Forward keeps what the weight gradient needs (a `Saved`: im2col columns, Winograd tiles or
    direct's input), so it needs no second pass over the input.
    """

    def forward(self, x, weight, bias, geometry):
        out, self.saved = conv2d_forward(x, weight, geometry)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        self.weight, self.geometry, self.has_bias = weight, geometry, bias is not None
        return out

    def backward(self, grad):
        # One channel-major copy (at most), which each gradient below then reads for free.
        grad = channel_major(grad).transpose(1, 0, 2, 3)
        if self.saved.algorithm in WINOGRAD and all(self.needs_input_grad[:2]):
            # Winograd both ways: the two gradients share one transform of grad (dM).
            method = WINOGRAD[self.saved.algorithm]
            transformed = _winograd_output_grad(grad, self.geometry, method)
            grad_x = _winograd_input_grad(grad, self.weight, self.geometry, method, transformed)
            grad_weight = _winograd_weight_grad(grad, self.saved.array, self.geometry, method, transformed)
        else:
            grad_x = conv2d_input_grad(grad, self.weight, self.geometry) if self.needs_input_grad[0] else None
            grad_weight = conv2d_weight_grad(grad, self.saved, self.geometry) if self.needs_input_grad[1] else None
        grad_bias = _channel_sums(grad) if self.has_bias and self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class ConvTranspose2d(Function):
    """x: (N, C_in, H, W), weight: (C_in, C_out/G, kH, kW), bias: (C_out,) or None
    -> out: (N, C_out, H_out, W_out), H_out = (H - 1)*sH - 2*pH + dH*(kH-1) + output_padding_H + 1.

    The adjoint of the convolution ``geometry`` describes, which maps (N, C_out, H_out, W_out) to
    (N, C_in, H, W) with the same weight: forward is its input gradient, the input gradient is
    its forward, and the weight gradient is its weight gradient with the roles of x and d_out swapped.
    """

    def forward(self, x, weight, bias, geometry):
        out = conv2d_input_grad(x, weight, geometry)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        self.x, self.weight, self.geometry, self.has_bias = x, weight, geometry, bias is not None
        return out

    def backward(self, grad):
        grad_x = grad_weight = None
        grad = channel_major(grad).transpose(1, 0, 2, 3)
        # The input gradient's forward saves what the weight gradient needs from grad.
        if self.needs_input_grad[0]:
            grad_x, grad_saved = conv2d_forward(grad, self.weight, self.geometry)
        elif self.needs_input_grad[1]:
            grad_saved = conv2d_columns(grad, self.geometry)
        if self.needs_input_grad[1]:
            grad_weight = conv2d_weight_grad(self.x, grad_saved, self.geometry)
        grad_bias = _channel_sums(grad) if self.has_bias and self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


# ------------------------------------------------------------------ slow references for the tests
def conv2d_reference(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Slow, obviously correct forward on arrays: the defining sum, one output position at a time.

    Kept as the reference the fast path is tested against.
    """
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    padded = pad(x, padding)
    oh = output_size(h, kh, stride[0], dilation[0], *padding[:2])
    ow = output_size(w, kw, stride[1], dilation[1], *padding[2:])
    out = np.zeros((n, o, oh, ow), dtype=np.result_type(x, weight))
    og = o // groups
    for y in range(oh):
        for xx in range(ow):
            rows = slice(y * stride[0], y * stride[0] + dilation[0] * (kh - 1) + 1, dilation[0])
            cols = slice(xx * stride[1], xx * stride[1] + dilation[1] * (kw - 1) + 1, dilation[1])
            window = padded[:, :, rows, cols]
            for g in range(groups):
                out[:, g * og:(g + 1) * og, y, xx] = np.einsum(
                    "ncij,ocij->no", window[:, g * cg:(g + 1) * cg], weight[g * og:(g + 1) * og])
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def conv_transpose2d_reference(x, weight, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                               dilation=(1, 1), groups=1):
    """Slow, obviously correct transposed convolution on arrays: the defining scatter sum, one
    input position at a time.

    Input position (y, x) adds ``x[n, c, y, x] * weight[c, o, :, :]`` to the output window whose
    tap (i, j) is at (y*sH + i*dH - pH, x*sW + j*dW - pW), for each channel c of o's group.
    """
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    cg = c // groups
    out_h = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    out_w = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    # Scatter into an output padded on every side, then cut the padding off.
    full = np.zeros((n, og * groups, out_h + 2 * padding[0], out_w + 2 * padding[1]), dtype=np.result_type(x, weight))
    for y in range(h):
        for xx in range(w):
            rows = slice(y * stride[0], y * stride[0] + dilation[0] * (kh - 1) + 1, dilation[0])
            cols = slice(xx * stride[1], xx * stride[1] + dilation[1] * (kw - 1) + 1, dilation[1])
            for g in range(groups):
                full[:, g * og:(g + 1) * og, rows, cols] += np.einsum(
                    "nc,coij->noij", x[:, g * cg:(g + 1) * cg, y, xx], weight[g * cg:(g + 1) * cg])
    out = full[:, :, padding[0]:padding[0] + out_h, padding[1]:padding[1] + out_w]
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


# ------------------------------------------------------------------ public ops
def resolve_padding(op, padding, kernel, stride, dilation):
    """padding: int, pair, 'valid' or 'same' -> (top, bottom, left, right), as PyTorch pads."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
            total_h, total_w = (d * (k - 1) for d, k in zip(dilation, kernel))
            return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
        raise ValueError(f"{op}: expected padding to be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = _checks.pair(op, "padding", padding, minimum=0)
    return ph, ph, pw, pw


def _check_weight_and_bias(op, input, weight, bias, out_channels):
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: expected weight dtype to match input dtype {input.dtype}, got {weight.dtype}")
    if bias is not None:
        bias = _checks.as_tensor(op, "bias", bias)
        _checks.check_shape(op, "bias", bias, "(O,)", O=out_channels)
    return bias


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over a batch of images, like ``torch.nn.functional.conv2d``.

    Args:
        input: (N, C, H, W) floating tensor.
        weight: (O, C/groups, kH, kW).
        bias: (O,) or None.
        stride, dilation: int or (sH, sW) >= 1.
        padding: int or (pH, pW) >= 0, or 'same' (stride 1 only) or 'valid'.
        groups: int dividing both C and O.

    Returns:
        (N, O, H', W') with H' = (H + 2*pH - dH*(kH-1) - 1) // sH + 1.

    >>> import convnet, convnet.functional as F
    >>> F.conv2d(convnet.ones(1, 1, 4, 4), convnet.ones(1, 1, 3, 3)).numpy().tolist()
    [[[[9.0, 9.0], [9.0, 9.0]]]]
    """
    op = "conv2d"
    input = _checks.as_tensor(op, "input", input)
    weight = _checks.as_tensor(op, "weight", weight)
    _checks.check_shape(op, "input", input, "(N, C, H, W)")
    _checks.check_shape(op, "weight", weight, "(O, C/groups, kH, kW)")
    groups = _checks.positive_int(op, "groups", groups)
    stride = _checks.pair(op, "stride", stride, minimum=1)
    dilation = _checks.pair(op, "dilation", dilation, minimum=1)
    n, c, h, w = input.shape
    o, cg, kh, kw = weight.shape
    _checks.groups_divide_channels(op, groups, c, o)
    if cg * groups != c:
        raise ValueError(f"{op}: expected weight of shape ({o}, {c // groups}, kH, kW) for input with {c} channels "
                         f"and groups={groups}, got {weight.shape}")
    bias = _check_weight_and_bias(op, input, weight, bias, o)
    padding = resolve_padding(op, padding, (kh, kw), stride, dilation)
    geometry = ConvGeometry.of_conv2d((h, w), (kh, kw), stride, padding, dilation, groups)
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if span[0] > geometry.padded_hw[0] or span[1] > geometry.padded_hw[1]:
        raise ValueError(f"{op}: kernel {(kh, kw)} with dilation {dilation} spans {span}, larger than the padded "
                         f"input {geometry.padded_hw} (input {(h, w)}, padding {padding[::2]})")
    return Conv2d.apply(input, weight, bias, geometry=geometry)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution, like ``torch.nn.functional.conv_transpose2d`` (note its
    argument order): the gradient of `conv2d` with respect to its input, used to upsample.

    Args:
        input: (N, C_in, H, W) floating tensor.
        weight: (C_in, C_out/groups, kH, kW).
        bias: (C_out,) or None.
        stride, dilation: int or (sH, sW) >= 1.
        padding: int or (pH, pW) >= 0: removed from each side of the output.
        output_padding: int or pair, each smaller than its stride or its dilation: added to
            the bottom and right of the output, to pick among the sizes a stride maps to one.
        groups: int dividing C_in.

    Returns:
        (N, C_out, H_out, W_out) with H_out = (H - 1)*sH - 2*pH + dH*(kH-1) + output_padding_H + 1.

    >>> import convnet, convnet.functional as F
    >>> F.conv_transpose2d(convnet.ones(1, 1, 2, 2), convnet.ones(1, 1, 2, 2), stride=2).shape
    (1, 1, 4, 4)
    """
    op = "conv_transpose2d"
    input = _checks.as_tensor(op, "input", input)
    weight = _checks.as_tensor(op, "weight", weight)
    _checks.check_shape(op, "input", input, "(N, C_in, H, W)")
    _checks.check_shape(op, "weight", weight, "(C_in, C_out/groups, kH, kW)")
    groups = _checks.positive_int(op, "groups", groups)
    stride = _checks.pair(op, "stride", stride, minimum=1)
    padding = _checks.pair(op, "padding", padding, minimum=0)
    output_padding = _checks.pair(op, "output_padding", output_padding, minimum=0)
    dilation = _checks.pair(op, "dilation", dilation, minimum=1)
    _checks.output_padding_fits(op, output_padding, stride, dilation)
    n, c, h, w = input.shape
    c_weight, out_per_group, kh, kw = weight.shape
    _checks.groups_divide_channels(op, groups, c, out_per_group * groups)
    if c_weight != c:
        raise ValueError(f"{op}: expected weight of shape ({c}, C_out/groups, kH, kW) for input with {c} channels, "
                         f"got {weight.shape}")
    bias = _check_weight_and_bias(op, input, weight, bias, out_per_group * groups)
    geometry = ConvGeometry.of_conv_transpose2d((h, w), (kh, kw), stride, padding, output_padding, dilation, groups)
    if min(geometry.input_hw) < 1:
        raise ValueError(f"{op}: expected a positive output size, got {geometry.input_hw} for input {(h, w)} "
                         f"with kernel {(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}")
    return ConvTranspose2d.apply(input, weight, bias, geometry=geometry)
