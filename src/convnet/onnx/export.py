"""`export`: a convnet model as an ONNX file, written with the onnx package's helper API.

The model's forward runs once on an example input with autograd recording (`trace.Trace`), and
the recorded graph is written from the output back to the input: each call of a layer that
`writers.WRITERS` knows (Conv2d, BatchNorm2d, MaxPool2d, ...) becomes that layer's nodes, written
from the layer's own arguments, and everything else its forward computed (a residual addition, a
concatenation, a channel shuffle, a functional ReLU) one node or a few per autograd Function
(`export_functions.FUNCTION_WRITERS`). So any model made of convnet's layers and tensor operations
exports, whatever its forward does, in evaluation semantics: BatchNorm uses its running
statistics, Dropout and stochastic depth disappear. Initializers keep the state_dict's names
(``features.0.weight``) and nodes the path of the module that ran them (``features.0``, or
``layer1.0.add`` inside a block), so the graph reads like the model in Netron. The batch
dimension is dynamic (``batch``); the others are fixed by ``input_shape``.

The example input (zeros of ``input_shape``) runs through convnet itself, so a shape a layer
cannot take is named with the layer's path; the written file has passed
``onnx.checker.check_model(full_check=True)``. What is written is what that run computed: a
forward that branches on its input's values is written for the branch zeros took, and a reshape
is written for the traced sizes, the first (batch) dimension kept dynamic.
"""

import numbers
from pathlib import Path

import numpy as np

from .. import nn
from ..errors import InvalidType
from ..files import WriteError, atomic_write, check_writable
from ..nn.fusion import InferenceOnly
from ..tensor import Tensor
from .errors import OnnxError, require_onnx
from .export_functions import FUNCTION_WRITERS
from .graph import Graph, Value, join
from .trace import RUN_ERRORS, Trace
from .writers import WRITERS

# The newest opset that onnxruntime 1.32 runs for every node written here (tests/test_onnx_export.py
# runs each zoo model at it), and the oldest: 13 is where Softmax's axis means one dimension, as in
# PyTorch. A newer opset would need each node's newer version checked, so it is refused.
DEFAULT_OPSET = 28
MIN_OPSET = 13


def export(model, path, input_shape=(1, 1, 28, 28), opset=None, metadata=None):
    """Write ``model`` to ``path`` as an ONNX graph that computes what ``model.eval()`` does.

    Args:
        model: a convnet `nn.Module` taking one (N, C, H, W) tensor and returning one tensor,
            its forward made of convnet's layers (`writers.WRITERS`) and of the operations
            `export_functions.FUNCTION_WRITERS` writes (arithmetic, concatenation, reshapes,
            activations, ...), in any arrangement. Its training flags are left as they were.
        path: the file to write (its folder must exist); written whole or not at all.
        input_shape: (N, C, H, W) of an example input; the graph takes any N (``batch``).
        opset: the ai.onnx opset, MIN_OPSET..DEFAULT_OPSET; None for DEFAULT_OPSET (or the
            newest the installed onnx knows, if that is older).
        metadata: {key: text} stored as the model's metadata_props (``convnet export`` records
            there how the model's inputs are scaled and what its classes are called).

    Returns the ``onnx.ModelProto`` written. Raises `OnnxError` listing, in one line, everything
    that has no ONNX form with the path of the module that computed it (``features.3: cannot export
    Cube (run by MyLayer) to ONNX``), or naming the bad argument, and
    `WriteError` when ``path`` cannot be written.

    >>> import tempfile, pathlib, convnet
    >>> from convnet import models
    >>> from convnet.onnx.export import export
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     graph = export(models.lenet5(), pathlib.Path(folder) / "lenet5.onnx")
    >>> [node.op_type for node in graph.graph.node][:3], graph.graph.node[0].input[1]
    (['Conv', 'Relu', 'MaxPool'], '0.weight')
    """
    onnx = require_onnx()
    opset = _check_opset(onnx, opset)
    input_shape = _check_input_shape(input_shape)
    if not isinstance(model, nn.Module):
        raise InvalidType(f"export: expected model to be a convnet nn.Module, got {type(model).__name__}")
    path = _check_path(path)
    metadata = dict(metadata or {})
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()):
        raise OnnxError(f"export: expected metadata to map text to text, got {metadata!r}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        dtype = next((p.dtype for p in model.parameters()), np.float32)
        example = Tensor(np.zeros(input_shape, dtype=dtype), requires_grad=True)
        trace = Trace(model)
        try:
            out = trace.run(example)
        except RUN_ERRORS as error:
            raise OnnxError(_cannot_run(trace, input_shape, error)) from None
        graph = NamedGraph(onnx, opset, input_shape, model)
        out = _write(graph, trace, example, _checked_output(out, example))
        if graph.problems:
            raise OnnxError(_problem_report(model, graph.problems))
        proto = graph.model(model, out)
        onnx.helper.set_model_props(proto, metadata)
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    atomic_write(path, proto.SerializeToString())
    return proto


# ------------------------------------------------------------------ arguments
def _check_opset(onnx, opset):
    newest = min(DEFAULT_OPSET, onnx.defs.onnx_opset_version())
    if opset is None:
        return newest
    if not isinstance(opset, numbers.Integral) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        known = f" (onnx {onnx.__version__} knows opsets up to {newest})" if newest < DEFAULT_OPSET else ""
        raise OnnxError(f"export: expected opset between {MIN_OPSET} and {newest}{known}, got {opset!r}")
    return int(opset)


def _check_input_shape(input_shape):
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in input_shape)):
        raise OnnxError(f"export: expected input_shape to be 4 positive ints (N, C, H, W), got {input_shape!r}")
    return tuple(int(n) for n in input_shape)


