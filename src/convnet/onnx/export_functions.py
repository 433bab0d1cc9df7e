"""One writer per autograd Function: the ONNX nodes that compute what the Function computed when
`export` traced the model, for what runs outside the layers `writers.WRITERS` knows (a residual
block's addition, a concatenation, a channel shuffle, a functional ReLU, a mean over H and W).

Each writer takes (graph: `Graph`, fn: the recorded Function, name: the node's name, args: a
`Value` for each of fn's positional inputs (None where it was None), out: the Function's output
Tensor) and returns the name of the ONNX tensor holding the output. Everything a writer needs
comes from what the Function keeps for its backward (``fn.dims``, ``fn.axis``, ``fn.geometry``) and
from the shapes of its inputs and output; a Function whose arguments autograd does not keep
(batch_norm's and layer_norm's eps, hardtanh's bounds) is exported through the layer that calls it.
`FUNCTION_WRITERS` maps each Function class to its writer.
"""

from types import SimpleNamespace

import numpy as np

from .. import ops
from ..functional import activation, pooling, shuffle, special
from ..functional.conv import Conv2d, ConvTranspose2d
from ..functional.linear import Linear
from ..functional.pooling_modes import window_counts
from .graph import join
from .writers import HARD_SWISH_OPSET, REDUCE_AXES_INPUT, _adaptive_avg_pool2d, _conv2d, _conv_transpose2d, _gelu, \
    _linear, clip


def _unary(op, **attributes):
    """One node of ``op``; ``attributes``: {name: its value for the Function}."""
    def convert(g, fn, name, args, out):
        return g.node(op, [args[0].name], name, **{key: value(fn) for key, value in attributes.items()})
    return convert


def _binary(op):
    """Add, Sub, Mul, Div, Pow, MatMul: ONNX broadcasts the operands as NumPy does."""
    def convert(g, fn, name, args, out):
        return g.node(op, [args[0].name, args[1].name], name)
    return convert


def _hardswish(g, fn, name, args, out):
    """HardSwish from opset 14; before it, x * HardSigmoid(x) (alpha 1/6, beta 1/2: relu6(x + 3) / 6)."""
    if g.opset >= HARD_SWISH_OPSET:
        return g.node("HardSwish", [args[0].name], name)
    gate = g.node("HardSigmoid", [args[0].name], join(name, "gate"), alpha=1 / 6, beta=0.5)
    return g.node("Mul", [args[0].name, gate], name)


def _silu(g, fn, name, args, out):
    """x * Sigmoid(x): ONNX has no SiLU before opset 24's Swish, and onnxruntime runs this pair everywhere."""
    return g.node("Mul", [args[0].name, g.node("Sigmoid", [args[0].name], join(name, "sigmoid"))], name)


def _gelu_function(g, fn, name, args, out):
    return _gelu(g, SimpleNamespace(approximate=fn.approximate), name, args[0], out)


def _clip(g, fn, name, args, out):
    return clip(g, name, args[0].name, fn.low, fn.high)


def _axes_input_or_attribute(g, name, source, fn, axes_are_input):
    """(inputs, attributes) of a reduction over fn.axis (None: every axis) keeping fn.keepdims, the axes an
    input where ``axes_are_input``, an attribute otherwise."""
    ndim = source.probe.ndim
    axes = list(range(ndim)) if fn.axis is None else [a % ndim for a in np.atleast_1d(fn.axis).tolist()]
    if axes_are_input:
        return [source.name, g.constant(join(name, "axes"), axes, np.int64)], {"keepdims": int(fn.keepdims)}
    return [source.name], {"axes": axes, "keepdims": int(fn.keepdims)}


def _reduce(op, axes_input_from):
    """ReduceSum (its axes an input from opset 13), ReduceMean (from opset 18)."""
    def convert(g, fn, name, args, out):
        inputs, attributes = _axes_input_or_attribute(g, name, args[0], fn, g.opset >= axes_input_from)
        return g.node(op, inputs, name, **attributes)
    return convert


def _extremum_op(fn):
    """ReduceMax or ReduceMin: which one the Function took, read from its kept output (max if ties)."""
    return "ReduceMax" if np.array_equal(fn.out, np.max(fn.a, axis=fn.axis, keepdims=True)) else "ReduceMin"


def _extremum(g, fn, name, args, out):
    inputs, attributes = _axes_input_or_attribute(g, name, args[0], fn, g.opset >= REDUCE_AXES_INPUT)
    return g.node(_extremum_op(fn), inputs, name, **attributes)


