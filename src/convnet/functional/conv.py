"""2-D convolution, as deep learning defines it: cross-correlation, and its transpose.

``out[n, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * in[n, c, y*s + i*d, x*s + j*d]``

The kernel is *not* flipped. Signal processing's convolution flips it first, so
``conv2d(x, w)`` equals ``scipy.signal.convolve2d(x, w[::-1, ::-1], 'valid')`` and
``scipy.signal.correlate2d(x, w, 'valid')`` (tests/test_conv_scipy.py shows both). Since the
kernel is learned, the flip makes no difference to what a network can represent.

Both ops are built from three array-level functions of `convnet.kernels.convolution`:
`conv2d_forward`, `conv2d_input_grad` and `conv2d_weight_grad`, with a `ConvGeometry` saying
everything about the convolution but its batch and channels (and running whichever of the five
algorithms suits the shape). A transposed convolution is a convolution's input gradient, so it
uses the same three the other way round.
"""

import numpy as np

from .. import _checks
from ..errors import InvalidType, InvalidValue
from ..kernels.convolution import ConvGeometry, channel_major, conv2d_columns, conv2d_forward, conv2d_grads, \
    conv2d_input_grad, conv2d_weight_grad, in_backward_layout, is_channels_last, output_size
from ..tensor import Function
from ._windows import four_sides, pad, resolve_padding


def _channel_sums(grad):
    """grad: (N, C, H, W) of either layout -> (C,): the bias gradient, read where it lies.

    Channel-major (or any other) memory: one pairwise sum per channel. Channels-last: its
    (N*H*W, C) rows summed in runs of _SUM_RUN rows, then the runs' sums, so that the float32
    error grows with the run's length rather than with N*H*W (a plain sum down the rows adds
    them one after another)."""
    if not is_channels_last(grad):
        return channel_major(grad).reshape(grad.shape[1], -1).sum(axis=1)
    rows = grad.transpose(0, 2, 3, 1).reshape(-1, grad.shape[1])
    whole = len(rows) // _SUM_RUN * _SUM_RUN
    sums = rows[:whole].reshape(-1, _SUM_RUN, rows.shape[1]).sum(axis=1).sum(axis=0)
    return sums + rows[whole:].sum(axis=0)


_SUM_RUN = 256


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
        # One copy (at most) into the layout the algorithm's backward reads, then read for free.
        grad = in_backward_layout(grad, self.saved)
        if all(self.needs_input_grad[:2]):
            grad_x, grad_weight = conv2d_grads(grad, self.weight, self.saved, self.geometry)
        else:
            grad_x = conv2d_input_grad(grad, self.weight, self.geometry) if self.needs_input_grad[0] else None
            grad_weight = conv2d_weight_grad(grad, self.saved, self.geometry) if self.needs_input_grad[1] else None
        grad_bias = _channel_sums(grad) if self.has_bias and self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class ConvTranspose2d(Function):
    """x: (N, C_in, H, W), weight: (C_in, C_out/G, kH, kW), bias: (C_out,) or None
    -> out: (N, C_out, H_out, W_out), H_out = (H - 1)*sH - top - bottom + dH*(kH-1) + output_padding_H + 1.

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
        if not is_channels_last(grad):  # else each function below reads the channels-last memory as it is
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
    input position at a time; padding (pH, pW) or (top, bottom, left, right).

    Input position (y, x) adds ``x[n, c, y, x] * weight[c, o, :, :]`` to the output window whose
    tap (i, j) is at (y*sH + i*dH - top, x*sW + j*dW - left), for each channel c of o's group.
    """
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    cg = c // groups
    top, bottom, left, right = four_sides("conv_transpose2d_reference", padding)
    out_h = (h - 1) * stride[0] - top - bottom + dilation[0] * (kh - 1) + output_padding[0] + 1
    out_w = (w - 1) * stride[1] - left - right + dilation[1] * (kw - 1) + output_padding[1] + 1
    # Scatter into an output padded on every side, then cut the padding off.
    full = np.zeros((n, og * groups, out_h + top + bottom, out_w + left + right), dtype=np.result_type(x, weight))
    for y in range(h):
        for xx in range(w):
            rows = slice(y * stride[0], y * stride[0] + dilation[0] * (kh - 1) + 1, dilation[0])
            cols = slice(xx * stride[1], xx * stride[1] + dilation[1] * (kw - 1) + 1, dilation[1])
            for g in range(groups):
                full[:, g * og:(g + 1) * og, rows, cols] += np.einsum(
                    "nc,coij->noij", x[:, g * cg:(g + 1) * cg, y, xx], weight[g * cg:(g + 1) * cg])
    out = full[:, :, top:top + out_h, left:left + out_w]
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


