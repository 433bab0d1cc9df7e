"""MobileNetV2 (Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks") and
MobileNetV3-Small and -Large (Howard et al., 2019, "Searching for MobileNetV3") as torchvision
builds them, with its keys: ``features.0.0.weight`` (the first convolution),
``features.1.conv.0.0.weight`` (V2's first block), ``features.4.block.2.fc1.weight`` (V3's
squeeze-and-excitation), ..., ``classifier.1.weight`` (V2) / ``classifier.3.weight`` (V3).

An inverted residual block widens its input with a 1x1 convolution, filters each channel alone
(a depthwise 3x3 or 5x5, which may halve the side), and narrows it again with a linear 1x1
convolution; the input is added back where the shapes agree.
"""

from collections import OrderedDict

from .. import nn
from .blocks import (ConvNormActivation, SqueezeExcitation, checked_data, initialise, kaiming_normal_fan_out,
                     make_divisible, normal_zero_bias)

SMALLEST_SIDE = 1  # every stride pads


class InvertedResidual(nn.Module):
    """MobileNetV2's block (torchvision's ``mobilenetv2.InvertedResidual``), keys under ``conv``:
    [1x1 to in_channels * expand_ratio, BN, ReLU6] (left out for expand_ratio 1), depthwise 3x3
    with ``stride``, BN, ReLU6, 1x1 to out_channels, BN; plus x when stride 1 and the widths agree.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H - 1) // stride + 1.
    """

    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(ConvNormActivation(in_channels, hidden, 1, activation_layer=nn.ReLU6))
        layers += [ConvNormActivation(hidden, hidden, stride=stride, groups=hidden, activation_layer=nn.ReLU6),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


V2_SETTING = [  # expansion t, width c, blocks n, first block's stride s (torchvision's table)
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """torchvision's ``MobileNetV2`` (width 1.0): ``features`` (stem, 17 inverted residual blocks,
    1x1 to 1280), global average pooling, ``classifier`` (Dropout(0.2), Linear(1280 -> classes)).
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, in_channels, classes, dropout=0.2, last_channel=1280):
        super().__init__()
        channels = 32
        features = [ConvNormActivation(in_channels, channels, stride=2, activation_layer=nn.ReLU6)]
        for expand_ratio, width, blocks, stride in V2_SETTING:
            for index in range(blocks):
                features.append(InvertedResidual(channels, width, stride if index == 0 else 1, expand_ratio))
                channels = width
        features.append(ConvNormActivation(channels, last_channel, 1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # torchvision calls F.adaptive_avg_pool2d: no key either way
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, classes))
        initialise(self, conv=kaiming_normal_fan_out, linear=normal_zero_bias(0.01))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class V3Block(nn.Module):
    """MobileNetV3's block (torchvision's ``mobilenetv3.InvertedResidual``), keys under ``block``:
    [1x1 to ``expanded``, BN, act] (left out when ``expanded`` equals in_channels), depthwise
    ``kernel`` x ``kernel`` with ``stride``, BN, act, [squeeze-and-excitation to
    make_divisible(expanded / 4) with a hard sigmoid], 1x1 to out_channels, BN; plus x when stride
    1 and the widths agree. act is Hardswish for ``activation`` "HS", ReLU for "RE". BN: eps
    0.001, momentum 0.01.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H - 1) // stride + 1.
    """

    def __init__(self, in_channels, kernel, expanded, out_channels, squeeze_excite, activation, stride):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        activation = nn.Hardswish if activation == "HS" else nn.ReLU
        layers = []
        if expanded != in_channels:
            layers.append(ConvNormActivation(in_channels, expanded, 1, norm_layer=_v3_norm,
                                             activation_layer=activation))
        layers.append(ConvNormActivation(expanded, expanded, kernel, stride=stride, groups=expanded,
                                         norm_layer=_v3_norm, activation_layer=activation))
        if squeeze_excite:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8),
                                            scale_activation=nn.Hardsigmoid))
        layers.append(ConvNormActivation(expanded, out_channels, 1, norm_layer=_v3_norm, activation_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result


def _v3_norm(channels):
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.01)


V3_SETTINGS = {  # torchvision's tables: (in, kernel, expanded, out, squeeze-excite, activation, stride), last width
    "mobilenet_v3_large": ([
        (16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
        (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
        (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
        (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
        (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1), (160, 5, 960, 160, True, "HS", 1)], 1280),
    "mobilenet_v3_small": ([
        (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
        (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
        (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
        (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1)], 1024),
}


class MobileNetV3(nn.Module):
    """torchvision's ``MobileNetV3`` (width 1.0): ``features`` (3x3 stride-2 stem with Hardswish,
    the blocks of ``setting``, 1x1 to 6x the last width with Hardswish), ``avgpool``,
    ``classifier`` (Linear to ``last_channel``, Hardswish, Dropout(0.2), Linear to classes).
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, setting, last_channel, in_channels, classes, dropout=0.2):
        super().__init__()
        first, last = setting[0][0], 6 * setting[-1][3]
        self.features = nn.Sequential(
            ConvNormActivation(in_channels, first, 3, stride=2, norm_layer=_v3_norm, activation_layer=nn.Hardswish),
            *(V3Block(*block) for block in setting),
            ConvNormActivation(setting[-1][3], last, 1, norm_layer=_v3_norm, activation_layer=nn.Hardswish))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(last, last_channel), nn.Hardswish(), nn.Dropout(dropout),
                                        nn.Linear(last_channel, classes))
        initialise(self, conv=kaiming_normal_fan_out, linear=normal_zero_bias(0.01))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v2(in_channels=1, classes=10, image_size=28):
    """MobileNetV2 (width 1.0), 3.5 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("mobilenet_v2", in_channels, classes, image_size, SMALLEST_SIDE)
    return MobileNetV2(in_channels, classes)


def mobilenet_v3_large(in_channels=1, classes=10, image_size=28):
    """MobileNetV3-Large, 5.5 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("mobilenet_v3_large", in_channels, classes, image_size, SMALLEST_SIDE)
    return MobileNetV3(*V3_SETTINGS["mobilenet_v3_large"], in_channels, classes)


def mobilenet_v3_small(in_channels=1, classes=10, image_size=28):
    """MobileNetV3-Small, 2.5 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("mobilenet_v3_small", in_channels, classes, image_size, SMALLEST_SIDE)
    return MobileNetV3(*V3_SETTINGS["mobilenet_v3_small"], in_channels, classes)


BUILDERS = OrderedDict(mobilenet_v2=mobilenet_v2, mobilenet_v3_small=mobilenet_v3_small,
                       mobilenet_v3_large=mobilenet_v3_large)
