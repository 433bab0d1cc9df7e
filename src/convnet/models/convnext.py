"""ConvNeXt-Tiny (Liu, Mao, Wu, Feichtenhofer, Darrell & Xie, 2022, "A ConvNet for the 2020s") as
torchvision builds it, with its keys: ``features.0.0.weight`` (the 4x4 patchify stem),
``features.1.0.layer_scale``, ``features.1.0.block.0.weight`` (a 7x7 depthwise convolution),
``features.1.0.block.2.weight`` (its LayerNorm), ``features.2.0.weight`` (a downsampling
LayerNorm), ..., ``classifier.2.weight``.

A block filters each channel with a 7x7 kernel, normalises each pixel's channels (LayerNorm),
and runs the same two-layer perceptron (C -> 4C, GELU, -> C) at every pixel, channels last; the
result, scaled per channel by a learned ``layer_scale`` (1e-6 at first), is added to the input.
"""

from collections import OrderedDict

import numpy as np

from .. import nn
from .blocks import ConvNormActivation, checked_data, initialise

SMALLEST_SIDE = 32  # the 4x4 stem and three 2x2 downsamplings: 32 px leaves 1
TINY = [(96, 3), (192, 3), (384, 9), (768, 3)]  # torchvision's convnext_tiny: (width, blocks) per stage
LAYER_NORM_EPS = 1e-6


def _layer_norm_2d(channels):
    return nn.LayerNorm2d(channels, eps=LAYER_NORM_EPS)


class CNBlock(nn.Module):
    """torchvision's ``CNBlock``: x + stochastic_depth(layer_scale * block(x)), block = depthwise
    7x7 (padding 3, bias), permute to (N, H, W, C), LayerNorm(C), Linear(C -> 4C), GELU,
    Linear(4C -> C), permute back. layer_scale: (C, 1, 1).

    Shapes: (N, C, H, W) -> the same.
    """

    def __init__(self, channels, layer_scale, stochastic_depth_prob):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 7, padding=3, groups=channels), nn.Permute([0, 2, 3, 1]),
            nn.LayerNorm(channels, eps=LAYER_NORM_EPS), nn.Linear(channels, 4 * channels), nn.GELU(),
            nn.Linear(4 * channels, channels), nn.Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(np.full((channels, 1, 1), layer_scale, dtype=np.float32))
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, x):
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


class ConvNeXt(nn.Module):
    """torchvision's ``ConvNeXt``: ``features`` (4x4 stride-4 stem with LayerNorm2d, then per stage
    a Sequential of CNBlocks and, between stages, LayerNorm2d and a 2x2 stride-2 convolution),
    ``avgpool``, ``classifier`` (LayerNorm2d, Flatten, Linear). Block i of n drops its branch with
    probability stochastic_depth_prob * i / (n - 1) while training.
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, stages, in_channels, classes, stochastic_depth_prob=0.1, layer_scale=1e-6):
        super().__init__()
        layers = [ConvNormActivation(in_channels, stages[0][0], 4, stride=4, padding=0, norm_layer=_layer_norm_2d,
                                     activation_layer=None, bias=True)]
        total, index = sum(blocks for _, blocks in stages), 0
        for stage, (width, blocks) in enumerate(stages):
            layers.append(nn.Sequential(*(CNBlock(width, layer_scale, stochastic_depth_prob * (index + block) /
                                                  (total - 1.0)) for block in range(blocks))))
            index += blocks
            if stage + 1 < len(stages):
                layers.append(nn.Sequential(_layer_norm_2d(width), nn.Conv2d(width, stages[stage + 1][0], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = stages[-1][0]
        self.classifier = nn.Sequential(_layer_norm_2d(last), nn.Flatten(1), nn.Linear(last, classes))

        def draw(layer):  # torchvision's trunc_normal_(std=0.02) cuts at +-2, 100 standard deviations: never
            nn.init.normal_(layer.weight, 0.0, 0.02)
            nn.init.zeros_(layer.bias)
        initialise(self, conv=draw, linear=draw)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny(in_channels=1, classes=10, image_size=28):
    """ConvNeXt-Tiny, 28.6 million parameters for 1000 classes. Its 4x4 stem and three halvings
    leave nothing of IDX's 28x28 images (the zoo's default ``image_size``), so the defaults are
    refused, naming the 32x32 it takes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("convnext_tiny", in_channels, classes, image_size, SMALLEST_SIDE)
    return ConvNeXt(TINY, in_channels, classes)


BUILDERS = OrderedDict(convnext_tiny=convnext_tiny)
