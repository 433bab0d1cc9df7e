"""ONNX attributes read as convnet's arguments: floats as ONNX stores them, 2-D pairs, kernel
shapes and padding ((top, bottom, left, right) from ``pads`` or ``auto_pad``), each refused with
`Unsupported` naming the op and attribute when convnet cannot honour it."""

import numpy as np

from .errors import Unsupported


def shortest_float32(value):
    """The shortest decimal that is ``value`` in float32, as ONNX stores float attributes: 0.2, not
    0.20000000298023224 (so layers show, and compute with, the number the exported model had)."""
    return float(str(np.float32(value)))


def pair_of(op, attributes, name, default):
    """The attribute ``name`` (strides, dilations, ...) as a pair, ``default`` where the node has none."""
    values = tuple(attributes.get(name, default))
    if len(values) != 2:
        raise Unsupported(f"{op} attribute {name}={list(values)}: convnet works on 2-D images")
    return values


def kernel_of(op, attributes, kernel):
    """The kernel's (kH, kW), checked against the optional kernel_shape attribute."""
    if len(kernel) != 2:
        raise Unsupported(f"{op} of {len(kernel)}-D kernels: convnet works on 2-D images")
    if "kernel_shape" in attributes and tuple(attributes["kernel_shape"]) != tuple(kernel):
        raise Unsupported(f"{op} attribute kernel_shape={attributes['kernel_shape']} differs from its weight's "
                          f"{list(kernel)}")
    return tuple(int(k) for k in kernel)


def padding_of(op, attributes, kernel, stride, dilation, input_shape):
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

