"""How much memory training on an image folder takes, and whether it grows with the dataset.

    python benchmarks/folder_memory.py --count 85000    # about 1 GB of 64x64 colour pixels
    python benchmarks/folder_memory.py --count 8500     # a tenth of it

Writes ``--count`` 64x64 colour PNGs of noise with a bright band whose place is the class (4 classes)
into a temporary folder, then runs ``convnet train --data FOLDER --model lenet5 --epochs 1`` in a
fresh process with its own empty cache, sampling that process's ``/proc/PID/status`` every 0.2 s.
Prints the peaks of RssAnon (the process's own memory) and RssFile (pages of the memory-mapped cache
and of the libraries, which the kernel can drop), and VmHWM (the two together). Linux only.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

FIELDS = ("RssAnon", "RssFile", "VmHWM")


def write_folder(root, count, seed=0):
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % 4
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        image[8 + 10 * label:20 + 10 * label, 8:40] = 255
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:06d}.png", compress_level=1)


def status(pid):
    """The FIELDS of /proc/PID/status in kB, or None once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    found = dict(line.split(":", 1) for line in lines if line.split(":", 1)[0] in FIELDS)
    return {name: int(value.split()[0]) for name, value in found.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8500, help="images to write (12,288 bytes each decoded)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_folder(scratch / "images", args.count)
        command = [sys.executable, "-m", "convnet", "train", "--data", str(scratch / "images"), "--model", "lenet5",
                   "--epochs", "1", "--out", str(scratch / "run"), "--no-progress"]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, XDG_CACHE_HOME=str(scratch / "cache")))
        peaks = dict.fromkeys(FIELDS, 0)
        while process.poll() is None:
            now = status(process.pid)
            if now:
                peaks = {name: max(peaks[name], now.get(name, 0)) for name in FIELDS}
            time.sleep(0.2)
        output = process.stdout.read()
        if process.returncode:
            sys.exit(f"convnet train failed ({process.returncode}):\n{output}")
    print(output.splitlines()[0])
    print(f"{args.count:,} images ({args.count * 64 * 64 * 3 / 1e9:.2f} GB decoded) in "
          f"{time.perf_counter() - started:.0f} s: peak RssAnon {peaks['RssAnon'] / 1e6:.2f} GB, "
          f"RssFile {peaks['RssFile'] / 1e6:.2f} GB, VmHWM {peaks['VmHWM'] / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
