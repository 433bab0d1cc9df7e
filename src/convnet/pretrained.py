"""Trained weights that ship inside the package, for ``models.MODEL(pretrained=True)`` and the
commands that take a model's name.

Each model's weights are one safetensors file in ``convnet/weights/`` with a card beside it
(``NAME.json``): the file's SHA-256, the exact command and seed that trained it, the training's
wall time and the machine, and the test accuracy it reached, overall and per class. Loading
checks the file against its card's SHA-256, so a damaged or replaced file is refused, never used.
"""

import hashlib
import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors

from .errors import ConvnetError

WEIGHTS = Path(__file__).parent / "weights"


class PretrainedError(ConvnetError, RuntimeError):
    """Weights that convnet does not ship, or a shipped file that does not match its card."""


def available():
    """The names of the models whose weights ship with convnet, sorted."""
    return tuple(sorted(path.stem for path in WEIGHTS.glob("*.json")))


def card(name):
    """What is recorded about ``name``'s shipped weights (a dict; see the module's docstring)."""
    path = WEIGHTS / f"{name}.json"
    if not path.is_file():
        shipped = ", ".join(available()) or "none"
        raise PretrainedError(f"convnet ships no trained weights for {name}; it ships weights for: {shipped}")
    return json.loads(path.read_text())


def state_dict(name):
    """``name``'s shipped weights as {parameter or buffer name: array}, checked against its card."""
    recorded = card(name)
    path = WEIGHTS / recorded["file"]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PretrainedError(f"cannot read {name}'s shipped weights {path}: {error.strerror or error}; "
                              f"reinstall convnet") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != recorded["sha256"]:
        raise PretrainedError(f"{path} is damaged or was replaced: expected SHA-256 {recorded['sha256']}, got "
                              f"{digest}; reinstall convnet")
    try:
        return load_tensors(data)
    except SafetensorError as error:  # only a card written for a broken file gets here
        raise PretrainedError(f"{path} is not a readable safetensors file: {error}") from None
