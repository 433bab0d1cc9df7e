"""One writer per convnet layer: the ONNX nodes that compute what the layer computes in evaluation
mode (BatchNorm with its running statistics, Dropout as nothing).

Each writer takes (graph: `Graph`, layer, path, x: the input `Value`, out: the layer's output for
the example input) and returns the name of the ONNX tensor holding the layer's output. `WRITERS`
maps each exportable layer class to its writer.
"""

import math

import numpy as np

from .. import nn
from ..functional.pooling import _adaptive_bins as adaptive_bins
from ..functional.pooling_modes import pool_reach
from .graph import join

GELU_OPSET = 20       # Gelu is one node from here; before it, its formula in Erf or Tanh nodes
REDUCE_AXES_INPUT = 18  # ReduceMean (and ReduceMax, ReduceMin) take their axes as an input from here, an attribute before
LAYER_NORM_OPSET = 17  # LayerNormalization is one node from here; before it, its formula
HARD_SWISH_OPSET = 14  # HardSwish is one node from here; before it, x * HardSigmoid(x)


def _conv2d(g, conv, path, x, out):
    kernel = conv.weight.shape[2:]
    top, bottom, left, right = conv.resolved_padding
    inputs = [x.name, g.parameter(path, "weight", conv.weight)]
    if conv.bias is not None:
        inputs.append(g.parameter(path, "bias", conv.bias))
    return g.node("Conv", inputs, path, kernel_shape=list(kernel), strides=list(conv.stride),
                  pads=[top, left, bottom, right], dilations=list(conv.dilation), group=conv.groups)


def _conv_transpose2d(g, conv, path, x, out):
    """ConvTranspose: weight (C_in, C_out/groups, kH, kW) is ONNX's layout too, and its pads
    (top, left, bottom, right) are the layer's four sides. output_padding adds rows at the end,
    which is cutting fewer padding rows there, so it goes into the end pads; onnxruntime refuses
    an output_padding of a stride or more (possible when dilation > stride), so what is left
    beyond the padding becomes, at that size, a Pad of zeros before the bias."""
    top, bottom, left, right = conv.resolved_padding
    end_pads, output_padding, zero_rows = [], [], []
    for padding, extra, stride in zip((bottom, right), conv.output_padding, conv.stride):
        end_pads.append(padding - min(padding, extra))
        beyond = extra - min(padding, extra)
        output_padding.append(beyond if beyond < stride else 0)
        zero_rows.append(0 if beyond < stride else beyond)
    weight = g.parameter(path, "weight", conv.weight)
    bias = g.parameter(path, "bias", conv.bias) if conv.bias is not None else None
    attributes = {"kernel_shape": list(conv.weight.shape[2:]), "strides": list(conv.stride),
                  "pads": [top, left, *end_pads], "output_padding": output_padding,
                  "dilations": list(conv.dilation), "group": conv.groups}
    if not any(zero_rows):
        return g.node("ConvTranspose", [x.name, weight] + ([bias] if bias else []), path, **attributes)
    transposed = g.node("ConvTranspose", [x.name, weight], join(path, "transposed"), **attributes)
    pads = g.constant(join(path, "zero_rows"), [0, 0, 0, 0, 0, 0, *zero_rows], np.int64)
    padded = g.node("Pad", [transposed, pads], path if bias is None else join(path, "pad"))
    if bias is None:
        return padded
    shape = g.constant(join(path, "bias_shape"), [-1, 1, 1], np.int64)
    return g.node("Add", [padded, g.node("Reshape", [bias, shape], join(path, "bias_column"))], path)


def _linear(g, linear, path, x, out):
    """Gemm (transB=1) on (N, in); on more dimensions, MatMul by the transposed weight, plus bias."""
    weight = g.parameter(path, "weight", linear.weight)
    bias = g.parameter(path, "bias", linear.bias) if linear.bias is not None else None
    if x.probe.ndim == 2:
        return g.node("Gemm", [x.name, weight] + ([bias] if bias else []), path, transB=1)
    transposed = g.node("Transpose", [weight], join(path, "weight_t"), perm=[1, 0])
    product = g.node("MatMul", [x.name, transposed], path if bias is None else join(path, "matmul"))
    return product if bias is None else g.node("Add", [product, bias], path)


