"""RegNetY-400MF (Radosavovic, Kosaraju, Girshick, He & Dollar, 2020, "Designing Network Design
Spaces") as torchvision builds it, with its keys: ``stem.0.weight``,
``trunk_output.block1.block1-0.proj.0.weight``, ``trunk_output.block1.block1-0.f.a.0.weight``,
``...f.se.fc1.weight``, ..., ``fc.weight``.

Each block is a ResNeXt-style bottleneck: 1x1, a grouped 3x3 (groups of 8 channels; stride 2 in
a stage's first block), squeeze-and-excitation, 1x1 without activation, added to the input (or
to its 1x1 projection) and rectified.
"""

from collections import OrderedDict

from .. import nn
from .blocks import (ConvNormActivation, SqueezeExcitation, checked_data, initialise, kaiming_normal_fan_out,
                     normal_zero_bias)

SMALLEST_SIDE = 1  # every stride pads
STEM_WIDTH = 32
# What torchvision's BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09,
# group_width=8, se_ratio=0.25) gives: each stage's (width, blocks), every stage's first block with stride 2.
REGNET_Y_400MF = {"stages": [(48, 1), (104, 3), (208, 6), (440, 6)], "group_width": 8, "se_ratio": 0.25}


def bottleneck_transform(width_in, width_out, stride, group_width, se_ratio):
    """torchvision's ``BottleneckTransform`` (bottleneck multiplier 1), keys a, b, se, c:
    (N, width_in, H, W) -> (N, width_out, H', W'), H' = (H - 1) // stride + 1."""
    return nn.Sequential(OrderedDict(
        a=ConvNormActivation(width_in, width_out, 1),
        b=ConvNormActivation(width_out, width_out, 3, stride=stride, groups=width_out // group_width),
        se=SqueezeExcitation(width_out, int(round(se_ratio * width_in))),
        c=ConvNormActivation(width_out, width_out, 1, activation_layer=None)))


class ResBottleneckBlock(nn.Module):
    """torchvision's ``ResBottleneckBlock``: relu(proj(x) + f(x)), ``proj`` (1x1 with ``stride``,
    BN) only where the shape changes, else relu(x + f(x)).

    Shapes: (N, width_in, H, W) -> (N, width_out, H', W'), H' = (H - 1) // stride + 1.
    """

    def __init__(self, width_in, width_out, stride, group_width, se_ratio):
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = ConvNormActivation(width_in, width_out, 1, stride=stride, activation_layer=None)
        self.f = bottleneck_transform(width_in, width_out, stride, group_width, se_ratio)
        self.activation = nn.ReLU()

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.f(x))


class RegNet(nn.Module):
    """torchvision's ``RegNet``: ``stem`` (3x3 stride 2 to 32, BN, ReLU), ``trunk_output``
    (stages block1, block2, ... of blocks ``block{stage}-{index}``), global average pooling, ``fc``.
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, stages, group_width, se_ratio, in_channels, classes):
        super().__init__()
        self.stem = ConvNormActivation(in_channels, STEM_WIDTH, 3, stride=2)
        trunk, channels = OrderedDict(), STEM_WIDTH
        for stage, (width, blocks) in enumerate(stages, start=1):
            trunk[f"block{stage}"] = nn.Sequential(OrderedDict(
                (f"block{stage}-{index}", ResBottleneckBlock(channels if index == 0 else width, width,
                                                             2 if index == 0 else 1, group_width, se_ratio))
                for index in range(blocks)))
            channels = width
        self.trunk_output = nn.Sequential(trunk)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        # torchvision draws conv weights from N(0, 2 / fan_out) and keeps PyTorch's default conv biases
        initialise(self, conv=lambda layer: kaiming_normal_fan_out(layer, zero_bias=False),
                   linear=normal_zero_bias(0.01))

    def forward(self, x):
        return self.fc(self.avgpool(self.trunk_output(self.stem(x))).flatten(1))


def regnet_y_400mf(in_channels=1, classes=10, image_size=28):
    """RegNetY-400MF, 4.3 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("regnet_y_400mf", in_channels, classes, image_size, SMALLEST_SIDE)
    return RegNet(in_channels=in_channels, classes=classes, **REGNET_Y_400MF)


BUILDERS = OrderedDict(regnet_y_400mf=regnet_y_400mf)
