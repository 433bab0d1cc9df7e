"""ONNX interop: `export` writes a convnet model as an ONNX graph, `load` runs an ONNX graph as a
convnet module (so a network trained anywhere can be evaluated, fine-tuned and drawn).

Both need the optional ``onnx`` package (``pip install 'convnet-numpy[onnx]'``); without it they
raise `OnnxMissing` saying exactly that, and the rest of convnet works as before.
"""

from ..errors import ConvnetError

INSTALL = "pip install 'convnet-numpy[onnx]'"


class OnnxMissing(ConvnetError, ImportError):
    pass


class OnnxError(ConvnetError, ValueError):
    """A model that cannot be exported, or a graph that cannot be loaded; the message names every
    module or node at fault."""


def require_onnx():
    """The ``onnx`` module, or `OnnxMissing` naming the command that installs it."""
    try:
        import onnx
    except ImportError:
        raise OnnxMissing(f"ONNX files need the onnx package, which is not installed: {INSTALL}") from None
    return onnx


from .export import export  # noqa: E402  (below the names they import from here)
from .load import OnnxModel, load  # noqa: E402
from ..errors import ConvnetError

__all__ = ["export", "load", "OnnxModel", "OnnxError", "OnnxMissing", "require_onnx"]
