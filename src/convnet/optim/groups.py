"""Parameter groups that give batch norm's parameters their own learning rate and weight decay.

The CIFAR-10 speed records (airbench) train batch norm's biases at 64x the learning rate and
without weight decay; `batch_norm_groups` builds such groups for any convnet optimizer.
"""

import numbers

from ..errors import InvalidType, InvalidValue


def is_batch_norm(module):
    """Whether ``module`` is a batch norm layer (BatchNorm1d / BatchNorm2d).

    Told by its attributes, not its class: ``optim`` sits beside ``nn`` in the layers and may not
    import it. Every convnet batch norm has ``num_features``, ``momentum`` and
    ``track_running_stats``; no other convnet layer has all three.
    """
    return all(hasattr(module, name) for name in ("num_features", "momentum", "track_running_stats"))


def batch_norm_groups(model, lr, bn_lr_scale=1.0, weight_decay=0.0, bn_weight_decay=0.0):
    """Split ``model``'s trainable parameters into two param groups for any convnet optimizer:

    - ``{"params": [every other parameter], "lr": lr, "weight_decay": weight_decay}``
    - ``{"params": [batch norm weights and biases], "lr": lr * bn_lr_scale, "weight_decay": bn_weight_decay}``

    Parameters with ``requires_grad=False`` (e.g. a frozen batch norm weight, as airbench freezes
    them) are left out, and so is a group that would be empty. Order follows
    ``model.named_parameters()``, so a saved optimizer state matches the same model again.

    Example: ``SGD(batch_norm_groups(model, 0.1, bn_lr_scale=64), momentum=0.9)``.
    """
    if not hasattr(model, "named_modules"):
        raise InvalidType(f"batch_norm_groups: expected a Module, got a {type(model).__name__}")
    for name, value in (("lr", lr), ("bn_lr_scale", bn_lr_scale), ("weight_decay", weight_decay),
                        ("bn_weight_decay", bn_weight_decay)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
            raise InvalidValue(f"batch_norm_groups: expected {name} >= 0, got {value!r}")
    norm_ids = {id(p) for module in model.modules() if is_batch_norm(module)
                for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    others = [p for p in trainable if id(p) not in norm_ids]
    norms = [p for p in trainable if id(p) in norm_ids]
    groups = [{"params": params, "lr": float(group_lr), "weight_decay": float(decay)}
              for params, group_lr, decay in ((others, lr, weight_decay), (norms, lr * bn_lr_scale, bn_weight_decay))
              if params]
    if not groups:
        raise InvalidValue(f"batch_norm_groups: {type(model).__name__} has no parameters that require grad")
    return groups


def muon_groups(model, parameters):
    """``parameters`` (a list of ``model``'s parameters, or param groups) with each group's hidden
    layers' weights split off into a group of their own marked ``"muon": True``, the rest marked
    ``"muon": False``, for `Muon`. Hidden weights: every parameter with two or more dimensions
    (linear weights, convolution kernels) but the output layer's, the last of them in
    ``model.parameters()`` (Muon's author leaves the output layer, like biases and gains, to AdamW).

    Example: ``Muon(muon_groups(model, batch_norm_groups(model, 2e-3, bn_lr_scale=4)), lr=2e-3)``.
    """
    if not hasattr(model, "named_modules"):
        raise InvalidType(f"muon_groups: expected a Module, got a {type(model).__name__}")
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    hidden_ids = {id(p) for p in matrices[:-1]}
    if not hidden_ids:
        raise InvalidValue(f"muon_groups: {type(model).__name__} has no hidden layer weights for Muon: "
                           f"expected two or more layers with weight matrices or kernels, got {len(matrices)}")
    groups = parameters if parameters and isinstance(parameters[0], dict) else [{"params": list(parameters)}]
    split = []
    for group in groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        for muon in (False, True):
            params = [p for p in group["params"] if (id(p) in hidden_ids) == muon]
            if params:
                split.append({**settings, "params": params, "muon": muon})
    return split
