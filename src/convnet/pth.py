"""Read PyTorch ``.pth`` files (``torch.save(model.state_dict())``) as NumPy arrays, without torch
and without running anything from the file.

A file written by ``torch.save`` is a zip archive. ``<name>/data.pkl`` pickles the state_dict,
each tensor as a call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
each storage as a reference ``('storage', torch.FloatStorage, key, location, numel)`` to its raw
bytes in the member ``<name>/data/<key>``, in the byte order that ``<name>/byteorder`` names.

Unpickling runs whatever callables a pickle names, so `load_pth` unpickles with an allow-list:
``collections.OrderedDict`` and torch's tensor and storage names, the torch ones replaced by
stand-ins that only record their arguments. Any other name (``os.system``, ``builtins.eval``, a
pickled ``nn.Module``) is refused when the pickle names it, before it is imported or called.

Every size the pickle declares is then checked against the archive before memory is given to it:
members must be stored uncompressed (as torch.save writes them) and add up to no more than the
file; a storage must declare exactly the bytes its member holds; a tensor's view must lie inside
its storage, with elements that do not overlap. So what `load_pth` allocates follows the file's
own size (the storages' bytes, and float32 copies of bfloat16 ones), never the sizes it declares.
"""

import _compat_pickle
import io
import math
import os
import pickle
import pickletools
import sys
import zipfile
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from .errors import ConvnetError


class PthError(ConvnetError, ValueError):
    """A file that `load_pth` cannot read or refuses; the one-line message starts with its path."""


# The storage types torch.save names (torch.<name>) for the dtypes read here, and their NumPy dtypes.
_STORAGE_DTYPES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
_SUPPORTED = "float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8 and bool"
_ZIP_START = b"PK\x03\x04"
# torch.save(..., _use_new_zipfile_serialization=False) starts with its magic number, pickled.
_LEGACY_START = b"\x80\x02\x8a\x0a" + 0x1950A86A20F9469CFC6C.to_bytes(10, "little")
_MAX_DIMS = 64  # NumPy's
_CHUNK = 1 << 24  # bytes read at a time, so a storage is never held twice in memory
# What zipfile raises on a damaged archive: its own errors, and those of the reads and decoding under it.
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError)


class _StorageType(NamedTuple):
    """What the pickle's torch.<X>Storage stands for: the dtype of its elements."""
    dtype: str


# The records below are what unpickling builds: immutable, and checked only after unpickling, when
# the state_dict key each belongs to is known (every field may hold anything the pickle put there).
class _Storage(NamedTuple):
    type: object
    key: object
    numel: object


