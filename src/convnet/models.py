"""The model zoo for 28x28 images (Fashion-MNIST, MNIST) and anything of the same shape.

Each builder takes ``layers``, the module that provides the layer classes: ``convnet.nn`` by
default, or ``torch.nn`` to build the identical PyTorch network (benchmarks and tests compare
the two with the same weights), and ``pretrained=True`` for the weights that ship with convnet
(`convnet.pretrained`). ``build(name, **config)`` makes a model by name.
"""

import functools
from collections import OrderedDict

from . import nn as convnet_nn
from . import pretrained as shipped
from .errors import InvalidValue


def _shippable(builder):
    """Give a zoo builder the argument ``pretrained``: True loads the trained weights that ship
    with convnet, which fit only the model built with the builder's defaults."""
    @functools.wraps(builder)
    def build(*args, pretrained=False, **config):
        if pretrained and (args or config):
            settings = [repr(value) for value in args] + [f"{key}={value!r}" for key, value in config.items()]
            raise InvalidValue(f"{builder.__name__}: the shipped weights fit its default configuration, so "
                             f"pretrained=True takes no other settings; got {', '.join(settings)}")
        model = builder(*args, **config)
        if pretrained:
            model.load_state_dict(shipped.state_dict(builder.__name__))
        return model
    return build


@_shippable
def lenet5(in_channels=1, classes=10, layers=convnet_nn):
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to
    document recognition"), with ReLU and max pooling instead of the original scaled tanh and
    subsampling: Conv(6, 5x5, pad 2) Pool Conv(16, 5x5) Pool FC120 FC84 FC(classes)."""
    return layers.Sequential(
        layers.Conv2d(in_channels, 6, 5, padding=2), layers.ReLU(), layers.MaxPool2d(2),
        layers.Conv2d(6, 16, 5), layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
        layers.Linear(16 * 5 * 5, 120), layers.ReLU(), layers.Linear(120, 84), layers.ReLU(),
        layers.Linear(84, classes))


@_shippable
def simple_cnn(in_channels=1, classes=10, kernels=100, kernel_size=5, layers=convnet_nn):
    """The lesson's network: one convolution with many kernels (``kernels`` feature maps),
    ReLU, 2x2 max pooling, then a dense classifier on the pooled maps."""
    pooled = (28 - kernel_size + 1) // 2
    return layers.Sequential(
        layers.Conv2d(in_channels, kernels, kernel_size), layers.ReLU(), layers.MaxPool2d(2), layers.Flatten(),
        layers.Dropout(0.25), layers.Linear(kernels * pooled * pooled, classes))


@_shippable
def reference_cnn(batch_norm=True, in_channels=1, classes=10, layers=convnet_nn):
    """The two-convolution network of Fashion-MNIST's benchmark table ("2 Conv + pooling"):

    Conv(32, 3x3, pad 1) [BN] ReLU MaxPool2 - Conv(64, 3x3, pad 1) [BN] ReLU MaxPool2 -
    Flatten - Linear(3136 -> 128) ReLU - Linear(128 -> classes). Input (N, C, 28, 28).
    """
    def block(cin, cout):
        norm = [layers.BatchNorm2d(cout)] if batch_norm else []
        return [layers.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), *norm, layers.ReLU(), layers.MaxPool2d(2)]

    return layers.Sequential(*block(in_channels, 32), *block(32, 64), layers.Flatten(),
                             layers.Linear(64 * 7 * 7, 128), layers.ReLU(), layers.Linear(128, classes))


@_shippable
def resnet8(in_channels=1, classes=10, widths=(32, 64, 128), layers=convnet_nn):
    """A small ResNet for 28x28 inputs (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for
    Image Recognition", CIFAR-style): a 3x3 stem, one BasicBlock per stage at ``widths``
    (28x28, 14x14, 7x7), global average pooling and a linear classifier; with three stages that
    is 8 weighted layers. ``layers`` must provide ``BasicBlock`` (torchvision's block is the
    same network with the same key names)."""
    stem = layers.Sequential(layers.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                             layers.BatchNorm2d(widths[0]), layers.ReLU())
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
    each giving a feature map, then ReLU and 2x2 max pooling. No classifier: ``convnet show
    --lesson`` draws what these layers do to a photograph."""
    return layers.Sequential(layers.Conv2d(in_channels, kernels, kernel_size), layers.ReLU(), layers.MaxPool2d(2))


MODELS = {"lenet5": lenet5, "simple_cnn": simple_cnn, "reference_cnn": reference_cnn, "resnet8": resnet8}


def build(name, **config):
    """The model called ``name`` (one of MODELS), built with ``config`` (``pretrained=True``: with
    the weights that ship with convnet)."""
    if name not in MODELS:
        raise InvalidValue(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](**config)
