"""Translations of the ONNX ops that a loaded model runs as functions of `arithmetic` and `shaping`
(elementwise math, comparisons, casts, reductions, activations without a layer, shape ops): each
reads one node and returns a `Call`, or raises `Unsupported` naming what convnet cannot run.
`FUNCTION_TRANSLATIONS` lists them with the attributes each understands (as `ops.TRANSLATIONS`).
"""

import numpy as np

from . import arithmetic as A
from . import shaping as S
from .errors import Unsupported
from .translation import Call


def _call(function, **defaults):
    """A translation calling ``function`` with the node's attributes, ONNX's defaults filled in."""
    return lambda node, attributes, builder: Call(function, {**defaults, **attributes})


def _numpy_dtype(builder, to):
    onnx = builder.onnx
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(to))
    except (KeyError, TypeError, ValueError):
        raise Unsupported(f"Cast attribute to={onnx.TensorProto.DataType.Name(to)}") from None


def cast_node(node, attributes, builder):
    dtype = _numpy_dtype(builder, attributes["to"])
    if dtype.kind not in "fiub" or dtype.itemsize > 8 or dtype == np.float16:
        raise Unsupported(f"Cast to {dtype}: convnet computes in float32, float64, integers and booleans")
    return Call(A.cast, {"dtype": dtype}, node.input[:1])


def _reduce(kind, axes_input_since):
    """ReduceSum (axes an input from opset 13), ReduceMean, ReduceMax, ReduceMin (from opset 18)."""
    def translate(node, attributes, builder):
        keepdims, empty_is_noop = attributes.get("keepdims", 1), attributes.get("noop_with_empty_axes", 0)
        if builder.opset < axes_input_since:
            axes = attributes.get("axes")
            return Call(reduce_node, {"kind": kind, "keepdims": keepdims, "noop": 0,
                                      "fixed_axes": None if axes is None else tuple(axes)}, node.input[:1])
        return Call(reduce_node, {"kind": kind, "keepdims": keepdims, "noop": empty_is_noop, "fixed_axes": None},
                    node.input[:2])
    return translate


def reduce_node(data, axes=None, kind="sum", keepdims=1, noop=0, fixed_axes=None):
    """ONNX's Reduce*: over ``fixed_axes`` (the attribute) or ``axes`` (the input); no axes means all
    of them, or none (the input itself) with noop_with_empty_axes."""
    axes = fixed_axes if fixed_axes is not None else (None if axes is None or np.size(axes) == 0
                                                      else [int(axis) for axis in np.asarray(axes).reshape(-1)])
    if axes is None and noop:
        return data
    return A.reduce(data, axes, keepdims, kind)


def clip_node(node, attributes, builder):
    """Before opset 11 min and max are attributes; since, optional inputs."""
    if builder.opset < 11:
        return Call(A.clip, {"low": attributes.get("min"), "high": attributes.get("max")}, node.input[:1])
    return Call(A.clip, {})


def split_node(node, attributes, builder):
    axis = attributes.get("axis", 0)
    if "split" in attributes:  # before opset 13
        return Call(S.split, {"split": attributes["split"], "axis": axis}, node.input[:1], len(node.output))
    return Call(S.split, {"axis": axis, "num_outputs": attributes.get("num_outputs"), "outputs": len(node.output)},
                node.input[:2], len(node.output))


def pad_node(node, attributes, builder):
    mode = attributes.get("mode", "constant")
    if mode != "constant":
        raise Unsupported(f"Pad attribute mode={mode}: convnet pads with a constant")
    if builder.opset < 11:
        return Call(_pad_attributes, {"pads": attributes["pads"], "value": attributes.get("value", 0.0)},
                    node.input[:1])
    return Call(S.pad, {})


def _pad_attributes(data, pads, value):
    return S.pad(data, pads, value)


def constant_of_shape_node(node, attributes, builder):
    return Call(S.constant_of_shape, {"value": attributes.get("value")})


def layer_normalization_node(node, attributes, builder):
    if attributes.get("stash_type", 1) != 1:
        raise Unsupported(f"LayerNormalization attribute stash_type={attributes['stash_type']}")
    return Call(A.layer_normalization, {"axis": attributes.get("axis", -1),
                                        "epsilon": attributes.get("epsilon", 1e-5)}, node.input[:3])


def _compare(relation):
    return lambda node, attributes, builder: Call(A.compare, {"relation": relation})


# op type -> (translation, the attributes it understands)
FUNCTION_TRANSLATIONS = {
    "Exp": (_call(A.exp), set()),
    "Log": (_call(A.log), set()),
    "Sqrt": (_call(A.sqrt), set()),
    "Neg": (_call(A.neg), set()),
    "Abs": (_call(A.absolute), set()),
    "Reciprocal": (_call(A.reciprocal), set()),
    "Pow": (_call(A.power), set()),
    "Max": (_call(A.variadic_max), set()),
    "Min": (_call(A.variadic_min), set()),
    "Sum": (_call(A.variadic_sum), set()),
    "Mean": (_call(A.variadic_mean), set()),
    "Where": (_call(A.where), set()),
    "Less": (_compare(np.less), set()),
    "LessOrEqual": (_compare(np.less_equal), set()),
    "Greater": (_compare(np.greater), set()),
    "GreaterOrEqual": (_compare(np.greater_equal), set()),
    "Equal": (_compare(np.equal), set()),
    "And": (_compare(np.logical_and), set()),
    "Or": (_compare(np.logical_or), set()),
    "Not": (_call(A.logical_not), set()),
    "Cast": (cast_node, {"to", "saturate"}),
    "CastLike": (_call(A.cast_like), {"saturate"}),
    "ReduceSum": (_reduce("sum", 13), {"axes", "keepdims", "noop_with_empty_axes"}),
    "ReduceMax": (_reduce("max", 18), {"axes", "keepdims", "noop_with_empty_axes"}),
    "ReduceMin": (_reduce("min", 18), {"axes", "keepdims", "noop_with_empty_axes"}),
    "Clip": (clip_node, {"min", "max"}),
    "HardSigmoid": (_call(A.hard_sigmoid, alpha=0.2, beta=0.5), {"alpha", "beta"}),
    "HardSwish": (_call(A.hard_swish), set()),
    "Elu": (_call(A.elu, alpha=1.0), {"alpha"}),
    "Selu": (_call(A.selu), {"alpha", "gamma"}),
    "Softplus": (_call(A.softplus), set()),
    "PRelu": (_call(A.prelu), set()),
    "LayerNormalization": (layer_normalization_node, {"axis", "epsilon", "stash_type"}),
    "Transpose": (_call(S.transpose), {"perm"}),
    "Slice": (_call(S.slice_), set()),
    "Split": (split_node, {"axis", "split", "num_outputs"}),
    "SplitToSequence": (_call(S.split_to_sequence), {"axis", "keepdims"}),
    "SequenceAt": (_call(S.sequence_at), set()),
    "Pad": (pad_node, {"mode", "pads", "value"}),
    "Expand": (_call(S.expand), set()),
    "ConstantOfShape": (constant_of_shape_node, {"value"}),
}