class _Tensor(NamedTuple):
    storage: object
    offset: object
    shape: object
    stride: object
    metadata: object


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stands in for torch._utils._rebuild_tensor_v2: records the view. Gradients and hooks
    are not part of a tensor's values."""
    return _Tensor(storage, storage_offset, size, stride, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stands in for torch._utils._rebuild_parameter (``state_dict(keep_vars=True)``): its data."""
    return data


_ALLOWED_GLOBALS = {("collections", "OrderedDict"): OrderedDict,
                    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
                    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}


class _Unpickler(pickle.Unpickler):
    """Unpickles data.pkl into plain dicts and the records above, naming no other global."""

    def __init__(self, data, path):
        super().__init__(io.BytesIO(data))
        self.path = path

    def find_class(self, module, name):
        # Called for every global the pickle names, in place of importing it: the only way a pickle
        # reaches code, as REDUCE, NEWOBJ, INST and OBJ call only what this returns (and BUILD
        # sets attributes only on what those made).
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise PthError(f"{self.path}: {_refusal(module, name)}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise PthError(f"{self.path}: data.pkl refers to {_describe(pid)} outside itself; expected a "
                           f"storage ('storage', type, key, location, numel)")
        return _Storage(pid[1], pid[2], pid[4])


def _refusal(module, name):
    """Why the global ``module.name`` is refused, and what to do instead."""
    # Protocol 2 (torch.save's) names Python 2's modules (__builtin__.eval, commands.Popen), which
    # unpickling maps to Python 3's: name what would have run.
    shown = _compat_pickle.NAME_MAPPING.get((module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    qualified = _printable(".".join(shown))
    if module == "torch" and name.endswith("Storage"):
        return f"holds a tensor of type {qualified}; load_pth reads {_SUPPORTED} tensors"
    if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
        return (f"holds a tensor of a dtype that torch saves with {qualified} (uint16, uint32, uint64, float8 "
                f"and other recent dtypes); load_pth reads {_SUPPORTED} tensors")
    if module.startswith("__torch__"):
        return (f"is a TorchScript archive (torch.jit.save; it names {qualified}), not a state_dict: save "
                f"model.state_dict() with torch.save instead")
    if module.startswith("torch.nn."):
        return (f"holds a whole pickled model ({qualified}), not a state_dict: save model.state_dict() instead "
                f"(nothing in the file was run)")
    return (f"refused: its pickle names {qualified}, which a state_dict never needs (it names only "
            f"collections.OrderedDict and torch's tensor and storage types); nothing in the file was run. A file "
            f"holding more than tensors must be saved again as the state_dict alone")


def load_pth(path):
    """The state_dict in the ``torch.save`` file at ``path``, as ``{key: np.ndarray}`` in its order.

    Reads the zip format torch.save writes by default (torch >= 1.6) with float64, float32,
    float16, bfloat16 (returned as float32, exactly: bfloat16 is float32's upper half), int64,
    int32, int16, int8, uint8 and bool tensors, in either byte order. Tensors that were views of
    one storage (a tensor and its transpose or slice, tied weights) come back as NumPy views of
    one array, sharing memory as they did in torch. A checkpoint dict holding the state_dict as
    exactly one of its values (``{"model": ..., "optimizer": ..., "epoch": ...}``) gives that
    state_dict. Anything else, and any file whose pickle names a callable other than torch's
    tensor rebuilders, raises `PthError` without running it.

    Loading torch weights into a convnet model of the same architecture (same keys, e.g.
    ``features.0.weight``): ``model.load_state_dict(load_pth("weights.pth"))``.
    """
    with _open(path) as file:
        start = file.read(len(_LEGACY_START))
        if start == _LEGACY_START:
            raise PthError(f"{path}: saved in torch's legacy format (_use_new_zipfile_serialization=False); load it "
                           f"in torch and save it again with torch.save's default")
        if not start.startswith(_ZIP_START):
            raise PthError(f"{path}: not a file written by torch.save (expected a zip archive, starting with "
                           f"PK\\x03\\x04; got {start[:4]!r})")
        length = os.fstat(file.fileno()).st_size
        try:
            archive = zipfile.ZipFile(file)
        except _ZIP_ERRORS as error:
            raise PthError(f"{path}: a damaged zip archive ({type(error).__name__}: {_one_line(error)})") from None
        with archive:
            return _read_archive(path, archive, length)


def _open(path):
    try:
        return open(path, "rb")
    except OSError as error:
        raise PthError(f"{path}: cannot be read ({_one_line(error.strerror or error)})") from None


def _read_archive(path, archive, length):
    pickles = [member for member in archive.infolist() if member.filename.endswith("/data.pkl")
               and member.filename.count("/") == 1]
    if len(pickles) != 1:
        raise PthError(f"{path}: not a file written by torch.save (expected one <name>/data.pkl in the zip archive, "
                       f"found {len(pickles)})")
    prefix = pickles[0].filename[:-len("data.pkl")]
    byteorder = _byteorder(path, archive, prefix, length)
    pickled = _member_bytes(path, archive, _member(path, archive, pickles[0].filename, length)).tobytes()
    state = _state_dict(path, _unpickle(path, pickled))
    for key, tensor in state.items():
        problem = _view_problem(tensor)
        if problem:
            raise PthError(f"{path}: tensor {_describe(key)}: {problem}")
    storages = {}
    for key, tensor in state.items():
        storage = tensor.storage
        declared = storages.setdefault(storage.key, storage)
        if (declared.type, declared.numel) != (storage.type, storage.numel):
            raise PthError(f"{path}: tensor {_describe(key)}: its storage {_describe(storage.key)} is declared as "
                           f"{storage.numel} {storage.type.dtype} elements and elsewhere as {declared.numel} "
                           f"{declared.type.dtype} elements")
    members = _storage_members(path, archive, prefix, storages, length)
    values = {key: _storage_values(path, storage, _member_bytes(path, archive, members[key]), byteorder)
              for key, storage in storages.items()}
    return {key: _view(values[tensor.storage.key], tensor) for key, tensor in state.items()}


def _byteorder(path, archive, prefix, length):
    """The byte order of the storages: the member ``byteorder`` names it, "little" if absent (as
    torch assumes of files written before it recorded it)."""
    recorded = _member(path, archive, prefix + "byteorder", length)
    if recorded is None:
        return "little"
    byteorder = _member_bytes(path, archive, recorded).tobytes()
    if byteorder not in (b"little", b"big"):
        raise PthError(f"{path}: {prefix}byteorder holds {_describe(byteorder)}, expected b'little' or b'big'")
    return byteorder.decode()


def _storage_members(path, archive, prefix, storages, length):
    """The zip member of each storage, checked to hold exactly the bytes its storage declares."""
    members = {}
    for key, storage in storages.items():
        name = f"{prefix}data/{key}"
        member = _member(path, archive, name, length)
        if member is None:
            raise PthError(f"{path}: storage {_describe(key)} has no member {_describe(name)} in the zip archive")
        expected = storage.numel * _stored_dtype(storage.type.dtype).itemsize
        if member.file_size != expected:
            raise PthError(f"{path}: storage {_describe(key)} declares {storage.numel} {storage.type.dtype} elements "
                           f"({expected} bytes), but its member {_describe(name)} holds {member.file_size} bytes")
        members[key] = member
    claimed = sum(member.file_size for member in members.values())
    if claimed > length:  # members that overlap in the file, as some zip bombs' do
        raise PthError(f"{path}: its storages claim {claimed} bytes in all, more than the file's {length}; the file is "
                       f"damaged or forged")
    return members


def _member(path, archive, name, length):
    """The zip directory's entry for the member ``name`` (None if absent), refused if it is not
    as torch.save writes members: stored uncompressed, unencrypted, within the file. Only what
    is stored can be checked against the file's size before it is read (a zip bomb cannot be)."""
    try:
        member = archive.getinfo(name)
    except KeyError:
        return None
    if member.compress_type != zipfile.ZIP_STORED or member.flag_bits & 0x1:
        how = "encrypted" if member.flag_bits & 0x1 else f"compressed (method {member.compress_type})"
        raise PthError(f"{path}: member {_describe(name)} is {how}; torch.save stores its members uncompressed "
                       f"(expected a file as torch.save wrote it)")
    if not member.compress_size == member.file_size <= length:
        raise PthError(f"{path}: member {_describe(name)} claims {member.file_size} bytes ({member.compress_size} "
                       f"stored) in a file of {length}; the file is damaged or forged")
    return member


def _unpickle(path, data):
    _check_counts(path, data)
    try:
        return _Unpickler(data, path).load()
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError, RecursionError) as error:
        raise PthError(f"{path}: data.pkl is not a readable state_dict pickle ({type(error).__name__}: "
                       f"{_one_line(error)})") from None


def _check_counts(path, data):
    """Refuse a pickle that would make the unpickler allocate memory for data it does not hold.

    CPython's unpickler allocates a counted bytes or bytearray argument, and its memo up to the
    largest index put, before reading them, so a few bytes could claim gigabytes. pickletools
    parses the opcodes without building anything, refusing arguments that the pickle does not
    hold; a memo index is bounded by the opcodes before it, as each entry takes one."""
    try:
        for count, (opcode, argument, _) in enumerate(pickletools.genops(data)):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and argument > count:
                raise PthError(f"{path}: data.pkl puts memo index {_describe(argument)} at opcode {count}; expected "
                               f"at most {count}, one entry per opcode before it (the file is damaged or forged)")
    except PthError:
        raise
    except ValueError as error:
        raise PthError(f"{path}: data.pkl is not a readable pickle ({type(error).__name__}: "
                       f"{_one_line(error)})") from None


def _state_dict(path, top):
    """The dict of tensors in ``top``: ``top`` itself or, in a checkpoint dict, its one value that
    is a dict of tensors."""
    if not isinstance(top, dict):
        raise PthError(f"{path}: expected a state_dict (a dict of tensors), got {_describe(top)}")
    if any(isinstance(value, _Tensor) for value in top.values()) or not top:
        state = top
        for key, value in state.items():
            if not isinstance(value, _Tensor):
                raise PthError(f"{path}: key {_describe(key)} holds {_describe(value)}, not a tensor (expected a "
                               f"state_dict: a dict of tensors)")
    else:
        holding = [key for key, value in top.items() if isinstance(value, dict) and value
                   and all(isinstance(tensor, _Tensor) for tensor in value.values())]
        if len(holding) != 1:
            raise PthError(f"{path}: expected a state_dict (a dict of tensors) or a checkpoint dict with exactly one "
                           f"among its values; got a dict with keys {_listing(top)}, {len(holding)} of them dicts of "
                           f"tensors{': ' + _listing(holding) if holding else ''}")
        state = top[holding[0]]
    for key in state:
        if not isinstance(key, str):
            raise PthError(f"{path}: expected a state_dict's keys to be strings, got {_describe(key)}")
    return state


def _view_problem(tensor):
    """What is wrong with ``tensor`` as a view of its storage, in one line; None if nothing."""
    storage = tensor.storage
    if not isinstance(storage, _Storage):
        return f"expected a storage ('storage', torch.<type>Storage, key, location, numel), got {_describe(storage)}"
    if not isinstance(storage.type, _StorageType):
        return f"expected its storage's type to be torch.<type>Storage, got {_describe(storage.type)}"
    if not isinstance(storage.key, str):
        return f"expected its storage's key to be a string, got {_describe(storage.key)}"
    if not _is_count(storage.numel):
        return f"expected its storage's size to be an int >= 0, got {_describe(storage.numel)}"
    if not _is_count(tensor.offset):
        return f"expected its storage offset to be an int >= 0, got {_describe(tensor.offset)}"
    shape, stride = tensor.shape, tensor.stride
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS and all(_is_count(size) for size in shape)):
        return f"expected its shape to be a tuple of at most {_MAX_DIMS} ints >= 0, got {_describe(shape)}"
    if not (isinstance(stride, tuple) and len(stride) == len(shape) and all(_is_count(step) for step in stride)):
        return f"expected its stride to be a tuple of {len(shape)} ints >= 0 (one per dimension), got {_describe(stride)}"
    if tensor.metadata:
        return (f"holds tensor metadata ({_describe(tensor.metadata)}): a lazily negated or conjugated view; save it "
                f"as t.resolve_neg() instead")
    if math.prod(shape) == 0:
        # NumPy refuses a shape whose nonzero sizes multiply past its byte count, even with no elements.
        if math.prod(size for size in shape if size) * 8 >= 2**63:
            return f"shape {shape} is too large for NumPy (even with no elements)"
        return None
    extent = 0  # the farthest element from the first, over the dimensions seen so far
    for step, size in sorted((step, size) for step, size in zip(stride, shape) if size > 1):
        # Each dimension, by increasing stride, must step past everything the smaller ones reach,
        # so no two indices share an element; that holds for all views made by slicing,
        # transposing and selecting, and fails for expanded ones (stride 0).
        if step <= extent:
            return (f"its elements overlap in storage (shape {shape}, stride {stride}), as an expanded view's do; "
                    f"load_pth reads tensors whose elements are distinct: save it as t.contiguous() instead")
        extent += step * (size - 1)
    if tensor.offset + extent >= storage.numel:
        return (f"its view (offset {tensor.offset}, shape {shape}, stride {stride}) reaches element "
                f"{tensor.offset + extent} of its storage {_describe(storage.key)}, which holds {storage.numel} elements")
    return None