def _reshape(g, fn, name, args, out):
    """Reshape to the traced output's shape, its first dimension 0 (copied from the input's: the dynamic
    batch) when the reshape kept it; a reshape that changes the first dimension is refused."""
    before, after = args[0].probe.shape, out.shape
    if not after or not before or after[0] != before[0]:
        g.problem(name, f"cannot export reshape {tuple(before)} -> {tuple(after)} to ONNX: it changes the first "
                        f"(batch) dimension, which the exported graph keeps dynamic")
        return args[0].name
    return g.node("Reshape", [args[0].name, g.constant(join(name, "shape"), [0, *after[1:]], np.int64)], name)


def _permute(g, fn, name, args, out):
    return g.node("Transpose", [args[0].name], name, perm=[d % out.ndim for d in fn.dims])


def _concatenate(g, fn, name, args, out):
    return g.node("Concat", [arg.name for arg in args], name, axis=int(fn.axis))


def _stack(g, fn, name, args, out):
    axis = fn.axis % out.ndim
    axes = g.constant(join(name, "axes"), [axis], np.int64)
    pieces = [g.node("Unsqueeze", [arg.name, axes], join(name, "unsqueeze")) for arg in args]
    return g.node("Concat", pieces, name, axis=axis)


def _narrow(g, fn, name, args, out):
    """Slice of the kept index (slice(None) before ``axis``, then slice(start, start + length))."""
    axis = len(fn.index) - 1
    piece = fn.index[-1]
    starts, ends, axes = ([value] for value in (piece.start, piece.stop, axis))
    inputs = [args[0].name] + [g.constant(join(name, label), values, np.int64)
                               for label, values in (("starts", starts), ("ends", ends), ("axes", axes))]
    return g.node("Slice", inputs, name)


def _index(g, fn, name, args, out):
    """Basic indexing, ``x[1:3]``, ``x[:, ::2, 0]``: Slice over the sliced axes (Python's clamping is
    ONNX's), then Squeeze of the integer-indexed ones. Arrays, masks, None and Ellipsis are refused."""
    index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
    ints = [isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in index]
    if not all(isinstance(i, slice) and (i.step is None or i.step > 0) or whole for i, whole in zip(index, ints)):
        g.problem(name, f"cannot export indexing with {fn.index!r} to ONNX: only slices with positive steps and "
                        f"integers are written")
        return args[0].name
    bounds = [(i, i + 1 if i != -1 else _END, 1) if whole else (i.start or 0, _END if i.stop is None else i.stop,
                                                                  i.step or 1) for i, whole in zip(index, ints)]
    inputs = [args[0].name] + [g.constant(join(name, label), values, np.int64) for label, values in
                               zip(("starts", "ends", "steps"), zip(*bounds))]
    inputs.insert(3, g.constant(join(name, "axes"), list(range(len(index))), np.int64))
    squeezed = [axis for axis, whole in enumerate(ints) if whole]
    sliced = g.node("Slice", inputs, name if not squeezed else join(name, "slice"))
    if not squeezed:
        return sliced
    return g.node("Squeeze", [sliced, g.constant(join(name, "squeezed"), squeezed, np.int64)], name)


_END = np.iinfo(np.int64).max  # a Slice's end past any dimension


