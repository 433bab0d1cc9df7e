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

The reader, in the order it runs: `zip_members` (the archive's members), `unpickler` (data.pkl, into
the `records` that stand in for torch's objects), `views` (storages to arrays, tensors to views);
`messages` holds `PthError` and how a refusal shows what the file holds.
"""

import os
import zipfile

from .messages import PthError, describe, one_line
from .unpickler import unpickle_state_dict
from .zip_members import ZIP_ERRORS, checked_member, read_member, storage_byteorder, storage_members
from .views import storage_values, view, view_problem

__all__ = ["PthError", "load_pth"]

_ZIP_START = b"PK\x03\x04"
# torch.save(..., _use_new_zipfile_serialization=False) starts with its magic number, pickled.
_LEGACY_START = b"\x80\x02\x8a\x0a" + 0x1950A86A20F9469CFC6C.to_bytes(10, "little")


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
        except ZIP_ERRORS as error:
            raise PthError(f"{path}: a damaged zip archive ({type(error).__name__}: {one_line(error)})") from None
        with archive:
            return _read_archive(path, archive, length)


def _open(path):
    try:
        return open(path, "rb")
    except OSError as error:
        raise PthError(f"{path}: cannot be read ({one_line(error.strerror or error)})") from None


def _read_archive(path, archive, length):
    pickles = [member for member in archive.infolist() if member.filename.endswith("/data.pkl")
               and member.filename.count("/") == 1]
    if len(pickles) != 1:
        raise PthError(f"{path}: not a file written by torch.save (expected one <name>/data.pkl in the zip archive, "
                       f"found {len(pickles)})")
    prefix = pickles[0].filename[:-len("data.pkl")]
    byteorder = storage_byteorder(path, archive, prefix, length)
    pickled = read_member(path, archive, checked_member(path, archive, pickles[0].filename, length)).tobytes()
    state = unpickle_state_dict(path, pickled)
    for key, tensor in state.items():
        problem = view_problem(tensor)
        if problem:
            raise PthError(f"{path}: tensor {describe(key)}: {problem}")
    storages = {}
    for key, tensor in state.items():
        storage = tensor.storage
        declared = storages.setdefault(storage.key, storage)
        if (declared.type, declared.numel) != (storage.type, storage.numel):
            raise PthError(f"{path}: tensor {describe(key)}: its storage {describe(storage.key)} is declared as "
                           f"{storage.numel} {storage.type.dtype} elements and elsewhere as {declared.numel} "
                           f"{declared.type.dtype} elements")
    members = storage_members(path, archive, prefix, storages, length)
    values = {key: storage_values(path, storage, read_member(path, archive, members[key]), byteorder)
              for key, storage in storages.items()}
    return {key: view(values[tensor.storage.key], tensor) for key, tensor in state.items()}
