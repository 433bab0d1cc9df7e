"""``convnet show``: write every picture of a story, the GIF and the HTML page to a folder."""

from pathlib import Path

from ..files import atomic_write
from ..nn import summary
from . import lesson
from .figures import png_bytes
from .page import page
from .story import tell


def show(model, image, out_dir, title, classes=(), layer=0, curves_png=None, notes=()):
    """Tell ``image`` (C, H, W)'s way through ``model`` and `render` it, with the model's summary;
    return the paths written."""
    story = tell(model, image, layer=layer, classes=classes)
    return render(story, out_dir, title, summary=summary(model, (1,) + image.shape), curves_png=curves_png,
                  notes=notes)


def render(story, out_dir, title, summary=None, curves_png=None, notes=()):
    """Write the pictures of ``story`` and ``index.html`` to ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    step = story.convolution
    count, (height, width) = len(story.feature_maps), story.feature_maps.shape[1:]
    sections = [("(a) Convolution: a kernel slides over the image",
                 f"A {step.kernel.shape[0]}x{step.kernel.shape[1]} kernel (kernel {step.map_index} of {count}) is "
                 f"laid on the image at every position; at each it multiplies the pixels under it by its weights "
                 f"and sums them, giving one output tied to that place. Three positions are drawn, each in its own "
                 f"colour, with the value it produced and where it lands in the feature map.",
                 [("convolution.png", png_bytes(lesson.convolution_figure(story)), "image/png"),
                  ("sliding.gif", lesson.sliding_gif(story), "image/gif")]),
                ("(b) Feature maps: one per kernel",
                 f"Each of the {count} kernels gives its own {height}x{width} feature map: bright where the image "
                 f"looks like that kernel. The first grid draws each map from its own minimum to its own maximum, "
                 f"so every map shows its pattern; the second puts all on one colour scale, which shows which "
                 f"kernels respond most.",
                 [("feature_maps.png", png_bytes(lesson.maps_grid_figure(
                     story.feature_maps, f"All {count} feature maps of layer '{step.layer}' (each on its own scale)",
                     each_scaled=True)), "image/png"),
                  ("feature_maps_shared.png", png_bytes(lesson.maps_grid_figure(
                      story.feature_maps, f"All {count} feature maps of layer '{step.layer}' (one colour scale)")),
                   "image/png")])]
    if story.pooling is not None:
        sections.append(("(c) Max pooling: keep the largest value of each neighbourhood",
                         "Each value is compared with its neighbours and only the maximum is kept, so the map "
                         "shrinks while the strongest responses survive.",
                         [("pooling.png", png_bytes(lesson.pooling_figure(story)), "image/png"),
                          ("pooled_maps.png", png_bytes(lesson.maps_grid_figure(
                              story.pooled_maps, f"All {len(story.pooled_maps)} pooled maps of layer '{story.pooling.layer}'")),
                           "image/png")]))
    kernels = [("kernels.png", png_bytes(lesson.kernels_figure(story.kernels, f"The {count} kernels of layer "
                                                                               f"'{step.layer}' (input channel 0)")),
                "image/png")]
    kernels += [(f"deeper_{name.replace('.', '_')}.png",
                 png_bytes(lesson.maps_grid_figure(maps, f"Feature maps of the deeper layer '{name}'")), "image/png")
                for name, maps in story.deeper]
    if story.probabilities is not None:
        kernels.append(("probabilities.png", png_bytes(lesson.probabilities_figure(story.probabilities,
                                                                                   story.classes)), "image/png"))
    sections.append(("(d) Kernels, deeper layers and the answer",
                     "The kernels themselves (red positive weights, blue negative), the maps of the deeper "
                     "convolution layers, which combine the first layer's maps, and the class probabilities "
                     "that the stacked layers, trained by backpropagation, compute from the image.", kernels))
    if curves_png is not None:
        sections.append(("Training", "Loss and accuracy per epoch of this run.", [("curves.png", curves_png,
                                                                                  "image/png")]))
    written = []
    for _, _, images in sections:
        for name, data, _ in images:
            if name != "curves.png":
                atomic_write(out_dir / name, data)
                written.append(out_dir / name)
    atomic_write(out_dir / "index.html", page(title, sections, summary, notes))
    written.append(out_dir / "index.html")
    return written
