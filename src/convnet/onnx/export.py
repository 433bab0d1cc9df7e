"""`export`: a convnet model as an ONNX file, written with the onnx package's helper API.

The model is walked as its forward runs it: `nn.Sequential` in order, `nn.BasicBlock` as its two
convolutions plus the shortcut, and each layer becomes one ONNX node (a few for GELU before
opset 20) in evaluation semantics: BatchNorm uses its running statistics, Dropout disappears.
Initializers keep the state_dict's names (``features.0.weight``) and nodes the module's path
(``features.0``), so the graph reads like the model in Netron. The batch dimension is dynamic
(``batch``); the others are fixed by ``input_shape``.

The example input runs through each layer once, so shapes are checked by convnet itself and a
layer that cannot take them is named with its path; the written file has passed
``onnx.checker.check_model(full_check=True)``.
"""

import numbers
from pathlib import Path

import numpy as np

from .. import nn
from ..errors import InvalidType
from ..files import WriteError, atomic_write, check_writable
from ..functional import relu
from ..tensor import Tensor, no_grad
from .errors import OnnxError, require_onnx
from .graph import Graph, Value, join
from .writers import WRITERS

# The newest opset that onnxruntime 1.32 runs for every node written here (tests/test_onnx_export.py
# runs each zoo model at it), and the oldest: 13 is where Softmax's axis means one dimension, as in
# PyTorch. A newer opset would need each node's newer version checked, so it is refused.
DEFAULT_OPSET = 28
MIN_OPSET = 13
CONTAINERS = (nn.Sequential, nn.BasicBlock)  # opened: their layers are written one by one
CHANNEL_PRESERVING = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.MaxPool2d, nn.AvgPool2d,
                      nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)


def export(model, path, input_shape=(1, 1, 28, 28), opset=None, metadata=None):
    """Write ``model`` to ``path`` as an ONNX graph that computes what ``model.eval()`` does.

    Args:
        model: a convnet `nn.Module` made of `nn.Sequential`, `nn.BasicBlock` and the layers
            Conv2d, ConvTranspose2d, Linear, BatchNorm1d/2d, ReLU, LeakyReLU, Sigmoid, Tanh,
            GELU, Softmax, LogSoftmax, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout
            and Identity. Its training flags are left as they were.
        path: the file to write (its folder must exist); written whole or not at all.
        input_shape: (N, C, H, W) of an example input; the graph takes any N (``batch``).
        opset: the ai.onnx opset, MIN_OPSET..DEFAULT_OPSET; None for DEFAULT_OPSET (or the
            newest the installed onnx knows, if that is older).
        metadata: {key: text} stored as the model's metadata_props (``convnet export`` records
            there how the model's inputs are scaled and what its classes are called).

    Returns the ``onnx.ModelProto`` written. Raises `OnnxError` listing every module that has no
    ONNX form (``features.3: cannot export MyLayer to ONNX``) or naming the bad argument, and
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
    problems = list(_unexportable(model, ""))
    if problems:
        raise OnnxError(_problem_report(model, problems))
    _check_channels(model, input_shape)

    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        graph = Graph(onnx, opset, input_shape)
        dtype = next((p.dtype for p in model.parameters()), np.float32)
        out = _write(graph, model, "", Value("input", Tensor(np.zeros(input_shape, dtype=dtype))))
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


def _check_channels(model, input_shape):
    """The first layer that reads channels must read input_shape's C (later ones the probe checks)."""
    for name, module in _leaves(model, ""):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            expected = module.in_channels
        elif isinstance(module, nn.BatchNorm2d):
            expected = module.num_features
        elif isinstance(module, CHANNEL_PRESERVING):
            continue
        else:
            return
        if expected != input_shape[1]:
            raise OnnxError(f"export: input_shape={input_shape} has {input_shape[1]} channels, but the model's "
                            f"first layer {name or 'model'} ({module.describe()}) takes {expected}")
        return


# ------------------------------------------------------------------ what can be exported
def _kind(module):
    """The convnet class whose conversion fits ``module``: its own, or a base class whose forward
    it keeps; None when it computes something else."""
    for cls in type(module).__mro__:
        if cls in WRITERS or cls in CONTAINERS:
            return cls if type(module).forward is cls.forward else None
    return None


def _leaves(module, path):
    """(path, module) of each exportable layer in forward order, containers opened."""
    if _kind(module) in CONTAINERS:
        for name, child in module.named_children():
            yield from _leaves(child, join(path, name))
    else:
        yield path, module


def _unexportable(module, path):
    for name, leaf in _leaves(module, path):
        if _kind(leaf) is None:
            yield f"{name or 'model'}: cannot export {type(leaf).__name__} to ONNX"


def _problem_report(model, problems):
    exportable = ", ".join(sorted(cls.__name__ for cls in (*WRITERS, *CONTAINERS)))
    return (f"cannot export {type(model).__name__} to ONNX; {len(problems)} module"
            f"{'s' if len(problems) > 1 else ''} at fault: " + "; ".join(problems) + f" (exportable: {exportable})")


# ------------------------------------------------------------------ walking the model
def _write(graph, module, path, x):
    """Add the nodes of ``module`` (at ``path``) run on ``x``, a `Value`; returns its output's `Value`.
    Each layer runs on x's probe first, so a shape it cannot take is named with the layer's path."""
    kind = _kind(module)
    if kind is nn.Sequential:
        for name, child in module.named_children():
            x = _write(graph, child, join(path, name), x)
        return x
    if kind is nn.BasicBlock:
        return _basic_block(graph, module, path, x)
    try:
        with no_grad():
            out = module(x.probe)
    except (ValueError, TypeError) as error:
        raise OnnxError(f"export: the model cannot run on input_shape={graph.input_shape}: at {path or 'model'}, "
                        f"{error}") from None
    return Value(WRITERS[kind](graph, module, path, x, out), out)


def _basic_block(graph, block, path, x):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)): nodes ``path.relu1``, ``path.add``, ``path.relu2``."""
    out = _write(graph, block.bn1, join(path, "bn1"), _write(graph, block.conv1, join(path, "conv1"), x))
    out = Value(graph.node("Relu", [out.name], join(path, "relu1")), relu(out.probe))
    out = _write(graph, block.bn2, join(path, "bn2"), _write(graph, block.conv2, join(path, "conv2"), out))
    shortcut = x if block.downsample is None else _write(graph, block.downsample, join(path, "downsample"), x)
    with no_grad():
        total = out.probe + shortcut.probe
    added = graph.node("Add", [out.name, shortcut.name], join(path, "add"))
    return Value(graph.node("Relu", [added], join(path, "relu2")), relu(total))
