"""How `load_pth` refuses a file: `PthError`, one line that starts with the path and shows what
the file holds in a few words, whatever its size."""

from ..errors import ConvnetError
from .records import StorageRecord, TensorRecord


class PthError(ConvnetError, ValueError):
    """A file that `load_pth` cannot read or refuses; the one-line message starts with its path."""


def describe(value):
    """``value`` from the file, shown in one short line whatever its size."""
    if isinstance(value, TensorRecord):
        return "a tensor"
    if isinstance(value, StorageRecord):
        return "a storage"
    if isinstance(value, (str, bytes)):
        return repr(value[:60]) + ("..." if len(value) > 60 else "")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit integer"  # str() refuses ints of more than 4300 digits
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, (tuple, list, dict)) and len(value) <= 8 and all(_is_scalar(item) for item in value):
        if isinstance(value, dict) and all(_is_scalar(item) for item in value.values()):
            return "{" + ", ".join(f"{describe(key)}: {describe(item)}" for key, item in value.items()) + "}"
        if isinstance(value, tuple):
            return "(" + ", ".join(describe(item) for item in value) + ("," if len(value) == 1 else "") + ")"
        if isinstance(value, list):
            return "[" + ", ".join(describe(item) for item in value) + "]"
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _is_scalar(value):
    return value is None or isinstance(value, (bool, int, float, str, bytes))


def listing(keys, limit=8):
    shown = ", ".join(describe(key) for key in list(keys)[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def printable(text, limit=120):
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(error, limit=300):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
