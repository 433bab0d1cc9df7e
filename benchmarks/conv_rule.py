"""The measurements behind `convnet.kernels.conv_algorithm`'s choice for stride-1 3x3 convolutions:
Winograd F(2x2, 3x3) ('winograd'), F(4x4, 3x3) ('winograd4'), channels-last im2col ('im2col_last')
and channel-major im2col ('im2col').

Part 1, ``ops``: every stride-1 3x3 shape of the bench's grid (`convnet.bench.grid_cases.CONV_GRID`,
at least 8 input channels) and of the zoo (the reference CNN's and ResNet-8's at batch 128), with
the input in channels-last memory (as an 'im2col_last' layer hands it on) and in channel-major memory
(as a Winograd layer hands it on), forward and forward+backward (the output's gradient in the
output's layout), each algorithm forced with `kernels.use_algorithm`. Part 2, ``steps``: a whole
training step (Adam) of ResNet-8 (batch 128, 28x28) and of the bench's ResNet-18 (batch 4 at 224 px
by default) under each rule in RULES, since layouts chain from layer to layer.

Everything runs in one process, contenders interleaved within each block (the order rotating from
block to block), and the table gives each contender's median time over the blocks and the median
of its per-block ratio to the first contender, with the min-max of that ratio, and the median share
of the machine that other processes used during a block (from /proc/stat's 10 ms ticks: meaningless
for blocks of a few ms). On a shared machine the
figures are rough; rerun on a quiet one:

    .venv/bin/python benchmarks/conv_rule.py                     # both parts, 2 Numba threads
    .venv/bin/python benchmarks/conv_rule.py --parts ops --blocks 7 --divide 1
"""

import argparse
import os
import platform
import statistics
import time

import convnet  # before NumPy: it sets the idle wait of BLAS's threads
from convnet import functional as F
from convnet import kernels, models, optim
from convnet.bench.grid_cases import CONV_GRID
from convnet.bench.model_cases import resnet18
from convnet.kernels import convolution
from convnet.kernels.convolution import channel_major, channels_last, nchw
from convnet.tensor import Tensor, no_grad

import numba
import numpy as np

ZOO = [(128, 32, 14, 14, 64),     # reference CNN's second convolution (also in the grid)
       (128, 32, 28, 28, 32),     # ResNet-8's first stage (also in the grid)
       (128, 64, 14, 14, 64),     # ResNet-8's second stage, second convolution
       (128, 128, 7, 7, 128)]     # ResNet-8's third stage, second convolution

# The rules a training step is timed under: which algorithm a stride-1, undilated 3x3 convolution
# with groups 1 and at least 8 input channels gets, from its input channels, its input's memory
# ('channels_last', 'channel_major' or None) and its output's (H', W'); 'shipped' is
# convnet.kernels.conv_algorithm as it is ('winograd' is issue 13's rule: from 8 input channels).
# (The output size is not among conv_algorithm's arguments: 'winograd_above_7px' tells what it
# would be worth.)
def _im2col(layout):
    return "im2col" if layout == "channel_major" else "im2col_last"


RULES = {"shipped": None,
         "winograd": lambda channels, layout, output_hw: "winograd",
         "im2col": lambda channels, layout, output_hw: _im2col(layout),
         "winograd_on_channel_major": lambda channels, layout, output_hw:
             "winograd" if layout == "channel_major" else "im2col_last",
         "winograd_to_128": lambda channels, layout, output_hw: "winograd" if channels <= 128 else _im2col(layout),
         "winograd_above_7px": lambda channels, layout, output_hw:
             "winograd" if min(output_hw) > 7 else _im2col(layout)}


