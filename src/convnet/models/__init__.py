"""The model zoo: small convolutional networks shaped by the data they learn from.

Each builder takes the data's shape: ``in_channels`` (1 for greyscale, 3 for colour), ``image_size``
(an int or (height, width)) and ``classes``. The defaults, 1 channel, 28x28 and 10 classes
(Fashion-MNIST, MNIST), build exactly the networks the shipped weights were trained in. The
classifier's input size follows from ``image_size`` by the layers' own arithmetic (see each
builder), and a size too small for a network is refused, naming the smallest it takes.

The stem. An image whose shorter side is 64 px or more first passes a stem that halves it once per
doubling above 32 px (`stem_steps`), so the feature maps entering the usual layers are 32 to 64 px
whatever the picture's size and the classifier stays small: a 3x3 convolution with stride 2
(padding 1: H -> ceil(H/2)) and ReLU, then 2x2 max pooling for each further step (H -> floor(H/2)).
That is torchvision's ResNet stem (224 -> 112 -> 56) with the 3x3 kernel of the CIFAR ResNets.
resnet8's own first convolution takes the stride, so its keys and shapes are the same at every
size. The other networks get a stem named ``stem`` in front of their layers, which keep their
keys ('0.weight', ...); it has as many kernels as their first convolution, at most
`STEM_MAX_WIDTH`, so that simple_cnn's wide convolution reads 32 channels rather than 100 (a third
of the cost). Below 64 px there is no stem.

Each builder takes ``layers``, the module that provides the layer classes: ``convnet.nn`` by
default, or ``torch.nn`` to build the identical PyTorch network (benchmarks and tests compare the
two with the same weights), and ``pretrained=True`` for the weights that ship with convnet
(`convnet.pretrained`, for the default 1x28x28, 10-class networks only). ``build(name, **config)``
makes a model by name; `load_all_but_classifier` starts a network for other classes from another's
weights.

The ImageNet architectures (`IMAGENET`: ResNet, VGG, DenseNet, MobileNet, SqueezeNet, ShuffleNet,
EfficientNet, RegNet, ConvNeXt) live in files of their own, built as torchvision builds them and
with its state_dict keys, so a torchvision checkpoint loads by name; they take the same data
arguments with the same defaults (see `convnet.models.blocks`).
"""

import functools
import inspect
import itertools
from collections import OrderedDict

import numpy as np

from .. import _checks
from .. import nn as convnet_nn
from .. import pretrained as shipped
from ..errors import InvalidValue
from . import convnext, densenet, efficientnet, mobilenet, regnet, resnet, shufflenet, squeezenet, vgg

DEFAULT_IMAGE_SIZE = 28
SMALLEST_STEMMED_SIDE = 64  # the stem's first step; each doubling above it adds one
STEM_MAX_WIDTH = 32  # kernels at most in the stem of lenet5, simple_cnn and reference_cnn


def stem_steps(image_size):
    """How many times the stem halves an image of ``image_size`` (H, W): once per doubling of the
    shorter side above 32 px. 0 below 64 px, 1 for 64-127 px, 2 for 128-255 px (224 -> 56), ...

    >>> [stem_steps((side, side)) for side in (28, 32, 63, 64, 127, 128, 224, 256)]
    [0, 0, 0, 1, 1, 2, 2, 3]
    """
    side, steps = min(image_size), 0
    while side >= SMALLEST_STEMMED_SIDE:
        side, steps = side // 2, steps + 1
    return steps


def _after_stem(side, steps):
    """The side of the maps the stem gives for an input side: ceil(side / 2) through the stride-2
    3x3 convolution with padding 1, then floor(side / 2) through each 2x2 max pooling."""
    if steps:
        side = (side + 1) // 2
    for _ in range(steps - 1):
        side //= 2
    return side


def _geometry(model, image_size, features):
    """(stem steps, (h, w) of the maps the classifier reads) for ``image_size``, given the 1-D
    ``features(side)``: the side of those maps for a side entering the usual layers (monotone).
    Refuses a size for which a side would be under 1 px."""
    height, width = _checks.pair(model, "image_size", image_size, minimum=1)
    steps = stem_steps((height, width))
    maps = tuple(features(_after_stem(side, steps)) for side in (height, width))
    if min(maps) < 1:
        smallest = next(side for side in itertools.count(1) if features(side) >= 1)
        needed = (f"its stem makes it {_after_stem(height, steps)}x{_after_stem(width, steps)} and its layers take"
                  if steps else "it takes")
        raise InvalidValue(f"{model}: input size {height}x{width} is too small; {needed} at least "
                           f"{smallest}x{smallest}")
    return steps, maps


def _pooled(side):
    """2x2 max pooling, stride 2: floor(side / 2)."""
    return side // 2


