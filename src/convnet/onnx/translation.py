"""What a translation of one ONNX node returns: a `Layer` (a convnet module that runs it) or a `Call`
(a function over the graph's values)."""

from collections.abc import Callable
from typing import NamedTuple

from .. import nn


class Layer(NamedTuple):
    module: nn.Module
    weight: str | None  # the initializer the layer's name comes from
    inputs: tuple | None = None  # the node's inputs the layer takes; None: the first
    outputs: int = 1  # how many of the node's outputs it computes (a tuple of them if more than one)


class Call(NamedTuple):
    function: Callable
    attributes: dict
    inputs: tuple | None = None  # the node's inputs the function takes; None: all of them
    outputs: int = 1
