"""Sliding-window plumbing shared by convolution and pooling: padding, resolved and applied.

A window op with kernel (kH, kW), stride (sH, sW), dilation (dH, dW) over a padded input of
height Hp has H' = (Hp - dH*(kH-1) - 1) // sH + 1 output rows. Instead of gathering windows
one output position at a time, the ops loop over the kH*kW *kernel offsets*: for offset (i, j)
the input values under that kernel tap, for every output position at once, are one strided
view `offset_view(padded, i, j, ...)` of shape (N, C, H', W'). Scattering gradients back is the
same loop with `+=` into strided slices (never `np.add.at`, which is an order of magnitude slower).

Memory layout: the ops work on *channel-major* arrays (C, N, H, W) internally and hand back
(N, C, H, W)-shaped views of them (`convnet.kernels.convolution.channel_major`), like PyTorch's
channels_last is NCHW-shaped with another memory order. A convolution's matrix product yields
channel-major data directly, and the next op reads it without a transposing copy. Values and
shapes are the same whatever the layout."""

import numbers

import numpy as np

from ..errors import InvalidType, InvalidValue


def resolve_padding(op, padding, kernel, stride=(1, 1), dilation=(1, 1)):
    """padding -> (top, bottom, left, right), as PyTorch pads.

    padding: an int p (p on every side), a pair (pH, pW) (pH above and below, pW left and
    right), four numbers (top, bottom, left, right), 'valid' (none) or 'same' (stride 1 only:
    the output as large as the input, the odd pixel of an even span at the bottom and right).
    A resolved 4-tuple comes back as it is, after a check that costs next to nothing.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise InvalidValue(f"{op}: padding='same' needs stride 1, got stride={tuple(stride)}")
            total_h, total_w = (d * (k - 1) for d, k in zip(dilation, kernel))
            return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
        raise InvalidValue(f"{op}: expected padding to be an int, a pair, four sides, 'same' or 'valid', "
                         f"got {padding!r}")
    return four_sides(op, padding)


def four_sides(op, padding):
    """An int, a pair (pH, pW) or (top, bottom, left, right), each >= 0 -> (top, bottom, left, right)."""
    sides = (padding,) * 4 if isinstance(padding, numbers.Integral) else padding
    if isinstance(sides, (tuple, list)) and len(sides) == 2:
        sides = (sides[0], sides[0], sides[1], sides[1])
    if (not isinstance(sides, (tuple, list)) or len(sides) != 4
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in sides)):
        raise InvalidType(f"{op}: expected padding to be an int, a pair (pH, pW) or four ints (top, bottom, left, "
                        f"right), got {padding!r}")
    if any(v < 0 for v in sides):
        raise InvalidValue(f"{op}: expected padding >= 0, got {padding!r}")
    return tuple(int(v) for v in sides)


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
