"""The report: the machine (CPU, BLAS, Numba's threading layer, the float32 matmul peak) and the
table of figures and ratios."""

import os
import platform
import statistics

import numba
import numpy as np

from ..kernels import activation as activation_kernels
from ..process import available_cores
from .processes import median_time


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
        if row.flops and row.unit in ("ms", "img/s"):
            per_second = 1e3 / row.figures["convnet"] if row.unit == "ms" else row.figures["convnet"]
            rate = row.flops * per_second / 1e9
            note = f"{rate:.0f} GFLOP/s ({rate / peak:.0%} of peak)"
        lines.append(f"{row.name:60s} {row.unit:>6s} {figures} {ratios}  {quiet:>5s}  {note}")
    return "\n".join(lines)


def grid_summary(rows, against="torch_cl"):
    """What the grid's ``rows`` say against contender ``against`` (PyTorch channels_last): the
    worst case (the largest median ratio convnet / them), the median of the cases' ratios and how
    many cases are at or under 1.0x; None when no row has a ratio to ``against``."""
    compared = [row for row in rows if against in row.ratios]
    if not compared:
        return None
    worst = max(compared, key=lambda row: row.ratios[against][0])
    ratios = [row.ratios[against][0] for row in compared]
    return {"against": against, "worst": worst.name, "worst_ratio": worst.ratios[against][0],
            "median_ratio": statistics.median(ratios), "at_or_under_1": sum(ratio <= 1.0 for ratio in ratios),
            "cases": len(compared)}


def format_grid_summary(summary):
    return (f"grid against {summary['against']}: worst {summary['worst']} {summary['worst_ratio']:.2f}x; "
            f"median {summary['median_ratio']:.2f}x; {summary['at_or_under_1']} of {summary['cases']} cases "
            f"at or under 1.0x")
