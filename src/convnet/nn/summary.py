"""``summary(model, input_shape)``: the table of layers, output shapes and parameter counts
that Keras' ``model.summary()`` prints."""

import numpy as np

from ..tensor import Tensor, no_grad


def summary_rows(model, input_shape):
    """(name, layer type, output shape, parameter count) for every leaf layer, in call order.

    Runs one forward pass on zeros of ``input_shape`` (including the batch dimension) in
    evaluation mode, recording outputs with forward hooks.
    """
    rows, handles = [], []
    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            params = sum(p.numel() for p in module._parameters.values() if p is not None)
            handles.append(module.register_forward_hook(
                lambda m, inputs, output, name=name, params=params:
                rows.append((name, type(m).__name__, tuple(output.shape), params))))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros(input_shape, dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return rows


def summary(model, input_shape):
    """The summary table as text, with total and trainable parameter counts."""
    rows = summary_rows(model, input_shape)
    header = ("Layer (type)", "Output shape", "Param #")
    cells = [(f"{name} ({kind})", str(shape), f"{params:,}") for name, kind, shape, params in rows]
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(3)]
    line = "=" * (sum(widths) + 4)
    text = [line, f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>{widths[2]}}", line]
    text += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in cells]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    text += [line, f"Input shape: {tuple(input_shape)}", f"Total params: {total:,}",
             f"Trainable params: {trainable:,}", f"Non-trainable params: {total - trainable:,}",
             f"Buffers (running statistics): {sum(b.numel() for b in model.buffers()):,}"]
    return "\n".join(text)
