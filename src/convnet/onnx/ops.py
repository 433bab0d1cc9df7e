"""What each ONNX op becomes in a loaded model: a convnet layer or a function over the graph's values.

A translation reads one node and returns a `Layer` (Conv -> nn.Conv2d holding the node's weight,
BatchNormalization -> nn.BatchNorm2d, Gemm -> nn.Linear, Relu -> nn.ReLU, MaxPool -> nn.MaxPool2d,
...) or a `Call` of a function in `functions` (Add, Reshape, Shape, Concat, ...), `general_ops` and
`windows` (a convolution of weights the graph computes, pooling no layer holds) or, through
`function_ops`, `arithmetic` and `shaping`; or it raises `Unsupported` saying which op or attribute
convnet cannot run. `TRANSLATIONS` lists the ops and the attributes each understands; any other
attribute is refused rather than ignored.
"""

from .. import nn
from .attributes import kernel_of, padding_of, pair_of, shortest_float32
from .errors import Unsupported
from . import general_ops
from .function_ops import FUNCTION_TRANSLATIONS
from .functions import (
    add, concat, div, erf, flatten, flattened_softmax, gather, gemm, identity, matrix_product, mul, reduce_mean,
    reshape, shape, squeeze, sub, unsqueeze,
)
from .translation import Call, Layer
from .windows import window_pool


def _weight_shape(builder, node, op):
    """The shape of the node's weight (input 1): stored, or inferred for one the graph computes."""
    name = node.input[1]
    shape = builder.known[name].shape if name in builder.known else builder.shape(name)
    if shape is None or None in shape:
        raise Unsupported(f"{op} weight {name!r} of a shape the graph does not fix")
    return shape


def _optional(node, index):
    return node.input[index] if len(node.input) > index else ""


def conv(node, attributes, builder):
    """nn.Conv2d holding the stored weight and bias, else `general_ops.conv` of the values."""
    weight_shape = _weight_shape(builder, node, "Conv")
    kernel = kernel_of("Conv", attributes, weight_shape[2:])
    stride = pair_of("Conv", attributes, "strides", (1, 1))
    dilation = pair_of("Conv", attributes, "dilations", (1, 1))
    groups = attributes.get("group", 1)
    padding = padding_of("Conv", attributes, kernel, stride, dilation, builder.shape(node.input[0]))
    bias = _optional(node, 2)
    if not (builder.is_weight(node.input[1]) and (not bias or builder.is_weight(bias))):
        return Call(general_ops.conv, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
                    node.input[:3])
    layer = nn.Conv2d(weight_shape[1] * groups, weight_shape[0], kernel, stride, padding, dilation, groups, bool(bias))
    layer.weight = builder.parameter(node.input[1])
    if bias:
        layer.bias = builder.parameter(bias)
    return Layer(layer, node.input[1])


def conv_transpose(node, attributes, builder):
    """nn.ConvTranspose2d holding the stored weight and bias where the padding is symmetric, else
    `general_ops.conv_transpose` (asymmetric pads, output_shape, auto_pad SAME_*, computed weights)."""
    weight_shape = _weight_shape(builder, node, "ConvTranspose")
    kernel = kernel_of("ConvTranspose", attributes, weight_shape[2:])
    stride = pair_of("ConvTranspose", attributes, "strides", (1, 1))
    dilation = pair_of("ConvTranspose", attributes, "dilations", (1, 1))
    output_padding = pair_of("ConvTranspose", attributes, "output_padding", (0, 0))
    groups = attributes.get("group", 1)
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"ConvTranspose attribute auto_pad={auto_pad}")
    pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(attributes.get("pads", [0, 0, 0, 0]))
    output_shape = attributes.get("output_shape")
    if output_shape is not None and len(output_shape) != 2:
        raise Unsupported(f"ConvTranspose attribute output_shape={output_shape}: convnet works on 2-D images")
    bias = _optional(node, 2)
    stored = builder.is_weight(node.input[1]) and (not bias or builder.is_weight(bias))
    if stored and output_shape is None and auto_pad in ("NOTSET", "VALID") and pads[:2] == pads[2:]:
        layer = nn.ConvTranspose2d(weight_shape[0], weight_shape[1] * groups, kernel, stride, tuple(pads[:2]),
                                   output_padding, groups, bool(bias), dilation)
        layer.weight = builder.parameter(node.input[1])
        if bias:
            layer.bias = builder.parameter(bias)
        return Layer(layer, node.input[1])
    return Call(general_ops.conv_transpose, {"stride": stride, "dilation": dilation, "groups": groups,
                                             "output_padding": output_padding, "pads": pads, "auto_pad": auto_pad,
                                             "output_shape": output_shape}, node.input[:3])


def batch_normalization(node, attributes, builder):
    """nn.BatchNorm2d (or 1d) holding the stored scale, bias, mean and variance; else, and in
    training mode, `general_ops.batch_normalization` of the values."""
    epsilon, training_mode = attributes.get("epsilon", 1e-5), attributes.get("training_mode", 0)
    rank = len(builder.shape(node.input[0]) or ())
    statistics = node.input[1:5]
    if training_mode or rank not in (2, 4) or not all(name in builder.known for name in statistics):
        return Call(general_ops.batch_normalization, {"epsilon": epsilon, "momentum": attributes.get("momentum", 0.9),
                                                      "training_mode": training_mode},
                    node.input[:5], 3 if training_mode else 1)
    # ONNX's momentum weighs the running statistic, torch's (and convnet's) the batch's.
    momentum = shortest_float32(1 - attributes.get("momentum", 0.9))
    scale, mean, var = (builder.known[statistics[index]] for index in (0, 2, 3))
    layer = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(len(scale), epsilon, momentum)
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
    """nn.MaxPool2d where it fits (2-D windows of float values, no indices), else `windows.window_pool`."""
    return _pool(node, attributes, builder, "MaxPool")


