"""The ONNX graph `export` writes: nodes and initializers under unique names, then the model,
its every edge's shape inferred and the whole checked."""

from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..tensor import Tensor


@dataclass
class Value:
    name: str      # the ONNX tensor's name
    probe: Tensor  # what convnet computes there for the example input: its shape, checked by convnet


def join(path, name):
    """The path of ``name`` inside the module at ``path`` ('' for the model itself)."""
    return f"{path}.{name}" if path else name


class Graph:
    """Nodes and initializers in the order they are added, and the problems met on the way (each
    `path: message`, so that every module at fault is named at once)."""

    def __init__(self, onnx, opset, input_shape):
        self.onnx, self.opset, self.input_shape = onnx, opset, input_shape
        self.nodes, self.initializers, self.problems = [], [], []
        self.names = {"input", "output"}

    def unique(self, name):
        candidate, count = name, 1
        while candidate in self.names:
            candidate, count = f"{name}_{count}", count + 1
        self.names.add(candidate)
        return candidate

    def constant(self, name, array, dtype=np.float32):
        name = self.unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def parameter(self, path, name, tensor):
        return self.constant(join(path, name), tensor.data)

    def node(self, op, inputs, name, **attributes):
        """Append one node; its output tensor takes its (unique) name (the op's, for a model
        that is a single layer: its path is empty)."""
        name = self.unique(name or op)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def problem(self, path, message):
        self.problems.append(f"{path or 'model'}: {message}")

    def model(self, model, out):
        """The ModelProto whose input is ``input`` and whose output is ``out`` (a `Value`), renamed
        ``output``; every edge's shape inferred (for Netron) and the whole checked strictly."""
        helper = self.onnx.helper
        self._name_output(out.name)
        float32 = self.onnx.TensorProto.FLOAT
        graph = helper.make_graph(
            self.nodes, type(model).__name__,
            [helper.make_tensor_value_info("input", float32, ["batch", *self.input_shape[1:]])],
            [helper.make_tensor_value_info("output", float32, ["batch", *out.probe.shape[1:]])],
            initializer=self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        dims = ", ".join(map(str, self.input_shape[1:]))
        proto = helper.make_model(
            graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
            producer_name="convnet", producer_version=__version__,
            doc_string=f"convnet {type(model).__name__}, input (batch, {dims}), evaluation mode:\n{model!r}")
        try:
            proto = self.onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
            self.onnx.checker.check_model(proto, full_check=True)
        except (self.onnx.checker.ValidationError, self.onnx.shape_inference.InferenceError) as error:
            raise RuntimeError(f"export made an invalid ONNX graph (a bug in convnet, please report it): "
                               f"{error}") from None
        return proto

    def _name_output(self, name):
        if name == "input":
            self.nodes.append(self.onnx.helper.make_node("Identity", ["input"], ["output"], name="output"))
            return
        for node in self.nodes:
            node.input[:] = ["output" if value == name else value for value in node.input]
            node.output[:] = ["output" if value == name else value for value in node.output]
