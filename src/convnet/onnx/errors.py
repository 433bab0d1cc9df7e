"""What convnet.onnx refuses with: the onnx package missing, a model or graph it cannot convert, an
ONNX node it cannot run."""

from ..errors import ConvnetError

INSTALL = "pip install 'convnet-numpy[onnx]'"


class OnnxMissing(ConvnetError, ImportError):
    pass


class OnnxError(ConvnetError, ValueError):
    """A model that cannot be exported, or a graph that cannot be loaded; the message names every
    module or node at fault."""


class Unsupported(ConvnetError):
    """A node convnet cannot run; the message names the op or attribute, e.g. 'MaxPool attribute ceil_mode=1'."""


def require_onnx():
    """The ``onnx`` module, or `OnnxMissing` naming the command that installs it."""
    try:
        import onnx
    except ImportError:
        raise OnnxMissing(f"ONNX files need the onnx package, which is not installed: {INSTALL}") from None
    return onnx