def average_pool(node, attributes, builder):
    """nn.AvgPool2d where it fits (2-D windows without dilation), else `windows.window_pool`."""
    return _pool(node, attributes, builder, "AveragePool")


def _pool(node, attributes, builder, op):
    kernel = [int(size) for size in attributes["kernel_shape"]]
    spatial = len(kernel)
    input_shape = builder.shape(node.input[0])
    strides = list(attributes.get("strides", [1] * spatial))
    dilations = list(attributes.get("dilations", [1] * spatial))
    ceil_mode = attributes.get("ceil_mode", 0)
    if spatial == 2:
        padding = padding_of(op, attributes, kernel, strides, dilations, input_shape)
        before, after = [padding[0], padding[2]], [padding[1], padding[3]]
    else:
        before, after = _nd_padding(op, attributes, kernel, strides, dilations, input_shape)
    with_indices = op == "MaxPool" and len(node.output) > 1 and bool(node.output[1])
    floating = builder.types.get(node.input[0]) in (None, 1, 11)
    fits = spatial == 2 and floating and not with_indices and max(before[0], after[0]) <= kernel[0] // 2 \
        and max(before[1], after[1]) <= kernel[1] // 2 and (op == "MaxPool" or dilations == [1, 1])
    if fits:
        padding = (before[0], after[0], before[1], after[1])
        if op == "MaxPool":
            return Layer(nn.MaxPool2d(kernel, strides, padding, dilations, ceil_mode=bool(ceil_mode)), None)
        # Without padding both counts agree: the layer is then the plain one, as torch's default.
        count_include_pad = not any(padding) or bool(attributes.get("count_include_pad", 0))
        return Layer(nn.AvgPool2d(kernel, strides, padding, bool(ceil_mode), count_include_pad), None)
    kind = "max_with_indices" if with_indices else "max" if op == "MaxPool" else "average"
    return Call(window_pool, {"kind": kind, "kernel": kernel, "strides": strides, "dilations": dilations,
                                   "before": before, "after": after, "ceil_mode": ceil_mode,
                                   "count_include_pad": attributes.get("count_include_pad", 0),
                                   "storage_order": attributes.get("storage_order", 0)},
                node.input[:1], 2 if with_indices else 1)


def _nd_padding(op, attributes, kernel, strides, dilations, input_shape):
    """(before, after) per spatial axis of 1-D or 3-D pooling, from pads or auto_pad."""
    spatial = len(kernel)
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", "VALID"):
        pads = [0] * 2 * spatial if auto_pad == "VALID" else list(attributes.get("pads", [0] * 2 * spatial))
        return pads[:spatial], pads[spatial:]
    sizes = (input_shape or ())[2:]
    if len(sizes) != spatial or None in sizes:
        raise Unsupported(f"{op} attribute auto_pad={auto_pad} on an input whose size the graph does not fix")
    before, after = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        small, large = total // 2, total - total // 2
        before.append(small if auto_pad == "SAME_UPPER" else large)
        after.append(large if auto_pad == "SAME_UPPER" else small)
    return before, after


def global_average_pool(node, attributes, builder):
    rank = len(builder.shape(node.input[0]) or (None,) * 4)
    if rank != 4:
        raise Unsupported(f"GlobalAveragePool of a rank-{rank} input: convnet pools (N, C, H, W)")
    return Layer(nn.AdaptiveAvgPool2d(1), None)


def global_max_pool(node, attributes, builder):
    """The maximum over every spatial axis, kept: ReduceMax over axes 2, 3, ..."""
    rank = len(builder.shape(node.input[0]) or ())
    if rank < 3:
        raise Unsupported(f"GlobalMaxPool of an input of rank {rank or 'unknown'}: expected (N, C, ...)")
    return Call(reduce_max_over, {"axes": tuple(range(2, rank))}, node.input[:1])


def reduce_max_over(data, axes):
    return data.max(axis=axes, keepdims=True)


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
    """nn.Dropout, so that the loaded model drops while it trains and not while it evaluates; with
    its mask read or its ratio an input, `general_ops.DropoutWithMask`. A training_mode that the
    graph sets is refused (convnet drops when the model is in train() mode), unless its ratio is 0
    (torch's training-mode export of a network whose dropout was turned off): it drops nothing."""
    ratio_name, training_name = _optional(node, 1), _optional(node, 2)
    if training_name and training_name not in builder.known:
        raise Unsupported(f"Dropout training_mode from the graph's value {training_name!r}: convnet's dropout "
                          f"follows the model's train() and eval()")
    ratio = attributes.get("ratio", 0.5)
    if ratio_name and ratio_name in builder.known:
        ratio, ratio_name = float(builder.known[ratio_name]), ""
    if training_name and bool(builder.known[training_name]) and (ratio_name or ratio != 0):
        raise Unsupported("Dropout with training_mode=true and a ratio above 0")
    if ratio_name or len(node.output) > 1 and node.output[1]:
        return Layer(general_ops.DropoutWithMask(float(ratio)), None, (node.input[0], ratio_name), 2)
    return Layer(nn.Dropout(float(ratio)), None)


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
    "ConvTranspose": (conv_transpose, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                       "output_shape", "pads", "strides"}),
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
    "GlobalMaxPool": (global_max_pool, set()),
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
    **FUNCTION_TRANSLATIONS,
}
