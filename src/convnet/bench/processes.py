"""One process per contender, so no two thread pools spin at once: `serve` answers case names
with median times, `Contender` is the bench's handle on such a process, and /proc says how much
CPU each process and the whole machine used."""

import json
import os
import statistics
import subprocess
import sys
import time

from ..process import available_cores
from .case import DEFAULT_LAYOUT, import_torch
from .grid_cases import grid_cases
from .model_cases import model_cases
from .op_cases import op_cases

SECONDS_PER_TURN = 0.2  # how long a contender calls one case in one round, after its warm-up


def all_cases(parts, quick, data_dir, layout=DEFAULT_LAYOUT):
    """The cases of ``parts`` ("ops", "convgrid", "train"), by name the same in every process."""
    cases = op_cases(quick, layout) if "ops" in parts else []
    cases += grid_cases(quick, layout) if "convgrid" in parts else []
    return cases + (model_cases(quick, data_dir, layout) if "train" in parts else [])


def median_time(run, seconds):
    """Median seconds per call of ``run`` over at least three calls and about ``seconds``."""
    samples, spent = [], 0.0
    while len(samples) < 3 or spent < seconds:
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    return statistics.median(samples)


def serve(contender, parts, quick, data_dir, layout=DEFAULT_LAYOUT):
    """A contender's process: answer each case name read from stdin with a median time (null for a
    case it does not run). The bench asks for one case's rounds before the next, so only the
    current case's call (and its arrays and model) is kept."""
    torch = import_torch() if contender in ("torch", "torch_cl") else None
    if torch is not None:
        torch.set_num_threads(available_cores())
    cases = {case.name: case for case in all_cases(parts, quick, data_dir, layout)}
    runs = {}
    print(json.dumps({"ready": contender}), flush=True)
    for line in sys.stdin:
        name = json.loads(line)["case"]
        if contender not in cases[name].contenders:
            print(json.dumps({"seconds": None}), flush=True)
            continue
        if name not in runs:
            runs.clear()  # the previous case's memory goes before this one's is taken
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
        return process_cpu_seconds(self.process.pid)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
