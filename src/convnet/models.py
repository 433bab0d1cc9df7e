"""The model zoo. Each builder takes ``layers``, the module that provides the layer classes:
``convnet.nn`` by default, or ``torch.nn`` to build the identical PyTorch network (the
benchmarks and tests compare the two with the same weights)."""

from . import nn as convnet_nn


def reference_cnn(batch_norm=False, classes=10, layers=convnet_nn):
    """The reference CNN for 28x28 grayscale images (the classic two-conv Fashion-MNIST network):

    Conv(1->32, 3x3, pad 1) [BN] ReLU MaxPool2 - Conv(32->64, 3x3, pad 1) [BN] ReLU MaxPool2 -
    Flatten - Linear(3136->128) ReLU - Linear(128->classes). Input (N, 1, 28, 28), output (N, classes).
    """
    def block(cin, cout):
        norm = [layers.BatchNorm2d(cout)] if batch_norm else []
        return [layers.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), *norm, layers.ReLU(), layers.MaxPool2d(2)]

    return layers.Sequential(*block(1, 32), *block(32, 64), layers.Flatten(), layers.Linear(64 * 7 * 7, 128),
                             layers.ReLU(), layers.Linear(128, classes))
