"""Looking inside a forward pass: every leaf layer's output, in call order, from the real run."""

from dataclasses import dataclass

import numpy as np

from ..tensor import Tensor, no_grad


@dataclass
class LayerOutput:
    name: str      # dotted name in the model ('features.0')
    module: object
    input: np.ndarray
    output: np.ndarray


def record_outputs(model, x):
    """Run ``model`` on ``x`` (evaluation mode, no graph) and return (LayerOutput list, output).

    Outputs are captured with forward hooks on every leaf module, so they are exactly the
    values the model computed, in the order the layers ran.
    """
    records, handles = [], []
    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda m, inputs, output, name=name: records.append(
                    LayerOutput(name, m, np.asarray(inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0]),
                                np.asarray(output.data)))))
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
