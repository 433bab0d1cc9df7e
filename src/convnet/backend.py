"""The array-module seam and process-level settings.

Today every op calls NumPy directly. The seam for a CuPy backend is `get_array_module`: teach
it about ``cupy.ndarray`` and switch the ops' ``np.`` calls to ``xp = get_array_module(x)``
(the ops touch arrays only through NumPy's API and strided views, which CuPy mirrors).
"""

import numpy as np

DEFAULT_DTYPE = np.float32


def get_array_module(*arrays):
    """Return the array module (``numpy`` today) that owns ``arrays``."""
    return np


def is_floating(array):
    return np.issubdtype(array.dtype, np.floating)


def retain_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    Training allocates and frees the same large arrays every step. By default glibc serves
    each one with fresh pages from the kernel (mmap), and the page faults on first touch
    cost a third of a training step here. Keeping freed blocks makes the next step reuse
    them. Peak memory is unchanged; the process simply does not shrink after its peak.
    Returns whether the setting took effect (it does nothing outside glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, (1 << 31) - 1))