def _stem(layers, in_channels, first_width, steps, batch_norm):
    """(stem, channels it gives) for a network whose first convolution has ``first_width``
    kernels: Conv(width, 3x3, stride 2, pad 1) [BN] ReLU, then ``steps`` - 1 MaxPool2, with width
    = min(first_width, STEM_MAX_WIDTH): (N, in_channels, H, W) -> (N, width, H', W'), H' as
    `_after_stem` says. (None, in_channels) when ``steps`` is 0."""
    if not steps:
        return None, in_channels
    width = min(first_width, STEM_MAX_WIDTH)
    norm = [layers.BatchNorm2d(width)] if batch_norm else []
    return layers.Sequential(layers.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=not batch_norm),
                             *norm, layers.ReLU(), *(layers.MaxPool2d(2) for _ in range(steps - 1))), width


def _stemmed(layers, stem, body):
    """The network ``body`` (a list of layers, keyed '0', '1', ...) behind ``stem`` (keyed 'stem'),
    or ``body`` alone when there is no stem: the same keys as the network without a stem."""
    if stem is None:
        return layers.Sequential(*body)
    return layers.Sequential(OrderedDict([("stem", stem), *((str(index), layer) for index, layer in enumerate(body))]))


def _is_default(parameter, value):
    default = parameter.default
    if parameter.name == "image_size":
        return value in (default, (default, default), [default, default])
    return value is default or (not isinstance(value, bool) and value == default)


def _shippable(builder):
    """Give a zoo builder the argument ``pretrained``: True loads the trained weights that ship
    with convnet, which fit only the model built with the builder's defaults (1x28x28, 10 classes)."""
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args, pretrained=False, **config):
        if pretrained:
            given = signature.bind_partial(*args, **config).arguments
            settings = [f"{key}={value!r}" for key, value in given.items()
                        if not _is_default(signature.parameters[key], value)]
            if settings:
                raise InvalidValue(f"{builder.__name__}: the shipped weights fit its default configuration (1x28x28, "
                                   f"10 classes), so pretrained=True takes no other settings; got "
                                   f"{', '.join(settings)}")
        model = builder(*args, **config)
        if pretrained:
            model.load_state_dict(shipped.state_dict(builder.__name__))
        return model
    return build


