"""The array-module seam: every op asks its inputs which array library to use.

Today that is always NumPy. A CuPy backend only has to teach `get_array_module` about
`cupy.ndarray`; ops written as ``xp = get_array_module(x)`` then run unchanged on the GPU.
"""

import numpy as np

DEFAULT_DTYPE = np.float32


def get_array_module(*arrays):
    """Return the array module (``numpy`` today) that owns ``arrays``."""
    return np


def is_floating(array):
    return np.issubdtype(array.dtype, np.floating)
