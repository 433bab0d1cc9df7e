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

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, nn
from ..files import WriteError, atomic_write, check_writable
from ..functional import relu, resolve_padding
from ..tensor import Tensor, no_grad
from . import OnnxError, require_onnx

# The newest opset that onnxruntime 1.32 runs for every node written here (tests/test_onnx_export.py
# runs each zoo model at it), and the oldest: 13 is where Softmax's axis means one dimension, as in
# PyTorch. A newer opset would need each node's newer version checked, so it is refused.
DEFAULT_OPSET = 28
MIN_OPSET = 13
GELU_OPSET = 20       # Gelu is one node from here; before it, its formula in Erf or Tanh nodes
REDUCE_AXES_INPUT = 18  # ReduceMean takes its axes as an input from here, an attribute before


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
        raise TypeError(f"export: expected model to be a convnet nn.Module, got {type(model).__name__}")
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
        proto = _Exporter(onnx, opset, input_shape).model(model)
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
        elif isinstance(module, _CHANNEL_PRESERVING):
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
        if cls in _CONVERTERS:
            return cls if type(module).forward is cls.forward else None
    return None


def _leaves(module, path):
    """(path, module) of each exportable layer in forward order, containers opened."""
    if _kind(module) in (nn.Sequential, nn.BasicBlock):
        for name, child in module.named_children():
            yield from _leaves(child, _join(path, name))
    else:
        yield path, module


def _unexportable(module, path):
    for name, leaf in _leaves(module, path):
        if _kind(leaf) is None:
            yield f"{name or 'model'}: cannot export {type(leaf).__name__} to ONNX"


def _problem_report(model, problems):
    exportable = ", ".join(sorted(cls.__name__ for cls in _CONVERTERS))
    return (f"cannot export {type(model).__name__} to ONNX; {len(problems)} module"
            f"{'s' if len(problems) > 1 else ''} at fault: " + "; ".join(problems) + f" (exportable: {exportable})")


def _join(path, name):
    return f"{path}.{name}" if path else name


# ------------------------------------------------------------------ the graph
@dataclass
class _Value:
    name: str      # the ONNX tensor's name
    probe: Tensor  # what convnet computes there for the example input: its shape, checked by convnet


