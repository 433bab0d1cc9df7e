"""Pictures of what happens inside a CNN and of its training (matplotlib Agg, no screen needed).

``show(model, image, dir, title)`` does all of ``convnet show``; its two halves are these:
``story = tell(model, image)`` records one image's way through the model; ``render(story, dir,
title)`` draws (a) the kernel sliding, (b) feature maps, (c) max pooling, (d) kernels, deeper
maps and class probabilities, a GIF, and a self-contained HTML page. Every grid draws its maps
strongest first (`strongest_first`); of many classes the answer shows the most likely
(`top_classes`). A colour network's first kernels are drawn as colour patches and channel by
channel (`colour_kernels_figure`, `kernel_channels_figure`).
"""

from .colour import colour_kernels_figure, kernel_channels_figure
from .lesson import (convolution_figure, kernels_figure, maps_grid_figure, pooling_figure, probabilities_figure,
                     sliding_gif)
from .show import render, show
from .story import Story, strongest_first, tell, top_classes
from .training import confusion_figure, curves_figure, save_confusion, save_curves

__all__ = ["show", "tell", "Story", "render", "strongest_first", "top_classes", "convolution_figure", "maps_grid_figure", "pooling_figure", "kernels_figure",
           "colour_kernels_figure", "kernel_channels_figure", "probabilities_figure", "sliding_gif", "curves_figure",
           "confusion_figure", "save_curves", "save_confusion"]
