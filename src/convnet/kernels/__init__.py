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

Convolution has two algorithms: im2col (columns, then one GEMM; any geometry) and Winograd
F(2x2, 3x3) (kernels/winograd.py: transforms, then 16 smaller GEMMs; stride-1 3x3 kernels,
dilation 1, groups 1). ``conv_algorithm`` picks one per shape; ``use_algorithm`` overrides the
choice, orthogonally to the compiled/reference mode. Forcing 'winograd' still sends the shapes
it cannot do to im2col:

>>> kernels.conv_algorithm(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1, in_channels=64)
'winograd'
>>> kernels.conv_algorithm(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1, in_channels=1)
'im2col'
>>> with kernels.use_algorithm("im2col"):
...     kernels.conv_algorithm(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1, in_channels=64)
'im2col'
"""

import os
from contextlib import contextmanager

MODES = ("compiled", "reference")
ALGORITHMS = ("auto", "im2col", "winograd")
# Winograd's forward + backward beat im2col's from 32 input channels up (0.62-0.93x of its time
# on 32..128 channels at 7..32 px, measured for issue 13); at 16 and fewer it lost or tied
# (0.96-1.7x) with the transforms costing more than the multiplies they save.
WINOGRAD_MIN_CHANNELS = 32
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


_algorithm = "auto"


def set_algorithm(algorithm):
    """Convolution's algorithm from now on: 'auto' (the default: `conv_algorithm`'s per-shape
    rule), 'im2col' everywhere, or 'winograd' wherever it applies."""
    global _algorithm
    if algorithm not in ALGORITHMS:
        raise ValueError(f"kernels.set_algorithm: expected one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    _algorithm = algorithm


@contextmanager
def use_algorithm(algorithm):
    """Within the block, convolutions use ``algorithm`` ('auto', 'im2col' or 'winograd')."""
    previous = _algorithm
    set_algorithm(algorithm)
    try:
        yield
    finally:
        set_algorithm(previous)


def conv_algorithm(kernel, stride, dilation, groups, in_channels):
    """'winograd' or 'im2col' for a convolution of this geometry on ``in_channels`` channels.

    Winograd applies to 3x3 kernels with stride 1, dilation 1 and groups 1 (any padding); under
    'auto' it is chosen from WINOGRAD_MIN_CHANNELS input channels up, where its transforms cost
    less than the multiplies they save.
    """
    applies = tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
    if not applies or _algorithm == "im2col":
        return "im2col"
    return "winograd" if _algorithm == "winograd" or in_channels >= WINOGRAD_MIN_CHANNELS else "im2col"