def _batch_norm(g, norm, path, x, out):
    """BatchNormalization with the running statistics, or with the batch's own when the layer
    keeps none (track_running_stats=False normalises by the batch even in evaluation)."""
    channels = norm.num_features
    scale = (g.parameter(path, "weight", norm.weight) if norm.weight is not None
             else g.constant(join(path, "scale"), np.ones(channels)))
    shift = (g.parameter(path, "bias", norm.bias) if norm.bias is not None
             else g.constant(join(path, "shift"), np.zeros(channels)))
    if norm.track_running_stats:
        mean = g.parameter(path, "running_mean", norm.running_mean)
        var = g.parameter(path, "running_var", norm.running_var)
    else:
        axes = [0] + list(range(2, x.probe.ndim))
        inputs, attributes = _reduce_mean_axes(g, [x.name], path, axes)
        kept = g.node("ReduceMean", inputs, join(path, "batch_mean_kept"), keepdims=1, **attributes)
        centered = g.node("Sub", [x.name, kept], join(path, "centered"))
        squares = g.node("Mul", [centered, centered], join(path, "squares"))
        mean = g.node("ReduceMean", inputs, join(path, "batch_mean"), keepdims=0, **attributes)
        inputs, attributes = _reduce_mean_axes(g, [squares], path, axes)
        var = g.node("ReduceMean", inputs, join(path, "batch_var"), keepdims=0, **attributes)
    return g.node("BatchNormalization", [x.name, scale, shift, mean, var], path, epsilon=float(norm.eps))


def _reduce_mean_axes(g, node_inputs, path, axes):
    """ReduceMean's (inputs, attributes) for ``axes``: an attribute before opset 18, an input from it."""
    if g.opset >= REDUCE_AXES_INPUT:
        return node_inputs + [g.constant(join(path, "axes"), axes, np.int64)], {}
    return node_inputs, {"axes": list(axes)}


def reduce_mean(g, source, name, axes, keepdims=1):
    """One ReduceMean node named ``name`` over ``axes`` of ``source``, at any opset."""
    inputs, attributes = _reduce_mean_axes(g, [source], name, axes)
    return g.node("ReduceMean", inputs, name, keepdims=keepdims, **attributes)


def clip(g, name, source, low, high):
    """Clip between ``low`` and ``high`` (either None: unbounded), given as inputs (as ONNX has since opset 11)."""
    bounds = [g.constant(join(name, side), value) if value is not None else ""
              for side, value in (("min", low), ("max", high))]
    return g.node("Clip", [source, *bounds] if high is not None else [source, bounds[0]], name)


def layer_norm(g, norm, name, source):
    """``norm`` (an nn.LayerNorm) on ``source``: LayerNormalization over the last len(normalized_shape)
    dimensions from opset 17; before it, its formula (x - mean) / sqrt(var + eps) * weight + bias,
    mean and the biased var over those dimensions."""
    dims = len(norm.normalized_shape)
    scale = (g.parameter(name, "weight", norm.weight) if norm.weight is not None
             else g.constant(join(name, "scale"), np.ones(norm.normalized_shape)))
    bias = [g.parameter(name, "bias", norm.bias)] if norm.bias is not None else []
    if g.opset >= LAYER_NORM_OPSET:
        return g.node("LayerNormalization", [source, scale, *bias], name, axis=-dims, epsilon=float(norm.eps))
    axes = list(range(-dims, 0))
    centered = g.node("Sub", [source, reduce_mean(g, source, join(name, "mean"), axes)], join(name, "centered"))
    squares = g.node("Mul", [centered, centered], join(name, "squares"))
    var = g.node("Add", [reduce_mean(g, squares, join(name, "var"), axes), g.constant(join(name, "eps"), norm.eps)],
                 join(name, "var_eps"))
    normalized = g.node("Div", [centered, g.node("Sqrt", [var], join(name, "std"))], join(name, "normalized"))
    scaled = g.node("Mul", [normalized, scale], name if not bias else join(name, "scaled"))
    return g.node("Add", [scaled, *bias], name) if bias else scaled


def _layer_norm(g, norm, path, x, out):
    return layer_norm(g, norm, path, x.name)


def _layer_norm_2d(g, norm, path, x, out):
    """LayerNorm2d: the channels moved last, normalised, and moved back (as its forward permutes)."""
    last = g.node("Transpose", [x.name], join(path, "channels_last"), perm=[0, 2, 3, 1])
    normalized = layer_norm(g, norm, join(path, "layer_norm"), last)
    return g.node("Transpose", [normalized], path, perm=[0, 3, 1, 2])


def _clip_layer(low, high):
    def convert(g, layer, path, x, out):
        return clip(g, path, x.name, low(layer), high(layer))
    return convert


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
        square = g.node("Mul", [x.name, x.name], join(path, "square"))
        cube = g.node("Mul", [x.name, square], join(path, "cube"))
        term = g.node("Mul", [cube, g.constant(join(path, "c"), 0.044715)], join(path, "c_cube"))
        inner = g.node("Add", [x.name, term], join(path, "inner"))
        scaled = g.node("Mul", [inner, g.constant(join(path, "k"), math.sqrt(2 / math.pi))], join(path, "scaled"))
        curve = g.node("Tanh", [scaled], join(path, "tanh"))
    else:
        scaled = g.node("Div", [x.name, g.constant(join(path, "sqrt2"), math.sqrt(2))], join(path, "div"))
        curve = g.node("Erf", [scaled], join(path, "erf"))
    one_plus = g.node("Add", [curve, g.constant(join(path, "one"), 1.0)], join(path, "one_plus"))
    half_x = g.node("Mul", [x.name, g.constant(join(path, "half"), 0.5)], join(path, "half_x"))
    return g.node("Mul", [half_x, one_plus], path)