def _channel_shuffle(g, fn, name, args, out):
    """(N, C, *) -> (N, groups, C / groups, *) -> swap those two -> (N, C, *), as torch's channel_shuffle;
    groups read from the kept order (output 1 takes input C / groups)."""
    shape = args[0].probe.shape
    channels = shape[1]
    groups = channels // int(fn.order[1]) if channels > 1 else 1
    split = g.constant(join(name, "grouped"), [0, groups, channels // groups, *shape[2:]], np.int64)
    grouped = g.node("Reshape", [args[0].name, split], join(name, "grouped"))
    perm = [0, 2, 1, *range(3, len(shape) + 1)]
    swapped = g.node("Transpose", [grouped], join(name, "transposed"), perm=perm)
    return g.node("Reshape", [swapped, g.constant(join(name, "shape"), [0, *shape[1:]], np.int64)], name)


def _convolution(g, fn, name, args, out):
    """conv2d's Function: the layer writer on what its geometry keeps."""
    geometry = fn.geometry
    layer = SimpleNamespace(weight=args[1].probe, bias=args[2].probe if args[2] else None, stride=geometry.stride,
                            resolved_padding=geometry.padding, dilation=geometry.dilation, groups=geometry.groups)
    return _conv2d(g, layer, name, args[0], out)


def _transposed_convolution(g, fn, name, args, out):
    """conv_transpose2d's Function: output_padding is what the output has beyond the padded formula."""
    geometry = fn.geometry
    (top, bottom, left, right), kernel = geometry.padding, geometry.kernel
    formula = [(size - 1) * s - before - after + d * (k - 1) + 1 for size, s, before, after, d, k
               in zip(args[0].probe.shape[2:], geometry.stride, (top, left), (bottom, right), geometry.dilation, kernel)]
    layer = SimpleNamespace(weight=args[1].probe, bias=args[2].probe if args[2] else None, stride=geometry.stride,
                            resolved_padding=geometry.padding, dilation=geometry.dilation, groups=geometry.groups,
                            output_padding=tuple(o - f for o, f in zip(out.shape[2:], formula)))
    return _conv_transpose2d(g, layer, name, args[0], out)


def _linear_function(g, fn, name, args, out):
    layer = SimpleNamespace(weight=args[1].probe, bias=args[2].probe if args[2] else None)
    return _linear(g, layer, name, args[0], out)


def _max_pool(g, fn, name, args, out):
    """MaxPool over the windows' reach (ceil_mode's included: padding with -inf shows nowhere), then
    ReLU where the Function rectified (`relu_max_pool2d`)."""
    _, kernel, stride, (top, bottom, left, right), dilation = fn.geometry
    pooled = g.node("MaxPool", [args[0].name], name if fn.rectified is None else join(name, "pool"),
                    kernel_shape=list(kernel), strides=list(stride), pads=[top, left, bottom, right],
                    dilations=list(dilation))
    return pooled if fn.rectified is None else g.node("Relu", [pooled], name)


def _avg_pool(g, fn, name, args, out):
    """AveragePool over the windows' reach, counting the padding where every window divided by the
    kernel's area, leaving it out where each divided by the input pixels it covers; other divisors
    (ceil_mode's clipped windows counting padding, divisor_override) only nn.AvgPool2d's writer knows."""
    shape, kernel, stride, reach = fn.geometry
    top, bottom, left, right = reach
    if np.isscalar(fn.divisor) and fn.divisor == kernel[0] * kernel[1]:
        count_include_pad = 1
    elif np.array_equal(fn.divisor, window_counts(shape[2:], kernel, stride, reach, out.shape[2:], False)):
        count_include_pad = 0
    else:
        g.problem(name, "cannot export avg_pool2d with this divisor to ONNX outside nn.AvgPool2d (ceil_mode counting "
                        "the padding, or divisor_override); call it through nn.AvgPool2d")
        return args[0].name
    return g.node("AveragePool", [args[0].name], name, kernel_shape=list(kernel), strides=list(stride),
                  pads=[top, left, bottom, right], count_include_pad=count_include_pad)


def _adaptive_avg_pool(g, fn, name, args, out):
    return _adaptive_avg_pool2d(g, SimpleNamespace(output_size=tuple(out.shape[2:])), name, args[0], out)


FUNCTION_WRITERS = {
    activation.ReLU: _unary("Relu"),
    activation.LeakyReLU: _unary("LeakyRelu", alpha=lambda fn: float(fn.slope)),
    activation.Sigmoid: _unary("Sigmoid"),
    activation.Tanh: _unary("Tanh"),
    activation.Hardsigmoid: _unary("HardSigmoid", alpha=lambda fn: 1 / 6, beta=lambda fn: 0.5),
    activation.Hardswish: _hardswish,
    activation.SiLU: _silu,
    activation.GELU: _gelu_function,
    activation.Softmax: _unary("Softmax", axis=lambda fn: int(fn.dim)),
    activation.LogSoftmax: _unary("LogSoftmax", axis=lambda fn: int(fn.dim)),
    special.Erf: _unary("Erf"),
    ops.Exp: _unary("Exp"),
    ops.Log: _unary("Log"),
    ops.Sqrt: _unary("Sqrt"),
    ops.Abs: _unary("Abs"),
    ops.Neg: _unary("Neg"),
    ops.Clip: _clip,
    ops.Add: _binary("Add"),
    ops.Sub: _binary("Sub"),
    ops.Mul: _binary("Mul"),
    ops.Div: _binary("Div"),
    ops.Pow: _binary("Pow"),
    ops.MatMul: _binary("MatMul"),
    ops.Sum: _reduce("ReduceSum", axes_input_from=13),
    ops.Mean: _reduce("ReduceMean", axes_input_from=REDUCE_AXES_INPUT),
    ops.Extremum: _extremum,
    ops.Reshape: _reshape,
    ops.Permute: _permute,
    ops.Concatenate: _concatenate,
    ops.Stack: _stack,
    ops.Narrow: _narrow,
    ops.Index: _index,
    shuffle.ChannelShuffle: _channel_shuffle,
    Conv2d: _convolution,
    ConvTranspose2d: _transposed_convolution,
    Linear: _linear_function,
    pooling.MaxPool2d: _max_pool,
    pooling.AvgPool2d: _avg_pool,
    pooling.AdaptiveAvgPool2d: _adaptive_avg_pool,
}
