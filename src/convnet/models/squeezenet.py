"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016, "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters") as torchvision builds them, with its keys: ``features.0.weight``,
``features.3.squeeze.weight``, ``features.3.expand1x1.weight``, ``features.3.expand3x3.weight``,
..., ``classifier.1.weight``.

Fire modules squeeze the channels with 1x1 convolutions, then expand them again with 1x1 and 3x3
convolutions side by side, concatenated. Max pooling rounds its output size up (``ceil_mode``, as
Caffe did). The classifier is a 1x1 convolution to one map per class, ReLU and global average
pooling: SqueezeNet has no Linear layer.
"""

from collections import OrderedDict

from .. import nn
from ..ops import concatenate
from .blocks import checked_data, initialise

SMALLEST_SIDE = {"squeezenet1_0": 21, "squeezenet1_1": 17}  # the least that leaves a pixel after three poolings


class Fire(nn.Module):
    """torchvision's ``Fire``: relu(squeeze(x)) into expand1x1 and expand3x3 (padding 1), each
    rectified, concatenated along the channels.

    Shapes: (N, in_channels, H, W) -> (N, expand1x1 + expand3x3, H, W).
    """

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return concatenate([self.expand1x1_activation(self.expand1x1(x)),
                            self.expand3x3_activation(self.expand3x3(x))], axis=1)


def _pool():
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _features(version, in_channels):
    """torchvision's ``features`` for SqueezeNet ``version`` '1_0' (a 7x7 stem of 96 kernels,
    pooling after Fire modules 3 and 7) or '1_1' (a 3x3 stem of 64, pooling after 2 and 4: 2.4x
    less computation, the same accuracy)."""
    if version == "1_0":
        return nn.Sequential(
            nn.Conv2d(in_channels, 96, 7, stride=2), nn.ReLU(), _pool(),
            Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
            Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
            _pool(), Fire(512, 64, 256, 256))
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, stride=2), nn.ReLU(), _pool(),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))


class SqueezeNet(nn.Module):
    """torchvision's ``SqueezeNet``: ``features``, then ``classifier`` (Dropout(0.5),
    Conv1x1(512 -> classes), ReLU, global average pooling), flattened.
    Input (N, in_channels, H, W), output (N, classes)."""

    def __init__(self, version, in_channels, classes, dropout=0.5):
        super().__init__()
        self.features = _features(version, in_channels)
        final_conv = nn.Conv2d(512, classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1))

        def draw(layer):  # torchvision: N(0, 0.01) for the classifier, kaiming_uniform_ for the rest; biases 0
            if layer is final_conv:
                nn.init.normal_(layer.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        initialise(self, conv=draw)

    def forward(self, x):
        return self.classifier(self.features(x)).flatten(1)


def _squeezenet(name, version, in_channels, classes, image_size):
    checked_data(name, in_channels, classes, image_size, SMALLEST_SIDE[name])
    return SqueezeNet(version, in_channels, classes)


def squeezenet1_0(in_channels=1, classes=10, image_size=28):
    """SqueezeNet 1.0, 1.2 million parameters for 1000 classes; at least 21x21.
    (N, in_channels, H, W) -> (N, classes)."""
    return _squeezenet("squeezenet1_0", "1_0", in_channels, classes, image_size)


def squeezenet1_1(in_channels=1, classes=10, image_size=28):
    """SqueezeNet 1.1, 1.2 million parameters for 1000 classes; at least 17x17.
    (N, in_channels, H, W) -> (N, classes)."""
    return _squeezenet("squeezenet1_1", "1_1", in_channels, classes, image_size)


BUILDERS = OrderedDict(squeezenet1_0=squeezenet1_0, squeezenet1_1=squeezenet1_1)
