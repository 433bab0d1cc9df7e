"""``load(path)``: an ONNX graph as a convnet module that computes, trains, saves and can be drawn.

Each node becomes one step of `OnnxModel`'s forward, run in the graph's (topological) order. A node
with a convnet layer of its own runs that layer, which holds the node's initializers as its
Parameters (BatchNormalization's mean and variance as buffers): Conv -> nn.Conv2d, BatchNormalization
-> nn.BatchNorm2d, Gemm or MatMul + Add -> nn.Linear, Relu -> nn.ReLU, MaxPool -> nn.MaxPool2d, ...
(`ops.TRANSLATIONS`). So ``nn.record_outputs``, ``nn.summary`` and ``convnet show`` see real layers,
``state_dict()`` keys come from the initializers' names, and gradients reach every weight. The other
nodes (Add, Reshape, Shape, Concat, ...) run as functions; those whose inputs are all constants run
once, at load.

Both of torch's exporters are read: the TorchScript one (``dynamo=False``), which folds BatchNorm
into Conv and names the folded weights ``onnx::Conv_23``, and the default one, which writes the
weights to a ``.onnx.data`` file beside the model and lowers flatten and adaptive pooling to
Reshape and ReduceMean.
"""

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import nn
from ..errors import InvalidValue
from ..tensor import Tensor
from . import ops
from .attributes import shortest_float32
from .errors import OnnxError, Unsupported, require_onnx
from .functions import flattened_softmax
from .reading import DEFAULT_DOMAINS, inferred_shapes, read_model, tensor_array

GENERATED_PREFIX = "onnx::"  # torch's names for weights it computed (BatchNorm folded into Conv): no layer's name
# Constant's attributes -> the dtype of its value (a tensor's own for "value")
CONSTANT_ATTRIBUTES = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                       "value_ints": np.int64}


def load(path):
    """The ONNX model at ``path`` as an `OnnxModel`, in evaluation mode (``.train()`` to fine-tune it).

    Weights stored outside the model (external data, such as the ``.onnx.data`` file torch writes)
    are read from the model's folder; a location outside that folder is refused. Raises `OnnxError`,
    naming the file, for a file that is not ONNX, is truncated or fails onnx.checker, a graph without
    exactly one input, and nodes convnet cannot run (every one of them in one message).
    """
    onnx = require_onnx()
    path = Path(path)
    model = read_model(onnx, path)
    return _Builder(onnx, model, path).build().eval()


class Step(NamedTuple):
    """One node at run time: the child ``module`` (by name), or ``function`` with ``attributes``, maps
    the values named ``inputs`` to the value named ``output``; ``release``: values no later step reads."""
    node: str  # its name in errors
    inputs: tuple
    output: str
    module: str | None
    function: object
    attributes: dict
    release: tuple = ()


class OnnxModel(nn.Module):
    """An ONNX graph run by convnet: ``forward(x)`` runs `steps` in order and returns the graph's
    output (a tuple of them if it has several).

    Children: the layer of each node that has one, named after its weight's initializer
    (``features.0.weight`` -> ``features.0``, so its keys are the initializers' names, those of the
    model exported) or, for weights torch computed and for layers without weights, after the node.
    Parameters of its own: the weights that the graph's arithmetic reads (a learned scale), named
    after their initializers. Every state_dict key is unique and made of dot-separated letters,
    digits and underscores. ``constants``: the values known at load that steps read. ``metadata``:
    the file's metadata_props ({key: text}).
    """

    def __init__(self, source, input_name, input_shape, metadata=None):
        super().__init__()
        self.source, self.input_name, self.input_shape = source, input_name, input_shape
        self.metadata = dict(metadata or {})
        self.steps, self.constants, self.parameter_keys, self.output_names = [], {}, {}, []

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        self._check_input(x)
        values = {**self.constants, self.input_name: x}
        values.update((name, self._parameters[key]) for name, key in self.parameter_keys.items())
        for step in self.steps:
            inputs = [values[name] if name else None for name in step.inputs]
            try:
                if step.module is not None:
                    values[step.output] = self._modules[step.module](*inputs)
                else:
                    values[step.output] = step.function(*inputs, **step.attributes)
            except (ValueError, TypeError) as error:
                if error.args:
                    error.args = (f"{step.node}: {error.args[0]}",) + error.args[1:]
                raise
            for name in step.release:
                del values[name]
        outputs = tuple(value if isinstance(value, Tensor) else Tensor(value)
                        for value in (values[name] for name in self.output_names))
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def answers_probabilities(self):
        """Whether the graph's one output comes from a Softmax: probabilities, not logits."""
        producer = next((step for step in self.steps if step.output in self.output_names[:1]), None)
        if producer is None or len(self.output_names) != 1:
            return False
        if producer.module is not None:
            return isinstance(self._modules[producer.module], nn.Softmax)
        return producer.function is flattened_softmax and not producer.attributes["log"]

    def _check_input(self, x):
        expected = self.input_shape
        if expected is None:
            return
        if x.ndim != len(expected) or any(isinstance(size, int) and size != actual
                                          for size, actual in zip(expected, x.shape)):
            raise InvalidValue(f"expected input {self.input_name!r} of shape ({', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")

    def extra_repr(self):
        return repr(self.source)