def stride1_3x3_shapes(divide):
    """(N, C, H, W, O) of the grid's stride-1 3x3 convolutions with at least 8 input channels and of
    ZOO, batches divided by ``divide`` (at least 1), without repeats."""
    shapes = [(n, c, h, w, o) for n, c, h, w, o, k, s, p, g in CONV_GRID if k == 3 and s == 1 and g == 1 and c >= 8]
    shapes = [(max(1, n // divide), c, h, w, o) for n, c, h, w, o in shapes + ZOO]
    return list(dict.fromkeys(shapes))


def in_memory(x, layout):
    """(N, C, H, W) x as a view of 'channels_last' or 'channel_major' memory, same values."""
    return nchw(channels_last(x)) if layout == "channels_last" else channel_major(x).transpose(1, 0, 2, 3)


def conv_runner(x, weight, bias, algorithm, backward):
    """A call of F.conv2d (3x3, pad 1) on fixed arrays under ``algorithm``: forward only, or
    forward and backward with a gradient of ones in the output's layout."""
    def run():
        with kernels.use_algorithm(algorithm):
            if not backward:
                with no_grad():
                    return F.conv2d(Tensor(x), Tensor(weight), Tensor(bias), 1, 1)
            inputs = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
            out = F.conv2d(*inputs, 1, 1)
            out.backward(np.ones_like(out.data))
    return run


class rule_applied:
    """Within the block, the convolutions' algorithm is chosen by the rule RULES[name] (by
    replacing `convnet.kernels.convolution`'s `_algorithm`, which alone calls conv_algorithm)."""

    def __init__(self, name):
        self.rule, self.shipped = RULES[name], convolution._algorithm

    def __enter__(self):
        if self.rule is not None:
            convolution._algorithm = self.choose

    def __exit__(self, *exc):
        convolution._algorithm = self.shipped

    def choose(self, geometry, weight, x):
        plain = (tuple(geometry.kernel) == (3, 3) and tuple(geometry.stride) == tuple(geometry.dilation) == (1, 1)
                 and geometry.groups == 1)
        if plain and weight.shape[1] >= 8:  # the steps run under "auto"
            return self.rule(weight.shape[1], convolution.memory_layout(x), geometry.output_hw)
        return self.shipped(geometry, weight, x)


def step_runner(model_name, batch, side, rule):
    """One Adam training step of ResNet-8 or ResNet-18 on channels-last random images under ``rule``."""
    rng = np.random.default_rng(0)
    channels, classes = (1, 10) if model_name == "ResNet-8" else (3, 1000)
    model = models.resnet8() if model_name == "ResNet-8" else resnet18(models.convnet_nn)
    update = optim.Adam(model.parameters(), lr=1e-3)
    images = in_memory(rng.standard_normal((batch, channels, side, side), dtype=np.float32), "channels_last")
    labels = rng.integers(0, classes, batch)

    def run():
        with rule_applied(rule):
            loss = F.cross_entropy(model(Tensor(images)), labels)
            update.zero_grad()
            loss.backward()
            update.step()
    return run


def cpu_ticks():
    """(the machine's busy ticks, this process's ticks) from /proc, or None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat") as own:
            mine = own.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(fields) - fields[3] - fields[4], int(mine[11]) + int(mine[12]), sum(fields)


def others_busy(before, after):
    """The share of the machine's CPU time that other processes used between two `cpu_ticks`."""
    if before is None or after is None or after[2] == before[2]:
        return float("nan")
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / (after[2] - before[2]))


def interleaved(contenders, blocks, repeats, busy):
    """contenders: {name: function} -> {name: [the fastest of ``repeats`` calls, in s, per block]},
    after one warm-up call each; within a block the contenders take turns, the first one rotating.
    Appends each block's share of the machine that other processes used to ``busy``."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    times = {name: [] for name in names}
    for block in range(blocks):
        start_ticks = cpu_ticks()
        for name in names[block % len(names):] + names[:block % len(names)]:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                contenders[name]()
                best = min(best, time.perf_counter() - start)
            times[name].append(best)
        busy.append(others_busy(start_ticks, cpu_ticks()))
    return times


def table_rows(label, contenders, blocks, repeats):
    """Times ``contenders`` (`interleaved`): one row per contender, its median ms over the blocks,
    the median (min-max) over the blocks of its time over the first contender's, and the median
    share of the machine other processes used."""
    busy = []
    times = interleaved(contenders, blocks, repeats, busy)
    names, rows = list(times), []
    for name in names:
        ratios = [t / base for t, base in zip(times[name], times[names[0]])]
        rows.append(f"{label:<40} {name:<26} {1e3 * statistics.median(times[name]):9.2f} ms "
                    f"{statistics.median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})  "
                    f"others {100 * statistics.median(busy):3.0f}%")
    return rows


def measure_ops(divide, blocks, repeats):
    for n, c, h, w, o in stride1_3x3_shapes(divide):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        weight = rng.standard_normal((o, c, 3, 3), dtype=np.float32) * 0.1
        bias = rng.standard_normal(o, dtype=np.float32)
        for layout in ("channels_last", "channel_major"):
            algorithms = ["winograd", "winograd4", "im2col_last"] + (["im2col"] if layout == "channel_major" else [])
            for backward in (False, True):
                label = f"{n}x{c}x{h}x{w}->{o} {layout} {'fwd+bwd' if backward else 'fwd'}"
                contenders = {a: conv_runner(in_memory(x, layout), weight, bias, a, backward) for a in algorithms}
                print("\n".join(table_rows(label, contenders, blocks, repeats)), flush=True)


def measure_steps(side, batch, blocks, rules):
    for model_name, model_batch, model_side in (("ResNet-8", 128, 28), ("ResNet-18", batch, side)):
        contenders = {rule: step_runner(model_name, model_batch, model_side, rule) for rule in rules}
        label = f"step {model_name} batch {model_batch} {model_side}px"
        print("\n".join(table_rows(label, contenders, blocks, 1)), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="ops,steps", help="ops, steps or both (comma-separated)")
    parser.add_argument("--divide", type=int, default=4, help="divide the grid's and zoo's batches by this")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="calls per contender per block (the fastest counts)")
    parser.add_argument("--threads", type=int, default=2, help="Numba's threads")
    parser.add_argument("--side", type=int, default=224, help="ResNet-18's image side")
    parser.add_argument("--batch", type=int, default=4, help="ResNet-18's batch")
    parser.add_argument("--rules", default=",".join(name for name in RULES if name != "winograd"),
                        help=f"rules to time the steps under (comma-separated), of {', '.join(RULES)}")
    args = parser.parse_args()
    unknown = sorted(set(args.rules.split(",")) - set(RULES))
    if unknown:
        parser.error(f"--rules: unknown {', '.join(unknown)}; expected some of {', '.join(RULES)}")
    numba.set_num_threads(args.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {_cpu()}; numba {numba.__version__}, "
          f"{args.threads} threads; numpy {np.__version__}; convnet {convnet.__version__}; load "
          f"{os.getloadavg()[0]:.1f}; time in ms, ratio to the first contender: median (min-max) of "
          f"{args.blocks} blocks")
    if "ops" in args.parts:
        measure_ops(args.divide, args.blocks, args.repeats)
    if "steps" in args.parts:
        measure_steps(args.side, args.batch, args.blocks, args.rules.split(","))


def _cpu():
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
