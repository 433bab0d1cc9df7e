"""``summary(model, input_shape)``: the table of layers, output shapes and parameter counts
that Keras' ``model.summary()`` prints."""

import numpy as np

from .inspect import record_outputs


def summary_rows(model, input_shape):
    """(name, layer type, output shape, parameter count) for every leaf layer, in call order,
    from one forward pass on zeros of ``input_shape`` (batch dimension included)."""
    records, _ = record_outputs(model, np.zeros(input_shape, dtype=np.float32))
    return [(r.name, type(r.module).__name__, tuple(r.output.shape),
             sum(p.numel() for p in r.module._parameters.values() if p is not None)) for r in records]


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
