"""Test-time augmentation: a network answers for several views of each test image (the image, its
mirror image, the image shifted by a pixel or two) and the answers are averaged."""

import numpy as np

from ..errors import InvalidType, InvalidValue
from ..tensor import Tensor

PADDING_MODES = ("reflect", "replicate")  # PyTorch's names; NumPy's np.pad calls them "reflect" and "edge"


def logits(model, images, mirror=False, translate=0, padding_mode="reflect", max_values=1 << 20):
    """``model``'s outputs (N, classes) for ``images`` (N, C, H, W), a Tensor or an array, averaged
    over the views `tta_views(mirror, translate)` with their weights.

    Without ``mirror`` and ``translate`` it is ``model(images)``. Mirroring helps a network trained
    on mirrored images (+0.003 for the reference CNN on Fashion-MNIST) and hurts one that never saw
    any (-0.05): see docs/results.md. ``translate`` (airbench's tta_level 2, with 1) adds the image
    shifted ``translate`` pixels down-right and up-left, the border filled by ``padding_mode``.
    Views are stacked into one forward pass while it holds at most ``max_values`` input values, so
    small batches take one pass and a large batch one pass per view (no more memory than today's).
    """
    pixels = images.data if isinstance(images, Tensor) else np.asarray(images)
    if not isinstance(mirror, (bool, np.bool_)):
        raise InvalidType(f"logits: expected mirror to be a bool, got {mirror!r}")
    if not isinstance(max_values, int) or isinstance(max_values, bool) or max_values < 1:
        raise InvalidValue(f"logits: expected max_values to be a positive int, got {max_values!r}")
    views = tta_views(mirror, translate)
    if len(views) == 1:
        return model(Tensor(pixels))
    if pixels.ndim != 4:
        raise InvalidValue(f"logits: expected images of shape (N, C, H, W) for test-time views, got {pixels.shape}")
    per_pass = max(1, min(len(views), max_values // max(1, pixels.size)))
    total = None
    for start in range(0, len(views), per_pass):
        group = views[start:start + per_pass]
        stacked = np.concatenate([augmented_view(pixels, mirrored, rows, cols, padding_mode)
                                  for _, mirrored, rows, cols in group])
        scores = model(Tensor(stacked)).data.reshape(len(group), len(pixels), -1)
        for (weight, *_), view_scores in zip(group, scores):
            weighted = np.float32(weight) * view_scores
            total = weighted if total is None else total + weighted
    return Tensor(total)


def tta_views(mirror=False, translate=0):
    """The views `logits` averages, as ((weight, mirrored, rows, cols), ...), weights summing to 1.

    airbench's `infer`: without ``translate``, the image (and its mirror image, half each, with
    ``mirror``); with it, those get half the weight and the other half goes in equal parts to the
    image shifted (+t, +t) and (-t, -t) pixels (rows down, columns right), each mirrored too with
    ``mirror``: 6 views, weights 1/4, 1/4 and 1/8 four times.
    """
    if not isinstance(translate, (int, np.integer)) or isinstance(translate, bool) or translate < 0:
        raise InvalidValue(f"logits: expected translate to be a non-negative int of pixels, got {translate!r}")
    mirrors = (False, True) if mirror else (False,)
    shifts = [(0, 0, 0.5), (translate, translate, 0.25), (-translate, -translate, 0.25)] if translate else [(0, 0, 1.0)]
    return tuple((weight / len(mirrors), mirrored, rows, cols) for rows, cols, weight in shifts for mirrored in mirrors)


def augmented_view(images, mirrored, rows, cols, padding_mode="reflect"):
    """``images`` (N, C, H, W) shifted ``rows`` down and ``cols`` right (negative: up, left), the
    uncovered border filled by ``padding_mode`` ("reflect" or "replicate", as PyTorch's F.pad), then
    mirrored left-right where ``mirrored``: (N, C, H, W), out[..., i, j] = padded[..., p - rows + i, p - cols + j]."""
    if padding_mode not in PADDING_MODES:
        raise InvalidValue(f"logits: expected padding_mode to be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    n, c, h, w = images.shape
    pad = max(abs(rows), abs(cols))
    if padding_mode == "reflect" and pad >= min(h, w):
        raise InvalidValue(f"logits: a reflected shift of {pad} pixels needs images larger than that, got {h}x{w}")
    view = images
    if pad:
        padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)),
                        mode="reflect" if padding_mode == "reflect" else "edge")
        view = padded[:, :, pad - rows:pad - rows + h, pad - cols:pad - cols + w]
    return np.ascontiguousarray(view[..., ::-1] if mirrored else view, dtype=np.float32)
