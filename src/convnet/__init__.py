"""convnet: convolutional neural networks from scratch on NumPy.

>>> import convnet
>>> from convnet import nn, functional as F
>>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
...                       nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
>>> model(convnet.randn(2, 1, 28, 28)).shape
(2, 10)
"""

from importlib.metadata import PackageNotFoundError, version

from .process import quiet_idle_threads, share_cores_with_local_ranks

quiet_idle_threads()  # before anything below loads NumPy and its BLAS
share_cores_with_local_ranks()

from .errors import ConvnetError  # noqa: E402
from .random import manual_seed  # noqa: E402
from .ops import cat, chunk, concatenate, split, stack  # noqa: E402
from .tensor import (  # noqa: E402
    Function, Tensor, is_grad_enabled, no_grad, ones, rand, randn, set_grad_enabled, tensor, zeros)
from . import functional, nn, optim  # noqa: E402  (built on the names above)
from .pth import PthError, load_pth  # noqa: E402

try:
    __version__ = version("convnet-numpy")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Tensor", "Function", "tensor", "zeros", "ones", "randn", "rand", "cat", "chunk", "split", "concatenate", "stack", "no_grad",
           "set_grad_enabled", "is_grad_enabled", "manual_seed", "functional", "nn", "optim", "load_pth", "PthError",
           "ConvnetError", "__version__"]
