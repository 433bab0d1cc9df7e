"""Winograd's batched products on the register-blocked micro-kernel (kernels/microkernel.py)
against np.matmul (OpenBLAS), and the machine's sgemm peak: the measurement behind issue 30's
question whether a hand-blocked kernel can beat BLAS on these shapes.

For each zoo shape (N, C, H, W) -> O, the products F(2x2, 3x3) (P = 16) or F(4x4, 3x3) (P = 36)
runs in kernels/winograd.py, on arrays laid out as it lays them out (`winograd.planes`):
forward (P, O, C) @ (P, C, T) and the input gradient's (P, C, O) @ (P, O, T) (U^T a transposed
view), T = N * tiles_h * tiles_w. (The weight gradient's (P, O, T) @ (P, T, C) sums over T, a
different shape, and stays in BLAS.) With ``--parts layers``: a whole F(2x2, 3x3) convolution
forward + backward on each batch-128 shape, and an Adam training step of the reference CNN and of
ResNet-8 (batch 128), with `kernels.winograd.batched_product` set to each contender.

Everything runs in one process, contenders interleaved within each block (first one rotating),
the fastest of ``repeats`` calls per block, each block started at a quiet moment where one comes
within a few seconds; the table gives each contender's median time and best GFLOP/s over the
quiet blocks (all blocks where none was quiet: then say so), and the median (min-max) of its
per-block time over np.matmul's. On a shared machine the figures are rough:

    .venv/bin/python benchmarks/microkernel.py --blocks 5
    .venv/bin/python benchmarks/microkernel.py --blocks 5 --parts layers
    .venv/bin/python benchmarks/microkernel.py --blocks 5 --threads 1
"""

import argparse
import platform
import statistics
import time

import convnet  # before NumPy: it sets the idle wait of BLAS's threads
from convnet import functional as F
from convnet import kernels, models, optim
from convnet.kernels import microkernel, winograd
from convnet.tensor import Tensor

import numba
import numpy as np
import threadpoolctl

QUIET = 0.1  # blocks in which other processes used more of the machine than this are left out

# (N, C, H, W, O, P): the reference CNN's conv2 (training, batch 128; inference, batch 1000) and
# ResNet-8's three stages (batch 128), in F(2x2, 3x3); conv2 also in F(4x4, 3x3).
SHAPES = [(128, 32, 14, 14, 64, 16), (1000, 32, 14, 14, 64, 16), (128, 32, 28, 28, 32, 16),
          (128, 64, 14, 14, 64, 16), (128, 128, 7, 7, 128, 16), (128, 32, 14, 14, 64, 36)]


def cpu_ticks():
    """(the machine's busy ticks, this process's ticks, all ticks) from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    with open("/proc/self/stat") as own:
        mine = own.read().rsplit(")", 1)[1].split()
    return sum(fields) - fields[3] - fields[4], int(mine[11]) + int(mine[12]), sum(fields)


def others_busy(before, after):
    """The share of the machine's CPU time that other processes used between two `cpu_ticks`."""
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / max(1, after[2] - before[2]))


def wait_for_quiet(longest=5.0):
    """Sleep until other processes use less than QUIET of the machine over 0.3 s (or ``longest`` s pass)."""
    start = time.perf_counter()
    while time.perf_counter() - start < longest:
        before = cpu_ticks()
        time.sleep(0.3)
        if others_busy(before, cpu_ticks()) < QUIET:
            return


def interleaved(contenders, blocks, repeats):
    """contenders: {name: function} -> ({name: [the fastest of ``repeats`` calls, in s, per quiet
    block]}, the number of quiet blocks, blocks), after one warm-up call each; each block starts
    at a quiet moment (`wait_for_quiet`), the contenders taking turns, the first one rotating. A
    block is quiet where other processes used less than QUIET of the machine (all are kept where
    none was)."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    times, busy = {name: [] for name in names}, []
    for block in range(blocks):
        wait_for_quiet()
        before = cpu_ticks()
        for name in names[block % len(names):] + names[:block % len(names)]:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                contenders[name]()
                best = min(best, time.perf_counter() - start)
            times[name].append(best)
        busy.append(others_busy(before, cpu_ticks()))
    quiet = [i for i, share in enumerate(busy) if share < QUIET]
    kept = quiet or list(range(blocks))
    return {name: [times[name][i] for i in kept] for name in names}, len(quiet), blocks


def products(n, c, h, w, o, planes, rng):
    """{'forward' | 'input_grad': (a, b, out)} laid out as kernels/winograd.py lays them out."""
    tile = 2 if planes == 16 else 4
    t = n * -(-h // tile) * -(-w // tile)
    u = winograd.planes((o, c), np.float32, planes)
    u[...] = rng.standard_normal(u.shape, dtype=np.float32)
    tiles, d_m = winograd.planes((c, t), np.float32, planes), winograd.planes((o, t), np.float32, planes)
    tiles[...] = rng.standard_normal(tiles.shape, dtype=np.float32)
    d_m[...] = rng.standard_normal(d_m.shape, dtype=np.float32)
    return {"forward": (u, tiles, winograd.planes((o, t), np.float32, planes)),
            "input_grad": (u.transpose(0, 2, 1), d_m, winograd.planes((c, t), np.float32, planes))}


def peak(size, blocks, repeats):
    """np.matmul's GFLOP/s on a size x size float32 square product, the fastest of the blocks."""
    a, b = np.ones((size, size), np.float32), np.ones((size, size), np.float32)
    out = np.empty_like(a)
    best = min(interleaved({"sgemm": lambda: np.matmul(a, b, out=out)}, blocks, repeats)[0]["sgemm"])
    return 2 * size ** 3 / best / 1e9


