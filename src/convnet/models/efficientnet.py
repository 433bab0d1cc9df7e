"""EfficientNet-B0 (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks") as torchvision builds it, with its keys: ``features.0.0.weight`` (the stem),
``features.1.0.block.0.0.weight`` (stage 1, block 0, its depthwise convolution),
``features.2.0.block.2.fc1.weight`` (a squeeze-and-excitation), ..., ``classifier.1.weight``.

Mobile inverted bottlenecks (MBConv) with SiLU and squeeze-and-excitation, in seven stages; a
block whose input and output agree adds its input back, and while training drops its residual
branch for whole images with a probability that grows with depth to 0.2 (stochastic depth).
"""

import math
from collections import OrderedDict

from .. import nn
from .blocks import (ConvNormActivation, SqueezeExcitation, checked_data, initialise, kaiming_normal_fan_out,
                     make_divisible)

SMALLEST_SIDE = 1  # every stride pads
B0_SETTING = [  # torchvision's: expansion, kernel, first stride, in, out, blocks
    (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class MBConv(nn.Module):
    """torchvision's ``MBConv``, keys under ``block``: [1x1 to in_channels * expand_ratio (rounded
    to a multiple of 8), BN, SiLU] (left out for expand_ratio 1), depthwise ``kernel`` with
    ``stride``, BN, SiLU, squeeze-and-excitation (to in_channels / 4, SiLU), 1x1 to out_channels,
    BN; where stride is 1 and the widths agree, x + stochastic_depth(block(x)).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H - 1) // stride + 1.
    """

    def __init__(self, expand_ratio, kernel, stride, in_channels, out_channels, stochastic_depth_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers = []
        if expanded != in_channels:
            layers.append(ConvNormActivation(in_channels, expanded, 1, activation_layer=nn.SiLU))
        layers += [ConvNormActivation(expanded, expanded, kernel, stride=stride, groups=expanded,
                                      activation_layer=nn.SiLU),
                   SqueezeExcitation(expanded, max(1, in_channels // 4), activation=nn.SiLU),
                   ConvNormActivation(expanded, out_channels, 1, activation_layer=None)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, x):
        result = self.block(x)
        return x + self.stochastic_depth(result) if self.use_res_connect else result


class EfficientNet(nn.Module):
    """torchvision's ``EfficientNet`` for B0 (width and depth 1.0): ``features`` (3x3 stride-2
    stem to 32 with SiLU, one Sequential of MBConvs per stage, 1x1 to 1280 with SiLU),
    ``avgpool``, ``classifier`` (Dropout(0.2), Linear). Block i of n drops its branch with
    probability 0.2 * i / n while training. Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, setting, in_channels, classes, dropout=0.2, stochastic_depth_prob=0.2):
        super().__init__()
        layers = [ConvNormActivation(in_channels, setting[0][3], 3, stride=2, activation_layer=nn.SiLU)]
        total, index = sum(stage[-1] for stage in setting), 0
        for expand_ratio, kernel, stride, stage_in, stage_out, blocks in setting:
            stage = []
            for block in range(blocks):
                stage.append(MBConv(expand_ratio, kernel, stride if block == 0 else 1,
                                    stage_in if block == 0 else stage_out, stage_out,
                                    stochastic_depth_prob * index / total))
                index += 1
            layers.append(nn.Sequential(*stage))
        last = 4 * setting[-1][4]
        layers.append(ConvNormActivation(setting[-1][4], last, 1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes))

        def uniform_by_outputs(layer):  # torchvision: U(+-1/sqrt(out_features)), bias 0
            bound = 1.0 / math.sqrt(layer.out_features)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)
        initialise(self, conv=kaiming_normal_fan_out, linear=uniform_by_outputs)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def efficientnet_b0(in_channels=1, classes=10, image_size=28):
    """EfficientNet-B0, 5.3 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("efficientnet_b0", in_channels, classes, image_size, SMALLEST_SIDE)
    return EfficientNet(B0_SETTING, in_channels, classes)


BUILDERS = OrderedDict(efficientnet_b0=efficientnet_b0)
