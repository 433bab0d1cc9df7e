"""Process-wide settings, made by the entry points (the ``convnet`` command, the bench) and
never by the library: a program that imports convnet keeps its own allocator and threads."""


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
