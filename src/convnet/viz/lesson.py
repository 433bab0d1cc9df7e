"""The lesson's pictures, drawn from a `Story`: (a) the kernel sliding, (b) feature maps,
(c) max pooling, (d) learned kernels, deeper maps and class probabilities; and a GIF of the
kernel sliding while the feature map fills in."""

import io
import math
import textwrap

import numpy as np
from matplotlib.patches import ConnectionPatch, Rectangle
from PIL import Image

from ..language import class_names, words
from .colour import MAP_PIXELS, kernel_patches, shrink
from .figures import fonts_for, new_figure, plt
from .story import top_classes

COLOURS = ("#e41a1c", "#377eb8", "#4daf4a")
IMAGE_MAP, SIGNED_MAP = "gray", "RdBu_r"
TOP_CLASSES = 10  # classes in the answer's picture, of more (ImageNet's 1000)


def _shown_image(image):
    """(C, H, W) -> what imshow takes: (H, W) for one channel, (H, W, 3) scaled to [0, 1] for RGB."""
    if image.shape[0] == 1:
        return image[0]
    rgb = image.transpose(1, 2, 0)
    return (rgb - rgb.min()) / max(float(np.ptp(rgb)), 1e-12)


def _symmetric(values):
    limit = float(np.abs(values).max()) or 1.0
    return -limit, limit


def _plain(axes):
    axes.set_xticks([])
    axes.set_yticks([])


def _zoom(axes, rows, cols, colour="#555555", full_axes=None):
    """Limit ``axes`` to rows/cols (inclusive pixel ranges); outline that region on ``full_axes``."""
    axes.set_xlim(cols[0] - 0.5, cols[1] + 0.5)
    axes.set_ylim(rows[1] + 0.5, rows[0] - 0.5)
    if full_axes is not None:
        full_axes.set_autoscale_on(False)  # an outline past the edge is clipped, not a reason to widen the view
        full_axes.add_patch(Rectangle((cols[0] - 0.5, rows[0] - 0.5), cols[1] - cols[0] + 1, rows[1] - rows[0] + 1,
                                      fill=False, lw=1, ls="--", ec=colour))


def convolution_figure(story, language="en"):
    """(a) The input with the kernel's window at successive positions, the kernel as a heat
    map, and the feature map with the output each position produced; the bottom row zooms in."""
    text = words(language)
    step = story.convolution
    figure = plt.figure(figsize=(13, 9), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[4, 1.4, 4], height_ratios=[1, 1])
    image_axes, kernel_axes, map_axes = (figure.add_subplot(grid[0, i]) for i in range(3))
    zoom_image, legend_axes, zoom_map = (figure.add_subplot(grid[1, i]) for i in range(3))
    shown = _shown_image(story.image)
    for axes in (image_axes, zoom_image):
        axes.imshow(shown, cmap=IMAGE_MAP)
    image_axes.set_title(text["convolution.input"].format(height=story.image.shape[1], width=story.image.shape[2]))
    if story.kernels.shape[1] == 3:  # a colour input's kernel: its three channels as one colour patch
        kernel_axes.imshow(kernel_patches(story.kernels[step.map_index:step.map_index + 1])[0])
        kernel_axes.set_title(text["lesson.colour_kernel"].format(
            index=step.map_index, height=step.kernel.shape[0], width=step.kernel.shape[1]), fontsize=9)
    else:
        low, high = _symmetric(step.kernel)
        kernel_image = kernel_axes.imshow(step.kernel, cmap=SIGNED_MAP, vmin=low, vmax=high)
        kernel_axes.set_title(text["convolution.kernel"].format(index=step.map_index, height=step.kernel.shape[0],
                                                                width=step.kernel.shape[1]))
        figure.colorbar(kernel_image, ax=kernel_axes, orientation="horizontal", fraction=0.08, pad=0.04)
    vmin, vmax = float(step.feature_map.min()), float(step.feature_map.max())
    for axes in (map_axes, zoom_map):
        map_image = axes.imshow(step.feature_map, cmap="viridis", vmin=vmin, vmax=vmax)
    map_axes.set_title(text["convolution.map"].format(index=step.map_index, layer=step.layer,
                                                      height=step.feature_map.shape[0], width=step.feature_map.shape[1]))
    figure.colorbar(map_image, ax=[map_axes, zoom_map], fraction=0.04, pad=0.02)
    tops = [w[0] for w in step.windows]
    lefts = [w[1] for w in step.windows]
    window_h, window_w = step.windows[0][2:]
    _zoom(zoom_image, (min(tops) - window_h, max(tops) + 2 * window_h - 1),
          (min(lefts) - window_w, max(lefts) + 2 * window_w - 1), full_axes=image_axes)
    rows = [p[0] for p in step.positions]
    cols = [p[1] for p in step.positions]
    margin = max(3, window_w)
    _zoom(zoom_map, (min(rows) - margin, max(rows) + margin), (min(cols) - margin, max(cols) + margin),
          full_axes=map_axes)
    zoom_image.set_title(text["convolution.zoomed_windows"])
    zoom_map.set_title(text["convolution.zoomed_outputs"])
    lines = []
    for colour, (top, left, height, width), (row, col), value in zip(COLOURS, step.windows, step.positions,
                                                                     step.values):
        for axes in (image_axes, zoom_image):
            axes.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, lw=2, ec=colour))
        for axes in (map_axes, zoom_map):
            axes.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, lw=2, ec=colour))
        zoom_map.annotate(f"{value:.2f}", (col, row), xytext=(0, 16), textcoords="offset points", ha="center",
                          color=colour, fontsize=10, fontweight="bold", arrowprops={"arrowstyle": "-", "color": colour},
                          bbox={"boxstyle": "round", "fc": "white", "ec": colour, "alpha": 0.9})
        bend = 0.35 * (len(lines) - 1)
        figure.add_artist(ConnectionPatch(xyA=(left + width / 2 - 0.5, top + height - 0.5), coordsA="data",
                                          axesA=zoom_image, xyB=(col, row + 0.5), coordsB="data", axesB=zoom_map,
                                          color=colour, lw=1.5, alpha=0.9, arrowstyle="->",
                                          connectionstyle=f"arc3,rad={bend}"))
        lines.append((colour, text["convolution.window"].format(top=top, left=left, row=row, col=col, value=value)))
    legend_axes.axis("off")
    for k, (colour, line) in enumerate(lines):
        legend_axes.text(0.5, 0.97 - 0.12 * k, line, color=colour, ha="center", va="center", fontsize=9,
                         transform=legend_axes.transAxes)
    for axes in (image_axes, kernel_axes, map_axes, zoom_image, zoom_map):
        _plain(axes)
    figure.suptitle(text["convolution.title"], fontsize=11)
    return figure


