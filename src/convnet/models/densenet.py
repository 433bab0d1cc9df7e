"""DenseNet-121 (Huang, Liu, van der Maaten & Weinberger, 2017, "Densely Connected Convolutional
Networks") as torchvision builds it, with its keys: ``features.conv0.weight``,
``features.denseblock1.denselayer1.norm1.weight``, ``features.transition1.conv.weight``, ...,
``features.norm5.running_var``, ``classifier.weight``.

Each dense layer reads the concatenation of every earlier map in its block and adds
``growth_rate`` (32) channels: BN ReLU Conv1x1(4 * 32) BN ReLU Conv3x3(32). Between blocks a
transition halves the channels (BN ReLU Conv1x1) and the side (2x2 average pooling).
"""

from collections import OrderedDict

from .. import nn
from .. import functional as F
from ..ops import concatenate
from .blocks import checked_data, initialise

SMALLEST_SIDE = 29  # stride-2 stem, stride-2 pooling, three 2x2 average poolings
GROWTH_RATE, BOTTLENECK_WIDTH, FIRST_WIDTH = 32, 4, 64


class DenseLayer(nn.Module):
    """torchvision's ``_DenseLayer``: (N, in_channels, H, W) -> (N, growth_rate, H, W) new channels."""

    def __init__(self, in_channels, growth_rate=GROWTH_RATE, bottleneck_width=BOTTLENECK_WIDTH):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bottleneck_width * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck_width * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bottleneck_width * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    """torchvision's ``_DenseBlock`` (denselayer1, denselayer2, ...): each layer reads every map
    before it, concatenated. (N, C, H, W) -> (N, C + layers * growth_rate, H, W)."""

    def __init__(self, layers, in_channels, growth_rate=GROWTH_RATE):
        super().__init__()
        for index in range(layers):
            setattr(self, f"denselayer{index + 1}", DenseLayer(in_channels + index * growth_rate, growth_rate))

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(concatenate(features, axis=1) if len(features) > 1 else x))
        return concatenate(features, axis=1)


def transition(in_channels, out_channels):
    """torchvision's ``_Transition``: BN ReLU Conv1x1 AvgPool2 (keys norm, relu, conv, pool).
    (N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)."""
    return nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(in_channels), relu=nn.ReLU(),
                                     conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                     pool=nn.AvgPool2d(2, stride=2)))


class DenseNet(nn.Module):
    """torchvision's ``DenseNet``: ``features`` (stem, dense blocks of ``block_layers`` layers,
    transitions, norm5), then ReLU, global average pooling and ``classifier``.
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, block_layers, in_channels, classes):
        super().__init__()
        features = OrderedDict(conv0=nn.Conv2d(in_channels, FIRST_WIDTH, 7, stride=2, padding=3, bias=False),
                               norm0=nn.BatchNorm2d(FIRST_WIDTH), relu0=nn.ReLU(),
                               pool0=nn.MaxPool2d(3, stride=2, padding=1))
        channels = FIRST_WIDTH
        for index, layers in enumerate(block_layers, start=1):
            features[f"denseblock{index}"] = DenseBlock(layers, channels)
            channels += layers * GROWTH_RATE
            if index < len(block_layers):
                features[f"transition{index}"] = transition(channels, channels // 2)
                channels //= 2
        features["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(features)
        self.classifier = nn.Linear(channels, classes)

        def zero_bias(layer):  # torchvision zeroes the classifier's bias and keeps its default weight
            nn.init.zeros_(layer.bias)
        initialise(self, conv=lambda layer: nn.init.kaiming_normal_(layer.weight, nonlinearity="relu"),
                   linear=zero_bias)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(F.relu(self.features(x)), 1)
        return self.classifier(pooled.flatten(1))


def densenet121(in_channels=1, classes=10, image_size=28):
    """DenseNet-121: blocks of 6, 12, 24 and 16 layers, 1024 features into the classifier. Its
    halvings leave nothing of IDX's 28x28 images (the zoo's default ``image_size``), so the
    defaults are refused, naming the 29x29 it takes. (N, in_channels, H, W) -> (N, classes)."""
    checked_data("densenet121", in_channels, classes, image_size, SMALLEST_SIDE)
    return DenseNet((6, 12, 24, 16), in_channels, classes)


BUILDERS = OrderedDict(densenet121=densenet121)
