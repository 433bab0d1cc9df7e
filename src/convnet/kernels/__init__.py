"""Compiled kernels: the engine's hot loops as plain Python loops compiled by Numba.

Each kernel does one op's memory-bound pass (a window keeping its maximum, a kernel's taps
copied into GEMM-ready columns, an optimizer's update) as one loop instead of several NumPy
passes; matrix products stay in NumPy's BLAS. Kernels take their inputs and a preallocated
output and return nothing (or a small tuple); shapes are in their docstrings. Each has a plain
NumPy reference beside it, which the tests compare it with and which `use` can select:

>>> from convnet import kernels
>>> kernels.active()
'compiled'
>>> with kernels.use("reference"):
...     kernels.active()
'reference'

The environment variable ``CONVNET_KERNELS=reference`` selects the references for a whole
process (to compare a run's accuracy or speed with and without the compiled kernels).
Kernels are compiled on first use and cached on disk (``cache=True``), so only the first run on
a machine pays for compiling them.
"""

import os
from contextlib import contextmanager

MODES = ("compiled", "reference")
_mode = os.environ.get("CONVNET_KERNELS", "compiled")
if _mode not in MODES:
    raise ValueError(f"CONVNET_KERNELS: expected one of {', '.join(MODES)}, got {_mode!r}")


def active():
    """Which implementation the ops call: 'compiled' (the default) or 'reference'."""
    return _mode


def set_mode(mode):
    """Select the compiled kernels or their NumPy references for every op from now on."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"kernels.set_mode: expected one of {', '.join(MODES)}, got {mode!r}")
    _mode = mode


@contextmanager
def use(mode):
    """Within the block, the ops call ``mode``'s implementation ('compiled' or 'reference')."""
    previous = _mode
    set_mode(mode)
    try:
        yield
    finally:
        set_mode(previous)


def compiled():
    """True when the ops should call the compiled kernels."""
    return _mode == "compiled"