def mosaic(maps, columns, gap=1):
    """(K, h, w) maps tiled row by row into one (rows*(h+gap)-gap, columns*(w+gap)-gap) array,
    NaN between and after the tiles (drawn as background)."""
    count, height, width = maps.shape
    rows = math.ceil(count / columns)
    tiled = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, dtype=np.float64)
    for index, tile in enumerate(maps):
        row, column = divmod(index, columns)
        tiled[row * (height + gap):row * (height + gap) + height,
              column * (width + gap):column * (width + gap) + width] = tile
    return tiled


def maps_grid_figure(maps, title, signed=False, limit=100, each_scaled=False, language="en", order=None):
    """(b) Feature maps (or kernels) as a numbered grid, all on one colour scale with one colour bar;
    with ``each_scaled``, each map from its own minimum (0) to its own maximum (1), so that a weak
    map shows its pattern too (one scale shows instead which maps respond most). ``order``: the
    channels in the order to draw them (`story.strongest_first`), each numbered with its channel;
    the first ``limit`` are drawn, in a grid of ceil(sqrt(count)) columns (64 maps: 8x8).

    Drawn as one mosaic image rather than one axes per map: the same picture, 20x faster. Maps
    over `colour.MAP_PIXELS` a side are averaged down to it (`colour.shrink`): each tile is drawn
    about 130 pixels wide, so more pixels would only alias, and the mosaic's memory stays bounded.
    """
    channels = np.arange(len(maps))[:limit] if order is None else np.asarray(order)[:limit]
    maps = shrink(np.asarray(maps[channels], dtype=np.float64), MAP_PIXELS)
    if each_scaled:
        low = maps.min(axis=(1, 2), keepdims=True)
        maps = (maps - low) / np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    count, height, width = maps.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    gap = max(1, height // 12)
    tile_inches = 1.15 if height > 8 else 0.7
    figure, axes = new_figure(size=(tile_inches * columns + 1.3, tile_inches * rows + 0.7))
    low, high = _symmetric(maps) if signed else (float(maps.min()), float(maps.max()))
    colours = plt.get_cmap(SIGNED_MAP if signed else "viridis").with_extremes(bad="white")
    image = axes.imshow(mosaic(maps, columns, gap), cmap=colours, vmin=low, vmax=high, interpolation="nearest")
    for index in range(count):
        row, column = divmod(index, columns)
        axes.text(column * (width + gap), row * (height + gap), str(channels[index]), fontsize=6, va="top", ha="left",
                  color="white", bbox={"boxstyle": "square,pad=0.1", "fc": "black", "alpha": 0.5, "lw": 0})
    _plain(axes)
    axes.set_frame_on(False)
    bar = figure.colorbar(image, ax=axes, fraction=0.025, pad=0.01)
    if each_scaled:
        bar.set_label(words(language)["maps.each_scaled"])
    # a long title on a small grid: broken into lines of the figure's width (11 pt letters are ~6 pt wide)
    axes.set_title(textwrap.fill(title, max(40, int(figure.get_figwidth() * 72 / 6.2))), fontsize=11)
    return figure


def pooling_figure(story, language="en"):
    """(c) One max-pooling neighbourhood on the feature map, its values, and the maximum it keeps;
    the bottom row zooms in on it."""
    text = words(language)
    step = story.pooling
    figure = plt.figure(figsize=(13, 9), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[4, 1.6, 4])
    map_axes, values_axes, pooled_axes = (figure.add_subplot(grid[0, i]) for i in range(3))
    zoom_map, note_axes, zoom_pooled = (figure.add_subplot(grid[1, i]) for i in range(3))
    low, high = float(step.feature_map.min()), float(step.feature_map.max())
    top, left, height, width = step.window
    row, col = step.output_position
    for axes in (map_axes, zoom_map):
        axes.imshow(step.feature_map, cmap="viridis", vmin=low, vmax=high)
        axes.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, lw=2.5, ec=COLOURS[0]))
        axes.plot(step.winner[1], step.winner[0], marker="*", ms=12, color="white", mec="black")
    for axes in (pooled_axes, zoom_pooled):
        image = axes.imshow(step.pooled, cmap="viridis", vmin=low, vmax=high)
        axes.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, lw=2.5, ec=COLOURS[0]))
    figure.colorbar(image, ax=[pooled_axes, zoom_pooled], fraction=0.04, pad=0.02)
    map_axes.set_title(text["pooling.map"].format(index=story.convolution.map_index, height=step.feature_map.shape[0],
                                                  width=step.feature_map.shape[1]))
    pooled_axes.set_title(text["pooling.pooled"].format(layer=step.layer, height=step.pooled.shape[0],
                                                        width=step.pooled.shape[1]))
    margin = 3
    _zoom(zoom_map, (top - margin * height, top + (margin + 1) * height - 1),
          (left - margin * width, left + (margin + 1) * width - 1), full_axes=map_axes)
    _zoom(zoom_pooled, (row - margin, row + margin), (col - margin, col + margin), full_axes=pooled_axes)
    zoom_map.set_title(text["pooling.zoomed_map"].format(height=height, width=width))
    zoom_pooled.set_title(text["pooling.zoomed_pooled"].format(row=row, col=col))
    figure.add_artist(ConnectionPatch(xyA=(step.winner[1], step.winner[0]), coordsA="data", axesA=zoom_map,
                                      xyB=(col, row), coordsB="data", axesB=zoom_pooled, color=COLOURS[0],
                                      lw=1.5, arrowstyle="->"))
    values_axes.set_xlim(-0.5, width - 0.5)
    values_axes.set_ylim(height - 0.5, -0.5)
    values_axes.set_aspect("equal")
    for r in range(max(top, 0), min(top + height, step.feature_map.shape[0])):
        for c in range(max(left, 0), min(left + width, step.feature_map.shape[1])):
            winner = (r, c) == step.winner
            values_axes.text(c - left, r - top, f"{step.feature_map[r, c]:.3f}", ha="center", va="center",
                             fontsize=11 if height * width <= 16 else 7, fontweight="bold" if winner else "normal",
                             color=COLOURS[0] if winner else "black")
    values_axes.set_title(text["pooling.values"])
    for spine in values_axes.spines.values():
        spine.set_edgecolor(COLOURS[0])
    note_axes.axis("off")
    note_axes.text(0.5, 0.85, text["pooling.maximum"].format(value=step.maximum, row=row, col=col), ha="center",
                   va="center",
                   color=COLOURS[0], fontsize=11, transform=note_axes.transAxes)
    for axes in (map_axes, values_axes, pooled_axes, zoom_map, zoom_pooled):
        _plain(axes)
    figure.suptitle(text["pooling.title"], fontsize=11)
    return figure


