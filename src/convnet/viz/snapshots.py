"""Small pictures of the first convolution layer as a run trains, for the live page
(`convnet.reports.StepLog` writes them, `convnet watch` shows them): colour-mapped arrays saved
with Pillow, a few milliseconds each, where a matplotlib figure would take a third of a second
every few hundred steps."""

import io
import math

import numpy as np
from matplotlib import colormaps
from PIL import Image

from .colour import rgb_mosaic, shrink
from .lesson import IMAGE_MAP, SIGNED_MAP, mosaic

TILE_PIXELS = 36  # about how wide one kernel or map is drawn, whatever its size in the network
MOST_MAPS = 64
MOST_MAP_PIXELS = 48     # a larger map is averaged down: its tile would be drawn at 1:1, making a giant grid
MOST_IMAGE_PIXELS = 256


def kernels_png(kernels):
    """(K, kH, kW) kernels, or (K, C, kH, kW) (input channel 0 drawn unless C = 3), as a grid on one
    signed scale, so that kernels growing from their small random start show as colours deepening:
    red positive and blue negative; a colour input's (C = 3) as colour patches, each channel
    0.5 + w / (2 max|w|) over all the kernels, so a zero weight is grey and a kernel positive in
    R only is red-tinted, the more so the larger it grows."""
    kernels = np.asarray(kernels[:MOST_MAPS], dtype=np.float64)
    limit = float(np.abs(kernels).max()) or 1.0
    if kernels.ndim == 4 and kernels.shape[1] == 3:
        patches = (kernels / (2 * limit) + 0.5).transpose(0, 2, 3, 1)
        tiled = rgb_mosaic(patches, columns=_columns(len(patches)))
        return _png(tiled, max(1, TILE_PIXELS // patches.shape[1]))
    if kernels.ndim == 4:
        kernels = kernels[:, 0]
    return _grid_png(kernels / (2 * limit) + 0.5, SIGNED_MAP)


def feature_maps_png(maps):
    """(K, H, W) maps as a grid, each from its own minimum to its own maximum, so that a weak map
    shows its pattern too; maps over `MOST_MAP_PIXELS` a side averaged down to it (`colour.shrink`),
    so a 224 px run's snapshot is no larger than a 28 px one's."""
    maps = shrink(np.asarray(maps[:MOST_MAPS], dtype=np.float64), MOST_MAP_PIXELS)
    low = maps.min(axis=(1, 2), keepdims=True)
    return _grid_png((maps - low) / np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12), "viridis")


def image_png(image):
    """(C, H, W) as the network saw it: grey for one channel, colour for three, stretched to its
    range; over `MOST_IMAGE_PIXELS` a side averaged down to it."""
    image = shrink(np.asarray(image, dtype=np.float64), MOST_IMAGE_PIXELS)
    unit = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
    rgb = colormaps[IMAGE_MAP](unit[0]) if len(unit) == 1 else unit[:3].transpose(1, 2, 0)
    return _png(rgb, max(1, 4 * TILE_PIXELS // unit.shape[1]))


def _grid_png(unit_tiles, colour_map):
    """(K, h, w) values in [0, 1] tiled (NaN between tiles: white) and colour-mapped."""
    count, height, _ = unit_tiles.shape
    tiled = mosaic(unit_tiles, columns=_columns(count), gap=1)
    return _png(colormaps[colour_map].with_extremes(bad="white")(tiled), max(1, TILE_PIXELS // height))


def _columns(count):
    return math.ceil(math.sqrt(count * 1.4))


def _png(rgb, scale):
    """(H, W, 3 or 4) floats in [0, 1] as PNG bytes, each pixel drawn as a scale x scale block."""
    pixels = Image.fromarray((np.asarray(rgb)[..., :3] * 255).round().astype(np.uint8))
    pixels = pixels.resize((pixels.width * scale, pixels.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return buffer.getvalue()