class _Builder:
    """Translates a checked ModelProto node by node into an `OnnxModel`, collecting what it cannot."""

    def __init__(self, onnx, model, path):
        self.onnx, self.proto, self.graph, self.path = onnx, model, model.graph, path
        self.opset = next(entry.version for entry in model.opset_import if entry.domain in DEFAULT_DOMAINS)
        self.known = {tensor.name: tensor_array(onnx, tensor, path) for tensor in self.graph.initializer}
        # Floating initializers are weights, which train; torch writes a literal (the 2 of x / 2) as a
        # scalar initializer or a Constant, a shape as an int64 one.
        self.weights = {name for name, value in self.known.items() if value.dtype.kind == "f" and value.ndim}
        self.shapes = inferred_shapes(onnx, model)
        self.parameters = {}  # (initializer, transposed) -> Parameter, so that a weight read twice stays one
        self.readers = {}  # value -> indices of the nodes that read it
        for index, node in enumerate(self.graph.node):
            for name in node.input:
                self.readers.setdefault(name, []).append(index)
        self.graph_outputs = [value.name for value in self.graph.output]

    # ------------------------------------------------------------------ what translations ask
    def shape(self, name):
        """The value's inferred shape, None where a size is not fixed; None if unknown."""
        return self.shapes.get(name)

    def is_weight(self, name):
        return name in self.weights

    def array(self, node, index, what):
        """The node's input ``index``, which must be known at load; None if absent."""
        name = node.input[index] if len(node.input) > index else ""
        if not name:
            return None
        if name not in self.known:
            raise Unsupported(f"{what} computed by the graph; convnet needs it stored in the file")
        return self.known[name]

    def parameter(self, name, transposed=False):
        if (name, transposed) not in self.parameters:
            value = self.known[name].T if transposed else self.known[name]
            self.parameters[name, transposed] = nn.Parameter(np.array(value, order="C"))
        return self.parameters[name, transposed]

    # ------------------------------------------------------------------ building
    def build(self):
        inputs = [value for value in self.graph.input if value.name not in self.known]
        if len(inputs) != 1:
            raise OnnxError(f"{self.path}: expected a graph with one input, got {len(inputs)}: "
                            f"{[value.name for value in inputs]}")
        tensor_type = inputs[0].type.tensor_type
        if tensor_type.elem_type not in (self.onnx.TensorProto.FLOAT, self.onnx.TensorProto.DOUBLE):
            raise OnnxError(f"{self.path}: input {inputs[0].name!r} holds "
                            f"{self.onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; convnet models take "
                            f"float or double tensors")
        declared = None
        if tensor_type.HasField("shape"):
            declared = tuple(dim.dim_value if dim.HasField("dim_value") else dim.dim_param or "?"
                             for dim in tensor_type.shape.dim)
        self.model = OnnxModel(self.path.name, inputs[0].name, declared,
                               {entry.key: entry.value for entry in self.proto.metadata_props})
        self.taken = set(dir(self.model))
        problems, absorbed = [], set()
        for index, node in enumerate(self.graph.node):
            if index in absorbed:
                continue
            label = node.name or f"node {index}"
            try:
                absorbed.update(self._translate(index, node, label))
            except Unsupported as error:
                problems.append(f"{label} ({error})")
            except ValueError as error:  # a layer refusing the node's arguments
                problems.append(f"{label} ({node.op_type}: {error})")
        if problems:
            raise OnnxError(f"{self.path}: cannot load {len(problems)} node{'s' if len(problems) > 1 else ''}: "
                            + ", ".join(problems))
        self._finish()
        return self.model

    def _translate(self, index, node, label):
        """Add the node's step (or its value, if known at load); returns the indices of nodes it absorbed."""
        op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        understood = set(CONSTANT_ATTRIBUTES) if op == "Constant" else ops.TRANSLATIONS.get(op, (None, None))[1]
        if understood is None:
            raise Unsupported(f"op {op}")
        attributes = {attribute.name: self._attribute(attribute) for attribute in node.attribute}
        unknown = sorted(set(attributes) - understood)
        if unknown:
            raise Unsupported("; ".join(f"{op} attribute {name}" for name in unknown))
        for position, name in enumerate(node.output[1:], start=2):
            if name and (name in self.readers or name in self.graph_outputs):
                raise Unsupported(f"{op} output {position} ({name}), which convnet does not compute")
        if op == "Constant":
            ((kind, value),) = attributes.items()
            self.known[node.output[0]] = np.asarray(value, dtype=CONSTANT_ATTRIBUTES[kind])
            return ()
        if op == "Identity" and node.input[0] in self.weights:
            # torch writes equal weights once, naming the copies with Identity: each is a weight of its own.
            self.known[node.output[0]] = self.known[node.input[0]].copy()
            self.weights.add(node.output[0])
            return ()
        bias_add = self._bias_add(node) if op == "MatMul" else None
        if bias_add is not None:
            add = self.graph.node[bias_add]
            bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            translation, output = ops.matmul_node(node, attributes, self, bias), add.output[0]
        else:
            translation, output = ops.TRANSLATIONS[op][0](node, attributes, self), node.output[0]
        if isinstance(translation, ops.Layer):
            name = self._layer_name(index, node, translation.weight, translation.module)
            self.model._modules[name] = translation.module
            self.model.steps.append(Step(label, (node.input[0],), output, name, None, {}))
        else:
            inputs = tuple(node.input if translation.inputs is None else translation.inputs)
            if all(not name or name in self.known and name not in self.weights for name in inputs):
                value = translation.function(*(self.known.get(name) for name in inputs), **translation.attributes)
                self.known[output] = np.asarray(value.data if isinstance(value, Tensor) else value)
            else:
                self.model.steps.append(Step(label, inputs, output, None, translation.function,
                                             translation.attributes))
        return () if bias_add is None else (bias_add,)

    def _bias_add(self, node):
        """The Add that is the only reader of this MatMul's product and adds a stored (N,) vector to it,
        (N, K) the MatMul's stored weight: torch's Linear on inputs of more than two dimensions."""
        weight, product = node.input[1], node.output[0]
        readers = self.readers.get(product, [])
        if weight not in self.weights or self.known[weight].ndim != 2 or len(readers) != 1 \
                or product in self.graph_outputs:
            return None
        add = self.graph.node[readers[0]]
        bias = add.input[1] if add.input[0] == product else add.input[0]
        if add.op_type == "Add" and add.domain in DEFAULT_DOMAINS and bias in self.weights \
                and self.known[bias].shape == self.known[weight].shape[1:]:
            return readers[0]
        return None

    def _attribute(self, attribute):
        value = self.onnx.helper.get_attribute_value(attribute)
        if attribute.type == self.onnx.AttributeProto.FLOAT:
            return shortest_float32(value)
        if attribute.type == self.onnx.AttributeProto.FLOATS:
            return [shortest_float32(item) for item in value]
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, self.onnx.TensorProto):
            return tensor_array(self.onnx, value, self.path)
        return value

    def _layer_name(self, index, node, weight, layer):
        """The weight's initializer without ``.weight`` (``features.0.weight`` -> ``features.0``, so the
        layer's keys are the initializers' names), or the node's name for a weight torch computed."""
        if weight and not weight.startswith(GENERATED_PREFIX):
            base = _valid(weight.removesuffix(".weight"))
        else:
            base = _valid((node.name or f"{node.op_type}_{index}").replace(".", "_"))
        keys = [key for key, _ in layer.named_parameters()] + [key for key, _ in layer.named_buffers()]
        return self._claim(base, keys)

    def _claim(self, base, keys=()):
        """``base``, or ``base_2``, ``base_3``, ...: the first that no child, parameter or state_dict key has."""
        name, count = base, 1
        while name in self.taken or any(f"{name}.{key}" in self.taken for key in keys):
            count += 1
            name = f"{base}_{count}"
        self.taken.update([name, *(f"{name}.{key}" for key in keys)])
        return name

    def _finish(self):
        """Give the steps the constants and weights they read, and free each value after its last reader."""
        model = self.model
        model.output_names = list(self.graph_outputs)
        read = {name for step in model.steps for name in step.inputs if name} | set(model.output_names)
        for name in sorted(read & set(self.known)):
            if name in self.weights:
                model.parameter_keys[name] = key = self._claim(_valid(name))
                model._parameters[key] = self.parameter(name)
            else:
                model.constants[name] = self.known[name]
        last_read = {name: position for position, step in enumerate(model.steps) for name in step.inputs if name}
        for name in model.output_names:
            last_read.pop(name, None)
        releases = {}
        for name, position in last_read.items():
            releases.setdefault(position, []).append(name)
        model.steps = [step._replace(release=tuple(releases.get(position, ())))
                       for position, step in enumerate(model.steps)]


def _valid(text):
    """``text`` as a state_dict key: dot-separated parts of letters, digits and underscores."""
    parts = (re.sub(r"[^0-9A-Za-z_]+", "_", part).strip("_") for part in text.split("."))
    return ".".join(part for part in parts if part) or "value"