class _Exporter:
    def __init__(self, onnx, opset, input_shape):
        self.onnx, self.opset, self.input_shape = onnx, opset, input_shape
        self.nodes, self.initializers, self.problems = [], [], []
        self.names = {"input", "output"}

    def model(self, model):
        helper = self.onnx.helper
        dtype = next((p.dtype for p in model.parameters()), np.float32)
        probe = Tensor(np.zeros(self.input_shape, dtype=dtype))
        out = self.emit(model, "", _Value("input", probe))
        if self.problems:
            raise OnnxError(_problem_report(model, self.problems))
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
        try:  # every edge's shape, for Netron; strict, so it checks the graph too
            proto = self.onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
            self.onnx.checker.check_model(proto, full_check=True)
        except (self.onnx.checker.ValidationError, self.onnx.shape_inference.InferenceError) as error:
            raise RuntimeError(f"export made an invalid ONNX graph (a bug in convnet, please report it): "
                               f"{error}") from None
        return proto

    # ---------------------------------------------------------------- building blocks
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
        return self.constant(_join(path, name), tensor.data)

    def node(self, op, inputs, name, **attributes):
        """Append one node; its output tensor takes its (unique) name (the op's, for a model
        that is a single layer: its path is empty)."""
        name = self.unique(name or op)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def _name_output(self, name):
        if name == "input":
            self.nodes.append(self.onnx.helper.make_node("Identity", ["input"], ["output"], name="output"))
            return
        for node in self.nodes:
            node.input[:] = ["output" if value == name else value for value in node.input]
            node.output[:] = ["output" if value == name else value for value in node.output]

    def problem(self, path, message):
        self.problems.append(f"{path or 'model'}: {message}")

    # ---------------------------------------------------------------- walking the model
    def emit(self, module, path, x):
        kind = _kind(module)
        if kind is nn.Sequential:
            for name, child in module.named_children():
                x = self.emit(child, _join(path, name), x)
            return x
        if kind is nn.BasicBlock:
            return self.basic_block(module, path, x)
        try:
            with no_grad():
                out = module(x.probe)
        except (ValueError, TypeError) as error:
            raise OnnxError(f"export: the model cannot run on input_shape={self.input_shape}: at {path or 'model'}, "
                            f"{error}") from None
        name = _CONVERTERS[kind](self, module, path, x, out)
        return _Value(name, out)

    def basic_block(self, block, path, x):
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)): nodes ``path.relu1``, ``path.add``, ``path.relu2``."""
        out = self.emit(block.bn1, _join(path, "bn1"), self.emit(block.conv1, _join(path, "conv1"), x))
        out = _Value(self.node("Relu", [out.name], _join(path, "relu1")), relu(out.probe))
        out = self.emit(block.bn2, _join(path, "bn2"), self.emit(block.conv2, _join(path, "conv2"), out))
        shortcut = x if block.downsample is None else self.emit(block.downsample, _join(path, "downsample"), x)
        with no_grad():
            total = out.probe + shortcut.probe
        added = self.node("Add", [out.name, shortcut.name], _join(path, "add"))
        return _Value(self.node("Relu", [added], _join(path, "relu2")), relu(total))

    def axes(self, node_inputs, path, axes):
        """ReduceMean's axes: an attribute before opset 18, an input from it."""
        if self.opset >= REDUCE_AXES_INPUT:
            return node_inputs + [self.constant(_join(path, "axes"), axes, np.int64)], {}
        return node_inputs, {"axes": list(axes)}


# ------------------------------------------------------------------ one function per layer
# Each takes (exporter, layer, path, x: _Value, out: the layer's probe output) and returns the
# name of the ONNX tensor holding the layer's output.

def _conv2d(g, conv, path, x, out):
    kernel = conv.weight.shape[2:]
    top, bottom, left, right = resolve_padding("Conv2d", conv.padding, kernel, conv.stride, conv.dilation)
    inputs = [x.name, g.parameter(path, "weight", conv.weight)]
    if conv.bias is not None:
        inputs.append(g.parameter(path, "bias", conv.bias))
    return g.node("Conv", inputs, path, kernel_shape=list(kernel), strides=list(conv.stride),
                  pads=[top, left, bottom, right], dilations=list(conv.dilation), group=conv.groups)


def _conv_transpose2d(g, conv, path, x, out):
    """ConvTranspose: weight (C_in, C_out/groups, kH, kW) is ONNX's layout too. output_padding
    adds rows at the end, which is cutting fewer padding rows there, so it goes into the end pads;
    onnxruntime refuses an output_padding of a stride or more (possible when dilation > stride),
    so what is left beyond the padding becomes, at that size, a Pad of zeros before the bias."""
    end_pads, output_padding, zero_rows = [], [], []
    for padding, extra, stride in zip(conv.padding, conv.output_padding, conv.stride):
        end_pads.append(padding - min(padding, extra))
        left = extra - min(padding, extra)
        output_padding.append(left if left < stride else 0)
        zero_rows.append(0 if left < stride else left)
    weight = g.parameter(path, "weight", conv.weight)
    bias = g.parameter(path, "bias", conv.bias) if conv.bias is not None else None
    attributes = {"kernel_shape": list(conv.weight.shape[2:]), "strides": list(conv.stride),
                  "pads": [*conv.padding, *end_pads], "output_padding": output_padding,
                  "dilations": list(conv.dilation), "group": conv.groups}
    if not any(zero_rows):
        return g.node("ConvTranspose", [x.name, weight] + ([bias] if bias else []), path, **attributes)
    transposed = g.node("ConvTranspose", [x.name, weight], _join(path, "transposed"), **attributes)
    pads = g.constant(_join(path, "zero_rows"), [0, 0, 0, 0, 0, 0, *zero_rows], np.int64)
    padded = g.node("Pad", [transposed, pads], path if bias is None else _join(path, "pad"))
    if bias is None:
        return padded
    shape = g.constant(_join(path, "bias_shape"), [-1, 1, 1], np.int64)
    return g.node("Add", [padded, g.node("Reshape", [bias, shape], _join(path, "bias_column"))], path)


