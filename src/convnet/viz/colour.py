"""Pictures of colour networks: a first layer's 3-channel kernels as colour patches and channel by
channel, and large maps shrunk for display, so that a 224 px input draws as readably as a 28 px one.
"""

import math

import numpy as np

from ..errors import InvalidValue
from .figures import new_figure, plt

CHANNELS = ("R", "G", "B")
MAP_PIXELS = 256        # show: maps wider or taller are averaged down to this for display (the lesson's are 247)
KERNELS_PER_BAND = 16   # the per-channel picture: kernels side by side in bands of R, G and B rows


def kernel_patches(kernels):
    """(K, 3, kH, kW) weights -> (K, kH, kW, 3) colours in [0, 1]: each kernel's three channels
    scaled together by that kernel's own minimum and maximum, (w - min) / (max - min), so its
    smallest weight is black, its largest is full colour, and the balance between R, G and B is
    the weights' own (a kernel that is positive in R only and zero elsewhere is pure red; one
    negative in R only is cyan). A kernel whose weights are all equal is mid-grey."""
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 4 or kernels.shape[1] != 3:
        raise InvalidValue(f"expected kernels of shape (K, 3, kH, kW), got {kernels.shape}")
    low = kernels.min(axis=(1, 2, 3), keepdims=True)
    spread = kernels.max(axis=(1, 2, 3), keepdims=True) - low
    unit = np.where(spread > 0, (kernels - low) / np.where(spread > 0, spread, 1.0), 0.5)
    return unit.transpose(0, 2, 3, 1)


def shrink(maps, most):
    """(K, H, W) maps averaged over f x f blocks, f = ceil(max(H, W) / most), so that neither side
    exceeds ``most``: (K, ceil(H / f), ceil(W / f)); the last blocks repeat the edge. Maps already
    small enough come back as they are."""
    maps = np.asarray(maps)
    factor = math.ceil(max(maps.shape[1:]) / most)
    if factor <= 1:
        return maps
    count, height, width = maps.shape
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.pad(maps, ((0, 0), (0, rows * factor - height), (0, cols * factor - width)), mode="edge")
    return padded.reshape(count, rows, factor, cols, factor).mean(axis=(2, 4))


def rgb_mosaic(tiles, columns, gap=1, background=1.0):
    """(K, h, w, 3) tiles row by row into one (rows*(h+gap)-gap, columns*(w+gap)-gap, 3) picture,
    ``background`` (white) between and after the tiles."""
    count, height, width, _ = tiles.shape
    rows = math.ceil(count / columns)
    tiled = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), background, dtype=np.float64)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        tiled[row * (height + gap):row * (height + gap) + height,
              column * (width + gap):column * (width + gap) + width] = tile
    return tiled


def _plain(axes):
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_frame_on(False)


def colour_kernels_figure(kernels, title, limit=100):
    """Every kernel (K, 3, kH, kW) as one colour patch (`kernel_patches`), numbered, in a grid."""
    patches = kernel_patches(kernels[:limit])
    count, height, width, _ = patches.shape
    columns = math.ceil(math.sqrt(count * 1.4))
    rows = math.ceil(count / columns)
    figure, axes = new_figure(size=(0.7 * columns + 1.0, 0.7 * rows + 0.8))
    axes.imshow(rgb_mosaic(patches, columns), interpolation="nearest")
    for index in range(count):
        row, column = divmod(index, columns)
        axes.text(column * (width + 1) - 0.5, row * (height + 1) - 0.5, str(index), fontsize=6, va="top", ha="left",
                  color="white", bbox={"boxstyle": "square,pad=0.1", "fc": "black", "alpha": 0.5, "lw": 0})
    _plain(axes)
    axes.set_title(title, fontsize=10, wrap=True)
    return figure


def channels_mosaic(kernels, per_band=KERNELS_PER_BAND):
    """(K, 3, kH, kW) -> one 2-D picture: kernels side by side, ``per_band`` to a band, each band
    three rows (R, G, B) of kH pixels, one pixel of NaN between tiles and two between bands."""
    count, channels, height, width = kernels.shape
    columns = min(count, per_band)
    bands = math.ceil(count / columns)
    band_height = channels * (height + 1) + 1
    tiled = np.full((bands * band_height - 2, columns * (width + 1) - 1), np.nan, dtype=np.float64)
    for index, kernel in enumerate(kernels):
        band, column = divmod(index, columns)
        for channel in range(channels):
            top = band * band_height + channel * (height + 1)
            tiled[top:top + height, column * (width + 1):column * (width + 1) + width] = kernel[channel]
    return tiled


def _channel_label(first, last, channel):
    """The R row of a band names the band's kernels too ("16-31  R"): the columns count from 0 in each."""
    return f"{first}-{last}  {CHANNELS[channel]}" if channel == 0 else CHANNELS[channel]


def kernel_channels_figure(kernels, title, limit=64):
    """The first ``limit`` kernels (K, 3, kH, kW) channel by channel: in each band one column per
    kernel and one row per channel, R, G, B, all on one signed scale (red positive, blue negative)."""
    kernels = np.asarray(kernels[:limit], dtype=np.float64)
    count, channels, height, width = kernels.shape
    columns = min(count, KERNELS_PER_BAND)
    bands = math.ceil(count / columns)
    tiled = channels_mosaic(kernels)
    figure, axes = new_figure(size=(0.5 * columns + 1.8, 0.5 * channels * bands + 1.0))
    limit_value = float(np.abs(kernels).max()) or 1.0
    colours = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    image = axes.imshow(tiled, cmap=colours, vmin=-limit_value, vmax=limit_value, interpolation="nearest")
    band_height = channels * (height + 1) + 1
    axes.set_yticks([band * band_height + channel * (height + 1) + (height - 1) / 2
                     for band in range(bands) for channel in range(channels)],
                    [_channel_label(band * columns, min(count, (band + 1) * columns) - 1, channel)
                     for band in range(bands) for channel in range(channels)])
    axes.set_xticks([column * (width + 1) + (width - 1) / 2 for column in range(columns)],
                    [str(column) for column in range(columns)], fontsize=6)
    axes.tick_params(length=0)
    axes.set_frame_on(False)
    figure.colorbar(image, ax=axes, fraction=0.025, pad=0.01)
    axes.set_title(title, fontsize=10, wrap=True)
    return figure