@_shippable
def lenet5(in_channels=1, classes=10, layers=convnet_nn, image_size=DEFAULT_IMAGE_SIZE):
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to
    document recognition"), with ReLU and max pooling instead of the original scaled tanh and
    subsampling: Conv(6, 5x5, pad 2) Pool Conv(16, 5x5) Pool FC120 FC84 FC(classes).

    Input (N, in_channels, H, W), output (N, classes). The first Linear reads 16 * h * w features,
    h = (H' // 2 - 4) // 2 for the side H' entering the layers (28 -> 5, so 400); at least 12x12.
    """
    steps, (height, width) = _geometry("lenet5", image_size, lambda side: _pooled(_pooled(side) - 4))
    stem, channels = _stem(layers, in_channels, 6, steps, batch_norm=False)
    return _stemmed(layers, stem, [
        layers.Conv2d(channels, 6, 5, padding=2), layers.ReLU(), layers.MaxPool2d(2),
        layers.Conv2d(6, 16, 5), layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
        layers.Linear(16 * height * width, 120), layers.ReLU(), layers.Linear(120, 84), layers.ReLU(),
        layers.Linear(84, classes)])


@_shippable
def simple_cnn(in_channels=1, classes=10, kernels=100, kernel_size=5, layers=convnet_nn,
               image_size=DEFAULT_IMAGE_SIZE):
    """The lesson's network: one convolution with many kernels (``kernels`` feature maps),
    ReLU, 2x2 max pooling, then a dense classifier on the pooled maps.

    Input (N, in_channels, H, W), output (N, classes). The classifier reads kernels * h * w
    features, h = (H' - kernel_size + 1) // 2 for the side H' entering the layers (28 -> 12).
    """
    kernel_size = _checks.positive_int("simple_cnn", "kernel_size", kernel_size)
    steps, (height, width) = _geometry("simple_cnn", image_size, lambda side: _pooled(side - kernel_size + 1))
    stem, channels = _stem(layers, in_channels, kernels, steps, batch_norm=False)
    return _stemmed(layers, stem, [
        layers.Conv2d(channels, kernels, kernel_size), layers.ReLU(),
        layers.MaxPool2d(2), layers.Flatten(), layers.Dropout(0.25), layers.Linear(kernels * height * width, classes)])


@_shippable
def reference_cnn(batch_norm=True, in_channels=1, classes=10, layers=convnet_nn, image_size=DEFAULT_IMAGE_SIZE):
    """The two-convolution network of Fashion-MNIST's benchmark table ("2 Conv + pooling"):

    Conv(32, 3x3, pad 1) [BN] ReLU MaxPool2 - Conv(64, 3x3, pad 1) [BN] ReLU MaxPool2 -
    Flatten - Linear(64 * h * w -> 128) ReLU - Linear(128 -> classes), h = H' // 4 for the side H'
    entering the layers (28 -> 7, so 3136). Input (N, in_channels, H, W), at least 4x4; output
    (N, classes). The stem has batch norm when the network has.
    """
    def block(cin, cout):
        norm = [layers.BatchNorm2d(cout)] if batch_norm else []
        return [layers.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), *norm, layers.ReLU(), layers.MaxPool2d(2)]

    steps, (height, width) = _geometry("reference_cnn", image_size, lambda side: _pooled(_pooled(side)))
    stem, channels = _stem(layers, in_channels, 32, steps, batch_norm)
    return _stemmed(layers, stem, [*block(channels, 32), *block(32, 64), layers.Flatten(),
                                   layers.Linear(64 * height * width, 128), layers.ReLU(), layers.Linear(128, classes)])


@_shippable
def resnet8(in_channels=1, classes=10, widths=(32, 64, 128), layers=convnet_nn, image_size=DEFAULT_IMAGE_SIZE):
    """A small ResNet (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for Image
    Recognition", CIFAR-style): a 3x3 stem, one BasicBlock per stage at ``widths`` (28x28, 14x14,
    7x7 for a 28x28 input), global average pooling and a linear classifier; with three stages that
    is 8 weighted layers. ``layers`` must provide ``BasicBlock`` (torchvision's block is the same
    network with the same key names).

    Input (N, in_channels, H, W), any size; output (N, classes). From 64 px the stem's
    convolution has stride 2 and is followed by `stem_steps` - 1 max poolings, so the keys and
    shapes are the same at every size.
    """
    steps, _ = _geometry("resnet8", image_size, lambda side: side)  # global pooling: any size fits
    stem = layers.Sequential(layers.Conv2d(in_channels, widths[0], 3, stride=2 if steps else 1, padding=1, bias=False),
                             layers.BatchNorm2d(widths[0]), layers.ReLU(),
                             *(layers.MaxPool2d(2) for _ in range(steps - 1)))
    blocks, previous = [], widths[0]
    for stage, width in enumerate(widths):
        blocks.append(layers.BasicBlock(previous, width, stride=1 if stage == 0 else 2))
        previous = width
    return layers.Sequential(OrderedDict(stem=stem, layers=layers.Sequential(*blocks),
                                         pool=layers.AdaptiveAvgPool2d(1), flatten=layers.Flatten(),
                                         fc=layers.Linear(previous, classes)))


def lesson_network(kernels=100, kernel_size=10, in_channels=1, layers=convnet_nn):
    """The lesson's first stage exactly as it tells it: ``kernels`` learnable kernels of
    ``kernel_size`` x ``kernel_size`` slide over the image (100 of 10x10 over a 256x256 image),
    each giving a feature map, then ReLU and 2x2 max pooling. No classifier, so any image at least
    ``kernel_size`` + 1 px a side fits: ``convnet show --lesson`` draws what these layers do to a
    photograph."""
    return layers.Sequential(layers.Conv2d(in_channels, kernels, kernel_size), layers.ReLU(), layers.MaxPool2d(2))


IMAGENET = {name: _shippable(builder) for family in (resnet, mobilenet, squeezenet, vgg, densenet, shufflenet,
                                                     efficientnet, regnet, convnext)
            for name, builder in family.BUILDERS.items()}
MODELS = {"lenet5": lenet5, "simple_cnn": simple_cnn, "reference_cnn": reference_cnn, "resnet8": resnet8, **IMAGENET}


def build(name, **config):
    """The model called ``name`` (one of MODELS), built with ``config``: the data's
    ``in_channels``, ``image_size`` and ``classes``, the builder's own settings, and
    ``pretrained=True`` for the weights that ship with convnet.

    >>> build("reference_cnn", in_channels=3, image_size=(64, 64), classes=5)[-1]
    Linear(in_features=128, out_features=5, bias=True)
    """
    if name not in MODELS:
        raise InvalidValue(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](**config)


def classifier_name(model):
    """The name of ``model``'s classifier: its last Linear layer or, without one, its last convolution
    (SqueezeNet's 1x1 classifier); None for a model with neither."""
    layers = [name for name, module in model.named_modules() if isinstance(module, convnet_nn.Linear)]
    layers = layers or [name for name, module in model.named_modules() if isinstance(module, convnet_nn.Conv2d)]
    return layers[-1] if layers else None


def load_all_but_classifier(model, state_dict):
    """Load ``state_dict`` into ``model`` as ``model.load_state_dict`` does, except the classifier
    (the model's last Linear layer; without one, its last convolution, as SqueezeNet's 1x1
    classifier) when its weights in ``state_dict`` have other shapes (another class count): that
    layer keeps the weights the model has (a freshly built model's random initialisation).
    Returns the names of the layers so left, e.g. ['fc'] or [] when all loaded.

    Every other problem (missing or unexpected keys, other shapes) is refused as by
    ``load_state_dict``, and then nothing is loaded.
    """
    classifier = classifier_name(model)
    own = model.state_dict()
    if classifier is None:
        model.load_state_dict(state_dict)
        return []
    prefix = f"{classifier}."
    differs = [key for key, value in state_dict.items() if key.startswith(prefix) and key in own
               and tuple(np.shape(value)) != tuple(own[key].shape)]
    if not differs:
        model.load_state_dict(state_dict)
        return []
    kept = {key: value for key, value in state_dict.items() if not key.startswith(prefix)}
    model.load_state_dict({**kept, **{key: value for key, value in own.items() if key.startswith(prefix)}})
    return [classifier]
