"""The IDX file format of MNIST and Fashion-MNIST (gzip-compressed or not).

Layout: two zero bytes, a dtype code, the number of dimensions d, then d big-endian uint32
sizes, then the data, row-major and big-endian. Every claim in the header is checked against
the bytes really there before anything is allocated, so a corrupt or hostile header that
claims billions of items is rejected instead of exhausting memory.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CHUNK = 1 << 20


class IdxError(ValueError):
    """A file that is not a valid IDX file; the message names the file and the problem."""


def _open(path):
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")


def read_idx(path):
    """Read an IDX file into an array of its dtype and shape (native byte order)."""
    path = Path(path)
    try:
        with _open(path) as stream:
            header = stream.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00":
                raise IdxError(f"{path}: not an IDX file (expected magic 0x0000, got {header[:2].hex() or 'nothing'})")
            code, ndim = header[2], header[3]
            if code not in DTYPES:
                raise IdxError(f"{path}: unknown IDX dtype code 0x{code:02x} (expected one of "
                               f"{', '.join(f'0x{c:02x}' for c in DTYPES)})")
            if not 1 <= ndim <= 4:
                raise IdxError(f"{path}: expected 1 to 4 dimensions, got {ndim}")
            raw_dims = stream.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise IdxError(f"{path}: truncated header ({4 + len(raw_dims)} of {4 + 4 * ndim} bytes)")
            shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            dtype = DTYPES[code]
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            data = _read_exactly(stream, expected, path)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise IdxError(f"{path}: cannot be read as IDX ({error})") from None
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def _read_exactly(stream, expected, path):
    """Read exactly ``expected`` bytes, growing the buffer only with data that really exists."""
    data = bytearray()
    while len(data) < expected:
        chunk = stream.read(min(_CHUNK, expected - len(data)))
        if not chunk:
            raise IdxError(f"{path}: truncated: the header promises {expected} bytes of data, the file has "
                           f"{len(data)}")
        data += chunk
    if stream.read(1):
        raise IdxError(f"{path}: {expected} bytes of data expected after the header, but the file has more")
    return bytes(data)


def write_idx(path, array):
    """Write ``array`` as an (uncompressed, or gzip if the name ends in .gz) IDX file."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX code")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(DTYPES[code], copy=False).tobytes()
    path = Path(path)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as stream:
        stream.write(payload)
