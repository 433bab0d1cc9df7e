"""Looking inside a forward pass: every layer's output, in the order the layers finished, from the real run."""

from dataclasses import dataclass

import numpy as np

from ..tensor import Tensor, no_grad


@dataclass
class LayerOutput:
    name: str      # dotted name in the model ('features.0'; '' for the model itself)
    module: object
    input: np.ndarray
    output: np.ndarray


def record_outputs(model, x, containers=False):
    """Run ``model`` on ``x`` (evaluation mode, no graph) and return (LayerOutput list, output).

    Outputs are captured with forward hooks on every leaf module (with ``containers``, on every
    module, the model itself included), so they are exactly the values the model computed, in the
    order the layers finished: a container after the layers inside it, and a layer called twice
    (torchvision's ResNet reuses its ReLU) twice. A container's output is one that its leaves may
    not give: a residual block's, after its sum and its functional ReLU.
    """
    records, handles = [], []

    def record(name, module, inputs, output):
        if isinstance(output, (Tensor, np.ndarray)):  # not a module that answers a tuple (a split)
            first = inputs[0] if inputs and isinstance(inputs[0], (Tensor, np.ndarray)) else None
            records.append(LayerOutput(name, module, None if first is None else _array(first), _array(output)))

    for name, module in model.named_modules():
        if containers or not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda m, inputs, output, name=name: record(name, m, inputs, output)))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            output = model(x if isinstance(x, Tensor) else Tensor(x))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return records, np.asarray(output.data)


def _array(value):
    return np.asarray(value.data if isinstance(value, Tensor) else value)
