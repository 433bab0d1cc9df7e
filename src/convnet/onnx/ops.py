"""What each ONNX op becomes in a loaded model: a convnet layer or a function over the graph's values.

A translation reads one node and returns a `Layer` (Conv -> nn.Conv2d holding the node's weight,
BatchNormalization -> nn.BatchNorm2d, Gemm -> nn.Linear, Relu -> nn.ReLU, MaxPool -> nn.MaxPool2d,
...) or a `Call` of a function here (Add, Reshape, Shape, Concat, ...), or raises `Unsupported`
saying which op or attribute convnet cannot run. `TRANSLATIONS` lists the ops and the attributes
each understands; any other attribute is refused rather than ignored.

The functions take the graph's values as they come at run time: Tensors (activations, weights) or
NumPy arrays (constants, and the int64 shapes that torch's flatten computes with Shape, Gather,
Unsqueeze and Concat), and return a Tensor when any input is one.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .. import nn
from ..functional.activation import erf_approximation
from ..functional.conv import Conv2d as Convolution
from ..functional.conv import ConvGeometry
from ..ops import Add, Div, Mul, Sub, matmul
from ..tensor import Function, Tensor, concatenate
from ..errors import ConvnetError


class Unsupported(ConvnetError):
    """A node convnet cannot run; the message names the op or attribute, e.g. 'MaxPool attribute ceil_mode=1'."""


class Layer(NamedTuple):
    module: nn.Module
    weight: str | None  # the initializer the layer's name comes from


class Call(NamedTuple):
    function: Callable
    attributes: dict
    inputs: tuple | None = None  # the node's inputs the function takes; None: all of them


# ---------------------------------------------------------------------- layers ONNX needs beyond nn's
class PaddedConv2d(nn.Conv2d):
    """`nn.Conv2d` padded differently on each side, ``padding`` = (top, bottom, left, right), as
    ONNX's ``pads`` and ``auto_pad=SAME_UPPER/SAME_LOWER`` may (an even kernel's 'same' padding,
    or a stride that does not divide the input)."""

    def __init__(self, in_channels, out_channels, kernel_size, padding, **options):
        super().__init__(in_channels, out_channels, kernel_size, **options)
        self.padding = self.resolved_padding = tuple(padding)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        geometry = ConvGeometry.of_conv2d(tuple(x.shape[2:]), self.kernel_size, self.stride, self.padding,
                                          self.dilation, self.groups)
        if min(geometry.output_hw) < 1:
            raise ValueError(f"kernel {self.kernel_size} with dilation {self.dilation} is larger than the padded "
                             f"input {geometry.padded_hw}")
        return Convolution.apply(x, self.weight, self.bias, geometry=geometry)


class ExclusiveAvgPool2d(nn.AvgPool2d):
    """`nn.AvgPool2d` whose windows average only the input pixels they cover, leaving the zero
    padding out of the count (torch's count_include_pad=False, ONNX's count_include_pad=0)."""

    def forward(self, x):
        covered = F.avg_pool2d(np.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), self.kernel_size, self.stride,
                               self.padding)  # the fraction of each window inside the input
        return super().forward(x) / covered

    def extra_repr(self):
        return super().extra_repr() + ", count_include_pad=False"


# ---------------------------------------------------------------------- functions over values
def _any_tensor(*values):
    return any(isinstance(value, Tensor) for value in values)


def add(a, b):
    return Add.apply(a, b) if _any_tensor(a, b) else np.add(a, b)


def sub(a, b):
    return Sub.apply(a, b) if _any_tensor(a, b) else np.subtract(a, b)


def mul(a, b):
    return Mul.apply(a, b) if _any_tensor(a, b) else np.multiply(a, b)


def div(a, b):
    if _any_tensor(a, b):
        return Div.apply(a, b)
    if np.issubdtype(np.result_type(a, b), np.integer):
        return (np.abs(a) // np.abs(b)) * np.sign(a) * np.sign(b)  # ONNX truncates toward zero; // floors
    return np.divide(a, b)


def matrix_product(a, b):
    return matmul(a, b) if _any_tensor(a, b) else np.matmul(a, b)


def gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    """alpha * A' @ B' + beta * C, A' = A^T if transA (M, K), B' = B^T if transB (K, N), C broadcast to
    (M, N); the arguments are named as Gemm's attributes."""
    out = matrix_product(a.T if transA else a, b.T if transB else b)
    if alpha != 1:
        out = mul(out, np.asarray(alpha, dtype=out.dtype))
    if c is not None:
        out = add(out, c if beta == 1 else mul(c, np.asarray(beta, dtype=out.dtype)))
    return out


