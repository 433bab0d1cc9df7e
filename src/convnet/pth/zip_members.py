"""The zip archive torch.save writes: its members, each checked against the file's size before
memory is given to it."""

import zipfile

import numpy as np

from .messages import PthError, describe, one_line
from .views import stored_dtype

_CHUNK = 1 << 24  # bytes read at a time, so a storage is never held twice in memory
# What zipfile raises on a damaged archive: its own errors, and those of the reads and decoding under it.
ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError)


def checked_member(path, archive, name, length):
    """The zip directory's entry for the member ``name`` (None if absent), refused if it is not
    as torch.save writes members: stored uncompressed, unencrypted, within the file of ``length``
    bytes. Only what is stored can be checked against the file's size before it is read (a zip
    bomb cannot be)."""
    try:
        entry = archive.getinfo(name)
    except KeyError:
        return None
    if entry.compress_type != zipfile.ZIP_STORED or entry.flag_bits & 0x1:
        how = "encrypted" if entry.flag_bits & 0x1 else f"compressed (method {entry.compress_type})"
        raise PthError(f"{path}: member {describe(name)} is {how}; torch.save stores its members uncompressed "
                       f"(expected a file as torch.save wrote it)")
    if not entry.compress_size == entry.file_size <= length:
        raise PthError(f"{path}: member {describe(name)} claims {entry.file_size} bytes ({entry.compress_size} "
                       f"stored) in a file of {length}; the file is damaged or forged")
    return entry


def read_member(path, archive, entry):
    """The bytes of the member ``entry``, whose size `checked_member` checked, as a uint8 array."""
    raw = np.empty(entry.file_size, np.uint8)
    try:
        with archive.open(entry) as stream:
            for start in range(0, raw.size, _CHUNK):
                stream.readinto(memoryview(raw)[start:start + _CHUNK])
    except ZIP_ERRORS as error:
        raise PthError(f"{path}: member {describe(entry.filename)} cannot be read ({type(error).__name__}: "
                       f"{one_line(error)}); the file is damaged") from None
    return raw


def storage_byteorder(path, archive, prefix, length):
    """The byte order of the storages: the member ``byteorder`` names it, "little" if absent (as
    torch assumes of files written before it recorded it)."""
    recorded = checked_member(path, archive, prefix + "byteorder", length)
    if recorded is None:
        return "little"
    order = read_member(path, archive, recorded).tobytes()
    if order not in (b"little", b"big"):
        raise PthError(f"{path}: {prefix}byteorder holds {describe(order)}, expected b'little' or b'big'")
    return order.decode()


def storage_members(path, archive, prefix, storages, length):
    """The zip member of each storage (``{key: StorageRecord}``), checked to hold exactly the
    bytes its storage declares."""
    members = {}
    for key, storage in storages.items():
        name = f"{prefix}data/{key}"
        entry = checked_member(path, archive, name, length)
        if entry is None:
            raise PthError(f"{path}: storage {describe(key)} has no member {describe(name)} in the zip archive")
        expected = storage.numel * stored_dtype(storage.type.dtype).itemsize
        if entry.file_size != expected:
            raise PthError(f"{path}: storage {describe(key)} declares {storage.numel} {storage.type.dtype} elements "
                           f"({expected} bytes), but its member {describe(name)} holds {entry.file_size} bytes")
        members[key] = entry
    claimed = sum(entry.file_size for entry in members.values())
    if claimed > length:  # members that overlap in the file, as some zip bombs' do
        raise PthError(f"{path}: its storages claim {claimed} bytes in all, more than the file's {length}; the file is "
                       f"damaged or forged")
    return members
