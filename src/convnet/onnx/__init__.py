"""ONNX interop: `export` writes a convnet model as an ONNX graph, `load` runs an ONNX graph as a
convnet module (so a network trained anywhere can be evaluated, fine-tuned and drawn).

Both need the optional ``onnx`` package (``pip install 'convnet-numpy[onnx]'``); without it they
raise `OnnxMissing` saying exactly that, and the rest of convnet works as before.
"""

from .errors import INSTALL, OnnxError, OnnxMissing, require_onnx
from .export import export
from .load import OnnxModel, load

__all__ = ["export", "load", "OnnxModel", "OnnxError", "OnnxMissing", "require_onnx", "INSTALL"]
