"""Checkpoints: one safetensors file (no pickle) holding the weights, the optimizer's arrays and,
in its metadata, everything else as JSON; written atomically (`convnet.files`) so a crash, a
full disk or a read-only folder never leaves a half-written checkpoint in place of the last good one.

A readable copy of the metadata is written beside it (`convnet.run_folder.SIDECAR`); the safetensors
file is the one that is read back (editing the copy changes nothing). Every tensor's SHA-256 is
stored in the metadata, and the metadata's own beside it, and checked on load; a model's weights
must be finite. So a damaged or edited file is refused, naming what failed, instead of loading as
a model that answers nonsense or a run at an absurd epoch.
"""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from .errors import ConvnetError, InvalidType
from .files import WriteError, atomic_write
from .run_folder import SIDECAR, WEIGHTS

SIDECAR_NOTE = (f"a readable copy of the metadata inside {WEIGHTS}; convnet reads only that file, so editing this "
                f"one changes nothing")


class CheckpointError(ConvnetError, RuntimeError):
    pass


def save(run_dir, model, optimizer=None, meta=None, training=None):
    """Save ``model``'s state_dict, ``optimizer``'s state and the JSON-able ``meta`` to ``run_dir``;
    ``training``: the model being trained where it is not ``model`` (a run that averages its weights
    saves the average as ``model``, which every command loads, and the trained weights to resume from).
    """
    run_dir = Path(run_dir)
    tensors = {f"{prefix}.{key}": np.array(value, order="C")
               for prefix, saved in (("model", model), ("training", training)) if saved is not None
               for key, value in saved.state_dict().items()}
    meta = dict(meta or {})
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for index, entries in state["state"].items():
            scalars[index] = {}
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    tensors[f"optimizer.{index}.{name}"] = np.array(value, order="C")
                else:
                    scalars[index][name] = value
        meta["optimizer"] = {"state": scalars, "param_groups": state["param_groups"]}
    meta["sha256"] = {name: _digest(tensor) for name, tensor in tensors.items()}
    text = json.dumps(meta, indent=1, default=_jsonable)
    try:
        metadata = {"convnet": text, "convnet_sha256": _text_digest(text)}
        atomic_write(run_dir / WEIGHTS, save_tensors(tensors, metadata=metadata))
        atomic_write(run_dir / SIDECAR, json.dumps({"note": SIDECAR_NOTE, **meta}, indent=1, default=_jsonable) + "\n")
    except WriteError as error:
        raise CheckpointError(str(error)) from None


def _text_digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(tensor):
    return hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest()


def _verify(path, tensors, meta):
    """Refuse tensors whose bytes differ from their recorded SHA-256 (checkpoints written before
    convnet recorded them have none to check) and model weights that are not finite."""
    recorded = meta.pop("sha256", None)
    if recorded is not None:
        if set(recorded) != set(tensors):
            raise CheckpointError(f"{path}: the tensors stored ({len(tensors)}) are not the ones its metadata lists "
                                  f"({len(recorded)}); the file is damaged")
        for name, tensor in tensors.items():
            if _digest(tensor) != recorded[name]:
                raise CheckpointError(f"{path}: tensor {name} does not match its recorded SHA-256; the file is "
                                      f"damaged")
    for name, tensor in tensors.items():
        if name.startswith(("model.", "training.")) and tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} holds {np.count_nonzero(~np.isfinite(tensor))} non-finite "
                                  f"values (NaN or infinity); a model cannot be loaded from it")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise InvalidType(f"checkpoint: cannot store {type(value).__name__} in JSON")


def load(run_dir):
    """(model state_dict, optimizer state_dict or None, meta) from ``run_dir``."""
    return _unpack(*_read(run_dir))


def load_with_training(run_dir):
    """`load`'s three, and the state_dict of the model being trained that `save` stored beside
    ``model``'s (or None), from one read of the file."""
    tensors, meta = _read(run_dir)
    return (*_unpack(tensors, meta), _section(tensors, "training.") or None)


def _section(tensors, prefix):
    """The tensors whose names start with ``prefix``, by the rest of their names."""
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def _unpack(tensors, meta):
    model_state = _section(tensors, "model.")
    optimizer_state = None
    if "optimizer" in meta:
        saved = meta.pop("optimizer")
        state = {int(index): dict(entries) for index, entries in saved["state"].items()}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer_state = {"state": state, "param_groups": saved["param_groups"]}
    return model_state, optimizer_state, meta


