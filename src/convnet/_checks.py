"""Argument checks at the public boundary, with messages that say what was expected and got."""

import numbers

import numpy as np

from .errors import InvalidType, InvalidValue
from .tensor import Tensor


def as_tensor(op, name, value, floating=True):
    """``value`` as a Tensor (arrays are wrapped), checking its dtype when floats are needed."""
    if not isinstance(value, Tensor):
        if not isinstance(value, (np.ndarray, numbers.Number, list, tuple)):
            raise InvalidType(f"{op}: expected {name} to be a Tensor, got {type(value).__name__}")
        value = Tensor(value)
    if floating and not np.issubdtype(value.dtype, np.floating):
        raise InvalidType(f"{op}: expected {name} to be a floating-point tensor (float32 or float64), "
                        f"got dtype {value.dtype}")
    return value


def check_shape(op, name, tensor, layout, **known):
    """Check ``tensor`` against ``layout`` such as "(N, C, H, W)"; ``known`` pins sizes, e.g. C=3."""
    dims = [d.strip() for d in layout.strip("()").split(",") if d.strip()]
    shape = tensor.shape
    expected = "(" + ", ".join(str(known.get(d, d)) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    if len(shape) != len(dims) or any(d in known and known[d] != n for d, n in zip(dims, shape)):
        raise InvalidValue(f"{op}: expected {name} of shape {expected}, got {tuple(shape)}")


def pair(op, name, value, minimum):
    """An int or a pair of ints, each >= ``minimum``, as a pair."""
    values = (value, value) if isinstance(value, numbers.Integral) else value
    if (not isinstance(values, (tuple, list)) or len(values) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)):
        raise InvalidType(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise InvalidValue(f"{op}: expected {name} >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def positive_int(op, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise InvalidValue(f"{op}: expected {name} to be a positive int, got {value!r}")
    return int(value)


def probability(op, name, value):
    if not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise InvalidValue(f"{op}: expected {name} between 0 and 1, got {value!r}")
    return float(value)


def groups_divide_channels(op, groups, in_channels, out_channels):
    """Grouped convolution splits both channel counts into ``groups`` equal parts."""
    if in_channels % groups or out_channels % groups:
        raise InvalidValue(f"{op}: expected groups to divide in_channels and out_channels, got groups={groups}, "
                         f"in_channels={in_channels}, out_channels={out_channels}")


def output_padding_fits(op, output_padding, stride, dilation):
    """output_padding picks among the sizes that a strided convolution maps to one size, so
    PyTorch requires it smaller than the stride or the dilation in each dimension."""
    if any(p >= max(s, d) for p, s, d in zip(output_padding, stride, dilation)):
        raise InvalidValue(f"{op}: expected output_padding smaller than stride or dilation, got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
