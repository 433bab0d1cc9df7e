"""The op cases: convolutions over a few shapes (CONV_CASES; `grid_cases` has the full grid),
pooling, batch norm and cross entropy, each forward and forward+backward, on the same random
arrays for every contender. convnet's 4-D input is in the memory layout ``layout`` names
(`case.LAYOUTS`: channels-last by default, as PyTorch channels_last's), and the gradient the
backward starts from is ones in the memory layout of the op's output, for every contender."""

import numpy as np

from .. import functional as F
from ..tensor import Tensor, no_grad
from .case import DEFAULT_LAYOUT, Case, import_torch, in_layout, torch_inputs
from .flops import conv_flops, op_flops

CONV_CASES = [  # (label, N, C, H, W, O, kernel, stride, padding, groups)
    ("conv 1->32 3x3 p1 28x28 N=128", 128, 1, 28, 28, 32, 3, 1, 1, 1),
    ("conv 32->64 3x3 p1 14x14 N=128", 128, 32, 14, 14, 64, 3, 1, 1, 1),
    ("conv 64->64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 1),
    ("conv 64->128 3x3 s2 p1 16x16 N=32", 32, 64, 16, 16, 128, 3, 2, 1, 1),
    ("conv lesson 1->100 10x10 256x256 N=8", 8, 1, 256, 256, 100, 10, 1, 0, 1),
    ("conv depthwise 64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 64),
]


# ---------------------------------------------------------------------------- cases


def op_case(name, ours, theirs, arrays, input_grad, backward, flops=0, layout=DEFAULT_LAYOUT):
    """Forward (or forward+backward with a gradient of ones) of an op on fixed ``arrays`` (a list,
    or a function that makes it when the case is built), the first of which is the input (it needs
    a gradient when ``input_grad``; the others, the parameters, always do); ``flops`` is the
    forward's."""
    def build(contender):
        fixed = arrays() if callable(arrays) else arrays
        if contender == "convnet":
            ours_arrays = [in_layout(fixed[0], layout), *fixed[1:]]

            def run():
                inputs = [Tensor(a, requires_grad=backward and (input_grad or i > 0) and a.dtype.kind == "f")
                          for i, a in enumerate(ours_arrays)]
                if not backward:
                    with no_grad():
                        return ours(*inputs)
                out = ours(*inputs)
                out.backward(np.ones_like(out.data) if out.data.size > 1 else None)  # the output's layout
            return run
        torch = import_torch()
        tensors = torch_inputs(torch, fixed, contender == "torch_cl")

        def run():
            inputs = [t.detach().requires_grad_(backward and (input_grad or i > 0) and t.is_floating_point())
                      for i, t in enumerate(tensors)]
            if not backward:
                with torch.no_grad():
                    return theirs(torch.nn.functional, *inputs)
            out = theirs(torch.nn.functional, *inputs)
            out.backward(torch.ones_like(out) if out.numel() > 1 else None)
        return run
    return Case(f"{name} {'forward+backward' if backward else 'forward'}", build,
                flops=op_flops(flops, backward, input_grad))


def op_cases(quick, layout=DEFAULT_LAYOUT):
    """Every op case, forward and forward+backward, on the same random arrays for every contender."""
    rng = np.random.default_rng(0)
    cases = []
    for label, n, c, h, w, o, k, s, p, g in CONV_CASES:
        n = max(1, n // 4) if quick else n
        arrays = [rng.standard_normal((n, c, h, w), dtype=np.float32),
                  rng.standard_normal((o, c // g, k, k), dtype=np.float32) * 0.1, rng.standard_normal(o, dtype=np.float32)]
        for backward in (False, True):
            cases.append(op_case(label, lambda x, w, b, s=s, p=p, g=g: F.conv2d(x, w, b, s, p, 1, g),
                                 lambda tf, x, w, b, s=s, p=p, g=g: tf.conv2d(x, w, b, s, p, 1, g), arrays, c > 1,
                                 backward, conv_flops(n, c, h, w, o, k, s, p, g), layout))
    n = 32 if quick else 128
    pooled = [rng.standard_normal((n, 32, 28, 28), dtype=np.float32)]
    strided = [rng.standard_normal((n // 2, 64, 32, 32), dtype=np.float32)]
    normed = [pooled[0], np.ones(32, np.float32), np.zeros(32, np.float32)]
    mean, var = np.zeros(32, np.float32), np.ones(32, np.float32)
    target = rng.integers(0, 1000, 4 * n)
    for backward in (False, True):
        cases += [
            op_case("max_pool2d 2x2 (N, 32, 28, 28)", lambda x: F.max_pool2d(x, 2), lambda tf, x: tf.max_pool2d(x, 2),
                    pooled, True, backward, layout=layout),
            op_case("max_pool2d 3x3 s2 p1 (N, 64, 32, 32)", lambda x: F.max_pool2d(x, 3, 2, 1),
                    lambda tf, x: tf.max_pool2d(x, 3, 2, 1), strided, True, backward, layout=layout),
            op_case("batch_norm2d train (N, 32, 28, 28)",
                    lambda x, w, b: F.batch_norm(x, mean.copy(), var.copy(), w, b, training=True),
                    lambda tf, x, w, b: tf.batch_norm(x, None, None, w, b, training=True), normed, True, backward,
                    layout=layout),
            op_case("cross_entropy (4N, 1000)", lambda x: F.cross_entropy(x, target),
                    lambda tf, x: tf.cross_entropy(x, import_torch().from_numpy(target)),
                    [rng.standard_normal((4 * n, 1000), dtype=np.float32)], True, backward),
        ]
    return cases
