"""`OnnxModel`: an ONNX graph as a convnet module, each node one `Step` of its forward."""

from typing import NamedTuple

import numpy as np

from .. import nn
from ..errors import InvalidValue
from ..tensor import Tensor
from .functions import flattened_softmax


class Step(NamedTuple):
    """One node at run time: the child ``module`` (by name), or ``function`` with ``attributes``, maps
    the values named ``inputs`` to the values named ``outputs`` ('' for an output no one reads);
    ``release``: values no later step reads."""
    node: str  # its name in errors
    inputs: tuple
    outputs: tuple
    module: str | None
    function: object
    attributes: dict
    release: tuple = ()


class OnnxModel(nn.Module):
    """An ONNX graph run by convnet: ``forward(*inputs)`` takes the graph's inputs in its order (one
    for an image classifier: ``model(x)``; ``model(x, w)`` for a graph that takes its weight as an
    input), runs `steps` in order and returns the graph's output (a tuple of them if it has several).

    Inputs of a floating type are Tensors (gradients reach them); boolean and integer inputs (a flag,
    a shape) are read as NumPy arrays.

    Children: the layer of each node that has one, named after its weight's initializer
    (``features.0.weight`` -> ``features.0``, so its keys are the initializers' names, those of the
    model exported) or, for weights torch computed and for layers without weights, after the node.
    Parameters of its own: the weights that the graph's arithmetic reads (a learned scale), named
    after their initializers. Every state_dict key is unique and made of dot-separated letters,
    digits and underscores. ``constants``: the values known at load that steps read. ``metadata``:
    the file's metadata_props ({key: text}). ``shapes``: every value's shape as ONNX's shape inference
    gives it before anything runs ({name: (size or None, ...)}; None where the graph leaves a size open).
    ``input_names``, ``input_shapes``: the graph's inputs; ``input_name``, ``input_shape``: the first's.
    """

    def __init__(self, source, inputs, metadata=None, floating=None):
        super().__init__()
        self.source = source
        self.input_names = [name for name, _ in inputs]
        self.input_shapes = [shape for _, shape in inputs]
        self.floating = list(floating) if floating is not None else [True] * len(inputs)
        self.input_name, self.input_shape = self.input_names[0], self.input_shapes[0]
        self.metadata = dict(metadata or {})
        self.steps, self.constants, self.parameter_keys, self.output_names, self.shapes = [], {}, {}, [], {}

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise InvalidValue(f"expected {len(self.input_names)} input{'s' if len(self.input_names) > 1 else ''} "
                               f"({', '.join(self.input_names)}), got {len(inputs)}")
        values = dict(self.constants)
        for name, expected, floating, value in zip(self.input_names, self.input_shapes, self.floating, inputs):
            value = (value if isinstance(value, Tensor) else Tensor(value)) if floating else np.asarray(value)
            _check_input(name, expected, value)
            values[name] = value
        values.update((name, self._parameters[key]) for name, key in self.parameter_keys.items())
        for step in self.steps:
            arguments = [values[name] if name else None for name in step.inputs]
            try:
                if step.module is not None:
                    result = self._modules[step.module](*arguments)
                else:
                    result = step.function(*arguments, **step.attributes)
            except (ValueError, TypeError) as error:
                if error.args:
                    error.args = (f"{step.node}: {error.args[0]}",) + error.args[1:]
                raise
            results = (result,) if len(step.outputs) == 1 else result
            values.update((name, value) for name, value in zip(step.outputs, results) if name)
            for name in step.release:
                del values[name]
        outputs = tuple(value if isinstance(value, Tensor) else Tensor(value)
                        for value in (values[name] for name in self.output_names))
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def answers_probabilities(self):
        """Whether the graph's one output comes from a Softmax: probabilities, not logits."""
        producer = next((step for step in self.steps if self.output_names[:1] == list(step.outputs[:1])), None)
        if producer is None or len(self.output_names) != 1:
            return False
        if producer.module is not None:
            return isinstance(self._modules[producer.module], nn.Softmax)
        return producer.function is flattened_softmax and not producer.attributes["log"]

    def extra_repr(self):
        return repr(self.source)


def _check_input(name, expected, x):
    if expected is None:
        return
    if x.ndim != len(expected) or any(isinstance(size, int) and size != actual
                                      for size, actual in zip(expected, x.shape)):
        raise InvalidValue(f"expected input {name!r} of shape ({', '.join(map(str, expected))}), "
                           f"got {tuple(x.shape)}")
