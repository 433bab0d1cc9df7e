"""Data-parallel training speed: images/s and the time each step spends in Allreduce.

    python benchmarks/distributed.py                       # 1 rank (all cores), then mpirun -n 2
    python benchmarks/distributed.py --two-hosts 1gbit     # and two namespace hosts over TCP (root)
    mpirun -n 2 python benchmarks/distributed.py --rank-job   # what the first starts, per layout

Each layout trains the reference CNN + BN and ResNet-8 on Fashion-MNIST batches of a global
128 (the first steps are a warm-up), timing every step and, inside it, the Allreduce of the
gradients. The layouts take turns for ``--rounds`` rounds, in an order that alternates, since one
two-thread process stalls whenever the shared machine takes one of its cores; each figure is the
median over the rounds of each round's median step, printed as one JSON line per layout and
model with the range of images/s. The last part projects images/s for more hosts from these
figures with the ring-allreduce cost model (`project`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import convnet  # noqa: F401  (first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads)
import numpy as np
from two_hosts import two_hosts

MODELS = ("reference_cnn", "resnet8")
BATCH = 128
WARMUP, STEPS = 5, 30
ROUNDS = 5


def rank_job(data):
    """Under mpirun (or alone): time STEPS training steps of each model; rank 0 prints the figures."""
    from convnet import experiment
    from convnet.distributed import launched_by_mpirun, world
    from convnet.process import retain_freed_memory
    from convnet.train import ONE_PROCESS, Callback

    retain_freed_memory()  # as the convnet command does
    group = world() if launched_by_mpirun() > 1 else ONE_PROCESS
    communication = []
    summing = group.sum

    def timed_sum(buffer):
        start = time.perf_counter()
        summing(buffer)
        communication.append((buffer.nbytes, time.perf_counter() - start))
    group.sum = timed_sum
    for model in MODELS:
        config = experiment.RunConfig(model=model, data=data, epochs=1, batch_size=BATCH)
        train, test = experiment.load_datasets(config)
        trainer = experiment.build_trainer(config, train, test, progress=False, log=lambda *_: None, group=group)
        steps, gradient_seconds = [], []

        class Timer(Callback):
            def on_batch_end(self, trainer, loss):
                steps.append(time.perf_counter())
                gradients = [seconds for size, seconds in communication if size > 64]  # not the 3-number sums
                gradient_seconds.append(sum(gradients))
                communication.clear()
                if len(steps) == WARMUP + STEPS + 1:
                    trainer.request_stop()
        trainer.callbacks = [Timer()]
        trainer.fit(1)
        step = statistics.median(np.diff(steps[WARMUP:]))
        parameters = sum(p.data.size for p in trainer.model.parameters())
        if group.rank == 0:
            print(json.dumps({"model": model, "ranks": group.size, "threads": os.environ.get("OMP_NUM_THREADS", "all"),
                              "step_ms": step * 1e3, "images_per_second": BATCH / step,
                              "allreduce_ms": statistics.median(gradient_seconds[WARMUP:]) * 1e3,
                              "gradient_bytes": parameters * 4}), flush=True)


def project(step_ms, allreduce_ms_local, gradient_bytes, hosts, gigabits, latency_ms=0.05):
    """Images/s of ``hosts`` hosts, each with a batch of BATCH, on ``gigabits`` links: one host's
    step (less the Allreduce it measured) plus a ring Allreduce, 2(N-1)/N x bytes / bandwidth +
    2(N-1) x latency, not overlapped with the backward pass."""
    compute = (step_ms - allreduce_ms_local) / 1e3
    ring = 2 * (hosts - 1) / hosts * gradient_bytes / (gigabits * 1e9 / 8) + 2 * (hosts - 1) * latency_ms / 1e3
    return hosts * BATCH / (compute + ring)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank-job", action="store_true", help="time the steps in this process (under mpirun)")
    parser.add_argument("--data", help="the Fashion-MNIST folder (default: where convnet finds it)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"turns each layout takes (default {ROUNDS})")
    parser.add_argument("--two-hosts", metavar="RATE", help="also two namespace hosts over TCP limited to RATE "
                        "(e.g. 1gbit; needs root: see two_hosts.py)")
    args = parser.parse_args()
    if args.rank_job:
        rank_job(args.data)
        return
    command = [sys.executable, __file__, "--rank-job"] + (["--data", args.data] if args.data else [])
    layouts = {"1 rank, all cores": [command],
               "2 ranks, shared memory": [["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", *command]]}
    if args.two_hosts:  # a namespace host has one core: compare it with one rank on one core
        layouts["1 rank, one core"] = [["taskset", "-c", "0", "env", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1",
                                        "NUMBA_NUM_THREADS=1", *command]]
        layouts[f"2 hosts, TCP at {args.two_hosts}"] = [None, *command]
    rounds = {}  # (layout, model) -> the figures of each round
    for turn in range(args.rounds):
        for label, argv in (list(layouts.items()) if turn % 2 == 0 else reversed(layouts.items())):
            for figures in _run_layout(argv, args.two_hosts):
                rounds.setdefault((label, figures["model"]), []).append(figures)
    results = []
    for (label, model), figures in rounds.items():
        rates = [f["images_per_second"] for f in figures]
        step_ms = statistics.median(f["step_ms"] for f in figures)
        results.append({"layout": label, **figures[0], "step_ms": step_ms, "images_per_second": BATCH / step_ms * 1e3,
                        "images_per_second_range": [min(rates), max(rates)], "rounds": len(figures),
                        "allreduce_ms": statistics.median(f["allreduce_ms"] for f in figures)})
        print(json.dumps(results[-1]))
    for host in (r for r in results if r["layout"].startswith("2 hosts")):
        core = next(r for r in results if r["layout"] == "1 rank, one core" and r["model"] == host["model"])
        print(f"{host['model']}: 2 hosts reach {host['images_per_second'] / (2 * core['images_per_second']):.0%} of "
              f"twice one core's images/s; the Allreduce takes {host['allreduce_ms'] / host['step_ms']:.0%} of a step")
    one_rank = {r["model"]: r for r in results if r["layout"] == "1 rank, all cores"}
    # What share of a link's rate an Allreduce reached between the namespace hosts (TCP, tbf):
    # the projection's links are that efficient.
    measured = [r for r in results if r["layout"].startswith("2 hosts")]
    efficiency = statistics.median(
        r["gradient_bytes"] / (_gigabits(args.two_hosts) * 1e9 / 8) / (r["allreduce_ms"] / 1e3)
        for r in measured) if measured else 1.0
    print(f"\nprojected images/s, each host a batch of 128, Allreduce not overlapped, links at "
          f"{efficiency:.0%} of their rate:")
    print(f"{'model':15s} {'link':>8s} " + " ".join(f"{n:>8d}" for n in (1, 2, 4, 8, 16, 32)))
    for model, figures in one_rank.items():
        for gigabits in (1, 10):
            rates = [project(figures["step_ms"], 0.0, figures["gradient_bytes"], n, gigabits * efficiency) if n > 1
                     else figures["images_per_second"] for n in (1, 2, 4, 8, 16, 32)]
            print(f"{model:15s} {gigabits:>5d} Gb " + " ".join(f"{rate:8.0f}" for rate in rates))


def _run_layout(argv, rate):
    """The figures (one dict per model) of one run of a layout's command; ``argv[0]`` None: under
    mpirun across two namespace hosts linked at ``rate``."""
    if argv[0] is None:
        with two_hosts(rate) as mpirun:
            done = subprocess.run([*mpirun, *argv[1:]], capture_output=True, text=True, check=True)
    else:
        done = subprocess.run(argv[0], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _gigabits(rate):
    """tc's rate text ('1gbit', '100mbit') in Gbit/s."""
    number, unit = rate.lower().rstrip("bit").rstrip("/s"), 1.0
    for suffix, scale in (("g", 1.0), ("m", 1e-3), ("k", 1e-6)):
        if number.endswith(suffix):
            number, unit = number[:-1], scale
    return float(number) * unit


if __name__ == "__main__":
    main()