def _stored_dtype(dtype):
    """The NumPy dtype of a storage's bytes: bfloat16's are read as uint16 bit patterns."""
    return np.dtype(np.uint16 if dtype == "bfloat16" else dtype)


def _member_bytes(path, archive, member):
    """The bytes of ``member``, whose size `_member` checked, as a uint8 array."""
    raw = np.empty(member.file_size, np.uint8)
    try:
        with archive.open(member) as stream:
            for start in range(0, raw.size, _CHUNK):
                stream.readinto(memoryview(raw)[start:start + _CHUNK])
    except _ZIP_ERRORS as error:
        raise PthError(f"{path}: member {_describe(member.filename)} cannot be read ({type(error).__name__}: "
                       f"{_one_line(error)}); the file is damaged") from None
    return raw


def _storage_values(path, storage, raw, byteorder):
    """A storage's elements from its bytes ``raw``, as a native-endian array (bfloat16 widened to float32)."""
    values = raw.view(_stored_dtype(storage.type.dtype))
    if byteorder != sys.byteorder:
        values.byteswap(inplace=True)
    if storage.type.dtype == "bool" and raw.size and raw.max() > 1:
        raise PthError(f"{path}: storage {_describe(storage.key)} holds bool bytes other than 0 and 1 (the largest is "
                       f"{raw.max()})")
    if storage.type.dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values