# ------------------------------------------------------------------ public ops
def _check_weight_and_bias(op, input, weight, bias, out_channels):
    if weight.dtype != input.dtype:
        raise InvalidType(f"{op}: expected weight dtype to match input dtype {input.dtype}, got {weight.dtype}")
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
        padding: int, (pH, pW) or (top, bottom, left, right), each >= 0, or 'same' (stride 1
            only) or 'valid'; see `resolve_padding`.
        groups: int dividing both C and O.

    Returns:
        (N, O, H', W') with H' = (H + top + bottom - dH*(kH-1) - 1) // sH + 1.

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
        raise InvalidValue(f"{op}: expected weight of shape ({o}, {c // groups}, kH, kW) for input with {c} channels "
                         f"and groups={groups}, got {weight.shape}")
    bias = _check_weight_and_bias(op, input, weight, bias, o)
    padding = resolve_padding(op, padding, (kh, kw), stride, dilation)
    geometry = ConvGeometry.of_conv2d((h, w), (kh, kw), stride, padding, dilation, groups)
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if span[0] > geometry.padded_hw[0] or span[1] > geometry.padded_hw[1]:
        raise InvalidValue(f"{op}: kernel {(kh, kw)} with dilation {dilation} spans {span}, larger than the padded "
                         f"input {geometry.padded_hw} (input {(h, w)}, padding {padding})")
    return Conv2d.apply(input, weight, bias, geometry=geometry)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution, like ``torch.nn.functional.conv_transpose2d`` (note its
    argument order): the gradient of `conv2d` with respect to its input, used to upsample.

    Args:
        input: (N, C_in, H, W) floating tensor.
        weight: (C_in, C_out/groups, kH, kW).
        bias: (C_out,) or None.
        stride, dilation: int or (sH, sW) >= 1.
        padding: int, (pH, pW) or (top, bottom, left, right), each >= 0: removed from those sides
            of the output (four sides as ONNX's ConvTranspose pads; PyTorch's are symmetric).
        output_padding: int or pair, each smaller than its stride or its dilation: added to
            the bottom and right of the output, to pick among the sizes a stride maps to one.
        groups: int dividing C_in.

    Returns:
        (N, C_out, H_out, W_out) with H_out = (H - 1)*sH - top - bottom + dH*(kH-1) + output_padding_H + 1.

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
    padding = four_sides(op, padding)
    output_padding = _checks.pair(op, "output_padding", output_padding, minimum=0)
    dilation = _checks.pair(op, "dilation", dilation, minimum=1)
    _checks.output_padding_fits(op, output_padding, stride, dilation)
    n, c, h, w = input.shape
    c_weight, out_per_group, kh, kw = weight.shape
    _checks.groups_divide_channels(op, groups, c, out_per_group * groups)
    if c_weight != c:
        raise InvalidValue(f"{op}: expected weight of shape ({c}, C_out/groups, kH, kW) for input with {c} channels, "
                         f"got {weight.shape}")
    bias = _check_weight_and_bias(op, input, weight, bias, out_per_group * groups)
    geometry = _transposed_geometry((h, w), (kh, kw), stride, padding, output_padding, dilation, groups)
    if min(geometry.input_hw) < 1:
        raise InvalidValue(f"{op}: expected a positive output size, got {geometry.input_hw} for input {(h, w)} "
                         f"with kernel {(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}")
    return ConvTranspose2d.apply(input, weight, bias, geometry=geometry)


def _transposed_geometry(input_hw, kernel, stride, padding, output_padding, dilation, groups):
    """The geometry of the convolution whose input gradient is ``conv_transpose2d`` on an (H, W)
    input: it maps (H_out, W_out) to (H, W) with padding (top, bottom, left, right), and
    H_out = (H - 1)*sH - top - bottom + dH*(kH-1) + output_padding_H + 1
    (`ConvGeometry.of_conv_transpose2d`, with four sides)."""
    transposed_out = tuple((size - 1) * s - before - after + d * (k - 1) + extra + 1
                           for size, s, before, after, d, k, extra
                           in zip(input_hw, stride, padding[::2], padding[1::2], dilation, kernel, output_padding))
    return ConvGeometry(kernel, stride, padding, dilation, groups, transposed_out, tuple(input_hw))
