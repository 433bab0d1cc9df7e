"""A layer's padding, resolved once when the layer is built: (top, bottom, left, right) for the
ops it calls, and the ``padding`` attribute that shows it as PyTorch's layers do.

PyTorch pads opposite sides alike, ``padding=(pH, pW)``; convnet's layers also take
(top, bottom, left, right), as ONNX's ``pads`` may differ on opposite sides (an even kernel's
'same' padding, or a stride that does not divide the input).
"""

from .. import functional as F
from ..functional._windows import four_sides


def conv_padding(layer, padding, kernel, stride, dilation):
    """(shown, resolved) for a convolution: ``padding`` may be an int, a pair (pH, pW), four
    sides (top, bottom, left, right), 'same' (stride 1 only) or 'valid'.

    >>> conv_padding("Conv2d", 1, (3, 3), (1, 1), (1, 1))
    ((1, 1), (1, 1, 1, 1))
    >>> conv_padding("Conv2d", "same", (4, 4), (1, 1), (1, 1))
    ('same', (1, 2, 1, 2))
    """
    resolved = F.resolve_padding(layer, padding, kernel, stride, dilation)
    return (padding if isinstance(padding, str) else _shown(resolved)), resolved


def pool_padding(layer, padding):
    """(shown, resolved) for a pooling layer: an int, a pair (pH, pW) or four sides (top, bottom,
    left, right), as `F.max_pool2d` takes (no 'same' or 'valid', as in PyTorch).

    >>> pool_padding("MaxPool2d", (0, 1, 0, 1))
    ((0, 1, 0, 1), (0, 1, 0, 1))
    """
    resolved = four_sides(layer, padding)
    return _shown(resolved), resolved


def _shown(resolved):
    """(pH, pW) when opposite sides agree, as PyTorch writes it; all four sides when they differ."""
    top, bottom, left, right = resolved
    return (top, left) if (top, left) == (bottom, right) else resolved
