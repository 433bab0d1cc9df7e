"""Seeded randomness: one explicit default generator, replaceable per call.

Every function that draws random numbers (initialisers, dropout, data shuffling) takes an
optional ``generator``; without one it uses the default generator, which
``convnet.manual_seed(s)`` resets so that whole runs repeat bit for bit.
"""

import numpy as np

from .errors import InvalidValue

_default = np.random.default_rng(0)


def manual_seed(seed):
    """Reset the default generator to ``seed`` and return it.

    >>> import convnet
    >>> _ = convnet.manual_seed(0); a = convnet.randn(3).numpy()
    >>> _ = convnet.manual_seed(0); b = convnet.randn(3).numpy()
    >>> bool((a == b).all())
    True
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidValue(f"manual_seed: expected a non-negative integer seed, got {seed!r}")
    global _default
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator():
    return _default


def resolve(generator):
    """The generator to draw from: the one given, else the default."""
    return _default if generator is None else generator


def get_state():
    """The default generator's state, a JSON-serialisable dict (for checkpoints)."""
    return _default.bit_generator.state


def set_state(state):
    _default.bit_generator.state = state