def kernels_figure(kernels, title):
    """(d) Every kernel (input channel 0) on one signed colour scale: red positive, blue negative."""
    return maps_grid_figure(kernels[:, 0], title, signed=True)


def probabilities_figure(probabilities, classes, language="en", mirrored=False, top=TOP_CLASSES):
    """(d) The network's answer: the probability of each class, the most likely highlighted; of
    more than ``top`` classes (ImageNet's 1000), the ``top`` most likely, most likely first, the
    title says so. ``mirrored``: averaged with the mirror image's answer, the title says."""
    text = words(language)
    count = len(probabilities)
    classes = class_names(classes, language) or tuple(text["ranked.class"].format(index=i) for i in range(count))
    if count > top:
        order = top_classes(probabilities, top)[::-1]  # barh draws upwards: the most likely on top
        title = text["ranked.top_mirrored" if mirrored else "ranked.top"].format(shown=top, count=count)
    else:
        order = np.arange(count)[::-1]
        title = text["probabilities.mirrored" if mirrored else "probabilities.title"]
    families = fonts_for("".join(classes[i] for i in order), language)  # names in any script: a font with them
    with plt.rc_context({"font.family": families} if families else {}):
        return _probabilities_figure(probabilities, [classes[i] for i in order], order, text, title)


def _probabilities_figure(probabilities, names, order, text, title):
    figure, axes = new_figure(size=(7, 0.35 * len(order) + 1.2))
    colours = ["#d62728" if i == int(np.argmax(probabilities)) else "#7f7f7f" for i in order]
    axes.barh(np.arange(len(order)), probabilities[order], color=colours, tick_label=names)
    for y, i in enumerate(order):
        axes.text(probabilities[i] + 0.01, y, f"{probabilities[i]:.3f}", va="center", fontsize=9)
    axes.set(xlim=(0, 1.12), xlabel=text["probabilities.axis"], title=title)
    return figure


