"""The convolution grid (``--parts convgrid``): convolutions and max pooling over ordinary shapes,
each forward (inference) and forward+backward (training), against PyTorch's two layouts.

Not the cross product of the axes (kernels 1, 3, 5, 7 and the lesson's 10; strides 1 and 2; 1 to
512 channels; 7 to 256 px; batch 1 to 128: thousands of shapes, hours on two cores) but a designed
list in which every value of every axis occurs, drawn from the layers of real networks: issue 30's
own table, the zoo's networks at batch 128, every convolution shape of ResNet-18 at 224 px and
batch 16, 1x1 convolutions (projections and bottlenecks), batch 1 (inference), and the lesson's
10x10 kernels; the pooling shapes are the issue's, ResNet-18's stem pooling, the zoo's and the
lesson's. `--quick` divides every batch by four (at least 1).

A convolution's input needs a gradient only when it has more than 3 channels: 1 or 3 channels
are images here, which no network differentiates (the same rule for every contender).
"""

import numpy as np

from .. import functional as F
from .case import DEFAULT_LAYOUT
from .flops import conv_flops
from .op_cases import op_case

CONV_GRID = [  # (N, C, H, W, O, kernel, stride, padding, groups)
    # issue 30's table
    (64, 16, 24, 24, 32, 5, 1, 2, 1),
    (128, 64, 7, 7, 128, 3, 1, 1, 1),
    (16, 3, 64, 64, 16, 7, 2, 3, 1),
    (32, 48, 20, 20, 96, 3, 2, 0, 1),
    (8, 3, 224, 224, 64, 7, 2, 3, 1),    # an ImageNet stem
    (2, 1, 256, 256, 100, 10, 1, 0, 1),  # the lesson
    # the zoo at batch 128: reference CNN, LeNet-5, ResNet-8
    (128, 1, 28, 28, 32, 3, 1, 1, 1),
    (128, 32, 14, 14, 64, 3, 1, 1, 1),
    (128, 1, 28, 28, 6, 5, 1, 2, 1),
    (128, 6, 14, 14, 16, 5, 1, 0, 1),
    (128, 32, 28, 28, 32, 3, 1, 1, 1),
    (128, 32, 28, 28, 64, 3, 2, 1, 1),
    (128, 32, 28, 28, 64, 1, 2, 0, 1),
    # ResNet-18 at 224 px, batch 16 (its stem is the ImageNet stem above, at batch 8 and 1)
    (16, 64, 56, 56, 64, 3, 1, 1, 1),
    (16, 64, 56, 56, 128, 3, 2, 1, 1),
    (16, 64, 56, 56, 128, 1, 2, 0, 1),
    (16, 128, 28, 28, 128, 3, 1, 1, 1),
    (16, 128, 28, 28, 256, 3, 2, 1, 1),
    (16, 128, 28, 28, 256, 1, 2, 0, 1),
    (16, 256, 14, 14, 256, 3, 1, 1, 1),
    (16, 256, 14, 14, 512, 3, 2, 1, 1),
    (16, 512, 7, 7, 512, 3, 1, 1, 1),
    # 1x1 convolutions, stride 1: a bottleneck's reduction and expansion
    (32, 256, 14, 14, 64, 1, 1, 0, 1),
    (32, 64, 14, 14, 256, 1, 1, 0, 1),
    # 5x5 and 7x7 beyond the stems, and the lesson in colour
    (32, 32, 28, 28, 32, 7, 1, 3, 1),
    (32, 32, 32, 32, 64, 5, 2, 2, 1),
    (1, 3, 256, 256, 100, 10, 1, 0, 1),
    # batch 1: one image at a time through an ImageNet network
    (1, 3, 224, 224, 64, 7, 2, 3, 1),
    (1, 64, 56, 56, 64, 3, 1, 1, 1),
    (1, 256, 14, 14, 256, 3, 1, 1, 1),
    (1, 256, 56, 56, 64, 1, 1, 0, 1),
    # depthwise (MobileNet's)
    (64, 64, 32, 32, 64, 3, 1, 1, 64),
]

POOL_GRID = [  # (N, C, H, W, kernel, stride, padding)
    (128, 40, 26, 26, 2, 2, 0),    # issue 30's table
    (128, 48, 30, 30, 3, 2, 0),    # issue 30's table
    (128, 32, 28, 28, 2, 2, 0),    # the reference CNN's first pooling
    (16, 64, 112, 112, 3, 2, 1),   # ResNet-18's stem
    (1, 64, 112, 112, 3, 2, 1),    # ResNet-18's stem, one image
    (2, 100, 247, 247, 2, 2, 0),   # the lesson's (odd side: the last row and column are dropped)
]


def conv_name(n, c, h, w, o, k, s, p, g):
    """A grid convolution's name, its shape in words: 'conv 16x64x56x56->128 3x3 s2 p1'."""
    return (f"conv {n}x{c}x{h}x{w}->{o} {k}x{k}" + (f" s{s}" if s > 1 else "") + (f" p{p}" if p else "")
            + (" depthwise" if g > 1 else ""))


def pool_name(n, c, h, w, k, s, p):
    """A grid pooling's name: 'max_pool2d 3x3 s2 p1 16x64x112x112'."""
    return f"max_pool2d {k}x{k} s{s}" + (f" p{p}" if p else "") + f" {n}x{c}x{h}x{w}"


def scaled(batch, quick):
    return max(1, batch // 4) if quick else batch


def grid_cases(quick, layout=DEFAULT_LAYOUT):
    """The grid's cases, forward and forward+backward of each shape. Each shape's random arrays
    (seeded by its place in the grid, so every process has the same) are made when a contender
    first builds the case, not when the list is made."""
    cases = []
    for index, (n, c, h, w, o, k, s, p, g) in enumerate(CONV_GRID):
        n = scaled(n, quick)

        def arrays(index=index, shape=(n, c, h, w), weight=(o, c // g, k, k)):
            rng = np.random.default_rng(index)
            return [rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(weight, dtype=np.float32) * 0.1,
                    rng.standard_normal(weight[0], dtype=np.float32)]
        for backward in (False, True):
            cases.append(op_case(conv_name(n, c, h, w, o, k, s, p, g),
                                 lambda x, w, b, s=s, p=p, g=g: F.conv2d(x, w, b, s, p, 1, g),
                                 lambda tf, x, w, b, s=s, p=p, g=g: tf.conv2d(x, w, b, s, p, 1, g),
                                 arrays, c > 3, backward, conv_flops(n, c, h, w, o, k, s, p, g), layout))
    for index, (n, c, h, w, k, s, p) in enumerate(POOL_GRID, start=len(CONV_GRID)):
        n = scaled(n, quick)

        def arrays(index=index, shape=(n, c, h, w)):
            return [np.random.default_rng(index).standard_normal(shape, dtype=np.float32)]
        for backward in (False, True):
            cases.append(op_case(pool_name(n, c, h, w, k, s, p), lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p),
                                 lambda tf, x, k=k, s=s, p=p: tf.max_pool2d(x, k, s, p), arrays, True, backward,
                                 layout=layout))
    return cases
