"""VGG-11 and VGG-16 with batch norm (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks
for Large-Scale Image Recognition"; Ioffe & Szegedy's batch norm after each convolution) as
torchvision builds them, with its keys: ``features.0.weight`` (the first 3x3 convolution),
``features.1.running_mean`` (its batch norm), ..., ``classifier.6.weight`` (the last Linear).

Stacks of 3x3 convolutions (padding 1) with batch norm and ReLU, five 2x2 max poolings (224 ->
7), adaptive average pooling to 7x7 (so other sizes reach the classifier as 512 x 7 x 7), then
Linear(25088 -> 4096) ReLU Dropout Linear(4096 -> 4096) ReLU Dropout Linear(4096 -> classes).
"""

from collections import OrderedDict

from .. import nn
from .blocks import checked_data, initialise, kaiming_normal_fan_out, normal_zero_bias

SMALLEST_SIDE = 32  # five halvings: 32 px leaves 1
POOL = "M"
CONFIGURATIONS = {  # torchvision's cfgs "A" and "D": a convolution's width, or 2x2 max pooling
    "vgg11_bn": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "vgg16_bn": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL],
}


class VGG(nn.Module):
    """torchvision's ``VGG`` with ``make_layers(cfg, batch_norm=True)``: ``features`` (Conv BN ReLU
    per width in ``configuration``, MaxPool2d(2) per "M"), ``avgpool`` (to 7x7), ``classifier``.
    Input (N, in_channels, H, W), H and W at least 32; output (N, classes)."""

    def __init__(self, configuration, in_channels, classes, dropout=0.5):
        super().__init__()
        layers, channels = [], in_channels
        for width in configuration:
            if width == POOL:
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4096, classes))
        initialise(self, conv=kaiming_normal_fan_out, linear=normal_zero_bias(0.01))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(name, in_channels, classes, image_size):
    """Five halvings leave nothing of IDX's 28x28 images (the zoo's default ``image_size``), so
    the defaults are refused, naming the 32x32 it takes."""
    checked_data(name, in_channels, classes, image_size, SMALLEST_SIDE)
    return VGG(CONFIGURATIONS[name], in_channels, classes)


def vgg11_bn(in_channels=1, classes=10, image_size=28):
    """VGG-11 with batch norm (8 convolutions, configuration "A"), 133 million parameters for 1000
    classes, 120 million of them in the classifier. (N, in_channels, H, W) -> (N, classes)."""
    return _vgg("vgg11_bn", in_channels, classes, image_size)


def vgg16_bn(in_channels=1, classes=10, image_size=28):
    """VGG-16 with batch norm (13 convolutions, configuration "D"), 138 million parameters for
    1000 classes. (N, in_channels, H, W) -> (N, classes)."""
    return _vgg("vgg16_bn", in_channels, classes, image_size)


BUILDERS = OrderedDict(vgg11_bn=vgg11_bn, vgg16_bn=vgg16_bn)