GIF_TITLE_SIZE = 17  # points: about 14 pixels at the GIF's 60 dpi, readable at its 420 pixels' width
GIF_DPI = 60


def sliding_gif(story, frames=40, seconds_per_frame=0.12, language="en"):
    """GIF bytes: the kernel's window moves over the input while the feature map fills in.

    Positions are subsampled (at most ``frames``) so the file stays small on large images.
    """
    step = story.convolution
    feature_map = step.feature_map
    height, width = feature_map.shape
    positions = height * width
    shown = np.unique(np.linspace(0, positions - 1, min(frames, positions)).round().astype(int))
    window_h, window_w = step.windows[0][2:]
    images = []
    figure, (image_axes, map_axes) = new_figure(1, 2, size=(7, 3.4))
    image_axes.imshow(_shown_image(story.image), cmap=IMAGE_MAP)
    box = image_axes.add_patch(Rectangle((0, 0), window_w, window_h, fill=False, lw=2, ec=COLOURS[0]))
    filling = np.full(feature_map.shape, np.nan)
    drawn = map_axes.imshow(filling, cmap="viridis", vmin=float(feature_map.min()), vmax=float(feature_map.max()))
    cell = map_axes.add_patch(Rectangle((0, 0), 1, 1, fill=False, lw=1.5, ec=COLOURS[0]))
    for axes in (image_axes, map_axes):
        _plain(axes)
    text = words(language)
    image_axes.set_title(text["gif.window"], fontsize=GIF_TITLE_SIZE)
    widest = max((feature_map.min(), feature_map.max()), key=lambda value: len(f"{value:.2f}"))
    map_axes.set_title(text["gif.map"].format(row=height - 1, col=width - 1, value=widest),  # laid out once: the
                       fontsize=GIF_TITLE_SIZE)                                            # longest title fits
    # Blitting: the still parts are drawn (and laid out) once; each frame redraws only what moves,
    # on the canvas at GIF_DPI, five times faster than saving each frame as a PNG.
    figure.set_dpi(GIF_DPI)
    moving = (drawn, box, cell, map_axes.title)
    for artist in moving:
        artist.set_animated(True)
    canvas = figure.canvas
    canvas.draw()
    title = map_axes.title  # centred over the map: wider than twice the room to the right, it would be cut
    room = 2 * (figure.bbox.x1 - (map_axes.bbox.x0 + map_axes.bbox.x1) / 2) - 4
    if title.get_window_extent().width > room:
        title.set_fontsize(GIF_TITLE_SIZE * room / title.get_window_extent().width)
        canvas.draw()
    still = canvas.copy_from_bbox(figure.bbox)
    for index in shown:
        row, col = divmod(int(index), width)
        filling.flat[:index + 1] = feature_map.flat[:index + 1]
        drawn.set_data(filling)
        top, left = step.window(row, col)[:2]
        box.set_xy((left - 0.5, top - 0.5))
        cell.set_xy((col - 0.5, row - 0.5))
        map_axes.title.set_text(text["gif.map"].format(row=row, col=col, value=feature_map[row, col]))
        canvas.restore_region(still)
        for artist in moving:
            figure.draw_artist(artist)
        frame = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
        images.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE))  # 10x faster than median cut
    plt.close(figure)
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=int(seconds_per_frame * 1000), optimize=True)
    return out.getvalue()