def _pool(op, **attributes):
    """MaxPool or AveragePool with the layer's padding (top, bottom, left, right) and ceil_mode;
    ``attributes``: {name: its value for the layer}. onnxruntime and ONNX's reference follow
    PyTorch's ceil_mode (AveragePool's divisor included), but ONNX's shape inference also counts a
    last window that would start in the end padding, which PyTorch drops. Where it would, the
    windows' reach (`pool_reach`) becomes the padding, with ceil_mode=0: the same windows and
    values (-inf, or uncounted, padding never shows); for an AveragePool that counts its padding,
    the padding is first made real zeros by a Pad, then left uncounted, which divides as before."""
    def convert(g, pool, path, x, out):
        if getattr(pool, "divisor_override", None) is not None:
            g.problem(path, f"cannot export AvgPool2d(divisor_override={pool.divisor_override}) to ONNX: "
                            f"AveragePool divides by the window's size, with no divisor of its own")
            return x.name
        kernel, stride, padding = pool.kernel_size, pool.stride, pool.resolved_padding
        dilation = getattr(pool, "dilation", (1, 1))
        extra = {key: value(pool) for key, value in attributes.items()}
        onnx_hw = tuple(-(-(size + before + after - d * (k - 1) - 1) // s) + 1 for size, k, s, d, before, after
                        in zip(x.probe.shape[2:], kernel, stride, dilation, padding[::2], padding[1::2]))
        source, ceil_mode = x.name, int(pool.ceil_mode)
        if ceil_mode and onnx_hw != tuple(out.shape[2:]):
            _, reach = pool_reach(x.probe.shape[2:], kernel, stride, padding, dilation, True)
            if op == "AveragePool" and pool.count_include_pad:
                top, bottom, left, right = padding
                zeros = g.constant(join(path, "zeros"), [0, 0, top, left, 0, 0, bottom, right], np.int64)
                source = g.node("Pad", [x.name, zeros], join(path, "pad"))
                reach = tuple(r - p for r, p in zip(reach, padding))
                extra["count_include_pad"] = 0
            padding, ceil_mode = reach, 0
        top, bottom, left, right = padding
        return g.node(op, [source], path, kernel_shape=list(kernel), strides=list(stride),
                      pads=[top, left, bottom, right], ceil_mode=ceil_mode, **extra)
    return convert


def _adaptive_avg_pool2d(g, pool, path, x, out):
    """GlobalAveragePool for output 1x1; AveragePool when the output size divides the input's
    (equal, non-overlapping bins); otherwise the bins differ in size (VGG's 7x7 pooling of a small
    image's 1x1 or 2x2 maps), and out = rows @ x @ columns, each constant row averaging one bin
    (`adaptive_bins`): (oH, H) @ (N, C, H, W) @ (W, oW) -> (N, C, oH, oW)."""
    (h, w), (oh, ow) = x.probe.shape[2:], pool.output_size
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [x.name], path)
    if h % oh == 0 and w % ow == 0:
        return g.node("AveragePool", [x.name], path, kernel_shape=[h // oh, w // ow], strides=[h // oh, w // ow])
    rows = g.constant(join(path, "rows"), _bin_averages(h, oh))
    columns = g.constant(join(path, "columns"), _bin_averages(w, ow).T)
    return g.node("MatMul", [g.node("MatMul", [rows, x.name], join(path, "pooled_rows")), columns], path)


def _bin_averages(size, bins):
    """(bins, size): row i averages adaptive bin i of a side of ``size``."""
    averages = np.zeros((bins, size))
    for i, (start, stop) in enumerate(adaptive_bins(size, bins)):
        averages[i, start:stop] = 1 / (stop - start)
    return averages


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
    shape = g.constant(join(path, "shape"), [0, *out.shape[1:]], np.int64)
    return g.node("Reshape", [x.name, shape], path)


def _identity(g, layer, path, x, out):
    return x.name


WRITERS = {
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
    nn.Hardtanh: _clip_layer(lambda layer: float(layer.min_val), lambda layer: float(layer.max_val)),
    nn.ReLU6: _clip_layer(lambda layer: 0.0, lambda layer: 6.0),
    nn.LayerNorm: _layer_norm,
    nn.LayerNorm2d: _layer_norm_2d,
    nn.Softmax: _activation("Softmax", axis=lambda layer: layer.dim),
    nn.LogSoftmax: _activation("LogSoftmax", axis=lambda layer: layer.dim),
    nn.MaxPool2d: _pool("MaxPool", dilations=lambda layer: list(layer.dilation)),
    nn.AvgPool2d: _pool("AveragePool", count_include_pad=lambda layer: int(layer.count_include_pad)),
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool2d,
    nn.Flatten: _flatten,
    nn.Dropout: _identity,  # evaluation: nothing is dropped
    nn.Identity: _identity,
}
