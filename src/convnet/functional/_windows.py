"""Sliding-window plumbing shared by convolution and pooling.

A window op with kernel (kH, kW), stride (sH, sW), dilation (dH, dW) over a padded input of
height Hp has H' = (Hp - dH*(kH-1) - 1) // sH + 1 output rows. Instead of gathering windows
one output position at a time, the ops loop over the kH*kW *kernel offsets*: for offset (i, j)
the input values under that kernel tap, for every output position at once, are one strided
view `offset_view(padded, i, j, ...)` of shape (N, C, H', W'). Scattering gradients back is the
same loop with `+=` into strided slices (never `np.add.at`, which is an order of magnitude slower).
"""

import numpy as np


def output_size(size, kernel, stride, dilation, pad_before, pad_after):
    """Output length of a window op along one axis (PyTorch's formula, floor mode)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pad(x, padding, value=0.0):
    """x: (N, C, H, W) -> (N, C, H+top+bottom, W+left+right), padded with ``value``.

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
    """Inverse of `pad`: the (N, C, H, W) interior of a padded array."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]


def offset_view(padded, i, j, stride, dilation, out_hw):
    """The (N, C, H', W') view of ``padded`` under kernel tap (i, j) at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    top, left = i * dh, j * dw
    return padded[:, :, top:top + sh * (oh - 1) + 1:sh, left:left + sw * (ow - 1) + 1:sw]