def _read(run_dir):
    """(tensors by name, meta) of ``run_dir``'s checkpoint, each checked as `load` promises."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {WEIGHTS})")
    try:
        data = path.read_bytes()
        try:
            tensors = load_tensors(data)
        except KeyError as error:
            # safetensors.numpy looks each dtype up in its table of NumPy dtypes: bfloat16, float8 and
            # float4/6 tensors (written by other tools) are valid safetensors that NumPy cannot hold.
            raise CheckpointError(f"{path}: holds a tensor of dtype {error.args[0]}, which NumPy cannot hold "
                                  f"(expected float, integer or bool tensors)") from None
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_length])
        metadata = header.get("__metadata__") or {}
        stored = metadata.get("convnet")
        if stored is None:
            raise CheckpointError(f"{path}: not a readable convnet checkpoint (a safetensors file without "
                                  f"convnet's metadata)")
        recorded = metadata.get("convnet_sha256")  # absent from checkpoints written before it was recorded
        if recorded is not None and recorded != _text_digest(stored):
            raise CheckpointError(f"{path}: its metadata does not match their recorded SHA-256; the file was edited "
                                  f"or damaged ({SIDECAR} is only a copy: edit nothing)")
        meta = json.loads(stored)
    except RecursionError:
        # json.loads recurses once per nested array or object: a few thousand brackets exhaust the stack.
        raise CheckpointError(f"{path}: its metadata is nested too deeply to read (expected the JSON object "
                              f"convnet writes)") from None
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable convnet checkpoint ({_one_line(error)})") from None
    # The metadata's SHA-256 proves it is what was written, not that it is what convnet writes: a
    # checkpoint edited with its digest recomputed (or written by another program) gets here too.
    problem = _layout_problem(meta, tensors)
    if problem:
        raise CheckpointError(f"{path}: not a readable convnet checkpoint ({problem})")
    _verify(path, tensors, meta)
    return tensors, meta


_INDEX = re.compile(r"[0-9]+")  # not int()'s syntax, which also takes " 1", "+1", "1_0" and other scripts' digits


def _layout_problem(meta, tensors):
    """What in ``meta`` (parsed JSON) and the tensors' names is not laid out as `save` writes it,
    as "X: expected Y, got Z"; None if nothing. Only what `load` itself reads is checked: the
    rest of the metadata is its callers' to check."""
    if not isinstance(meta, dict):
        return f"metadata: expected a JSON object, got {_json_type(meta)}"
    recorded = meta.get("sha256")
    if recorded is not None and not (isinstance(recorded, dict) and all(isinstance(v, str) for v in recorded.values())):
        return f"sha256: expected an object of tensor name to hex digest, got {_excerpt(recorded)}"
    for name, tensor in tensors.items():
        if tensor.dtype.kind == "c":  # a model's weights would silently drop the imaginary part
            return f"tensor {_excerpt(name)}: expected real numbers, got {tensor.dtype}"
    for name in tensors:
        parts = name.split(".", 2)
        if parts[0] not in ("model", "training", "optimizer") or len(parts) == 1 or not parts[1]:
            return (f"tensor {_excerpt(name)}: expected a name model.<parameter or buffer>, training.<...> or "
                    f"optimizer.<...>")
        if parts[0] == "optimizer" and not (len(parts) == 3 and _INDEX.fullmatch(parts[1]) and parts[2]):
            return f"tensor {_excerpt(name)}: expected a name optimizer.<parameter index>.<state name>"
    if "optimizer" not in meta:
        if any(name.startswith("optimizer.") for name in tensors):
            return ("optimizer: expected the metadata of the optimizer whose state tensors (optimizer.*) are "
                    "stored, got none")
        return None
    saved = meta["optimizer"]
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not all(
            _INDEX.fullmatch(index) and isinstance(entries, dict) for index, entries in saved["state"].items()):
        return (f"optimizer: expected {{\"state\": {{parameter index: {{...}}}}, \"param_groups\": [...]}}, "
                f"got {_excerpt(saved)}")
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or not all(
            isinstance(group, dict) and isinstance(group.get("params"), list)
            and all(_is_index(index) for index in group["params"]) for group in groups):
        return (f"optimizer.param_groups: expected a list of objects each with \"params\", a list of parameter "
                f"indices, got {_excerpt(groups)}")
    return None


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _excerpt(value, limit=80):
    try:
        text = _one_line(value if isinstance(value, str) else json.dumps(value))
    except RecursionError:  # parsed just within the stack's depth, it may not be written back within it
        return _json_type(value) + " nested too deeply to show"
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(error, limit=300):
    """A library's message as one line of at most ``limit`` characters: safetensors quotes the
    header it could not parse, newlines and all, which can be the whole metadata."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
