"""Process-wide settings. The allocator's is made by the entry points (the ``convnet`` command,
the bench) and never by the library: a program that imports convnet keeps its own allocator.
The thread pools' idle wait is the exception, and only as a default: it has to be in the
environment before NumPy loads its BLAS, so ``import convnet`` sets it first thing, leaving
alone any value the environment already holds."""

import os
import sys
import warnings

# How the two thread pools wait for work. Both spin by default: OpenMP's (which runs Numba's
# parallel kernels) for a while after each kernel, OpenBLAS's for about 0.1 s after each matrix
# product, and on two cores each pool's spinning takes the core the other needs next. With
# these a pool's threads sleep as soon as their work is done. Measured for issue 13 on the
# reference CNN's training step: 0.81x of the serial kernels' time with both, 0.96x with
# OMP_WAIT_POLICY alone, 1.2-2.1x (slower than serial) with neither.
IDLE_THREAD_WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}

applied_thread_defaults = {}


def quiet_idle_threads():
    """Put `IDLE_THREAD_WAIT`'s settings into the environment where it has none of its own, and
    remember which (`applied_thread_defaults`). OpenBLAS reads its setting when NumPy is first
    imported and OpenMP its own when Numba first starts its threads: in a program that imported
    NumPy before convnet, set OPENBLAS_THREAD_TIMEOUT=4 yourself to get the full gain (such a
    program gets a RuntimeWarning here when its BLAS runs on several threads)."""
    if "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ and _blas_threads() > 1:
        warnings.warn("convnet was imported after NumPy, too late to make OpenBLAS's idle threads sleep: they "
                      "will spin after every matrix product on the cores convnet's parallel kernels need, "
                      "and training will run slower; import convnet before NumPy, or set "
                      "OPENBLAS_THREAD_TIMEOUT=4 in the environment", RuntimeWarning, stacklevel=2)
    for name, value in IDLE_THREAD_WAIT.items():
        if name not in os.environ:
            os.environ[name] = applied_thread_defaults[name] = value


def _blas_threads():
    """How many threads OpenBLAS runs: the variables it reads, else every core it may use."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return available_cores()


def available_cores():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS and Windows have no affinity call


# The number of ranks an MPI launcher started on this host (Open MPI, MPICH/Hydra): they share its cores.
LOCAL_RANKS_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
THREAD_COUNT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def share_cores_with_local_ranks():
    """Under mpirun with several ranks on this host, give each rank its share of the cores (at
    least one) for BLAS, OpenMP and Numba, where the environment says nothing: N ranks each
    starting as many threads as there are cores would fight for them. Like `quiet_idle_threads`,
    it must run before NumPy loads."""
    local = next((int(os.environ[name]) for name in LOCAL_RANKS_VARIABLES if os.environ.get(name, "").isdigit()), 1)
    if local <= 1:
        return
    threads = str(max(1, available_cores() // local))
    for name in THREAD_COUNT_VARIABLES:
        if name not in os.environ:
            os.environ[name] = applied_thread_defaults[name] = threads


def withdraw_thread_defaults():
    """Take back the settings `quiet_idle_threads` made, so that a library loaded from now on
    (PyTorch, in the bench's baseline processes) starts with the environment it would have had."""
    for name in applied_thread_defaults:
        os.environ.pop(name, None)
    applied_thread_defaults.clear()


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
