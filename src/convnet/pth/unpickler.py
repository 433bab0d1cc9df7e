"""Unpickling ``data.pkl`` with an allow-list: nothing the pickle names is imported or called
but ``collections.OrderedDict`` and stand-ins for torch's tensor rebuilders (`records`)."""

import _compat_pickle
import io
import pickle
import pickletools
from collections import OrderedDict

from .messages import PthError, describe, listing, one_line, printable
from .records import STORAGE_DTYPES, SUPPORTED, StorageRecord, StorageType, TensorRecord, rebuild_parameter, \
    rebuild_tensor_v2

_ALLOWED_GLOBALS = {("collections", "OrderedDict"): OrderedDict,
                    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
                    ("torch._utils", "_rebuild_parameter"): rebuild_parameter}


class _Unpickler(pickle.Unpickler):
    """Unpickles data.pkl into plain dicts and the records, naming no other global."""

    def __init__(self, data, path):
        super().__init__(io.BytesIO(data))
        self.path = path

    def find_class(self, module, name):
        # Called for every global the pickle names, in place of importing it: the only way a pickle
        # reaches code, as REDUCE, NEWOBJ, INST and OBJ call only what this returns (and BUILD
        # sets attributes only on what those made).
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        raise PthError(f"{self.path}: {_refusal(module, name)}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise PthError(f"{self.path}: data.pkl refers to {describe(pid)} outside itself; expected a "
                           f"storage ('storage', type, key, location, numel)")
        return StorageRecord(pid[1], pid[2], pid[4])


def _refusal(module, name):
    """Why the global ``module.name`` is refused, and what to do instead."""
    # Protocol 2 (torch.save's) names Python 2's modules (__builtin__.eval, commands.Popen), which
    # unpickling maps to Python 3's: name what would have run.
    shown = _compat_pickle.NAME_MAPPING.get((module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    qualified = printable(".".join(shown))
    if module == "torch" and name.endswith("Storage"):
        return f"holds a tensor of type {qualified}; load_pth reads {SUPPORTED} tensors"
    if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
        return (f"holds a tensor of a dtype that torch saves with {qualified} (uint16, uint32, uint64, float8 "
                f"and other recent dtypes); load_pth reads {SUPPORTED} tensors")
    if module.startswith("__torch__"):
        return (f"is a TorchScript archive (torch.jit.save; it names {qualified}), not a state_dict: save "
                f"model.state_dict() with torch.save instead")
    if module.startswith("torch.nn."):
        return (f"holds a whole pickled model ({qualified}), not a state_dict: save model.state_dict() instead "
                f"(nothing in the file was run)")
    return (f"refused: its pickle names {qualified}, which a state_dict never needs (it names only "
            f"collections.OrderedDict and torch's tensor and storage types); nothing in the file was run. A file "
            f"holding more than tensors must be saved again as the state_dict alone")


def unpickle_state_dict(path, data):
    """The state_dict that the pickle ``data`` holds, ``{key: TensorRecord}``, as the records
    unpickling built (their fields not yet checked)."""
    _check_counts(path, data)
    try:
        top = _Unpickler(data, path).load()
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError, RecursionError) as error:
        raise PthError(f"{path}: data.pkl is not a readable state_dict pickle ({type(error).__name__}: "
                       f"{one_line(error)})") from None
    return _state_dict(path, top)


def _check_counts(path, data):
    """Refuse a pickle that would make the unpickler allocate memory for data it does not hold.

    CPython's unpickler allocates a counted bytes or bytearray argument, and its memo up to the
    largest index put, before reading them, so a few bytes could claim gigabytes. pickletools
    parses the opcodes without building anything, refusing arguments that the pickle does not
    hold; a memo index is bounded by the opcodes before it, as each entry takes one."""
    try:
        for count, (opcode, argument, _) in enumerate(pickletools.genops(data)):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and argument > count:
                raise PthError(f"{path}: data.pkl puts memo index {describe(argument)} at opcode {count}; expected "
                               f"at most {count}, one entry per opcode before it (the file is damaged or forged)")
    except PthError:
        raise
    except ValueError as error:
        raise PthError(f"{path}: data.pkl is not a readable pickle ({type(error).__name__}: "
                       f"{one_line(error)})") from None


def _state_dict(path, top):
    """The dict of tensors in ``top``: ``top`` itself or, in a checkpoint dict, its one value that
    is a dict of tensors."""
    if not isinstance(top, dict):
        raise PthError(f"{path}: expected a state_dict (a dict of tensors), got {describe(top)}")
    if any(isinstance(value, TensorRecord) for value in top.values()) or not top:
        state = top
        for key, value in state.items():
            if not isinstance(value, TensorRecord):
                raise PthError(f"{path}: key {describe(key)} holds {describe(value)}, not a tensor (expected a "
                               f"state_dict: a dict of tensors)")
    else:
        holding = [key for key, value in top.items() if isinstance(value, dict) and value
                   and all(isinstance(tensor, TensorRecord) for tensor in value.values())]
        if len(holding) != 1:
            raise PthError(f"{path}: expected a state_dict (a dict of tensors) or a checkpoint dict with exactly one "
                           f"among its values; got a dict with keys {listing(top)}, {len(holding)} of them dicts of "
                           f"tensors{': ' + listing(holding) if holding else ''}")
        state = top[holding[0]]
    for key in state:
        if not isinstance(key, str):
            raise PthError(f"{path}: expected a state_dict's keys to be strings, got {describe(key)}")
    return state
