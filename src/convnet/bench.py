"""``convnet bench``: convnet and PyTorch side by side, in one process, on the same data.

Each figure is the median of several repetitions after a warm-up, convnet and PyTorch
alternating, PyTorch on as many threads as convnet's BLAS. Ratios are convnet / PyTorch
(times: lower is better for convnet; throughputs: higher is better). Peak memory is measured in
a fresh subprocess per framework. Without PyTorch installed, only convnet's figures are shown.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import functional as F
from . import models, optim
from .process import retain_freed_memory
from .data import mnist
from .tensor import Tensor, no_grad

BATCH = 128


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@dataclass
class Row:
    name: str
    unit: str
    convnet: float
    torch: float | None = None
    higher_is_better: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self):
        return None if not self.torch else self.convnet / self.torch


def median_time(run, repeats, min_seconds=0.05):
    """Median seconds per call of ``run`` over ``repeats`` measurements (calls batched to >= min_seconds)."""
    start = time.perf_counter()
    run()
    calls = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-6)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def alternate(runs, repeats):
    """Median time of each named run, measured round-robin so drifts in machine speed hit all alike."""
    for run in runs.values():
        run()
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(median_time(run, 1))
    return {name: statistics.median(values) for name, values in samples.items()}


def matmul_peak(repeats):
    """The best float32 matrix-multiply rate of several tries (a peak, so the best, not the median)."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    return max(2 * 2048 ** 3 / median_time(lambda: a @ a, 1) / 1e9 for _ in range(max(repeats, 5)))


