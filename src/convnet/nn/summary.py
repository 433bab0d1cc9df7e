"""``summary(model, input_shape)``: the table torchinfo's ``summary`` prints (and Keras'
``model.summary()``): every module as the forward pass called it, nested modules indented under
the module that called them, with its output shape, parameter count and multiply-adds; then the
totals and the memory a forward and backward pass takes, in torchinfo's terms and units."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidValue
from .inspect import record_outputs

MEGABYTE = 1e6  # torchinfo's MB


@dataclass
class SummaryRow:
    """One call of one module: ``depth`` 0 is the model itself; ``params``: the module's own
    parameters (its whole subtree's at the depth limit, where its children are hidden), None
    for a module called again ("(recursive)"); ``mult_adds``: torchinfo's count for this call."""
    name: str
    kind: str
    depth: int
    output_shape: tuple
    params: int | None
    mult_adds: int
    children: list = field(default_factory=list)


def summary_rows(model, input_shape):
    """(name, layer type, output shape, parameter count) for every leaf layer, in call order,
    from one forward pass on zeros of ``input_shape`` (batch dimension included)."""
    records, _ = record_outputs(model, np.zeros(input_shape, dtype=np.float32))
    return [(r.name, type(r.module).__name__, tuple(r.output.shape), _own_parameters(r.module)) for r in records]


def _own_parameters(module):
    return sum(p.numel() for p in module._parameters.values() if p is not None)


def mult_adds(module, output_shape):
    """torchinfo's multiply-adds of one call of ``module`` giving ``output_shape``: for each of its
    own ``weight`` and ``bias``, a convolution's size x N x H' x W' (each weight meets every output
    position of one output channel), any other layer's size x N (a linear layer's, a norm's)."""
    kind = type(module).__name__
    total = 0
    for name in ("weight", "bias"):
        parameter = module._parameters.get(name)
        if parameter is None:
            continue
        positions = int(np.prod(output_shape[:1] + tuple(output_shape[2:]))) if "Conv" in kind else output_shape[0]
        total += parameter.numel() * positions
    return total


def summary_tree(model, input_shape, records=None):
    """The model's `SummaryRow` tree (the model itself at the root), from one forward pass on zeros of
    ``input_shape`` (or the ``records`` of a pass on such an input, `record_outputs` with containers),
    and the pass's records. Hooks see a module when it finishes, after the modules it called, so each
    module adopts the finished rows below it in its name."""
    if records is None:
        records, _ = record_outputs(model, np.zeros(input_shape, dtype=np.float32), containers=True)
    finished, seen = [], set()
    for record in records:
        own = _own_parameters(record.module)
        row = SummaryRow(record.name, type(record.module).__name__, 0, tuple(record.output.shape),
                         None if own and id(record.module) in seen else own,
                         mult_adds(record.module, record.output.shape))
        seen.add(id(record.module))
        while finished and _inside(finished[-1].name, record.name):
            row.children.insert(0, finished.pop())
        finished.append(row)
    root = finished[-1]
    _set_depths(root, 0)
    return root, records


def _inside(name, container):
    return container == "" or name.startswith(container + ".")


def _set_depths(row, depth):
    row.depth = depth
    for child in row.children:
        _set_depths(child, depth + 1)


def _shown(row, depth, modules):
    """Rows in call order down to ``depth`` (None: all); a row whose children are hidden counts them."""
    if depth is not None and row.depth == depth and row.children:
        row.params = sum(p.numel() for p in modules[row.name].parameters())
        row.mult_adds = _all_mult_adds(row)
    yield row
    if depth is None or row.depth < depth:
        for child in row.children:
            yield from _shown(child, depth, modules)


def summary(model, input_shape, depth=None, records=None):
    """The summary table as text: each module call down to ``depth`` (None: every level; 0 the
    model alone), indented by depth, with output shape, parameter count and multiply-adds; then
    total, trainable and non-trainable parameters, total multiply-adds, and the sizes torchinfo
    estimates: input, forward/backward pass (the outputs of the layers with parameters, twice: the
    values and their gradients) and parameters, in MB of 10^6 bytes. ``records``: a pass already
    recorded on an input of ``input_shape`` (`record_outputs` with containers), not run again."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise InvalidValue(f"summary: expected depth None or an integer >= 0, got {depth!r}")
    root, records = summary_tree(model, input_shape, records)
    operations = _all_mult_adds(root)
    rows = list(_shown(root, depth, dict(model.named_modules())))
    header = ("Layer (type)", "Output shape", "Param #", "Mult-Adds")
    cells = [(_label(row), str(row.output_shape), _count(row), f"{row.mult_adds:,}" if row.mult_adds else "--")
             for row in rows]
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(4)]
    line = "=" * (sum(widths) + 6)

    def format_row(cell):
        return f"{cell[0]:<{widths[0]}}  {cell[1]:<{widths[1]}}  {cell[2]:>{widths[2]}}  {cell[3]:>{widths[3]}}"

    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    input_bytes = int(np.prod(input_shape)) * 4
    pass_bytes = 2 * sum(r.output.nbytes for r in records if _own_parameters(r.module))
    parameter_bytes = sum(p.numel() * np.dtype(p.dtype).itemsize for p in parameters)
    unit, scale = ("G", 1e9) if operations >= 1e9 else ("M", 1e6)
    text = [line, format_row(header), line, *map(format_row, cells), line,
            f"Input shape: {tuple(input_shape)}", f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", f"Total mult-adds ({unit}): {operations / scale:.2f}",
            f"Buffers (running statistics): {sum(b.numel() for b in model.buffers()):,}", line,
            f"Input size (MB): {input_bytes / MEGABYTE:.2f}",
            f"Forward/backward pass size (MB): {pass_bytes / MEGABYTE:.2f}",
            f"Params size (MB): {parameter_bytes / MEGABYTE:.2f}",
            f"Estimated Total Size (MB): {(input_bytes + pass_bytes + parameter_bytes) / MEGABYTE:.2f}", line]
    return "\n".join(text)


def _label(row):
    title = f"{row.name} ({row.kind})" if row.name else row.kind
    return title if row.depth == 0 else "│   " * (row.depth - 1) + "└─" + title


def _count(row):
    if row.params is None:
        return "(recursive)"
    return f"{row.params:,}" if row.params else "--"


def _all_mult_adds(row):
    return row.mult_adds + sum(_all_mult_adds(child) for child in row.children)
