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

convnet is given its inputs in the memory layout its own layers hand on, which is the fair
comparison: by default channels-last memory ((N, C, H, W) views of (N, H, W, C) arrays), the same
as PyTorch channels_last's inputs; ``--layout nchw`` or ``channel_major`` gives it the others. The
gradient each backward starts from is ones in the layout of the output, for every contender.
Convolutions, training steps and inference carry their FLOPs (from their shapes and layers,
`flops`), and the table gives convnet's GFLOP/s and its share of this machine's float32
matrix-multiply peak.

The parts: `op_cases`, `grid_cases` (the convolution grid: its worst case is printed after the
table) and `model_cases` (what is timed, built by `case`), `processes` (a process per contender),
`rounds` (the turns and their medians), `footprint` (memory and compile time), `report` (the
machine and the table); this module reads the options and runs the parts they ask for.
"""

import argparse
import json
import os
import shlex
import sys
import time

from ..process import retain_freed_memory
from .case import CONTENDERS, DEFAULT_LAYOUT, EVERY_CASE, LAYOUTS, import_onnxruntime, import_torch
from .footprint import bench_compile, bench_memory, probe_memory
from .grid_cases import grid_cases
from .model_cases import TorchLayers  # noqa: F401  (tests/test_nn.py's PyTorch twin of the zoo's ResNet-8)
from .processes import Contender, all_cases, serve
from .report import format_grid_summary, format_table, grid_summary, machine, matmul_peak
from .rounds import measure


def run(args):
    torch = None if args.no_torch else import_torch()
    contenders = ["convnet"] + (["torch", "torch_cl"] if torch is not None else []) + (
        ["onnxruntime"] if "train" in args.parts and import_onnxruntime() is not None else [])
    info = dict(machine(torch), matmul_peak_gflops=matmul_peak(), contenders=contenders,
                kernels=os.environ.get("CONVNET_KERNELS", "compiled"), convnet_layout=args.layout)
    print(f"{info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, torch {info['torch'] or 'not installed'}, "
          f"numba {info['numba']['version']} ({info['numba']['threading_layer']} threads); "
          f"float32 matmul peak {info['matmul_peak_gflops']:.0f} GFLOP/s; convnet's inputs in {args.layout} memory",
          flush=True)
    rows = []
    cases = [case for case in all_cases(args.parts, args.quick, args.data, args.layout) if args.cases in case.name]
    if cases:
        options = (["--quick"] if args.quick else []) + ["--parts", *args.parts, "--layout", args.layout] + (
            ["--data", args.data] if args.data else [])
        processes = [Contender(name, options) for name in contenders]
        try:
            for case in cases:
                rows += measure(case, processes, min(3, args.repeats) if args.quick else args.repeats)
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
    grid_names = {case.name for case in grid_cases(args.quick, args.layout)} if "convgrid" in args.parts else set()
    summary = grid_summary([row for row in rows if row.name in grid_names])
    if summary:
        print(format_grid_summary(summary))
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command_line(args), "machine": info,
              "rows": [row.__dict__ for row in rows], "grid_summary": summary}
    with open(args.out, "w") as stream:
        json.dump(report, stream, indent=2)
    print(f"\nwritten to {args.out}")
    return 0


PARTS = ["ops", "convgrid", "train", "memory", "compile"]


def _rounds(text):
    """``--repeats``: a whole number of rounds, at least one (a median needs a figure)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


OPTIONS = {  # destination: (flag, argparse keywords); also what `command_line` writes back
    "quick": ("--quick", {"action": "store_true", "help": "smaller batches and at most 3 rounds"}),
    "repeats": ("--repeats", {"type": _rounds, "default": 5, "help": "rounds per figure (median; default 5)"}),
    "parts": ("--parts", {"nargs": "+", "default": PARTS, "choices": PARTS}),
    "cases": ("--cases", {"default": "", "metavar": "TEXT", "help": "only the cases whose name contains TEXT"}),
    "layout": ("--layout", {"default": DEFAULT_LAYOUT, "choices": list(LAYOUTS),
                            "help": "memory layout of convnet's (N, C, H, W) inputs (default channels_last, "
                                    "as PyTorch channels_last's)"}),
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
        serve(args.serve, args.parts, args.quick, args.data, args.layout)
    elif args.probe_memory:
        probe_memory(args.probe_memory, args.steps, args.batch_norm)
    else:
        return run(args)
    return 0

