"""``convnet bench``: convnet against PyTorch, each contender in its own process, taking turns.

The contenders are convnet, PyTorch with its default NCHW layout (``torch``) and PyTorch with
``channels_last`` tensors and models (``torch_cl``, its fastest CPU setup), and in the inference
cases onnxruntime running convnet's model exported to ONNX (``onnxruntime``: what exporting buys).
Each runs in a process of its own, so no two thread pools spin at once, with as many threads as
this machine has cores. Every case is measured in rounds: in each round every contender, in an
order that rotates from round to round, reports the median time of its calls over a fifth of a
second, after a warm-up. A round is quiet when other processes used less than a tenth of the machine
(read from /proc around it). Figures are medians over the quiet rounds (over all rounds, with
the machine's business said, when fewer than three were quiet); the ratio convnet / PyTorch is
the median of the per-round ratios, with its range. Peak memory is measured in a fresh process
per contender, and compile time in fresh processes with an empty and then a warm kernel cache.
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from . import functional as F
from . import models, optim
from .data import mnist
from .kernels import activation as activation_kernels
from .process import available_cores, retain_freed_memory, withdraw_thread_defaults
from .tensor import Tensor, no_grad

BATCH = 128
CONTENDERS = ("convnet", "torch", "torch_cl", "onnxruntime")
EVERY_CASE = CONTENDERS[:3]  # onnxruntime only runs inference
QUIET = 0.10  # the largest share of the machine that other processes may use in a quiet round
SECONDS_PER_TURN = 0.2

CONV_CASES = [  # (label, N, C, H, W, O, kernel, stride, padding, groups)
    ("conv 1->32 3x3 p1 28x28 N=128", 128, 1, 28, 28, 32, 3, 1, 1, 1),
    ("conv 32->64 3x3 p1 14x14 N=128", 128, 32, 14, 14, 64, 3, 1, 1, 1),
    ("conv 64->64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 1),
    ("conv 64->128 3x3 s2 p1 16x16 N=32", 32, 64, 16, 16, 128, 3, 2, 1, 1),
    ("conv lesson 1->100 10x10 256x256 N=8", 8, 1, 256, 256, 100, 10, 1, 0, 1),
    ("conv depthwise 64 3x3 p1 32x32 N=64", 64, 64, 32, 32, 64, 3, 1, 1, 64),
]


# ---------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One figure: ``build(contender)`` gives the call to time, for each of ``contenders``;
    ``images`` per call make img/s."""
    name: str
    build: object
    images: int = 0
    flops: int = 0
    contenders: tuple = EVERY_CASE


def _torch():
    withdraw_thread_defaults()  # PyTorch's own OpenMP pool keeps its usual idle wait
    try:
        import torch
    except ImportError:
        return None
    return torch


def _onnxruntime():
    try:
        import onnx  # noqa: F401  (convnet.onnx.export's, to write the model onnxruntime runs)
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _torch_inputs(torch, arrays, channels_last):
    tensors = [torch.from_numpy(a) for a in arrays]
    if channels_last:
        tensors = [t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in tensors]
    return tensors


def _op_case(name, ours, theirs, arrays, input_grad, backward, flops=0):
    """Forward (or forward+backward with a gradient of ones) of an op on fixed arrays."""
    def build(contender):
        if contender == "convnet":
            def run():
                inputs = [Tensor(a, requires_grad=backward and (input_grad or i > 0) and a.dtype.kind == "f")
                          for i, a in enumerate(arrays)]
                if not backward:
                    with no_grad():
                        return ours(*inputs)
                out = ours(*inputs)
                out.backward(np.ones(out.shape, dtype=out.dtype) if out.data.size > 1 else None)
            return run
        torch = _torch()
        fixed = _torch_inputs(torch, arrays, contender == "torch_cl")

        def run():
            inputs = [t.detach().requires_grad_(backward and (input_grad or i > 0) and t.is_floating_point())
                      for i, t in enumerate(fixed)]
            if not backward:
                with torch.no_grad():
                    return theirs(torch.nn.functional, *inputs)
            out = theirs(torch.nn.functional, *inputs)
            out.backward(torch.ones_like(out) if out.numel() > 1 else None)
        return run
    return Case(f"{name} {'forward+backward' if backward else 'forward'}", build,
                flops=flops * ((2 + input_grad) if backward else 1))


