"""``convnet show``: write every picture of a story, the GIF and the HTML page to a folder."""

from pathlib import Path

from ..files import atomic_write
from ..language import words
from ..nn import record_outputs, summary
from ..run_folder import CURVES
from . import lesson
from .colour import colour_kernels_figure, kernel_channels_figure
from .figures import language_font, png_bytes
from .page import page
from .story import strongest_first, tell

CHANNEL_KERNELS = 32  # kernels drawn channel by channel: two bands of R, G and B rows
DEEPER_MAPS = 32      # maps drawn of each deeper stage (of up to 2048), the strongest


def show(model, image, out_dir, title, classes=(), layer=0, curves_png=None, notes=(), language="en", mirror=False):
    """Tell ``image`` (C, H, W)'s way through ``model`` and `render` it, with the model's summary;
    return the paths written. ``mirror``: the class probabilities average the image's answer and
    its mirror image's (test-time mirroring, `nn.logits`)."""
    recorded = record_outputs(model, image[None], containers=True)  # one pass for the story and the summary
    story = tell(model, image, layer=layer, classes=classes, mirror=mirror, recorded=recorded)
    return render(story, out_dir, title, summary=summary(model, (1,) + image.shape, records=recorded[0]),
                  curves_png=curves_png, notes=notes, language=language)


def render(story, out_dir, title, summary=None, curves_png=None, notes=(), language="en"):
    """Write the pictures of ``story`` and ``index.html`` to ``out_dir``, in ``language``
    (`convnet.language`); return the paths written."""
    with language_font(language):
        sections = _sections(story, curves_png, words(language), language)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for _, _, images in sections:
        for name, data, _ in images:
            if name != CURVES:  # the run folder's own picture, shown on the page, not copied
                atomic_write(out_dir / name, data)
                written.append(out_dir / name)
    atomic_write(out_dir / "index.html", page(title, sections, summary, notes, language))
    written.append(out_dir / "index.html")
    return written


def _sections(story, curves_png, text, language):
    """[(heading, text, [(file name, bytes, mime type)])]: the page's sections and their pictures.
    Every grid draws its maps strongest first (`strongest_first`), numbered by channel."""
    step = story.convolution
    count, (height, width) = len(story.feature_maps), story.feature_maps.shape[1:]
    order = strongest_first(story.feature_maps)
    sections = [(text["show.convolution"],
                 text["show.convolution_text"].format(height=step.kernel.shape[0], width=step.kernel.shape[1],
                                                      index=step.map_index, count=count),
                 [("convolution.png", png_bytes(lesson.convolution_figure(story, language)), "image/png"),
                  ("sliding.gif", lesson.sliding_gif(story, language=language), "image/gif")]),
                (text["show.maps"], text["show.maps_text"].format(count=count, height=height, width=width) + " "
                 + text["ranked.order"],
                 [("feature_maps.png", png_bytes(lesson.maps_grid_figure(
                     story.feature_maps, text["ranked.maps_each"].format(count=count, layer=step.layer),
                     each_scaled=True, language=language, order=order)), "image/png"),
                  ("feature_maps_shared.png", png_bytes(lesson.maps_grid_figure(
                      story.feature_maps, text["ranked.maps_shared"].format(count=count, layer=step.layer),
                      order=order)), "image/png")])]
    if story.pooling is not None:
        pooled = story.pooled_maps
        pooled_title = text["ranked.pooled_maps"].format(count=len(pooled), layer=story.pooling.layer,
                                                         height=pooled.shape[1], width=pooled.shape[2])
        sections.append((text["show.pooling"], text["show.pooling_text"],
                         [("pooling.png", png_bytes(lesson.pooling_figure(story, language)), "image/png"),
                          ("pooled_maps.png", png_bytes(lesson.maps_grid_figure(
                              pooled, pooled_title, order=strongest_first(pooled))), "image/png")]))
    else:
        sections.append((text["ranked.no_pooling"], text["ranked.no_pooling_text"].format(layer=step.layer), []))
    pictures = _kernel_pictures(story.kernels, step.layer, text)
    for name, maps in story.deeper:
        title = text["ranked.deeper"].format(shown=min(len(maps), DEEPER_MAPS), count=len(maps), layer=name,
                                             height=maps.shape[1], width=maps.shape[2])
        pictures.append((f"deeper_{name.replace('.', '_')}.png", png_bytes(lesson.maps_grid_figure(
            maps, title, limit=DEEPER_MAPS, order=strongest_first(maps))), "image/png"))
    if story.probabilities is not None:
        pictures.append(("probabilities.png", png_bytes(lesson.probabilities_figure(
            story.probabilities, story.classes, language, story.mirrored)), "image/png"))
    sections.append((text["show.answer"], text["show.answer_text"], pictures))
    if curves_png is not None:
        sections.append((text["show.training"], text["show.training_text"], [(CURVES, curves_png, "image/png")]))
    return sections


def _kernel_pictures(kernels, layer, text):
    """[(file name, bytes, mime type)]: kernels (K, C, kH, kW) on input channel 0, or, for a colour
    input's (C = 3), as colour patches and channel by channel."""
    count = len(kernels)
    if kernels.shape[1] != 3:
        return [("kernels.png", png_bytes(lesson.kernels_figure(
            kernels, text["show.kernels"].format(count=count, layer=layer))), "image/png")]
    return [("kernels.png", png_bytes(colour_kernels_figure(
                kernels, text["show.colour_kernels"].format(count=count, layer=layer))), "image/png"),
            ("kernels_channels.png", png_bytes(kernel_channels_figure(
                kernels, text["show.kernel_channels"].format(count=min(count, CHANNEL_KERNELS), layer=layer),
                limit=CHANNEL_KERNELS)), "image/png")]