def row(label, name, seconds, base, flops):
    ratios = [t / b for t, b in zip(seconds, base)]
    return (f"{label:<44} {name:<12} {1e3 * statistics.median(seconds):9.3f} ms "
            f"{flops / min(seconds) / 1e9:7.1f} GFLOP/s (best) {statistics.median(ratios):5.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f})")


def measure_products(blocks, repeats):
    rng = np.random.default_rng(0)
    for n, c, h, w, o, planes in SHAPES:
        for direction, (a, b, out) in products(n, c, h, w, o, planes, rng).items():
            flops = 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
            contenders = {"np.matmul": lambda a=a, b=b, out=out: np.matmul(a, b, out=out),
                          "microkernel": lambda a=a, b=b, out=out: microkernel.batched_matmul(a, b, out)}
            times, quiet, blocks_run = interleaved(contenders, blocks, repeats)
            label = (f"{n}x{c}x{h}x{w}->{o} P={planes} {direction} "
                     f"({a.shape[1]}x{a.shape[2]} @ {b.shape[1]}x{b.shape[2]})")
            for name in contenders:
                print(row(label, name, times[name], times["np.matmul"], flops), flush=True)
            print(f"{'':<44} {quiet}/{blocks_run} quiet blocks{'' if quiet else ' (all kept)'}", flush=True)


PRODUCTS = {"blas": kernels.Kernel(microkernel.batched_matmul_reference, microkernel.batched_matmul_reference),
            "microkernel": winograd.batched_product}


def with_products(choice, run):
    """``run`` with Winograd's products on PRODUCTS[choice] ('blas' or 'microkernel')."""
    def timed():
        previous, winograd.batched_product = winograd.batched_product, PRODUCTS[choice]
        try:
            run()
        finally:
            winograd.batched_product = previous
    return timed


def layer_runner(n, c, h, w, o):
    """Winograd F(2x2, 3x3) forward + backward of (N, C, H, W) -> O, padding 1."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((n, c, h, w), dtype=np.float32), requires_grad=True)
    weight = Tensor(0.1 * rng.standard_normal((o, c, 3, 3), dtype=np.float32), requires_grad=True)

    def run():
        with kernels.use_algorithm("winograd"):
            F.conv2d(x, weight, padding=1).sum().backward()
    return run


def step_runner(name, batch):
    """One Adam training step of a zoo model on a 28x28 batch."""
    convnet.manual_seed(0)
    model = models.build(name)
    update = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
    y = Tensor(rng.integers(0, 10, batch))

    def run():
        update.zero_grad()
        F.cross_entropy(model(x), y).backward()
        update.step()
    return run


def measure_layers(blocks, repeats):
    cases = [(f"conv {n}x{c}x{h}x{w}->{o} fwd+bwd", layer_runner(n, c, h, w, o))
             for n, c, h, w, o, planes in SHAPES if planes == 16 and n == 128]
    cases += [(f"{name} training step (batch 128)", step_runner(name, 128)) for name in ("reference_cnn", "resnet8")]
    for label, run in cases:
        contenders = {"blas": with_products("blas", run), "microkernel": with_products("microkernel", run)}
        times, quiet, blocks_run = interleaved(contenders, blocks, repeats)
        for name in contenders:
            ratios = [t / b for t, b in zip(times[name], times["blas"])]
            print(f"{label:<44} {name:<12} {1e3 * statistics.median(times[name]):9.2f} ms "
                  f"{statistics.median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})  "
                  f"{quiet}/{blocks_run} quiet blocks{'' if quiet else ' (all kept)'}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS,
                        help="Numba's and BLAS's threads (the CLI's default: all cores)")
    parser.add_argument("--parts", nargs="+", choices=("products", "layers"), default=["products"],
                        help="the products alone, and/or whole layers and training steps")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    with threadpoolctl.threadpool_limits(args.threads):
        run(args)


def run(args):
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, "
          f"vector width {microkernel.VECTOR_WIDTH}, block {microkernel.BLOCK_ROWS}x{microkernel.BLOCK_COLUMNS}, "
          f"{numba.get_num_threads()} Numba and {args.threads} BLAS threads")
    if "products" in args.parts:
        print(f"sgemm peak (np.matmul 2048x2048 float32): {peak(2048, args.blocks, 2):.1f} GFLOP/s")
        measure_products(args.blocks, args.repeats)
    if "layers" in args.parts:
        measure_layers(args.blocks, args.repeats)


if __name__ == "__main__":
    main()
