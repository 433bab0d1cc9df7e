"""What convnet costs besides time: peak memory while training, and the compile time of a
fresh process's first steps, each measured in fresh processes."""

import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

from ..process import available_cores
from .case import BATCH, import_torch
from .model_cases import training_case
from .rounds import Row


def probe_memory(contender, steps, batch_norm):
    """Train ``steps`` steps at batch 128 in this (fresh) process; print peak RSS in MiB."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH * 8, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, len(images))
    torch = import_torch() if contender != "convnet" else None
    if torch is not None:
        torch.set_num_threads(available_cores())
    step = training_case("reference CNN + BN" if batch_norm else "reference CNN", images, labels).build(contender)
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
    script = ("import time, numpy as np; start = time.perf_counter(); "
              "from convnet.bench.model_cases import training_case; "
              "rng = np.random.default_rng(0); x = rng.standard_normal((1024, 1, 28, 28), dtype=np.float32); "
              "y = rng.integers(0, 10, 1024); "
              "[training_case(m, x, y).build('convnet')() for m in ('reference CNN + BN', 'ResNet-8')]; "
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
