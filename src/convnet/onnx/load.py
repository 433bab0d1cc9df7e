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

import numpy as np

from .. import nn
from ..tensor import Tensor
from . import ops
from .attributes import shortest_float32
from .errors import OnnxError, Unsupported, require_onnx
from .model import OnnxModel, Step
from .reading import DEFAULT_DOMAINS, inferred_values, read_model, tensor_array

GENERATED_PREFIX = "onnx::"  # torch's names for weights it computed (BatchNorm folded into Conv): no layer's name
# Constant's attributes -> the dtype of its value (a tensor's own for "value")
CONSTANT_ATTRIBUTES = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                       "value_ints": np.int64}
# TensorProto.DataType values: the inputs that become Tensors, and those read as NumPy arrays (flags, shapes)
FLOATING_TYPES = {1, 11}  # FLOAT, DOUBLE
TAKEN_TYPES = FLOATING_TYPES | {2, 3, 4, 5, 6, 7, 9, 12, 13}  # and the (unsigned) integers and BOOL


def load(path):
    """The ONNX model at ``path`` as an `OnnxModel`, in evaluation mode (``.train()`` to fine-tune it).

    Weights stored outside the model (external data, such as the ``.onnx.data`` file torch writes)
    are read from the model's folder; a location outside that folder is refused. Raises `OnnxError`,
    naming the file, for a file that is not ONNX, is truncated or fails onnx.checker, a graph without
    inputs or with an input of a type convnet cannot take (strings, float16), and nodes convnet cannot
    run (every one of them in one message, each with its name, its operator and the reason).
    """
    onnx = require_onnx()
    path = Path(path)
    model = read_model(onnx, path)
    return _Builder(onnx, model, path).build().eval()


class _Builder:
    """Translates a checked ModelProto node by node into an `OnnxModel`, collecting what it cannot."""

    def __init__(self, onnx, model, path):
        self.onnx, self.proto, self.graph, self.path = onnx, model, model.graph, path
        self.opset = next(entry.version for entry in model.opset_import if entry.domain in DEFAULT_DOMAINS)
        self.known = {tensor.name: tensor_array(onnx, tensor, path) for tensor in self.graph.initializer}
        # Floating initializers are weights, which train; torch writes a literal (the 2 of x / 2) as a
        # scalar initializer or a Constant, a shape as an int64 one.
        self.weights = {name for name, value in self.known.items() if value.dtype.kind == "f" and value.ndim}
        self.shapes, self.types = inferred_values(onnx, model)
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
        if not inputs:
            raise OnnxError(f"{self.path}: expected a graph with at least one input, got none")
        declared, floating = [], []
        for value in inputs:
            tensor_type = value.type.tensor_type
            if tensor_type.elem_type not in TAKEN_TYPES:
                raise OnnxError(f"{self.path}: input {value.name!r} holds "
                                f"{self.onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; convnet models take "
                                f"float, double, integer or bool tensors")
            floating.append(tensor_type.elem_type in FLOATING_TYPES)
            declared.append((value.name, tuple(dim.dim_value if dim.HasField("dim_value") else dim.dim_param or "?"
                                               for dim in tensor_type.shape.dim)
                             if tensor_type.HasField("shape") else None))
        self.model = OnnxModel(self.path.name, declared, {entry.key: entry.value for entry in self.proto.metadata_props},
                               floating)
        self.model.shapes = dict(self.shapes)
        self.taken = set(dir(self.model))
        problems, absorbed = [], set()
        for index, node in enumerate(self.graph.node):
            if index in absorbed:
                continue
            label = node.name or f"node {index}"
            op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
            try:
                absorbed.update(self._translate(index, node, label))
            except Unsupported as error:  # each reason names the op first
                problems.append(f"{label} ({error if str(error).startswith(op) else f'{op}: {error}'})")
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
            raise Unsupported(f"{op}: an operator convnet does not run")
        attributes = {attribute.name: self._attribute(attribute) for attribute in node.attribute}
        unknown = sorted(set(attributes) - understood)
        if unknown:
            raise Unsupported("; ".join(f"{op} attribute {name}" for name in unknown))
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
            translation, outputs = ops.matmul_node(node, attributes, self, bias), (add.output[0],)
        else:
            translation = ops.TRANSLATIONS[op][0](node, attributes, self)
            # A translation may compute more outputs than the node names (Dropout's mask): those go unread.
            outputs = tuple(node.output[:translation.outputs]) + ("",) * (translation.outputs - len(node.output))
        for position, name in enumerate(node.output[len(outputs):], start=len(outputs) + 1):
            if name and (name in self.readers or name in self.graph_outputs):
                raise Unsupported(f"{op} output {position} ({name}), which convnet does not compute")
        outputs = tuple(name if name in self.readers or name in self.graph_outputs else "" for name in outputs)
        inputs = tuple(node.input[:1] if isinstance(translation, ops.Layer) else node.input)
        inputs = inputs if translation.inputs is None else tuple(translation.inputs)
        if isinstance(translation, ops.Layer):
            self._check_floating(op, inputs)
            name = self._layer_name(index, node, translation.weight, translation.module)
            self.model._modules[name] = translation.module
            self.model.steps.append(Step(label, inputs, outputs, name, None, {}))
        elif all(not name or name in self.known and name not in self.weights for name in inputs):
            value = translation.function(*(self.known.get(name) for name in inputs), **translation.attributes)
            for name, result in zip(outputs, (value,) if len(outputs) == 1 else value):
                if name:
                    self.known[name] = np.asarray(result.data if isinstance(result, Tensor) else result)
        else:
            self.model.steps.append(Step(label, inputs, outputs, None, translation.function, translation.attributes))
        return () if bias_add is None else (bias_add,)

    def _check_floating(self, op, inputs):
        """Refuse a layer over integer or boolean values: convnet's layers compute in floating point."""
        for name in inputs:
            kind = self.types.get(name)
            if name and kind is not None and kind not in FLOATING_TYPES:
                raise Unsupported(f"{op} of {self.onnx.TensorProto.DataType.Name(kind)} values: convnet's layers "
                                  f"compute in float or double")

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
