"""The IDX file format of MNIST and Fashion-MNIST (gzip-compressed or not).

Layout: two zero bytes, a dtype code, the number of dimensions d, then d big-endian uint32
sizes, then the data, row-major and big-endian. The size the header promises is checked
against a cap before any data is read, the data goes into one buffer of exactly that size,
and decompression stops one byte past it: a corrupt or hostile header, or a gzip bomb, costs
at most the promised size, never what the stream would inflate to.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConvnetError, InvalidValue

DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# Fashion-MNIST's largest file holds 47 MB of data, and EMNIST ByClass's, the largest IDX data set in
# common use, 547 MB: a header promising more than 2 GiB is corrupt or hostile, and is refused before
# anything is read or allocated.
MAX_DATA_BYTES = 2 << 30
# A gzip stream's readinto decompresses each request into temporaries of the request's size before
# copying, so requests are kept small; 256 KiB also measured faster than 1 MiB.
_CHUNK = 256 << 10


class IdxError(ConvnetError, ValueError):
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
            if expected > MAX_DATA_BYTES:
                raise IdxError(f"{path}: the header promises {_as_gib(expected)} of data ({expected} bytes); "
                               f"convnet reads IDX files up to {_as_gib(MAX_DATA_BYTES)}")
            # A zero size makes the promise 0 bytes whatever the others say, but NumPy refuses a shape
            # whose other sizes multiply past what it can index, so the cap holds for those too.
            others = int(np.prod([d for d in shape if d], dtype=object)) * dtype.itemsize
            if others > MAX_DATA_BYTES:
                raise IdxError(f"{path}: the header's sizes {shape} describe an empty array whose other sizes "
                               f"multiply to {_as_gib(others)} ({others} bytes); convnet reads IDX files up to "
                               f"{_as_gib(MAX_DATA_BYTES)}")
            data = _read_exactly(stream, expected, path).view(dtype).reshape(shape)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise IdxError(f"{path}: cannot be read as IDX ({error})") from None
    native = dtype.newbyteorder("=")
    # Swapped in place: a converting copy would double the memory a large file costs.
    return data if native == dtype else data.byteswap(inplace=True).view(native)


def _read_exactly(stream, expected, path):
    """Read exactly ``expected`` bytes into one buffer of that size, asking the stream for one byte more."""
    # Pages of a large np.empty are committed only as they are written (checked on Linux): a truncated
    # file costs the memory of what it holds, not of what its header promised.
    data = np.empty(expected, np.uint8)
    buffer = memoryview(data)
    filled = 0
    while filled < expected:
        count = stream.readinto(buffer[filled:filled + _CHUNK])
        if not count:
            raise IdxError(f"{path}: truncated: the header promises {expected} bytes of data, the file has "
                           f"{filled}")
        filled += count
    if stream.read(1):
        raise IdxError(f"{path}: {expected} bytes of data expected after the header, but the file has more")
    return data


def _as_gib(size):
    return f"{size / (1 << 30):,.1f} GiB"


def write_idx(path, array):
    """Write ``array`` as an (uncompressed, or gzip if the name ends in .gz) IDX file."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise InvalidValue(f"write_idx: dtype {array.dtype} has no IDX code")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(DTYPES[code], copy=False).tobytes()
    path = Path(path)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as stream:
        stream.write(payload)
