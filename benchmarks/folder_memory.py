"""How much memory training on an image folder takes, and whether it grows with the dataset.

    python benchmarks/folder_memory.py --count 85000    # about 1 GB of 64x64 colour pixels
    python benchmarks/folder_memory.py --count 8500     # a tenth of it
    python benchmarks/folder_memory.py --count 8500 --val-split 0.118   # a tenth, with more validation images
    python benchmarks/folder_memory.py --count 100000 --size 8 --open-only   # what each file costs

Writes ``--count`` 64x64 colour PNGs of noise with a bright band whose place is the class (4 classes)
into a temporary folder, then runs ``convnet train --data FOLDER --model lenet5 --epochs 1`` in a
fresh process with its own empty cache, sampling that process's ``/proc/PID/status`` every 0.2 s.
Prints the peaks of RssAnon (the process's own memory) and RssFile (pages of the memory-mapped cache
and of the libraries, which the kernel can drop), and VmHWM (the two together). Linux only.

The peak comes while the validation images are evaluated (the batch's convolution columns,
mirrored too), in batches of at most 4M input values and 1,000 images (341 at 64x64 in colour): a
folder with fewer validation images than that evaluates them in one smaller batch and peaks lower,
whatever its size otherwise. ``--val-split`` holds out another share, so that folders of different
sizes can be compared at the same evaluation batch.

``--open-only`` measures what grows with the number of files instead: it opens the folder with
``open_images`` in this process (decoding it), then again (the cache found) under ``tracemalloc``,
and prints the Python memory the opened datasets keep and the peak while opening, per file.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import convnet  # noqa: F401  (before NumPy, as convnet asks)
import numpy as np
from PIL import Image

from convnet.data import open_images

FIELDS = ("RssAnon", "RssFile", "VmHWM")


def write_folder(root, count, size=64, seed=0):
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % 4
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        image[(8 + 10 * label) * size // 64:(20 + 10 * label) * size // 64, size // 8:size * 5 // 8] = 255
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


def open_only(folder, count, cache):
    """Open ``folder`` (decoding it into ``cache``), then again under tracemalloc; print what is kept."""
    open_images(folder, cache_dir=cache, progress=False)
    tracemalloc.start()
    started = time.perf_counter()
    data = open_images(folder, cache_dir=cache, progress=False)
    seconds = time.perf_counter() - started
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(data.summary)
    print(f"{count:,} files opened from the cache in {seconds:.1f} s (under tracemalloc): the datasets keep "
          f"{kept / 1e6:.1f} MB ({kept / count:.0f} bytes a file), peak {peak / 1e6:.1f} MB ({peak / count:.0f} "
          f"bytes a file)")


def train_once(folder, count, size, val_split, scratch):
    command = [sys.executable, "-m", "convnet", "train", "--data", str(folder), "--model", "lenet5",
               "--epochs", "1", "--val-split", str(val_split), "--out", str(scratch / "run"), "--no-progress"]
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
    print(f"{count:,} images ({count * size * size * 3 / 1e9:.2f} GB decoded) in "
          f"{time.perf_counter() - started:.0f} s: peak RssAnon {peaks['RssAnon'] / 1e6:.2f} GB, "
          f"RssFile {peaks['RssFile'] / 1e6:.2f} GB, VmHWM {peaks['VmHWM'] / 1e6:.2f} GB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8500, help="images to write")
    parser.add_argument("--size", type=int, default=64, help="their side in pixels (lenet5 trains from 12)")
    parser.add_argument("--val-split", type=float, default=0.1, help="the share held out for validation")
    parser.add_argument("--open-only", action="store_true", help="measure opening the folder, not training")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_folder(scratch / "images", args.count, args.size)
        if args.open_only:
            open_only(scratch / "images", args.count, scratch / "cache")
        else:
            train_once(scratch / "images", args.count, args.size, args.val_split, scratch)


if __name__ == "__main__":
    main()
