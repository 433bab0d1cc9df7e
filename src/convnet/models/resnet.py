"""ResNet-18, -34 and -50 (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for Image
Recognition") as torchvision builds them, with its state_dict keys (conv1, bn1, layer1.0.conv1,
layer1.0.downsample.0, ..., fc), so its checkpoints load by name.

The stem is a 7x7 convolution with stride 2 and 3x3 max pooling with stride 2 (224 -> 112 -> 56);
four stages of residual blocks at 64, 128, 256 and 512 channels (x4 for the bottleneck blocks of
ResNet-50), each after the first halving the maps; global average pooling; a linear classifier.
"""

from collections import OrderedDict

from .. import nn
from .blocks import checked_data, initialise, kaiming_normal_fan_out

SMALLEST_SIDE = 1  # every stride pads, so even a 1x1 image leaves one pixel


class Bottleneck(nn.Module):
    """ResNet-50's block (torchvision's ``Bottleneck``, ResNet v1.5: the stride is on the 3x3):
    relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)), conv1 1x1 to
    ``width``, conv2 3x3 with ``stride``, conv3 1x1 to 4 * width; the shortcut is the identity, or
    ``downsample`` (1x1 convolution with ``stride``, batch norm) when the shape changes.

    Shapes: (N, in_channels, H, W) -> (N, 4 * width, H', W'), H' = (H - 1) // stride + 1.
    """

    expansion = 4

    def __init__(self, in_channels, width, stride=1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """torchvision's ``ResNet``: ``block(in_channels, width, stride)`` (`nn.BasicBlock`, or
    `Bottleneck` with ``expansion`` 4: its output has expansion * width channels) repeated
    ``depths`` times in four stages. Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, block, expansion, depths, in_channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for stage, (width, depth) in enumerate(zip((64, 128, 256, 512), depths), start=1):
            blocks = []
            for index in range(depth):
                blocks.append(block(channels, width, 2 if stage > 1 and index == 0 else 1))
                channels = width * expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        initialise(self, conv=kaiming_normal_fan_out)  # fc keeps PyTorch's default, as in torchvision

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _resnet(name, block, expansion, depths, in_channels, classes, image_size):
    checked_data(name, in_channels, classes, image_size, SMALLEST_SIDE)
    return ResNet(block, expansion, depths, in_channels, classes)


def resnet18(in_channels=1, classes=10, image_size=28):
    """ResNet-18: BasicBlocks (2, 2, 2, 2). ``resnet18(in_channels=3, classes=1000)`` has exactly
    torchvision's ``resnet18()`` keys and shapes. (N, in_channels, H, W) -> (N, classes)."""
    return _resnet("resnet18", nn.BasicBlock, 1, (2, 2, 2, 2), in_channels, classes, image_size)


def resnet34(in_channels=1, classes=10, image_size=28):
    """ResNet-34: BasicBlocks (3, 4, 6, 3). (N, in_channels, H, W) -> (N, classes)."""
    return _resnet("resnet34", nn.BasicBlock, 1, (3, 4, 6, 3), in_channels, classes, image_size)


def resnet50(in_channels=1, classes=10, image_size=28):
    """ResNet-50: Bottlenecks (3, 4, 6, 3), 2048 features into fc. (N, in_channels, H, W) -> (N, classes)."""
    return _resnet("resnet50", Bottleneck, Bottleneck.expansion, (3, 4, 6, 3), in_channels, classes, image_size)


BUILDERS = OrderedDict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50)
