"""Module and Parameter: what every layer and model is built from.

Attribute assignment registers parameters, buffers and sub-modules, so ``state_dict()`` keys
follow PyTorch's dotted names (``features.0.weight``, ``bn.running_mean``) and weights move
between convnet and PyTorch unchanged.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from ..errors import InvalidType, InvalidValue
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (requires_grad=True by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, (Parameter, Module)):
            self._forget(name)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._buffers:
            self._buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
        elif name in self._parameters or name in self._modules:
            if value is not None:
                raise InvalidType(f"{type(self).__name__}: cannot assign {type(value).__name__} to '{name}' "
                                f"(expected a Parameter, a Module or None)")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules, self.__dict__):
            registry.pop(name, None)

    def __getattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry, {})
            if name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """A non-learnable tensor saved in the state_dict (e.g. BatchNorm's running_mean)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; a non-None result replaces the output."""
        key = object()
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    # ------------------------------------------------------------------ running
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        try:
            output = self.forward(*args, **kwargs)
        except (ValueError, TypeError) as error:
            _name_layer(error, self)
            raise
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, dtype):
        """Cast floating parameters and buffers to ``dtype`` in place (e.g. np.float64 for gradient checks)."""
        for tensor in list(self.parameters()) + list(self.buffers()):
            if np.issubdtype(tensor.dtype, np.floating):
                tensor.data = tensor.data.astype(dtype)
                tensor.grad = None
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, child) for name, child in self._modules.items() if child is not None)

    def children(self):
        return (child for _, child in self.named_children())

    def _named_tensors(self, registry):
        seen = set()
        for prefix, module in self.named_modules():
            for name, tensor in getattr(module, registry).items():
                if tensor is not None and id(tensor) not in seen:
                    seen.add(id(tensor))
                    yield (f"{prefix}.{name}" if prefix else name), tensor

    def named_parameters(self):
        return self._named_tensors("_parameters")

    def parameters(self):
        return (parameter for _, parameter in self.named_parameters())

    def named_buffers(self):
        return self._named_tensors("_buffers")

    def buffers(self):
        return (buffer for _, buffer in self.named_buffers())

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Copies of every parameter and buffer, keyed like PyTorch (each module's own
        parameters, then its buffers, then its children's, depth first)."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        state[f"{prefix}.{name}" if prefix else name] = tensor.data.copy()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy ``state_dict``'s arrays into this module's tensors, in place.

        Every problem is reported at once: with ``strict``, missing and unexpected keys; always,
        shape mismatches. Values may be arrays, Tensors or anything ``np.asarray`` accepts
        (PyTorch tensors included).
        """
        targets = {}
        for prefix, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        targets[f"{prefix}.{name}" if prefix else name] = tensor
        values = {key: np.asarray(value.data if isinstance(value, Tensor) else value)
                  for key, value in state_dict.items()}
        missing = [key for key in targets if key not in values]
        unexpected = [key for key in values if key not in targets]
        mismatched = [f"{key}: expected shape {targets[key].shape}, got {values[key].shape}"
                      for key in targets if key in values and values[key].shape != targets[key].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if mismatched:
            problems.append("wrong shapes: " + "; ".join(mismatched))
        overflowing = [key for key in targets if key in values and _overflows(values[key], targets[key].dtype)]
        if overflowing:
            problems.append(f"values too large for {targets[overflowing[0]].dtype} (they would become infinite): "
                            f"{overflowing}")
        if problems:
            raise InvalidValue(f"load_state_dict for {type(self).__name__}: " + ". ".join(problems))
        for key, tensor in targets.items():
            if key in values:
                tensor.data[...] = values[key]
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ display
    def extra_repr(self):
        return ""

    def describe(self):
        """One line naming this layer and its arguments, used in error messages."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self):
        children = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = ([self.extra_repr()] if self.extra_repr() else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _name_layer(error, module):
    """Prefix an error raised inside ``module`` with the innermost layer's description, once."""
    if getattr(error, "layer_named", False) or not error.args:
        return
    message = str(error.args[0])
    if not message.startswith(module.describe()):
        error.args = (f"{module.describe()}: {message}",) + error.args[1:]
    error.layer_named = True


def _overflows(values, dtype):
    """Whether finite ``values`` would become infinite as ``dtype`` (a float64 1e300 in a float32
    weight), which copying them in would do silently."""
    if values.dtype.kind != "f" or np.dtype(dtype).kind != "f" or np.dtype(dtype).itemsize >= values.dtype.itemsize:
        return False
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.abs(finite).max() > np.finfo(dtype).max)
