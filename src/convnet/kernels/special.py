"""The error function, which NumPy lacks, for GELU's exact form and ONNX's Erf.

libm's ``erf`` and ``erfc`` (Numba compiles ``math.erf``/``math.erfc`` to them), evaluated in float64
and rounded once to the output's dtype: correct to the last bit of float32 and to about one ulp of
float64, relatively precise where erf is small (near 0) and where erfc is (GELU's negative tail,
which 1 - erf would lose to cancellation). The arrays are flat views of memory laid out alike, as
in `activation`; each loop has its NumPy reference after it (Python's ``math``, element by element).
"""

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def erf(x, out):
    """x: (M,) -> out: (M,) = erf(x)."""
    for i in prange(x.shape[0]):
        out[i] = math.erf(np.float64(x[i]))


def erf_reference(x, out):
    """`erf` with Python's math.erf."""
    np.copyto(out, np.array([math.erf(v) for v in x.astype(np.float64)], dtype=np.float64), casting="unsafe")


@njit(cache=True, nogil=True, parallel=True)
def normal_cdf(x, out):
    """x: (M,) -> out: (M,) = P(Z <= x) for a standard normal Z = erfc(-x / sqrt(2)) / 2."""
    scale = -math.sqrt(0.5)
    for i in prange(x.shape[0]):
        out[i] = 0.5 * math.erfc(np.float64(x[i]) * scale)


def normal_cdf_reference(x, out):
    """`normal_cdf` with Python's math.erfc."""
    values = [0.5 * math.erfc(v * -math.sqrt(0.5)) for v in x.astype(np.float64)]
    np.copyto(out, np.array(values, dtype=np.float64), casting="unsafe")
