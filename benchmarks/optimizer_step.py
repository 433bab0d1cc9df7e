"""What one optimizer step costs, AdamW against Muon, for the zoo's two Fashion-MNIST networks with
the fast recipe's parameter groups (batch norm at 4x the learning rate, without decay).

    python benchmarks/optimizer_step.py

prints the median of 50 steps after 10 for each, on random gradients: the step does not depend on
their values. Run it alone (docs/results.md, "Fast training").
"""

import time

import convnet  # noqa: F401  (first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads)
import numpy as np

from convnet import Tensor, models, optim

WARMUP, STEPS = 10, 50


def optimizer_for(kind, model):
    groups = optim.batch_norm_groups(model, 2e-3, bn_lr_scale=4.0, weight_decay=0.05)
    if kind == "muon":
        return optim.Muon(optim.muon_groups(model, groups), lr=2e-3, weight_decay=0.05)
    return optim.AdamW(groups, lr=2e-3, weight_decay=0.05)


def main():
    for name in ("reference_cnn", "resnet8"):
        for kind in ("adamw", "muon"):
            model = getattr(models, name)()
            optimizer = optimizer_for(kind, model)
            rng = np.random.default_rng(0)
            for p in model.parameters():
                p.grad = Tensor(rng.standard_normal(p.shape).astype(np.float32) * 1e-3)
            times = []
            for _ in range(WARMUP + STEPS):
                start = time.perf_counter()
                optimizer.step()
                times.append(time.perf_counter() - start)
            print(f"{name} {kind}: {np.median(times[WARMUP:]) * 1000:.2f} ms per step")


if __name__ == "__main__":
    main()
