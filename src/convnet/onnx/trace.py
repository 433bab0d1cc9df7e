"""`Trace`: a model's forward run once on an example input with autograd recording, for `export`.

Autograd already records what the forward computed: each output Tensor's ``grad_fn`` is the
Function that made it, holding its ``inputs``. The trace adds what the modules were: a forward
hook on every module records each call (the module, its path, its arguments, its output) and
marks, for each Function the call's forward recorded, the innermost module that ran it. The hooks
also keep `nn.Sequential` from fusing a ReLU into the max pooling after it (it fuses only layers
without hooks), so the exported graph shows both. A wrapper around each module's ``forward``
notes the innermost module that raised, so that a model that cannot run on the example input
is refused naming that module's path.
"""

from typing import NamedTuple

from .. import nn
from ..errors import ConvnetError
from ..tensor import Tensor, set_grad_enabled

RUN_ERRORS = (ValueError, TypeError, ConvnetError)  # a forward that refuses its input
CHANNEL_READERS = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)  # layers whose weights fix the input's channels


class Call(NamedTuple):
    module: nn.Module
    path: str
    input: Tensor   # the first positional argument
    output: Tensor


class Trace:
    """One traced forward of ``model``; `run` fills:

    ``calls``: {id(output Tensor): `Call`} for each call that returned a Tensor other than its input
    (the innermost call, where several modules return the same Tensor);
    ``owners``: {id(Function): (path, module)}: the innermost module whose forward recorded it;
    ``failed``: (path, module) of the innermost module that raised, or None;
    ``first_reader``: (path, module) of the first Conv2d, ConvTranspose2d or BatchNorm2d called.
    """

    def __init__(self, model):
        self.model = model
        self.calls, self.owners = {}, {}
        self.failed = self.first_reader = None
        self._kept = []  # every recorded Tensor stays alive, so that no id is reused while the trace lives

    def run(self, example):
        """``model(example)`` with autograd recording and every module observed; returns its output.
        The hooks and wrappers are gone afterwards, whether it ran or raised."""
        handles, wrapped, seen = [], [], set()
        for path, module in self.model.named_modules():
            if id(module) in seen:  # a module reachable twice is named by its first path, as in state_dict
                continue
            seen.add(id(module))
            handles.append(module.register_forward_hook(self._hook(path)))
            wrapped.append((module, module.__dict__.get("forward")))  # a forward set on the instance is put back
            object.__setattr__(module, "forward", self._watched(path, module, module.forward))
        try:
            with set_grad_enabled(True):
                return self.model(example)
        finally:
            for handle in handles:
                handle.remove()
            for module, own_forward in wrapped:
                if own_forward is None:
                    del module.__dict__["forward"]
                else:
                    object.__setattr__(module, "forward", own_forward)

    def _watched(self, path, module, forward):
        def run(*args, **kwargs):
            if self.first_reader is None and isinstance(module, CHANNEL_READERS):
                self.first_reader = (path, module)
            try:
                return forward(*args, **kwargs)
            except RUN_ERRORS:
                self.failed = self.failed or (path, module)  # the innermost: its wrapper sees the error first
                raise
        return run

    def _hook(self, path):
        def record(module, args, output):
            if not isinstance(output, Tensor):
                return
            tensors = [a for a in args if isinstance(a, Tensor)]
            tensors += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, Tensor)]
            self._kept.extend([output, *tensors])
            if args and isinstance(args[0], Tensor) and output is not args[0]:
                self.calls.setdefault(id(output), Call(module, path, args[0], output))
            self._own(path, module, output, {id(t) for t in tensors})
        return record

    def _own(self, path, module, output, arguments):
        """Mark as ``module``'s each Function between ``output`` and the call's arguments that no
        module inside it claimed (those ran first, so their hooks came first)."""
        stack, visited = [output], set()
        while stack:
            tensor = stack.pop()
            fn = tensor.grad_fn
            if id(tensor) in arguments or id(tensor) in visited or fn is None:
                continue
            visited.add(id(tensor))
            self.owners.setdefault(id(fn), (path, module))
            stack.extend(t for t in fn.inputs if isinstance(t, Tensor))

    def reads(self, tensor, layer_call):
        """The Tensors the step making ``tensor`` reads: a layer call's input (``layer_call``: the
        `Call` written whole, or None), or its Function's Tensor inputs; none for a constant."""
        if layer_call is not None:
            return [layer_call.input]
        if tensor.grad_fn is None:
            return []
        return [t for t in tensor.grad_fn.inputs if isinstance(t, Tensor)]

    def steps(self, output, start, layer_call):
        """The Tensors from ``start`` (excluded) to ``output``, each after every one it reads, that a
        node makes: those with a Function or a `layer_call(tensor)` (constants are written when read).
        Iterative, as graphs hundreds of Functions deep would overflow recursion."""
        done, order, stack = {id(start)}, [], [(output, False)]
        while stack:
            tensor, expanded = stack.pop()
            if id(tensor) in done:
                continue
            if expanded:
                done.add(id(tensor))
                order.append(tensor)
                continue
            call = layer_call(tensor)
            if call is None and tensor.grad_fn is None:
                continue
            stack.append((tensor, True))
            stack.extend((read, False) for read in reversed(self.reads(tensor, call)) if id(read) not in done)
        return order