# ---------------------------------------------------------------------------- operations
CONV_CASES = [  # (label, N, C, H, W, O, kernel, stride, padding, groups)
    ("conv 1->32 3x3 p1 28x28 N=128", 128, 1, 28, 28, 32, 3, 1, 1, 1),
    ("conv 32->64 3x3 p1 14x14 N=128", 128, 32, 14, 14, 64, 3, 1, 1, 1),
    ("conv 64->64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 1),
    ("conv 64->128 3x3 s2 p1 16x16 N=32", 32, 64, 16, 16, 128, 3, 2, 1, 1),
    ("conv lesson 1->100 10x10 256x256 N=8", 8, 1, 256, 256, 100, 10, 1, 0, 1),
    ("conv depthwise 64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 64),
]


def _op_runs(make_ours, make_theirs, arrays, input_grad, torch):
    """Forward and forward+backward closures for both frameworks on the same arrays."""
    def ours(backward):
        inputs = [Tensor(a, requires_grad=input_grad if i == 0 else a.dtype.kind == "f") for i, a in enumerate(arrays)]
        out = make_ours(*inputs)
        if backward:
            out.backward(np.ones(out.shape, dtype=out.dtype) if out.data.size > 1 else None)

    def theirs(backward):
        inputs = [torch.from_numpy(a).requires_grad_(input_grad if i == 0 else a.dtype.kind == "f")
                  for i, a in enumerate(arrays)]
        out = make_theirs(*inputs)
        if backward:
            out.backward(torch.ones_like(out) if out.numel() > 1 else None)

    runs = {"forward": {"convnet": lambda: _no_grad_call(ours)}, "forward+backward": {"convnet": lambda: ours(True)}}
    if torch is not None:
        runs["forward"]["torch"] = lambda: _torch_no_grad(torch, theirs)
        runs["forward+backward"]["torch"] = lambda: theirs(True)
    return runs


def _no_grad_call(run):
    with no_grad():
        run(False)


def _torch_no_grad(torch, run):
    with torch.no_grad():
        run(False)


def op_cases(rng, quick):
    """(label, ours, theirs(torch), arrays, input_grad, flops of the forward) for every benchmarked op."""
    cases = []
    for label, n, c, h, w, o, k, s, p, g in CONV_CASES:
        if quick:
            n = max(1, n // 4)
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        weight = rng.standard_normal((o, c // g, k, k), dtype=np.float32) * 0.1
        bias = rng.standard_normal(o, dtype=np.float32)
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        flops = 2 * n * o * oh * ow * (c // g) * k * k
        cases.append((label, lambda x, w, b, s=s, p=p, g=g: F.conv2d(x, w, b, s, p, 1, g),
                      lambda tf, x, w, b, s=s, p=p, g=g: tf.conv2d(x, w, b, s, p, 1, g), [x, weight, bias], c > 1, flops))
    n = 32 if quick else 128
    x = rng.standard_normal((n, 32, 28, 28), dtype=np.float32)
    cases.append(("max_pool2d 2x2 (N, 32, 28, 28)", lambda x: F.max_pool2d(x, 2), lambda tf, x: tf.max_pool2d(x, 2),
                  [x], True, 0))
    y = rng.standard_normal((n // 2, 64, 32, 32), dtype=np.float32)
    cases.append(("max_pool2d 3x3 s2 p1 (N, 64, 32, 32)", lambda x: F.max_pool2d(x, 3, 2, 1),
                  lambda tf, x: tf.max_pool2d(x, 3, 2, 1), [y], True, 0))
    mean, var = np.zeros(32, np.float32), np.ones(32, np.float32)
    cases.append(("batch_norm2d train (N, 32, 28, 28)",
                  lambda x, w, b: F.batch_norm(x, mean.copy(), var.copy(), w, b, training=True),
                  lambda tf, x, w, b: tf.batch_norm(x, None, None, w, b, training=True),
                  [x, np.ones(32, np.float32), np.zeros(32, np.float32)], True, 0))
    logits = rng.standard_normal((4 * n, 1000), dtype=np.float32)
    target = rng.integers(0, 1000, 4 * n)
    cases.append(("cross_entropy (4N, 1000)", lambda x: F.cross_entropy(x, target),
                  lambda tf, x: tf.cross_entropy(x, _torch().from_numpy(target)), [logits], True, 0))
    return cases


def bench_ops(torch, repeats, quick, rng):
    rows = []
    tf = torch.nn.functional if torch else None
    for label, ours, theirs, arrays, input_grad, flops in op_cases(rng, quick):
        runs = _op_runs(ours, (lambda *a, t=theirs: t(tf, *a)) if torch else None, arrays, input_grad, torch)
        for phase, phase_runs in runs.items():
            times = alternate(phase_runs, repeats)
            total_flops = flops * (1 if phase == "forward" else 2 + input_grad)
            extra = {"convnet_gflops": total_flops / times["convnet"] / 1e9} if flops else {}
            rows.append(Row(f"{label} {phase}", "ms", times["convnet"] * 1e3,
                            times.get("torch", 0) * 1e3 or None, extra=extra))
    return rows


# ---------------------------------------------------------------------------- end to end
def _batches(count, batch, rng):
    order = rng.permutation(count)
    return [order[i:i + batch] for i in range(0, count, batch)]


def train_epoch(framework, model, images, labels, steps, torch=None):
    """Seconds for ``steps`` training steps (Adam, batch 128) over shuffled data."""
    rng = np.random.default_rng(0)
    batches = _batches(len(images), BATCH, rng)[:steps]
    if framework == "convnet":
        optimizer = optim.Adam(model.parameters(), lr=1e-3)

        def step(index):
            loss = F.cross_entropy(model(Tensor(images[index])), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(index):
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(images[index])),
                                                     torch.from_numpy(labels[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for index in batches[:2]:
        step(index)
    start = time.perf_counter()
    for index in batches:
        step(index)
    return time.perf_counter() - start


def infer(framework, model, images, torch=None):
    """Seconds to classify ``images`` in batches of 1000."""
    model.eval()
    start = time.perf_counter()
    if framework == "convnet":
        with no_grad():
            for i in range(0, len(images), 1000):
                model(Tensor(images[i:i + 1000])).numpy().argmax(axis=1)
    else:
        with torch.no_grad():
            for i in range(0, len(images), 1000):
                model(torch.from_numpy(images[i:i + 1000])).argmax(dim=1)
    model.train()
    return time.perf_counter() - start


def load_images(split, data_dir, quick):
    try:
        images, labels = mnist.load("fashion-mnist", split, data_dir)
        source = "Fashion-MNIST"
    except FileNotFoundError as missing:
        print(f"note: {missing}\n      using random images of the same shape instead", file=sys.stderr)
        rng = np.random.default_rng(0)
        count = 60000 if split == "train" else 10000
        images, labels, source = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count), \
            "random 28x28 images"
    return mnist.preprocess("fashion-mnist", images[:, None]), labels.astype(np.int64), source


def bench_end_to_end(torch, repeats, quick, data_dir, batch_norm):
    images, labels, source = load_images("train", data_dir, quick)
    test_images, _, _ = load_images("test", data_dir, quick)
    steps_per_epoch = -(-len(images) // BATCH)
    steps = 25 if quick else steps_per_epoch
    if quick:
        test_images = test_images[:2000]
    suffix = " +BN" if batch_norm else ""
    epoch = {"convnet": []}
    inference = {"convnet": []}
    builders = {"convnet": lambda: models.reference_cnn(batch_norm)}
    if torch is not None:
        epoch["torch"], inference["torch"] = [], []
        builders["torch"] = lambda: models.reference_cnn(batch_norm, layers=torch.nn)
    for _ in range(3):
        for name, build in builders.items():
            seconds = train_epoch(name, build(), images, labels, steps, torch)
            epoch[name].append(seconds * steps_per_epoch / steps)
            inference[name].append(len(test_images) / infer(name, build(), test_images, torch))
    epoch_median = {k: statistics.median(v) for k, v in epoch.items()}
    infer_median = {k: statistics.median(v) for k, v in inference.items()}
    note = {"data": source, "measured_steps": steps}
    return [
        Row(f"train epoch reference CNN{suffix}", "s/epoch", epoch_median["convnet"], epoch_median.get("torch"),
            extra=note),
        Row(f"train reference CNN{suffix}", "img/s", len(images) / epoch_median["convnet"],
            len(images) / epoch_median["torch"] if "torch" in epoch_median else None, higher_is_better=True),
        Row(f"inference reference CNN{suffix} batch 1000", "img/s", infer_median["convnet"],
            infer_median.get("torch"), higher_is_better=True),
    ]


# ---------------------------------------------------------------------------- memory
def probe_memory(framework, steps, batch_norm):
    """Train ``steps`` steps at batch 128 in this (fresh) process; print peak RSS in MiB."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH * 4, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, len(images))
    torch = _torch() if framework == "torch" else None
    if torch is not None:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        model = models.reference_cnn(batch_norm, layers=torch.nn)
    else:
        model = models.reference_cnn(batch_norm)
    train_epoch(framework, model, images, labels, steps, torch)
    print(peak_rss_mib())


def peak_rss_mib():
    """This process's peak resident memory. /proc's VmHWM belongs to this program alone, while
    getrusage's ru_maxrss also counts the parent's memory that a forked child started with."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_memory(torch, batch_norm, steps):
    peaks = {}
    for name in ["convnet"] + (["torch"] if torch else []):
        result = subprocess.run([sys.executable, "-m", "convnet.bench", "--probe-memory", name, "--steps", str(steps)]
                                + (["--batch-norm"] if batch_norm else []), capture_output=True, text=True, check=True)
        peaks[name] = float(result.stdout.strip().splitlines()[-1])
    suffix = " +BN" if batch_norm else ""
    return [Row(f"peak RSS training reference CNN{suffix} batch 128", "MiB", peaks["convnet"], peaks.get("torch"))]


# ---------------------------------------------------------------------------- report
def machine(torch):
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__ if torch else None,
            "torch_threads": torch.get_num_threads() if torch else None}


def format_table(rows, peak):
    lines = [f"{'benchmark':58s} {'convnet':>10s} {'PyTorch':>10s} {'ratio':>7s}  note", "-" * 100]
    for row in rows:
        theirs = f"{row.torch:10.2f}" if row.torch else f"{'-':>10s}"
        ratio = f"{row.ratio:7.2f}" if row.ratio else f"{'-':>7s}"
        note = ""
        if "convnet_gflops" in row.extra:
            note = f"{row.extra['convnet_gflops']:.0f} GFLOP/s ({row.extra['convnet_gflops'] / peak:.0%} of peak)"
        lines.append(f"{row.name + ' (' + row.unit + ')':58s} {row.convnet:10.2f} {theirs} {ratio}  {note}")
    return "\n".join(lines)


def run(args):
    torch = None if args.no_torch else _torch()
    if torch is not None:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    repeats = 3 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    info = machine(torch)
    info["matmul_peak_gflops"] = matmul_peak(repeats)
    print(f"{info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, torch {info['torch'] or 'not installed'} "
          f"({info['torch_threads']} threads); float32 matmul peak {info['matmul_peak_gflops']:.0f} GFLOP/s",
          flush=True)
    rows = []
    if "ops" in args.parts:
        rows += bench_ops(torch, repeats, args.quick, rng)
        print(format_table(rows, info["matmul_peak_gflops"]), flush=True)
    if "train" in args.parts:
        for batch_norm in (False, True):
            rows += bench_end_to_end(torch, repeats, args.quick, args.data, batch_norm)
    if "memory" in args.parts:
        for batch_norm in (False, True):
            rows += bench_memory(torch, batch_norm, steps=5 if args.quick else 20)
    print()
    print(format_table(rows, info["matmul_peak_gflops"]))
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command_line(args),
              "machine": info, "rows": [dict(row.__dict__, ratio=row.ratio) for row in rows]}
    with open(args.out, "w") as stream:
        json.dump(report, stream, indent=2)
    print(f"\nwritten to {args.out}")
    return 0


OPTIONS = {  # destination: (flag, argparse keywords); also what `command_line` writes back
    "quick": ("--quick", {"action": "store_true", "help": "a smaller version that finishes in about a minute"}),
    "repeats": ("--repeats", {"type": int, "default": 5, "help": "repetitions per figure (median; default 5)"}),
    "parts": ("--parts", {"nargs": "+", "default": ["ops", "train", "memory"], "choices": ["ops", "train", "memory"]}),
    "data": ("--data", {"help": "directory with the Fashion-MNIST IDX files"}),
    "out": ("--out", {"default": "bench.json", "help": "where to write the JSON report (default bench.json)"}),
    "no_torch": ("--no-torch", {"action": "store_true", "help": "measure convnet alone"}),
}


def add_arguments(parser):
    for flag, keywords in OPTIONS.values():
        parser.add_argument(flag, **keywords)


def command_line(args):
    """The ``convnet bench`` command that repeats this measurement: the options that differ from
    their defaults."""
    words = ["convnet", "bench"]
    for destination, (flag, keywords) in OPTIONS.items():
        value = getattr(args, destination)
        if value == keywords.get("default", False if keywords.get("action") == "store_true" else None):
            continue
        words += [flag] if value is True else [flag, *map(str, value if isinstance(value, list) else [value])]
    return " ".join(words)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m convnet.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--probe-memory", choices=["convnet", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--batch-norm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_memory != "torch":  # PyTorch's memory is measured under its own allocator settings
        retain_freed_memory()
    if args.probe_memory:
        probe_memory(args.probe_memory, args.steps, args.batch_norm)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
