"""What each ONNX op becomes in a loaded model: a convnet layer or a function over the graph's values.

A translation reads one node and returns a `Layer` (Conv -> nn.Conv2d holding the node's weight,
BatchNormalization -> nn.BatchNorm2d, Gemm -> nn.Linear, Relu -> nn.ReLU, MaxPool -> nn.MaxPool2d,
...) or a `Call` of a function in `functions` (Add, Reshape, Shape, Concat, ...), or raises
`Unsupported` saying which op or attribute convnet cannot run. `TRANSLATIONS` lists the ops and the
attributes each understands; any other attribute is refused rather than ignored.
"""

from collections.abc import Callable
from typing import NamedTuple

from .. import nn
from .attributes import kernel_of, padding_of, pair_of, shortest_float32, symmetric_padding
from .errors import Unsupported
from .functions import (
    add, concat, div, erf, flatten, flattened_softmax, gather, gemm, identity, matrix_product, mul, reduce_mean,
    reshape, shape, squeeze, sub, unsqueeze,
)


class Layer(NamedTuple):
    module: nn.Module
    weight: str | None  # the initializer the layer's name comes from


class Call(NamedTuple):
    function: Callable
    attributes: dict
    inputs: tuple | None = None  # the node's inputs the function takes; None: all of them


def conv(node, attributes, builder):
    weight = builder.array(node, 1, "Conv weight")
    bias = builder.array(node, 2, "Conv bias")
    kernel = kernel_of("Conv", attributes, weight.shape[2:])
    stride = pair_of("Conv", attributes, "strides", (1, 1))
    dilation = pair_of("Conv", attributes, "dilations", (1, 1))
    groups = attributes.get("group", 1)
    padding = padding_of("Conv", attributes, kernel, stride, dilation, builder.shape(node.input[0]))
    layer = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], kernel, stride, padding, dilation, groups,
                      bias is not None)
    layer.weight = builder.parameter(node.input[1])
    if bias is not None:
        layer.bias = builder.parameter(node.input[2])
    return Layer(layer, node.input[1])


def conv_transpose(node, attributes, builder):
    weight = builder.array(node, 1, "ConvTranspose weight")
    bias = builder.array(node, 2, "ConvTranspose bias")
    kernel = kernel_of("ConvTranspose", attributes, weight.shape[2:])
    stride = pair_of("ConvTranspose", attributes, "strides", (1, 1))
    dilation = pair_of("ConvTranspose", attributes, "dilations", (1, 1))
    output_padding = pair_of("ConvTranspose", attributes, "output_padding", (0, 0))
    groups = attributes.get("group", 1)
    if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported(f"ConvTranspose attribute auto_pad={attributes['auto_pad']}")
    padding = padding_of("ConvTranspose", attributes, kernel, stride, dilation, None)
    padding = symmetric_padding("ConvTranspose", padding)
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
    kernel = kernel_of("MaxPool", attributes, attributes["kernel_shape"])
    return Layer(nn.MaxPool2d(kernel, *_pooling("MaxPool", attributes, kernel, builder.shape(node.input[0]))), None)


def average_pool(node, attributes, builder):
    kernel = kernel_of("AveragePool", attributes, attributes["kernel_shape"])
    stride, padding = _pooling("AveragePool", attributes, kernel, builder.shape(node.input[0]))
    # Without padding both counts agree: the layer is then the plain one, as torch's default.
    count_include_pad = not any(padding) or bool(attributes.get("count_include_pad", 0))
    return Layer(nn.AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad), None)


def _pooling(op, attributes, kernel, input_shape):
    """(stride, padding) of a MaxPool or AveragePool, whose stride defaults to 1 in ONNX."""
    stride = pair_of(op, attributes, "strides", (1, 1))
    for name, supported in (("ceil_mode", 0), ("dilations", [1, 1])):
        if attributes.get(name, supported) != supported:
            raise Unsupported(f"{op} attribute {name}={attributes[name]}")
    padding = padding_of(op, attributes, kernel, stride, (1, 1), input_shape)
    if max(padding[:2]) > kernel[0] // 2 or max(padding[2:]) > kernel[1] // 2:
        raise Unsupported(f"{op} padding (top, bottom, left, right) = {padding} larger than half its kernel "
                          f"{list(kernel)}")
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
