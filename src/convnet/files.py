"""Writing files so that a crash, a full disk or a read-only folder never leaves a half-written
file in place of the last good one: a temporary file beside the target, fsync, then rename."""

import os
import tempfile
from pathlib import Path

from .errors import ConvnetError


TEMPORARY_SUFFIX = ".tmp"


class WriteError(ConvnetError, OSError):
    """A file could not be written; the message names it and says why."""


def remove_stale_temporaries(directory):
    """Delete what `atomic_write`s killed mid-write left in ``directory`` (hidden ``.NAME.*.tmp``
    files); only call it while no other process can be writing there. Returns their names."""
    stale = sorted(Path(directory).glob(f".*{TEMPORARY_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return [path.name for path in stale]


def atomic_write(path, data):
    """Write ``data`` (bytes or str) to ``path`` via a temporary file, fsync and rename.

    Either the whole new content is in place or the previous file, if any, is untouched.
    """
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror or error}; "
                         f"the previous file, if any, is intact") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def check_writable(directory):
    """Create ``directory`` if needed and prove a file can be written in it, so that work which
    will write there fails before it starts instead of losing its first results."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise WriteError(f"cannot write to {directory}: {error.strerror or error}") from None
