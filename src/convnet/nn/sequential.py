"""Sequential: modules run in order, with each ReLU that a MaxPool2d follows folded into the pooling.

The fusion is its own visible step, `fused_steps`, and lives here, above the layers it joins:
`module.py` knows no layer, so nothing in ``convnet.nn`` imports back up.
"""

import functools
from collections import OrderedDict

from .activation import ReLU
from .module import Module
from .pooling import MaxPool2d
from ..errors import InvalidType


class Sequential(Module):
    """Runs its modules in order; ``Sequential(a, b)(x) == b(a(x))``. Keys are '0', '1', ...

    An `nn.ReLU` followed by an `nn.MaxPool2d`, neither with forward hooks, runs as one op,
    `F.relu_max_pool2d`: the same values and gradients in fewer passes over the feature maps
    (see `fused_steps`).

    >>> import convnet
    >>> from convnet import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    >>> model(convnet.zeros(2, 1, 10, 10)).shape, list(model.state_dict())
    ((2, 4, 4, 4), ['0.weight', '0.bias'])
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            modules = modules[0].items()
        else:
            modules = ((str(i), module) for i, module in enumerate(modules))
        for name, module in modules:
            if not isinstance(module, Module):
                raise InvalidType(f"Sequential: expected Module arguments, got {type(module).__name__} for '{name}'")
            setattr(self, name, module)

    def forward(self, x):
        for step in fused_steps(list(self._modules.values())):
            x = step(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        setattr(self, str(len(self)), module)
        return self


def fused_steps(modules):
    """The calls that run ``modules`` in order: each `ReLU` directly followed by a `MaxPool2d`,
    neither with forward hooks (a hook must see the value between them), becomes one call of the
    pooling layer on the unrectified input, ``rectify_input=True``. ReLU commutes with the maximum,
    so the values and gradients are those of the two layers run one after the other.

    >>> from convnet import nn
    >>> relu, pool, flatten = nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
    >>> [getattr(step, "keywords", step) for step in fused_steps([relu, pool, flatten])]
    [{'rectify_input': True}, Flatten(start_dim=1, end_dim=-1)]
    """
    steps, index = [], 0
    while index < len(modules):
        first, second = modules[index], modules[index + 1] if index + 1 < len(modules) else None
        if (type(first) is ReLU and type(second) is MaxPool2d
                and not first._forward_hooks and not second._forward_hooks):
            steps.append(functools.partial(second, rectify_input=True))
            index += 2
        else:
            steps.append(first)
            index += 1
    return steps
