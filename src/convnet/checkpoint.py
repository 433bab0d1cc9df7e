"""Checkpoints: one safetensors file (no pickle) holding the weights, the optimizer's arrays and,
in its metadata, everything else as JSON; written atomically (`convnet.files`) so a crash, a
full disk or a read-only folder never leaves a half-written checkpoint in place of the last good one.

A readable copy of the metadata is written beside it as ``checkpoint.json``; the safetensors
file is the one that is read back.
"""

import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from .files import WriteError, atomic_write

WEIGHTS = "checkpoint.safetensors"
SIDECAR = "checkpoint.json"


class CheckpointError(RuntimeError):
    pass


def save(run_dir, model, optimizer=None, meta=None):
    """Save ``model``'s state_dict, ``optimizer``'s state and the JSON-able ``meta`` to ``run_dir``."""
    run_dir = Path(run_dir)
    tensors = {f"model.{key}": np.array(value, order="C") for key, value in model.state_dict().items()}
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
    text = json.dumps(meta, indent=1, default=_jsonable)
    try:
        atomic_write(run_dir / WEIGHTS, save_tensors(tensors, metadata={"convnet": text}))
        atomic_write(run_dir / SIDECAR, text + "\n")
    except WriteError as error:
        raise CheckpointError(str(error)) from None


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"checkpoint: cannot store {type(value).__name__} in JSON")


def load(run_dir):
    """(model state_dict, optimizer state_dict or None, meta) from ``run_dir``."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {WEIGHTS})")
    try:
        data = path.read_bytes()
        tensors = load_tensors(data)
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_length])
        stored = (header.get("__metadata__") or {}).get("convnet")
        if stored is None:
            raise CheckpointError(f"{path}: not a readable convnet checkpoint (a safetensors file without "
                                  f"convnet's metadata)")
        meta = json.loads(stored)
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable convnet checkpoint ({error})") from None
    model_state = {key[len("model."):]: value for key, value in tensors.items() if key.startswith("model.")}
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