class Erf(Function):
    """out = erf(x) (Abramowitz & Stegun, |error| < 1.5e-7, as `F.gelu`'s); d/dx = 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_approximation(x).astype(x.dtype, copy=False)

    def backward(self, grad):
        return grad * (2 / math.sqrt(math.pi)) * np.exp(-self.x * self.x)


def erf(x):
    return Erf.apply(x) if isinstance(x, Tensor) else erf_approximation(x).astype(x.dtype, copy=False)


def identity(x):
    return x


def reshape(data, shape, allowzero=0):
    """``shape`` may hold -1 (inferred) and, unless ``allowzero``, 0 (the input's size there)."""
    target = [int(size) for size in shape]
    if not allowzero:
        target = [data.shape[axis] if size == 0 else size for axis, size in enumerate(target)]
    return data.reshape(tuple(target))


def flatten(data, axis=1):
    """(d0, ..., dr-1) -> (d0 * ... * d(axis-1), d(axis) * ... * dr-1)."""
    axis = axis + data.ndim if axis < 0 else axis
    return data.reshape(math.prod(data.shape[:axis]), math.prod(data.shape[axis:]))


def shape(data, start=0, end=None):
    return np.array(data.shape[start:end], dtype=np.int64)


def gather(data, indices, axis=0):
    indices = np.asarray(indices)
    if isinstance(data, Tensor):
        return data[(slice(None),) * (axis % data.ndim) + (indices,)]
    return np.take(data, indices, axis=axis)


def unsqueeze(data, axes):
    axes = [int(axis) for axis in np.atleast_1d(axes)]
    rank = data.ndim + len(axes)
    target = list(data.shape)
    for axis in sorted(axis % rank for axis in axes):
        target.insert(axis, 1)
    return data.reshape(tuple(target))


def squeeze(data, axes=None):
    if axes is None:
        axes = [axis for axis, size in enumerate(data.shape) if size == 1]
    axes = {int(axis) % data.ndim for axis in np.atleast_1d(axes)}
    if any(data.shape[axis] != 1 for axis in axes):
        raise ValueError(f"Squeeze: expected size 1 on axes {sorted(axes)}, got shape {tuple(data.shape)}")
    return data.reshape(tuple(size for axis, size in enumerate(data.shape) if axis not in axes))


def concat(*values, axis):
    return concatenate(values, axis=axis) if _any_tensor(*values) else np.concatenate(values, axis=axis)


def reduce_mean(data, axes, keepdims):
    """The mean over ``axes`` (None: all)."""
    mean = data.mean(axis=axes, keepdims=bool(keepdims))
    return mean if isinstance(data, Tensor) else np.asarray(mean)


def flattened_softmax(x, axis, log):
    """Softmax before opset 13: over the input flattened to 2-D at ``axis``, as one distribution per row."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    rows = flatten(x, axis)
    return (F.log_softmax if log else F.softmax)(rows, dim=1).reshape(x.shape)


# ---------------------------------------------------------------------- translations
def shortest_float32(value):
    """The shortest decimal that is ``value`` in float32, as ONNX stores float attributes: 0.2, not
    0.20000000298023224 (so layers show, and compute with, the number the exported model had)."""
    return float(str(np.float32(value)))


def _pair(op, attributes, name, default):
    values = tuple(attributes.get(name, default))
    if len(values) != 2:
        raise Unsupported(f"{op} attribute {name}={list(values)}: convnet works on 2-D images")
    return values


def _kernel(op, attributes, kernel):
    """The kernel's (kH, kW), checked against the optional kernel_shape attribute."""
    if len(kernel) != 2:
        raise Unsupported(f"{op} of {len(kernel)}-D kernels: convnet works on 2-D images")
    if "kernel_shape" in attributes and tuple(attributes["kernel_shape"]) != tuple(kernel):
        raise Unsupported(f"{op} attribute kernel_shape={attributes['kernel_shape']} differs from its weight's "
                          f"{list(kernel)}")
    return tuple(int(k) for k in kernel)


def _padding(op, attributes, kernel, stride, dilation, input_shape):
    """(top, bottom, left, right) from ``pads`` ([top, left, bottom, right]) or ``auto_pad``.

    SAME_UPPER and SAME_LOWER pad so that H' = ceil(H / stride), the odd row or column at the end
    (UPPER) or the start (LOWER); with a stride above 1 that depends on H, so it must be static.
    """
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = attributes.get("pads", [0, 0, 0, 0])
        if len(pads) != 4:
            raise Unsupported(f"{op} attribute pads={pads}: convnet works on 2-D images")
        return pads[0], pads[2], pads[1], pads[3]
    if auto_pad == "VALID":
        return 0, 0, 0, 0
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"{op} attribute auto_pad={auto_pad}")
    padding = []
    for axis in (0, 1):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        if stride[axis] == 1:
            total = span - 1
        else:
            size = input_shape[2 + axis] if input_shape is not None and len(input_shape) == 4 else None
            if size is None:
                raise Unsupported(f"{op} attribute auto_pad={auto_pad} with strides={list(stride)} on an input whose "
                                  f"height and width the graph does not fix")
            total = max((-(-size // stride[axis]) - 1) * stride[axis] + span - size, 0)
        small, large = total // 2, total - total // 2
        padding += [small, large] if auto_pad == "SAME_UPPER" else [large, small]
    return tuple(padding)


def _symmetric(op, padding):
    top, bottom, left, right = padding
    if (top, left) != (bottom, right):
        raise Unsupported(f"{op} with different padding on opposite sides, (top, bottom, left, right) = {padding}")
    return top, left


def conv(node, attributes, builder):
    weight = builder.array(node, 1, "Conv weight")
    bias = builder.array(node, 2, "Conv bias")
    kernel = _kernel("Conv", attributes, weight.shape[2:])
    stride = _pair("Conv", attributes, "strides", (1, 1))
    dilation = _pair("Conv", attributes, "dilations", (1, 1))
    groups = attributes.get("group", 1)
    padding = _padding("Conv", attributes, kernel, stride, dilation, builder.shape(node.input[0]))
    out_channels, in_channels = weight.shape[0], weight.shape[1] * groups
    options = {"stride": stride, "dilation": dilation, "groups": groups, "bias": bias is not None}
    top, bottom, left, right = padding
    if (top, left) == (bottom, right):
        layer = nn.Conv2d(in_channels, out_channels, kernel, padding=(top, left), **options)
    else:
        layer = PaddedConv2d(in_channels, out_channels, kernel, padding, **options)
    layer.weight = builder.parameter(node.input[1])
    if bias is not None:
        layer.bias = builder.parameter(node.input[2])
    return Layer(layer, node.input[1])


def conv_transpose(node, attributes, builder):
    weight = builder.array(node, 1, "ConvTranspose weight")
    bias = builder.array(node, 2, "ConvTranspose bias")
    kernel = _kernel("ConvTranspose", attributes, weight.shape[2:])
    stride = _pair("ConvTranspose", attributes, "strides", (1, 1))
    dilation = _pair("ConvTranspose", attributes, "dilations", (1, 1))
    output_padding = _pair("ConvTranspose", attributes, "output_padding", (0, 0))
    groups = attributes.get("group", 1)
    if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported(f"ConvTranspose attribute auto_pad={attributes['auto_pad']}")
    padding = _symmetric("ConvTranspose", _padding("ConvTranspose", attributes, kernel, stride, dilation, None))
    layer = nn.ConvTranspose2d(weight.shape[0], weight.shape[1] * groups, kernel, stride, padding, output_padding,
                               groups, bias is not None, dilation)
    layer.weight = builder.parameter(node.input[1])
    if bias is not None:
        layer.bias = builder.parameter(node.input[2])
    return Layer(layer, node.input[1])


def batch_normalization(node, attributes, builder):
    if attributes.get("training_mode", 0):
        raise Unsupported("BatchNormalization attribute training_mode=1")
    # All four stored in the file: scale and B become the layer's parameters, mean and var its buffers.
    scale, _, mean, var = (builder.array(node, index, f"BatchNormalization {what}")
                           for index, what in enumerate(("scale", "B", "input_mean", "input_var"), start=1))
    rank = len(builder.shape(node.input[0]) or ())
    if rank not in (2, 4):
        raise Unsupported(f"BatchNormalization of an input of rank {rank or 'unknown'}: convnet normalises "
                          f"(N, C) and (N, C, H, W)")
    # ONNX's momentum weighs the running statistic, torch's (and convnet's) the batch's.
    momentum = shortest_float32(1 - attributes.get("momentum", 0.9))
    layer = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(len(scale), attributes.get("epsilon", 1e-5), momentum)
    layer.weight, layer.bias = builder.parameter(node.input[1]), builder.parameter(node.input[2])
    layer.running_mean, layer.running_var = mean.copy(), var.copy()
    return Layer(layer, node.input[1])


def gemm_node(node, attributes, builder):
    """Y = alpha * A' @ B' + beta * C: nn.Linear when that is what it is (torch's Linear: B a stored
    (N, K) weight with transB=1, C a stored (N,) bias or none, alpha = beta = 1), else `gemm`."""
    weight, bias = (node.input[i] if len(node.input) > i else "" for i in (1, 2))
    transposed = not attributes.get("transB", 0)
    if builder.is_weight(weight) and builder.known[weight].ndim == 2:
        out_features = builder.known[weight].shape[1 if transposed else 0]
        plain = not attributes.get("transA", 0) and attributes.get("alpha", 1.0) == 1
        if plain and (not bias or attributes.get("beta", 1.0) == 1 and builder.is_weight(bias)
                      and builder.known[bias].shape == (out_features,)):
            return _linear(builder, weight, transposed, bias)
    return Call(gemm, attributes)


def matmul_node(node, attributes, builder, bias=""):
    """A @ B: nn.Linear when B is a stored 2-D weight (with ``bias``, the stored (N,) vector an Add
    adds to the product), else `matrix_product`."""
    if builder.is_weight(node.input[1]) and builder.known[node.input[1]].ndim == 2:
        return _linear(builder, node.input[1], transposed=True, bias=bias)
    return Call(matrix_product, attributes)


def _linear(builder, weight, transposed, bias):
    """nn.Linear whose weight is the initializer ``weight``, (N, K), or its transpose when ``transposed``."""
    out_features, in_features = builder.known[weight].shape[::-1] if transposed else builder.known[weight].shape
    layer = nn.Linear(in_features, out_features, bias=bool(bias))
    layer.weight = builder.parameter(weight, transposed)
    if bias:
        layer.bias = builder.parameter(bias)
    return Layer(layer, weight)


def max_pool(node, attributes, builder):
    kernel = _kernel("MaxPool", attributes, attributes["kernel_shape"])
    return Layer(nn.MaxPool2d(kernel, *_pooling("MaxPool", attributes, kernel, builder.shape(node.input[0]))), None)


def average_pool(node, attributes, builder):
    kernel = _kernel("AveragePool", attributes, attributes["kernel_shape"])
    stride, padding = _pooling("AveragePool", attributes, kernel, builder.shape(node.input[0]))
    exclusive = any(padding) and not attributes.get("count_include_pad", 0)
    return Layer((ExclusiveAvgPool2d if exclusive else nn.AvgPool2d)(kernel, stride, padding), None)


def _pooling(op, attributes, kernel, input_shape):
    """(stride, padding) of a MaxPool or AveragePool, whose stride defaults to 1 in ONNX."""
    stride = _pair(op, attributes, "strides", (1, 1))
    for name, supported in (("ceil_mode", 0), ("dilations", [1, 1])):
        if attributes.get(name, supported) != supported:
            raise Unsupported(f"{op} attribute {name}={attributes[name]}")
    padding = _symmetric(op, _padding(op, attributes, kernel, stride, (1, 1), input_shape))
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise Unsupported(f"{op} padding {list(padding)} larger than half its kernel {list(kernel)}")
    return stride, padding


def global_average_pool(node, attributes, builder):
    rank = len(builder.shape(node.input[0]) or (None,) * 4)
    if rank != 4:
        raise Unsupported(f"GlobalAveragePool of a rank-{rank} input: convnet pools (N, C, H, W)")
    return Layer(nn.AdaptiveAvgPool2d(1), None)


def reduce_mean_node(node, attributes, builder):
    """The mean over axes from the attribute (before opset 18) or the second input; over the last
    two axes of an (N, C, H, W) input, kept, that is nn.AdaptiveAvgPool2d(1) (torch's lowering of it)."""
    if "axes" in attributes:
        axes = attributes["axes"]
    else:
        axes = builder.array(node, 1, "ReduceMean axes")
        axes = [] if axes is None else [int(axis) for axis in axes]
    keepdims = attributes.get("keepdims", 1)
    if not axes and attributes.get("noop_with_empty_axes", 0):
        return Call(identity, {}, node.input[:1])
    input_shape = builder.shape(node.input[0])
    if input_shape is not None and len(input_shape) == 4 and keepdims and {axis % 4 for axis in axes} == {2, 3}:
        return Layer(nn.AdaptiveAvgPool2d(1), None)
    return Call(reduce_mean, {"axes": tuple(axes) or None, "keepdims": keepdims}, node.input[:1])


def softmax_node(node, attributes, builder):
    log = node.op_type == "LogSoftmax"
    if builder.opset < 13:
        return Call(flattened_softmax, {"axis": attributes.get("axis", 1), "log": log})
    axis = attributes.get("axis", -1)
    return Layer(nn.LogSoftmax(axis) if log else nn.Softmax(axis), None)


def gelu_node(node, attributes, builder):
    approximate = attributes.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"Gelu attribute approximate={approximate}")
    return Layer(nn.GELU(approximate), None)


def dropout_node(node, attributes, builder):
    """nn.Dropout, so that the loaded model drops while it trains and not while it evaluates."""
    ratio = attributes["ratio"] if "ratio" in attributes else builder.array(node, 1, "Dropout ratio")
    training = builder.array(node, 2, "Dropout training_mode")
    if training is not None and bool(training):
        raise Unsupported("Dropout with training_mode=true")
    return Layer(nn.Dropout(0.5 if ratio is None else float(ratio)), None)


def _axes_from_attribute_or_input(function):
    """Unsqueeze and Squeeze: axes as an attribute before opset 13, as the second input since."""
    def translate(node, attributes, builder):
        if "axes" in attributes:
            return Call(function, {"axes": attributes["axes"]}, node.input[:1])
        return Call(function, {})
    return translate


def _layer(make):
    return lambda node, attributes, builder: Layer(make(attributes), None)


def _call(function, **defaults):
    """A translation calling ``function`` with the node's attributes, ONNX's defaults filled in."""
    return lambda node, attributes, builder: Call(function, {**defaults, **attributes})


# op type -> (translation, the attributes it understands)
TRANSLATIONS = {
    "Conv": (conv, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    "ConvTranspose": (conv_transpose, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "pads",
                                       "strides"}),
    "BatchNormalization": (batch_normalization, {"epsilon", "momentum", "training_mode"}),
    "Gemm": (gemm_node, {"alpha", "beta", "transA", "transB"}),
    "MatMul": (matmul_node, set()),
    "Relu": (_layer(lambda attributes: nn.ReLU()), set()),
    "LeakyRelu": (_layer(lambda attributes: nn.LeakyReLU(attributes.get("alpha", 0.01))), {"alpha"}),
    "Sigmoid": (_layer(lambda attributes: nn.Sigmoid()), set()),
    "Tanh": (_layer(lambda attributes: nn.Tanh()), set()),
    "Gelu": (gelu_node, {"approximate"}),
    "Erf": (_call(erf), set()),
    "Softmax": (softmax_node, {"axis"}),
    "LogSoftmax": (softmax_node, {"axis"}),
    "MaxPool": (max_pool, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}),
    "AveragePool": (average_pool, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                                   "strides"}),
    "GlobalAveragePool": (global_average_pool, set()),
    "ReduceMean": (reduce_mean_node, {"axes", "keepdims", "noop_with_empty_axes"}),
    "Dropout": (dropout_node, {"ratio", "seed"}),
    "Flatten": (_call(flatten, axis=1), {"axis"}),
    "Reshape": (_call(reshape, allowzero=0), {"allowzero"}),
    "Shape": (_call(shape, start=0), {"start", "end"}),
    "Gather": (_call(gather, axis=0), {"axis"}),
    "Unsqueeze": (_axes_from_attribute_or_input(unsqueeze), {"axes"}),
    "Squeeze": (_axes_from_attribute_or_input(squeeze), {"axes"}),
    "Concat": (_call(concat), {"axis"}),
    "Add": (_call(add), set()),
    "Sub": (_call(sub), set()),
    "Mul": (_call(mul), set()),
    "Div": (_call(div), set()),
    "Identity": (_call(identity), set()),
}