def _linear(g, linear, path, x, out):
    """Gemm (transB=1) on (N, in); on more dimensions, MatMul by the transposed weight, plus bias."""
    weight = g.parameter(path, "weight", linear.weight)
    bias = g.parameter(path, "bias", linear.bias) if linear.bias is not None else None
    if x.probe.ndim == 2:
        return g.node("Gemm", [x.name, weight] + ([bias] if bias else []), path, transB=1)
    transposed = g.node("Transpose", [weight], _join(path, "weight_t"), perm=[1, 0])
    product = g.node("MatMul", [x.name, transposed], path if bias is None else _join(path, "matmul"))
    return product if bias is None else g.node("Add", [product, bias], path)


def _batch_norm(g, norm, path, x, out):
    """BatchNormalization with the running statistics, or with the batch's own when the layer
    keeps none (track_running_stats=False normalises by the batch even in evaluation)."""
    channels = norm.num_features
    scale = (g.parameter(path, "weight", norm.weight) if norm.weight is not None
             else g.constant(_join(path, "scale"), np.ones(channels)))
    shift = (g.parameter(path, "bias", norm.bias) if norm.bias is not None
             else g.constant(_join(path, "shift"), np.zeros(channels)))
    if norm.track_running_stats:
        mean = g.parameter(path, "running_mean", norm.running_mean)
        var = g.parameter(path, "running_var", norm.running_var)
    else:
        axes = [0] + list(range(2, x.probe.ndim))
        inputs, attributes = g.axes([x.name], path, axes)
        kept = g.node("ReduceMean", inputs, _join(path, "batch_mean_kept"), keepdims=1, **attributes)
        centered = g.node("Sub", [x.name, kept], _join(path, "centered"))
        squares = g.node("Mul", [centered, centered], _join(path, "squares"))
        mean = g.node("ReduceMean", inputs, _join(path, "batch_mean"), keepdims=0, **attributes)
        inputs, attributes = g.axes([squares], path, axes)
        var = g.node("ReduceMean", inputs, _join(path, "batch_var"), keepdims=0, **attributes)
    return g.node("BatchNormalization", [x.name, scale, shift, mean, var], path, epsilon=float(norm.eps))


def _activation(op, **attributes):
    def convert(g, layer, path, x, out):
        return g.node(op, [x.name], path, **{key: value(layer) for key, value in attributes.items()})
    return convert


def _gelu(g, gelu, path, x, out):
    """One Gelu node from opset 20; before, x/2 * (1 + erf(x/sqrt 2)), or the tanh approximation
    x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) for approximate='tanh'."""
    if g.opset >= GELU_OPSET:
        return g.node("Gelu", [x.name], path, approximate=gelu.approximate)
    if gelu.approximate == "tanh":
        square = g.node("Mul", [x.name, x.name], _join(path, "square"))
        cube = g.node("Mul", [x.name, square], _join(path, "cube"))
        term = g.node("Mul", [cube, g.constant(_join(path, "c"), 0.044715)], _join(path, "c_cube"))
        inner = g.node("Add", [x.name, term], _join(path, "inner"))
        scaled = g.node("Mul", [inner, g.constant(_join(path, "k"), math.sqrt(2 / math.pi))], _join(path, "scaled"))
        curve = g.node("Tanh", [scaled], _join(path, "tanh"))
    else:
        scaled = g.node("Div", [x.name, g.constant(_join(path, "sqrt2"), math.sqrt(2))], _join(path, "div"))
        curve = g.node("Erf", [scaled], _join(path, "erf"))
    one_plus = g.node("Add", [curve, g.constant(_join(path, "one"), 1.0)], _join(path, "one_plus"))
    half_x = g.node("Mul", [x.name, g.constant(_join(path, "half"), 0.5)], _join(path, "half_x"))
    return g.node("Mul", [half_x, one_plus], path)


