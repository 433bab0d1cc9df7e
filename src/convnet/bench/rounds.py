"""Rounds: every contender times a case in turn, in an order that rotates from round to round; a
round is quiet when other processes used little of the machine, and the figures are medians over
the quiet rounds."""

import os
import statistics
import time
from dataclasses import dataclass, field

from .processes import machine_busy_seconds, process_cpu_seconds

QUIET = 0.10  # the largest share of the machine that other processes may use in a quiet round


@dataclass
class Row:
    """One line of the report: a case's figure per contender, and convnet's ratios to the others."""
    name: str
    unit: str                       # "ms" per call, or "img/s"
    figures: dict                   # contender -> median figure
    ratios: dict = field(default_factory=dict)   # "torch"/"torch_cl" -> (median, low, high) of convnet / them
    quiet_rounds: int = 0
    rounds: int = 0
    others_busy: float = 0.0        # median share of the machine used by other processes
    flops: int = 0                  # FLOPs per call in "ms" rows, per image in an inference's "img/s" row


def measure(case, contenders, rounds):
    """Time ``case`` in ``rounds`` rounds, the contenders' order rotating; return its Row(s)."""
    times, busy = {c.name: [] for c in contenders}, []
    for round_index in range(rounds):
        order = contenders[round_index % len(contenders):] + contenders[:round_index % len(contenders)]
        ours_before = process_cpu_seconds(os.getpid()) + sum(c.cpu_seconds() for c in contenders)
        machine_before, wall_before = machine_busy_seconds(), time.perf_counter()
        for contender in order:
            times[contender.name].append(contender.time(case.name))
        ours = process_cpu_seconds(os.getpid()) + sum(c.cpu_seconds() for c in contenders) - ours_before
        wall = time.perf_counter() - wall_before
        busy.append(max(0.0, machine_busy_seconds() - machine_before - ours) / (wall * os.cpu_count()))
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
    if case.name.startswith("train step"):
        return [row, throughput]  # the step's row carries the FLOPs
    throughput.flops = case.flops // case.images
    return [throughput]
