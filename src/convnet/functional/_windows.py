"""Sliding-window plumbing shared by convolution and pooling.

A window op with kernel (kH, kW), stride (sH, sW), dilation (dH, dW) over a padded input of
height Hp has H' = (Hp - dH*(kH-1) - 1) // sH + 1 output rows. Instead of gathering windows
one output position at a time, the ops loop over the kH*kW *kernel offsets*: for offset (i, j)
the input values under that kernel tap, for every output position at once, are one strided
view `offset_view(padded, i, j, ...)` of shape (N, C, H', W'). Scattering gradients back is the
same loop with `+=` into strided slices (never `np.add.at`, which is an order of magnitude slower).
Convolution copies those views into im2col columns, so that one matrix product does its sums;
`col2im` is the adjoint that scatters columns back.

Memory layout: the ops work on *channel-major* arrays (C, N, H, W) internally and hand back
(N, C, H, W)-shaped views of them, like PyTorch's channels_last is NCHW-shaped with another
memory order. A convolution's matrix product yields channel-major data directly, and the next
op reads it without a transposing copy. Values and shapes are the same whatever the layout.
"""

import numpy as np


def output_size(size, kernel, stride, dilation, pad_before, pad_after):
    """Output length of a window op along one axis (PyTorch's formula, floor mode)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def channel_major(x):
    """(N, C, H, W) -> contiguous (C, N, H, W): free when x is a view of channel-major data."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


def pad(x, padding, value=0.0):
    """x: (A, B, H, W) -> (A, B, H+top+bottom, W+left+right), padded with ``value``.

    padding: (top, bottom, left, right).
    """
    top, bottom, left, right = padding
    if not any(padding):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def unpad(x, padding):
    """Inverse of `pad`: the (A, B, H, W) interior of a padded array."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]


def offset_view(padded, i, j, stride, dilation, out_hw):
    """The (A, B, H', W') view of ``padded`` (A, B, Hp, Wp) under kernel tap (i, j) at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    top, left = i * dh, j * dw
    return padded[:, :, top:top + sh * (oh - 1) + 1:sh, left:left + sw * (ow - 1) + 1:sw]


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