def _check_path(path):
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; name the .onnx file to write")
    if not path.parent.is_dir():
        raise WriteError(f"cannot write {path}: the folder {path.parent} does not exist")
    check_writable(path.parent)
    return path


def _cannot_run(trace, input_shape, error):
    """The refusal of an input the model cannot take: a first layer reading other channels than
    input_shape's C, or the innermost module that raised (``trace.failed``: the model itself, at
    least, runs inside the trace's wrappers), with its path; or of a layer that runs only without
    gradients, which tracing records (`nn.fuse_for_inference`'s copies)."""
    path, failed = trace.failed
    if isinstance(error, InferenceOnly):
        return (f"export: cannot trace {path or 'model'} ({failed.describe()}): fuse_for_inference's copies run "
                f"only without gradients, which export records; export the original model")
    if trace.first_reader is not None and failed is trace.first_reader[1]:
        expected = failed.num_features if isinstance(failed, nn.BatchNorm2d) else failed.in_channels
        if expected != input_shape[1]:
            return (f"export: input_shape={input_shape} has {input_shape[1]} channels, but the model's first layer "
                    f"{path or 'model'} ({failed.describe()}) takes {expected}")
    return f"export: the model cannot run on input_shape={input_shape}: at {path or 'model'}, {error}"


def _checked_output(out, example):
    if not isinstance(out, Tensor):
        raise OnnxError(f"export: expected the model to return one Tensor, got {type(out).__name__}")
    if out is not example and not out.requires_grad:
        raise OnnxError("export: the model's output does not depend on its input, so there is no graph to export")
    return out


# ------------------------------------------------------------------ what can be exported
def _kind(module):
    """The class in WRITERS whose writer fits ``module``: its own, or a base class whose forward it
    keeps; None when it computes something else (its forward is then written Function by Function)."""
    for cls in type(module).__mro__:
        if cls in WRITERS:
            return cls if type(module).forward is cls.forward else None
    return None


def _problem_report(model, problems):
    modules = len({problem.split(": ", 1)[0] for problem in problems})
    layers = ", ".join(sorted(cls.__name__ for cls in WRITERS))
    functions = ", ".join(sorted(cls.__name__ for cls in FUNCTION_WRITERS))
    return (f"cannot export {type(model).__name__} to ONNX; {modules} module{'s' if modules > 1 else ''} at fault: "
            + "; ".join(dict.fromkeys(problems)) + f" (exportable: the layers {layers} and, in any forward, "
            f"the operations {functions})")


# ------------------------------------------------------------------ writing the trace
class NamedGraph(Graph):
    """A `Graph` whose initializers take the state_dict's names: each parameter or buffer is found
    by identity (so a layer shared by two paths, or called twice, is written once), and every
    Tensor already written (a node's output) is referred to by its name."""

    def __init__(self, onnx, opset, input_shape, model):
        super().__init__(onnx, opset, input_shape)
        self.keys = {id(tensor): key for key, tensor in (*model.named_parameters(), *model.named_buffers())}
        self.names.update(self.keys.values())  # no node or generated constant takes a state_dict key
        self.written = {}  # id(Tensor) -> the name of the ONNX tensor holding it

    def parameter(self, path, name, tensor):
        if id(tensor) not in self.written:
            key = self.keys.get(id(tensor))
            if key is None:
                self.written[id(tensor)] = self.constant(join(path, name), tensor.data)
            else:
                array = np.ascontiguousarray(tensor.data, dtype=np.float32)
                self.initializers.append(self.onnx.numpy_helper.from_array(array, key))
                self.written[id(tensor)] = key
        return self.written[id(tensor)]


def _write(graph, trace, example, out):
    """Write every step from ``example`` (``input``) to ``out``; returns the output's `Value`."""
    graph.written[id(example)] = "input"

    def layer_call(tensor):
        call = trace.calls.get(id(tensor))
        return call if call is not None and _kind(call.module) is not None else None

    for tensor in trace.steps(out, example, layer_call):
        call = layer_call(tensor)
        if call is not None:
            source = Value(graph.written[id(call.input)], call.input)
            name = WRITERS[_kind(call.module)](graph, call.module, call.path, source, tensor)
        else:
            name = _write_function(graph, trace, tensor)
        graph.written[id(tensor)] = name
    return Value(graph.written[id(out)], out)


def _write_function(graph, trace, out):
    """The nodes of ``out``'s Function, named by the module that ran it: its path where ``out`` is that
    call's output, else the path and the Function's name (``layer1.0.add``)."""
    fn = out.grad_fn
    path, module = trace.owners.get(id(fn), ("", None))
    call = trace.calls.get(id(out))
    name = path if call is not None and call.path == path and path else join(path, type(fn).__name__.lower())
    writer = FUNCTION_WRITERS.get(type(fn))
    if writer is None:
        owner = f" (run by {type(module).__name__})" if module is not None else ""
        graph.problem(path, f"cannot export {type(fn).__name__}{owner} to ONNX")
        return name
    args = [None if value is None else Value(_operand(graph, path, value), value if isinstance(value, Tensor)
                                             else Tensor(np.asarray(value))) for value in fn.inputs]
    problems = len(graph.problems)
    written = writer(graph, fn, name, args, out)
    # A writer's refusals name its node; the report names modules, as the layer writers' refusals do.
    graph.problems[problems:] = [f"{path or 'model'}: {problem.split(': ', 1)[1]}"
                                 for problem in graph.problems[problems:]]
    return written


def _operand(graph, path, value):
    """The ONNX name of one of a Function's inputs: a written Tensor's, a parameter's or buffer's
    state_dict key, or a new constant (a number, an array, a Tensor computed without the input)."""
    if isinstance(value, Tensor):
        return graph.parameter(path, "constant", value)
    return graph.constant(join(path, "constant"), np.asarray(value))
