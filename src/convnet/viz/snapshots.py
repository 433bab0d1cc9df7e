"""Small pictures of the first convolution layer as a run trains, for the live page
(`convnet.reports.StepLog` writes them, `convnet watch` shows them): colour-mapped arrays saved
with Pillow, a few milliseconds each, where a matplotlib figure would take a third of a second
every few hundred steps."""

import io
import math

import numpy as np
from matplotlib import colormaps
from PIL import Image

from .lesson import IMAGE_MAP, SIGNED_MAP, mosaic

TILE_PIXELS = 36  # about how wide one kernel or map is drawn, whatever its size in the network
MOST_MAPS = 64


def kernels_png(kernels):
    """(K, kH, kW) kernels as a grid on one signed scale, red positive and blue negative: one
    scale, so that kernels growing from their small random start show as colours deepening."""
    limit = float(np.abs(kernels).max()) or 1.0
    return _grid_png(np.asarray(kernels[:MOST_MAPS], dtype=np.float64) / (2 * limit) + 0.5, SIGNED_MAP)


def feature_maps_png(maps):
    """(K, H, W) maps as a grid, each from its own minimum to its own maximum, so that a weak map
    shows its pattern too."""
    maps = np.asarray(maps[:MOST_MAPS], dtype=np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    return _grid_png((maps - low) / np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12), "viridis")


def image_png(image):
    """(C, H, W) as the network saw it: grey for one channel, colour for three, stretched to its range."""
    image = np.asarray(image, dtype=np.float64)
    unit = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
    rgb = colormaps[IMAGE_MAP](unit[0]) if len(unit) == 1 else unit[:3].transpose(1, 2, 0)
    return _png(rgb, max(1, 4 * TILE_PIXELS // unit.shape[1]))


def _grid_png(unit_tiles, colour_map):
    """(K, h, w) values in [0, 1] tiled (NaN between tiles: white) and colour-mapped."""
    count, height, _ = unit_tiles.shape
    tiled = mosaic(unit_tiles, columns=math.ceil(math.sqrt(count * 1.4)), gap=1)
    return _png(colormaps[colour_map].with_extremes(bad="white")(tiled), max(1, TILE_PIXELS // height))


def _png(rgb, scale):
    """(H, W, 3 or 4) floats in [0, 1] as PNG bytes, each pixel drawn as a scale x scale block."""
    pixels = Image.fromarray((np.asarray(rgb)[..., :3] * 255).round().astype(np.uint8))
    pixels = pixels.resize((pixels.width * scale, pixels.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return buffer.getvalue()