def op_cases(quick):
    """Every op case, forward and forward+backward, on the same random arrays for every contender."""
    rng = np.random.default_rng(0)
    cases = []
    for label, n, c, h, w, o, k, s, p, g in CONV_CASES:
        n = max(1, n // 4) if quick else n
        arrays = [rng.standard_normal((n, c, h, w), dtype=np.float32),
                  rng.standard_normal((o, c // g, k, k), dtype=np.float32) * 0.1, rng.standard_normal(o, dtype=np.float32)]
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        flops = 2 * n * o * oh * ow * (c // g) * k * k
        for backward in (False, True):
            cases.append(_op_case(label, lambda x, w, b, s=s, p=p, g=g: F.conv2d(x, w, b, s, p, 1, g),
                                  lambda tf, x, w, b, s=s, p=p, g=g: tf.conv2d(x, w, b, s, p, 1, g), arrays, c > 1,
                                  backward, flops))
    n = 32 if quick else 128
    pooled = [rng.standard_normal((n, 32, 28, 28), dtype=np.float32)]
    strided = [rng.standard_normal((n // 2, 64, 32, 32), dtype=np.float32)]
    normed = [pooled[0], np.ones(32, np.float32), np.zeros(32, np.float32)]
    mean, var = np.zeros(32, np.float32), np.ones(32, np.float32)
    target = rng.integers(0, 1000, 4 * n)
    for backward in (False, True):
        cases += [
            _op_case("max_pool2d 2x2 (N, 32, 28, 28)", lambda x: F.max_pool2d(x, 2), lambda tf, x: tf.max_pool2d(x, 2),
                     pooled, True, backward),
            _op_case("max_pool2d 3x3 s2 p1 (N, 64, 32, 32)", lambda x: F.max_pool2d(x, 3, 2, 1),
                     lambda tf, x: tf.max_pool2d(x, 3, 2, 1), strided, True, backward),
            _op_case("batch_norm2d train (N, 32, 28, 28)",
                     lambda x, w, b: F.batch_norm(x, mean.copy(), var.copy(), w, b, training=True),
                     lambda tf, x, w, b: tf.batch_norm(x, None, None, w, b, training=True), normed, True, backward),
            _op_case("cross_entropy (4N, 1000)", lambda x: F.cross_entropy(x, target),
                     lambda tf, x: tf.cross_entropy(x, _torch().from_numpy(target)),
                     [rng.standard_normal((4 * n, 1000), dtype=np.float32)], True, backward),
        ]
    return cases


def load_images(split, data_dir):
    """Preprocessed Fashion-MNIST images and labels, or random images of the same shape without it."""
    try:
        images, labels = mnist.load("fashion-mnist", split, data_dir)
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        count = 60000 if split == "train" else 10000
        images, labels = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count)
        source = "random 28x28 images"
    return mnist.preprocess("fashion-mnist", images[:, None]), labels.astype(np.int64), source


MODELS = {"reference CNN": lambda layers: models.reference_cnn(False, layers=layers),
          "reference CNN + BN": lambda layers: models.reference_cnn(True, layers=layers),
          "ResNet-8": lambda layers: models.resnet8(layers=layers)}


def _model(name, contender):
    if contender == "convnet":
        return MODELS[name](models.convnet_nn)
    torch = _torch()
    layers = torch.nn
    if name == "ResNet-8":
        layers = TorchLayers(torch)
    model = MODELS[name](layers)
    return model.to(memory_format=torch.channels_last) if contender == "torch_cl" else model


class TorchLayers:
    """torch.nn with torchvision's BasicBlock (same keys and computation as convnet's), so the
    zoo's resnet8 builds in PyTorch without torchvision."""

    def __init__(self, torch):
        self._nn = torch.nn

        class BasicBlock(torch.nn.Module):
            def __init__(self, in_channels, out_channels, stride=1):
                super().__init__()
                nn = torch.nn
                self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(out_channels)
                self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(out_channels)
                self.downsample = None
                if stride != 1 or in_channels != out_channels:
                    self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                                    nn.BatchNorm2d(out_channels))

            def forward(self, x):
                out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

        self.BasicBlock = BasicBlock

    def __getattr__(self, name):
        return getattr(self._nn, name)


def _training_case(model_name, images, labels):
    """One Adam training step at batch 128, on the next of a few fixed batches each call."""
    batches = [np.arange(i * BATCH, (i + 1) * BATCH) for i in range(8)]

    def build(contender):
        model, turn = _model(model_name, contender), [0]
        if contender == "convnet":
            optimizer = optim.Adam(model.parameters(), lr=1e-3)

            def step():
                index = batches[turn[0] % len(batches)]
                turn[0] += 1
                loss = F.cross_entropy(model(Tensor(images[index])), labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return step
        torch = _torch()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        inputs = [_torch_inputs(torch, [images[index]], contender == "torch_cl")[0] for index in batches]
        targets = [torch.from_numpy(labels[index]) for index in batches]

        def step():
            index = turn[0] % len(batches)
            turn[0] += 1
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step
    return Case(f"train step {model_name} batch {BATCH}", build, images=BATCH)


def _inference_case(model_name, images):
    def build(contender):
        model = _model(model_name, "convnet" if contender == "onnxruntime" else contender)
        model.eval()
        if contender == "convnet":
            def classify():
                with no_grad():
                    return model(Tensor(images)).numpy().argmax(axis=1)
            return classify
        if contender == "onnxruntime":
            return _onnxruntime_classifier(model, images)
        torch = _torch()
        batch = _torch_inputs(torch, [images], contender == "torch_cl")[0]

        def classify():
            with torch.no_grad():
                return model(batch).argmax(dim=1)
        return classify
    return Case(f"inference {model_name} batch {len(images)}", build, images=len(images), contenders=CONTENDERS)


def _onnxruntime_classifier(model, images):
    """``model`` exported to ONNX and run by onnxruntime on as many threads as the others use."""
    from .onnx import export
    ort = _onnxruntime()
    with tempfile.TemporaryDirectory() as folder:
        graph = export(model, os.path.join(folder, "model.onnx"), (1, *images.shape[1:]))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = available_cores(), 1
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def classify():
        return session.run(None, {"input": images})[0].argmax(axis=1)
    return classify


def model_cases(quick, data_dir):
    images, labels, _ = load_images("train", data_dir)
    test_images = load_images("test", data_dir)[0][:250 if quick else 1000]
    cases = [_training_case(name, images, labels) for name in MODELS]
    return cases + [_inference_case(name, test_images) for name in ("reference CNN", "reference CNN + BN")]


def all_cases(parts, quick, data_dir):
    cases = op_cases(quick) if "ops" in parts else []
    return cases + (model_cases(quick, data_dir) if "train" in parts else [])


# ---------------------------------------------------------------------------- one contender's process
def median_time(run, seconds):
    """Median seconds per call of ``run`` over at least three calls and about ``seconds``."""
    samples, spent = [], 0.0
    while len(samples) < 3 or spent < seconds:
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    return statistics.median(samples)


def serve(contender, parts, quick, data_dir):
    """A contender's process: answer each case name read from stdin with a median time (null for a
    case it does not run)."""
    torch = _torch() if contender in ("torch", "torch_cl") else None
    if torch is not None:
        torch.set_num_threads(available_cores())
    cases = {case.name: case for case in all_cases(parts, quick, data_dir)}
    runs = {}
    print(json.dumps({"ready": contender}), flush=True)
    for line in sys.stdin:
        name = json.loads(line)["case"]
        if contender not in cases[name].contenders:
            print(json.dumps({"seconds": None}), flush=True)
            continue
        if name not in runs:
            runs[name] = cases[name].build(contender)
            median_time(runs[name], 0)  # warm-up: first-call allocations and compilation
        print(json.dumps({"seconds": median_time(runs[name], SECONDS_PER_TURN)}), flush=True)


class Contender:
    """A contender's process, asked for one case's time at a time."""

    def __init__(self, name, options):
        self.name = name
        self.process = subprocess.Popen([sys.executable, "-m", "convnet.bench", "--serve", name, *options],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._read()

    def time(self, case):
        self.process.stdin.write(json.dumps({"case": case}) + "\n")
        self.process.stdin.flush()
        return self._read()["seconds"]

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench: the {self.name} process ended unexpectedly (exit {self.process.wait()})")
        return json.loads(line)

    def cpu_seconds(self):
        return _process_cpu_seconds(self.process.pid)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def _process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds():
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


# ---------------------------------------------------------------------------- rounds and rows
@dataclass
class Row:
    name: str
    unit: str                       # "ms" per call, or "img/s"
    figures: dict                   # contender -> median figure
    ratios: dict = field(default_factory=dict)   # "torch"/"torch_cl" -> (median, low, high) of convnet / them
    quiet_rounds: int = 0
    rounds: int = 0
    others_busy: float = 0.0        # median share of the machine used by other processes
    flops: int = 0


def measure(case, contenders, rounds):
    """Time ``case`` in ``rounds`` rounds, the contenders' order rotating; return its Row(s)."""
    times, busy = {c.name: [] for c in contenders}, []
    for round_index in range(rounds):
        order = contenders[round_index % len(contenders):] + contenders[:round_index % len(contenders)]
        ours_before = _process_cpu_seconds(os.getpid()) + sum(c.cpu_seconds() for c in contenders)
        machine_before, wall_before = _machine_busy_seconds(), time.perf_counter()
        for contender in order:
            times[contender.name].append(contender.time(case.name))
        ours = _process_cpu_seconds(os.getpid()) + sum(c.cpu_seconds() for c in contenders) - ours_before
        wall = time.perf_counter() - wall_before
        busy.append(max(0.0, _machine_busy_seconds() - machine_before - ours) / (wall * os.cpu_count()))
    quiet = [i for i, share in enumerate(busy) if share < QUIET]
    kept = quiet if len(quiet) >= 3 else list(range(rounds))
    per_call = {name: [values[i] for i in kept] for name, values in times.items() if None not in values}
    row = Row(case.name, "ms", {name: statistics.median(v) * 1e3 for name, v in per_call.items()},
              quiet_rounds=len(quiet), rounds=rounds, others_busy=statistics.median(busy), flops=case.flops)
    for name in per_call:
        if name != "convnet":
            ratios = [ours / theirs for ours, theirs in zip(per_call["convnet"], per_call[name])]
            row.ratios[name] = (statistics.median(ratios), min(ratios), max(ratios))
    if not case.images:
        return [row]
    throughput = Row(case.name.replace("train step", "training throughput"), "img/s",
                     {name: case.images / (value / 1e3) for name, value in row.figures.items()},
                     {name: (1 / m, 1 / high, 1 / low) for name, (m, low, high) in row.ratios.items()},
                     row.quiet_rounds, rounds, row.others_busy)
    return [row, throughput] if case.name.startswith("train step") else [throughput]


# ---------------------------------------------------------------------------- memory and compile time
def probe_memory(contender, steps, batch_norm):
    """Train ``steps`` steps at batch 128 in this (fresh) process; print peak RSS in MiB."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH * 8, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, len(images))
    torch = _torch() if contender != "convnet" else None
    if torch is not None:
        torch.set_num_threads(available_cores())
    step = _training_case("reference CNN + BN" if batch_norm else "reference CNN", images, labels).build(contender)
    for _ in range(steps):
        step()
    print(peak_rss_mib())


def peak_rss_mib():
    """This process's peak resident memory. /proc's VmHWM belongs to this program alone, while
    getrusage's ru_maxrss also counts the parent's memory that a forked child started with."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_memory(contenders, steps):
    rows = []
    for batch_norm in (False, True):
        peaks = {}
        for name in contenders:
            result = subprocess.run([sys.executable, "-m", "convnet.bench", "--probe-memory", name, "--steps",
                                     str(steps)] + (["--batch-norm"] if batch_norm else []),
                                    capture_output=True, text=True, check=True)
            peaks[name] = float(result.stdout.strip().splitlines()[-1])
        row = Row(f"peak RSS training reference CNN{' + BN' if batch_norm else ''} batch {BATCH}", "MiB", peaks)
        row.ratios = {name: (peaks["convnet"] / peaks[name],) * 3 for name in peaks if name != "convnet"}
        rows.append(row)
    return rows


def bench_compile():
    """Seconds from a fresh process's start to the end of its first training step (reference
    CNN + BN, then ResNet-8), with an empty kernel cache and then with that cache warm."""
    script = ("import time, numpy as np; start = time.perf_counter(); from convnet import bench; "
              "rng = np.random.default_rng(0); x = rng.standard_normal((1024, 1, 28, 28), dtype=np.float32); "
              "y = rng.integers(0, 10, 1024); "
              "[bench._training_case(m, x, y).build('convnet')() for m in ('reference CNN + BN', 'ResNet-8')]; "
              "print(time.perf_counter() - start)")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("first start (empty kernel cache)", "second start (kernel cache warm)"):
            result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                                    check=True)
            rows.append(Row(f"{label}: import + first training steps", "s",
                            {"convnet": float(result.stdout.strip().splitlines()[-1])}))
    return rows


# ---------------------------------------------------------------------------- report
def machine(torch):
    info = {"cpu": platform.processor(), "cores": available_cores(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__ if torch else None}
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                               info["cpu"])
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                        for pool in threadpool_info()]
    except ImportError:
        info["blas"] = "threadpoolctl not installed (pip install 'convnet-numpy[bench]')"
    info["numba"] = {"version": numba.__version__, "threading_layer": _threading_layer(),
                     "threads": numba.get_num_threads()}
    return info


def _threading_layer():
    """The layer Numba's parallel kernels run on, which it picks when the first one runs."""
    flat = np.zeros(1, dtype=np.float32)
    activation_kernels.relu_forward(flat, flat)
    return numba.threading_layer()


def matmul_peak():
    """The best float32 matrix-multiply rate of several tries (a peak, so the best, not the median)."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    return max(2 * 2048 ** 3 / median_time(lambda: a @ a, 0.2) / 1e9 for _ in range(5))


def format_table(rows, contenders, peak):
    them = [name for name in contenders if name != "convnet"]
    header = f"{'benchmark':60s} {'unit':>6s} " + " ".join(f"{name:>10s}" for name in contenders)
    header += " " + " ".join(f"{'/' + name:>18s}" for name in them) + "  quiet  note"
    lines = [header, "-" * len(header)]
    for row in rows:
        figures = " ".join(f"{row.figures[name]:10.2f}" if name in row.figures else f"{'-':>10s}"
                           for name in contenders)
        ratios = " ".join(f"{row.ratios[name][0]:6.2f} ({row.ratios[name][1]:.2f}-{row.ratios[name][2]:.2f})"
                          if name in row.ratios else f"{'-':>18s}" for name in them)
        quiet = f"{row.quiet_rounds}/{row.rounds}" if row.rounds else "-"
        note = ""
        if row.flops and row.unit == "ms":
            rate = row.flops / (row.figures["convnet"] / 1e3) / 1e9
            note = f"{rate:.0f} GFLOP/s ({rate / peak:.0%} of peak)"
        lines.append(f"{row.name:60s} {row.unit:>6s} {figures} {ratios}  {quiet:>5s}  {note}")
    return "\n".join(lines)


def run(args):
    torch = None if args.no_torch else _torch()
    contenders = ["convnet"] + (["torch", "torch_cl"] if torch is not None else []) + (
        ["onnxruntime"] if "train" in args.parts and _onnxruntime() is not None else [])
    info = dict(machine(torch), matmul_peak_gflops=matmul_peak(), contenders=contenders,
                kernels=os.environ.get("CONVNET_KERNELS", "compiled"))
    print(f"{info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, torch {info['torch'] or 'not installed'}, "
          f"numba {info['numba']['version']} ({info['numba']['threading_layer']} threads); "
          f"float32 matmul peak {info['matmul_peak_gflops']:.0f} GFLOP/s", flush=True)
    rows = []
    cases = [case for case in all_cases(args.parts, args.quick, args.data) if args.cases in case.name]
    if cases:
        options = (["--quick"] if args.quick else []) + ["--parts", *args.parts] + (
            ["--data", args.data] if args.data else [])
        processes = [Contender(name, options) for name in contenders]
        try:
            for case in cases:
                rows += measure(case, processes, 3 if args.quick else args.repeats)
                print(format_table(rows[-1:], contenders, info["matmul_peak_gflops"]).splitlines()[-1], flush=True)
        finally:
            for process in processes:
                process.close()
    if "memory" in args.parts:
        rows += bench_memory([name for name in contenders if name in EVERY_CASE], steps=5 if args.quick else 20)
    if "compile" in args.parts:
        rows += bench_compile()
    print()
    print(format_table(rows, contenders, info["matmul_peak_gflops"]))
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command_line(args), "machine": info,
              "rows": [row.__dict__ for row in rows]}
    with open(args.out, "w") as stream:
        json.dump(report, stream, indent=2)
    print(f"\nwritten to {args.out}")
    return 0


PARTS = ["ops", "train", "memory", "compile"]
OPTIONS = {  # destination: (flag, argparse keywords); also what `command_line` writes back
    "quick": ("--quick", {"action": "store_true", "help": "smaller cases and 3 rounds: about two minutes"}),
    "repeats": ("--repeats", {"type": int, "default": 5, "help": "rounds per figure (median; default 5)"}),
    "parts": ("--parts", {"nargs": "+", "default": PARTS, "choices": PARTS}),
    "cases": ("--cases", {"default": "", "metavar": "TEXT", "help": "only the cases whose name contains TEXT"}),
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
    return shlex.join(words)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m convnet.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--serve", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--probe-memory", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--batch-norm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    contender = args.serve or args.probe_memory
    if contender in (None, "convnet"):  # PyTorch is measured under its own allocator settings
        retain_freed_memory()
    if args.serve:
        serve(args.serve, args.parts, args.quick, args.data)
    elif args.probe_memory:
        probe_memory(args.probe_memory, args.steps, args.batch_norm)
    else:
        return run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
