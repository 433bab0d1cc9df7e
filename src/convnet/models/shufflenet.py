"""ShuffleNetV2 x1.0 (Ma, Zhang, Zheng & Sun, 2018, "ShuffleNet V2: Practical Guidelines for
Efficient CNN Architecture Design") as torchvision builds it, with its keys: ``conv1.0.weight``,
``stage2.0.branch1.0.weight``, ``stage2.1.branch2.3.weight``, ..., ``conv5.0.weight``, ``fc.weight``.

A block splits its channels in two: one half passes unchanged (or, where the block halves the
side, through a depthwise-then-1x1 branch of its own), the other through 1x1, depthwise 3x3 and
1x1 convolutions; the halves are concatenated and their channels shuffled, so the next block's
split mixes both.
"""

from collections import OrderedDict

from .. import functional as F
from .. import nn
from ..ops import concatenate
from .blocks import checked_data

SMALLEST_SIDE = 1  # every stride pads
X1_0 = {"repeats": (4, 8, 4), "widths": (24, 116, 232, 464, 1024)}  # torchvision's shufflenet_v2_x1_0


def _depthwise(channels, stride):
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)


def _pointwise(in_channels, out_channels):
    """1x1 convolution, batch norm, ReLU: three entries of a branch."""
    return [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class InvertedResidual(nn.Module):
    """torchvision's ``shufflenetv2.InvertedResidual``. With stride 1: x split in halves (x1, x2),
    out = shuffle(cat(x1, branch2(x2))); with stride 2: out = shuffle(cat(branch1(x), branch2(x))).
    branch1 = depthwise 3x3 (stride), BN, 1x1, BN, ReLU; branch2 = 1x1, BN, ReLU, depthwise 3x3
    (stride), BN, 1x1, BN, ReLU; each gives out_channels / 2.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H - 1) // stride + 1.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_depthwise(in_channels, stride), nn.BatchNorm2d(in_channels),
                                         *_pointwise(in_channels, half))
        self.branch2 = nn.Sequential(*_pointwise(in_channels if stride > 1 else half, half),
                                     _depthwise(half, stride), nn.BatchNorm2d(half), *_pointwise(half, half))

    def forward(self, x):
        if self.stride == 1:
            passed, transformed = x.chunk(2, dim=1)
            out = concatenate([passed, self.branch2(transformed)], axis=1)
        else:
            out = concatenate([self.branch1(x), self.branch2(x)], axis=1)
        return F.channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """torchvision's ``ShuffleNetV2``: ``conv1`` (3x3 stride 2, BN, ReLU), ``maxpool`` (3x3 stride
    2), ``stage2``-``stage4`` (a stride-2 block, then ``repeats`` - 1 more), ``conv5`` (1x1, BN,
    ReLU), the mean over H and W, ``fc``. Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, repeats, widths, in_channels, classes):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = widths[0]
        for stage, (repeat, width) in enumerate(zip(repeats, widths[1:]), start=2):
            blocks = [InvertedResidual(channels, width, 2)] + [InvertedResidual(width, width, 1)
                                                                for _ in range(repeat - 1)]
            setattr(self, f"stage{stage}", nn.Sequential(*blocks))
            channels = width
        self.conv5 = nn.Sequential(*_pointwise(channels, widths[-1]))
        self.fc = nn.Linear(widths[-1], classes)  # torchvision keeps PyTorch's default initialisation throughout

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean(axis=(2, 3)))


def shufflenet_v2_x1_0(in_channels=1, classes=10, image_size=28):
    """ShuffleNetV2 x1.0, 2.3 million parameters for 1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("shufflenet_v2_x1_0", in_channels, classes, image_size, SMALLEST_SIDE)
    return ShuffleNetV2(X1_0["repeats"], X1_0["widths"], in_channels, classes)


BUILDERS = OrderedDict(shufflenet_v2_x1_0=shufflenet_v2_x1_0)
