"""2-D convolution, as deep learning defines it: cross-correlation.

``out[n, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * in[n, c, y*s + i*d, x*s + j*d]``

The kernel is *not* flipped. Signal processing's convolution flips it first, so
``conv2d(x, w)`` equals ``scipy.signal.convolve2d(x, w[::-1, ::-1], 'valid')`` and
``scipy.signal.correlate2d(x, w, 'valid')`` (tests/test_conv_scipy.py shows both). Since the
kernel is learned, the flip makes no difference to what a network can represent.
"""

import numpy as np

from .. import _checks
from ..tensor import Function
from ._windows import channel_major, offset_view, output_size, pad, unpad


def im2col(padded, kernel, stride, dilation, out_hw):
    """padded: channel-major (C, N, Hp, Wp) -> columns (C*kH*kW, N*H'*W'), one column per output position.

    One strided copy per kernel tap. (Splitting the copies across threads was measured: no gain,
    they are memory-bound on this 2-core machine.)
    """
    c, n = padded.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=padded.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = offset_view(padded, i, j, stride, dilation, out_hw)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, padded_shape, kernel, stride, dilation, out_hw):
    """Adjoint of `im2col`: columns (C*kH*kW, N*H'*W') -> channel-major (C, N, Hp, Wp), overlaps summed."""
    c, n = padded_shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    padded = np.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            offset_view(padded, i, j, stride, dilation, out_hw)[...] += cols[:, i, j]
    return padded


def col2im_wide(cols, padded_shape, kernel, dilation, out_h):
    """`col2im` for stride 1, from *wide* columns (C*kH*kW, N*H'*Wp) whose extra Wp - W' entries
    per output row are zero.

    With output rows as wide as the padded input, kernel tap (i, j) covers each image's padded
    pixels as one contiguous run of H'*Wp values from offset i*dH*Wp + j*dW, so a tap is one
    add of N long runs instead of N*H' short rows (about 4x faster). The zero entries land on
    padding or on the next row's first pixels and change nothing.
    """
    c, n, hp, wp = padded_shape
    kh, kw = kernel
    cols = cols.reshape(c, kh, kw, n, out_h * wp)
    image = hp * wp
    last_offset = (kh - 1) * dilation[0] * wp + (kw - 1) * dilation[1]
    flat = np.zeros((c, n * image + last_offset), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            offset = i * dilation[0] * wp + j * dilation[1]
            flat[:, offset:offset + n * image].reshape(c, n, image)[:, :, :out_h * wp] += cols[:, i, j]
    return flat[:, :n * image].reshape(padded_shape)


class Conv2d(Function):
    """x: (N, C, H, W), weight: (O, C/G, kH, kW), bias: (O,) or None -> out: (N, O, H', W').

    H' = (H + pad_top + pad_bottom - dH*(kH-1) - 1) // sH + 1, likewise W'.
    Forward: im2col then one matrix product per group, (O/G, C/G*kH*kW) @ (C/G*kH*kW, N*H'*W'),
    whose (O, N*H'*W') result is the output in channel-major memory (returned as an NCHW view).
    Backward: d_weight = d_out @ cols^T, d_cols = weight^T @ d_out, d_x = col2im(d_cols); for
    stride 1 the columns are computed wide (see `col2im_wide`).
    """

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        out_hw = (output_size(h, kh, stride[0], dilation[0], *padding[:2]),
                  output_size(w, kw, stride[1], dilation[1], *padding[2:]))
        padded = pad(channel_major(x), padding)
        cols = im2col(padded, (kh, kw), stride, dilation, out_hw).reshape(groups, -1, n * out_hw[0] * out_hw[1])
        out = np.matmul(weight.reshape(groups, o // groups, -1), cols).reshape(o, n, *out_hw)
        if bias is not None:
            out += bias.reshape(o, 1, 1, 1)
        self.cols, self.weight, self.has_bias = cols, weight, bias is not None
        self.geometry = (padded.shape, (kh, kw), stride, dilation, out_hw, padding, groups)
        return out.transpose(1, 0, 2, 3)

    def backward(self, grad):
        padded_shape, kernel, stride, dilation, out_hw, padding, groups = self.geometry
        o = grad.shape[1]
        grad_c = channel_major(grad)
        grad_grouped = grad_c.reshape(groups, o // groups, -1)
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_x = self._input_grad(grad_c, grad_grouped)
        if self.needs_input_grad[1]:
            grad_weight = np.matmul(grad_grouped, self.cols.transpose(0, 2, 1)).reshape(self.weight.shape)
        if self.has_bias and self.needs_input_grad[2]:
            grad_bias = grad_c.reshape(o, -1).sum(axis=1)
        return grad_x, grad_weight, grad_bias

    def _input_grad(self, grad_c, grad_grouped):
        padded_shape, kernel, stride, dilation, out_hw, padding, groups = self.geometry
        o = grad_c.shape[0]
        weight_t = self.weight.reshape(groups, o // groups, -1).transpose(0, 2, 1)
        if stride == (1, 1):
            wide = np.zeros(grad_c.shape[:3] + (padded_shape[3],), dtype=grad_c.dtype)
            wide[..., :out_hw[1]] = grad_c
            cols = np.matmul(weight_t, wide.reshape(groups, o // groups, -1))
            padded = col2im_wide(cols, padded_shape, kernel, dilation, out_hw[0])
        else:
            padded = col2im(np.matmul(weight_t, grad_grouped), padded_shape, kernel, stride, dilation, out_hw)
        return unpad(padded, padding).transpose(1, 0, 2, 3)


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
    if c % groups or o % groups:
        raise ValueError(f"{op}: groups={groups} must divide both input channels ({c}) and output channels ({o})")
    if cg * groups != c:
        raise ValueError(f"{op}: expected weight of shape ({o}, {c // groups}, kH, kW) for input with {c} channels "
                         f"and groups={groups}, got {weight.shape}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: expected weight dtype to match input dtype {input.dtype}, got {weight.dtype}")
    if bias is not None:
        bias = _checks.as_tensor(op, "bias", bias)
        _checks.check_shape(op, "bias", bias, "(O,)", O=o)
    padding = resolve_padding(op, padding, (kh, kw), stride, dilation)
    padded_hw = (h + padding[0] + padding[1], w + padding[2] + padding[3])
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if span[0] > padded_hw[0] or span[1] > padded_hw[1]:
        raise ValueError(f"{op}: kernel {(kh, kw)} with dilation {dilation} spans {span}, larger than the padded "
                         f"input {padded_hw} (input {(h, w)}, padding {padding[::2]})")
    return Conv2d.apply(input, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