def _pool(op, **attributes):
    """PyTorch's pooling: floor division (ceil_mode=0), padding on both sides; average pooling
    counts the zero padding in its mean (count_include_pad=1), as convnet's does."""
    def convert(g, pool, path, x, out):
        ph, pw = pool.padding
        return g.node(op, [x.name], path, kernel_shape=list(pool.kernel_size), strides=list(pool.stride),
                      pads=[ph, pw, ph, pw], ceil_mode=0, **attributes)
    return convert


def _adaptive_avg_pool2d(g, pool, path, x, out):
    """GlobalAveragePool for output 1x1; AveragePool when the output size divides the input's
    (equal, non-overlapping bins); otherwise the bins differ in size, which ONNX cannot say."""
    (h, w), (oh, ow) = x.probe.shape[2:], pool.output_size
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [x.name], path)
    if h % oh or w % ow:
        g.problem(path, f"cannot export AdaptiveAvgPool2d(output_size={pool.output_size}) on a {h}x{w} input to "
                        f"ONNX: its bins would differ in size; ONNX pools with one kernel, so output_size must divide "
                        f"the input size (or be 1)")
        return x.name
    return g.node("AveragePool", [x.name], path, kernel_shape=[h // oh, w // ow], strides=[h // oh, w // ow])


def _flatten(g, flatten, path, x, out):
    """Flatten(1, -1) is ONNX's Flatten(axis=1); other dimension ranges a Reshape (dimension 0,
    the batch, copied: a Flatten that merges it cannot keep the batch dynamic)."""
    ndim = x.probe.ndim
    start, end = flatten.start_dim % ndim, flatten.end_dim % ndim
    if start == 0 and end > 0:
        g.problem(path, f"cannot export Flatten(start_dim={flatten.start_dim}, end_dim={flatten.end_dim}) to ONNX: "
                        f"it merges the batch dimension, which the exported graph keeps dynamic")
        return x.name
    if start == 1 and end == ndim - 1:
        return g.node("Flatten", [x.name], path, axis=1)
    shape = g.constant(_join(path, "shape"), [0, *out.shape[1:]], np.int64)
    return g.node("Reshape", [x.name, shape], path)


def _identity(g, layer, path, x, out):
    return x.name


_CONVERTERS = {
    nn.Sequential: None, nn.BasicBlock: None,  # opened by _Exporter.emit
    nn.Conv2d: _conv2d,
    nn.ConvTranspose2d: _conv_transpose2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.ReLU: _activation("Relu"),
    nn.LeakyReLU: _activation("LeakyRelu", alpha=lambda layer: float(layer.negative_slope)),
    nn.Sigmoid: _activation("Sigmoid"),
    nn.Tanh: _activation("Tanh"),
    nn.GELU: _gelu,
    nn.Softmax: _activation("Softmax", axis=lambda layer: layer.dim),
    nn.LogSoftmax: _activation("LogSoftmax", axis=lambda layer: layer.dim),
    nn.MaxPool2d: _pool("MaxPool"),
    nn.AvgPool2d: _pool("AveragePool", count_include_pad=1),
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool2d,
    nn.Flatten: _flatten,
    nn.Dropout: _identity,  # evaluation: nothing is dropped
    nn.Identity: _identity,
}
_CHANNEL_PRESERVING = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.MaxPool2d, nn.AvgPool2d,
                       nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)
