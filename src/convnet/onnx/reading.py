"""Reading an ONNX file: the checked ModelProto, each initializer's values (external data only
from the model's folder) and the shapes ONNX's inference gives the graph's values."""

import math
import re

import numpy as np

from .errors import OnnxError

OLDEST_OPSET = 11  # each op is read as the model's opset defines it, back to 11 (Softmax's old meaning included)
DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(onnx, path):
    """The ModelProto at ``path``, checked by onnx.checker (external data beside it included) and of
    an opset convnet reads."""
    from google.protobuf.message import DecodeError  # onnx's own dependency, there when onnx is
    try:
        data = path.read_bytes()
    except OSError as error:
        raise OnnxError(f"{path}: cannot read it: {error.strerror}") from None
    try:
        model = onnx.load_model_from_string(data)
    except DecodeError as error:
        raise OnnxError(f"{path}: not an ONNX model, or a truncated one ({error})") from None
    try:
        onnx.checker.check_model(str(path))  # by path, so that external data is looked for beside the model
    except onnx.checker.ValidationError as error:
        # The checker's message for a value nothing provides can name another field ("Field 'shape'
        # of 'type' is required"): that value, when there is one, is what was wrong.
        unprovided = _unprovided_value(model.graph)
        raise OnnxError(f"{path}: {unprovided or 'fails onnx.checker: ' + ' '.join(str(error).split())}") from None
    opset = next((entry.version for entry in model.opset_import if entry.domain in DEFAULT_DOMAINS), 0)
    if opset < OLDEST_OPSET:
        raise OnnxError(f"{path}: opset {opset} is older than {OLDEST_OPSET}, the oldest convnet reads; "
                        f"onnx.version_converter.convert_version(model, 13) updates it")
    return model


def _unprovided_value(graph):
    """The first value a node reads before anything provides it, said in words; None if none."""
    provided = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    writers = {name: node for node in graph.node for name in node.output}
    for node in graph.node:
        for name in node.input:
            if name not in provided:
                label = f"node {node.name or node.output[0]!r} ({node.op_type})"
                writer = writers.get(name)
                if writer is None:
                    return f"{label} reads {name!r}, which no initializer, graph input or node provides"
                return (f"{label} reads {name!r} before node {writer.name or writer.output[0]!r} ({writer.op_type}) "
                        f"writes it: a cycle, or nodes out of topological order")
        provided.update(node.output)
    return None


def tensor_array(onnx, tensor, path):
    """A TensorProto's values; external data is read from the model's folder, and only from there."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return onnx.numpy_helper.to_array(tensor)
    info = {entry.key: entry.value for entry in tensor.external_data}
    folder = path.parent.resolve()
    file = (folder / info.get("location", "")).resolve()
    if not file.is_relative_to(folder):
        raise OnnxError(f"{path}: initializer {tensor.name!r} is stored at {info.get('location')!r}, outside the "
                        f"model's folder {folder}; convnet reads external data only from there")
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    size = math.prod(tensor.dims) * dtype.itemsize
    offset, length = info.get("offset", "0"), info.get("length", str(size))
    if not (re.fullmatch("[0-9]+", offset) and re.fullmatch("[0-9]+", length)):
        raise OnnxError(f"{path}: initializer {tensor.name!r}: expected byte counts as its external data's offset "
                        f"and length, got {offset!r} and {length!r}")
    offset = int(offset)
    if int(length) != size:
        raise OnnxError(f"{path}: initializer {tensor.name!r} of shape {tuple(tensor.dims)} and dtype {dtype} needs "
                        f"{size} bytes, its external data says {length}")
    try:
        with open(file, "rb") as stream:
            stream.seek(offset)
            data = stream.read(size)
    except OSError as error:
        raise OnnxError(f"{path}: cannot read initializer {tensor.name!r} from {file.name}: {error.strerror}") from None
    if len(data) != size:
        raise OnnxError(f"{path}: {file.name} is truncated: initializer {tensor.name!r} needs bytes {offset} to "
                        f"{offset + size}, the file has {file.stat().st_size}")
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(tuple(tensor.dims)).astype(dtype)


def inferred_values(onnx, model):
    """(value name -> shape, None for a size the graph leaves open; value name -> element type, a
    TensorProto.DataType) from ONNX's shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes, types = {}, {}
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            types[value.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(dim.dim_value if dim.HasField("dim_value") else None
                                       for dim in tensor_type.shape.dim)
    for tensor in model.graph.initializer:
        types.setdefault(tensor.name, tensor.data_type)
        shapes.setdefault(tensor.name, tuple(tensor.dims))
    return shapes, types