def _view(values, tensor):
    """``tensor``'s view of ``values`` (its storage), which `_view_problem` found to lie inside it."""
    if math.prod(tensor.shape) == 0:
        return np.empty(tensor.shape, values.dtype)
    # A dimension of size 1 is never stepped along; its stride (any number in torch) is set to 0.
    strides = tuple(step * values.itemsize if size > 1 else 0 for step, size in zip(tensor.stride, tensor.shape))
    return np.ndarray(tensor.shape, values.dtype, buffer=values, offset=tensor.offset * values.itemsize,
                      strides=strides)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _describe(value):
    """``value`` from the file, shown in one short line whatever its size."""
    if isinstance(value, _Tensor):
        return "a tensor"
    if isinstance(value, _Storage):
        return "a storage"
    if isinstance(value, (str, bytes)):
        return repr(value[:60]) + ("..." if len(value) > 60 else "")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit integer"  # str() refuses ints of more than 4300 digits
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, (tuple, list, dict)) and len(value) <= 8 and all(_is_scalar(item) for item in value):
        if isinstance(value, dict) and all(_is_scalar(item) for item in value.values()):
            return "{" + ", ".join(f"{_describe(key)}: {_describe(item)}" for key, item in value.items()) + "}"
        if isinstance(value, tuple):
            return "(" + ", ".join(_describe(item) for item in value) + ("," if len(value) == 1 else "") + ")"
        if isinstance(value, list):
            return "[" + ", ".join(_describe(item) for item in value) + "]"
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _is_scalar(value):
    return value is None or isinstance(value, (bool, int, float, str, bytes))


def _listing(keys, limit=8):
    shown = ", ".join(_describe(key) for key in list(keys)[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _printable(text, limit=120):
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(error, limit=300):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
