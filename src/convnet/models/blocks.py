"""What torchvision's ImageNet classifiers share, in convnet's layers and with torchvision's key
names: the convolution-norm-activation block, squeeze-and-excitation, channel rounding, the
weight initialisation loop, and the builders' common arguments.

Every ImageNet builder takes the zoo's data arguments, ``in_channels``, ``classes`` and
``image_size``, with the zoo's defaults (1 channel, 10 classes, 28x28: what `build` is given for
IDX data), so ``models.build("resnet18", in_channels=3, classes=1000)`` is
``torchvision.models.resnet18()`` key for key. ``in_channels`` changes only the first convolution's weight (C_in); ``image_size``
only checks that the network's pooling leaves at least one pixel (each network names its
smallest side), as their global pooling takes any larger size.
"""

from .. import _checks
from .. import nn
from ..errors import InvalidValue


class ConvNormActivation(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: Conv2d ('0'), then a norm layer ('1') and an
    activation, either left out with None. The convolution pads (kernel_size - 1) // 2 unless
    ``padding`` is given, and has a bias only without a norm layer (unless ``bias`` says).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = (H + 2p - k) // stride + 1.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, bias=None):
        padding = (kernel_size - 1) // 2 if padding is None else padding
        bias = norm_layer is None if bias is None else bias
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu, Shen & Sun, 2018), torchvision's ``SqueezeExcitation``: each
    channel of x scaled by scale_activation(fc2(activation(fc1(mean of x over H, W)))), fc1 and fc2
    1x1 convolutions (input_channels -> squeeze_channels -> input_channels).

    Shapes: (N, input_channels, H, W) -> the same.
    """

    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


def make_divisible(value, divisor, min_value=None):
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), and never below 90% of ``value``: torchvision's (and TensorFlow's) channel
    rounding for MobileNet and EfficientNet widths.

    >>> make_divisible(32 * 0.75, 8), make_divisible(72 // 4, 8), make_divisible(10, 8)
    (24, 24, 16)
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def initialise(model, conv=None, linear=None):
    """Re-draw the weights of ``model``'s layers as a torchvision constructor does, in place:
    ``conv(layer)`` for each Conv2d, ``linear(layer)`` for each Linear (None: the layer keeps
    PyTorch's default, which convnet's layers already drew), and every BatchNorm2d's weight 1 and
    bias 0. Draws come from convnet's default generator (`convnet.manual_seed`). Returns ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and conv is not None:
            conv(module)
        elif isinstance(module, nn.Linear) and linear is not None:
            linear(module)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def kaiming_normal_fan_out(layer, zero_bias=True):
    """N(0, 2 / fan_out) weights (kaiming_normal_, mode='fan_out', ReLU's gain), bias 0 (else
    PyTorch's default): the convolutions of ResNet, VGG, MobileNet, EfficientNet and RegNet."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    if layer.bias is not None and zero_bias:
        nn.init.zeros_(layer.bias)


def normal_zero_bias(std):
    """An initialiser: N(0, std^2) weights and zero bias (the Linear layers of VGG, MobileNet and RegNet)."""
    def draw(layer):
        nn.init.normal_(layer.weight, 0.0, std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return draw


def checked_data(model, in_channels, classes, image_size, smallest):
    """The builders' shared checks: positive ``in_channels`` and ``classes``, and an
    ``image_size`` (an int or (H, W)) at least ``smallest`` px a side, the least that ``model``'s
    strides and poolings leave a pixel of."""
    _checks.positive_int(model, "in_channels", in_channels)
    _checks.positive_int(model, "classes", classes)
    height, width = _checks.pair(model, "image_size", image_size, minimum=1)
    if min(height, width) < smallest:
        raise InvalidValue(f"{model}: input size {height}x{width} is too small; it takes at least "
                           f"{smallest}x{smallest}")
