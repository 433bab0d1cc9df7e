"""The one base of every error convnet raises on purpose.

Each of convnet's exceptions derives from `ConvnetError` and also from the built-in exception a
caller would expect (`ValueError` for bad values, `OSError` for files, `ImportError` for a missing
optional package), so ``except ConvnetError`` catches exactly what convnet refused, with a message
meant for a person, and ``except ValueError`` keeps working as before.

>>> from convnet.errors import ConvnetError
>>> from convnet.pth import PthError
>>> issubclass(PthError, ConvnetError) and issubclass(PthError, ValueError)
True
"""


class ConvnetError(Exception):
    """A failure convnet detected and explained in its message (one line, naming what was wrong and
    what was expected); the command line prints it without a traceback."""


class InvalidValue(ConvnetError, ValueError):
    """A value convnet cannot use (a shape, a setting out of range, a layer's argument); the message
    names the operation, what it expected and what it got."""


class InvalidType(ConvnetError, TypeError):
    """An argument of a type convnet does not take."""


class MissingFile(ConvnetError, FileNotFoundError):
    """A file or folder the caller named does not exist."""
