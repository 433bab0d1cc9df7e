"""How long an image folder takes to open: the first time (every file read, hashed and decoded
into the cache) and after (the folder scanned and the cache memory-mapped).

    python benchmarks/decode.py [--count 60000] [--workers N] [--threads]

Writes ``--count`` 28x28 grayscale PNGs into a temporary image folder of 10 classes (Fashion-MNIST's
training images when its IDX files are found, else seeded random ones), then times
`convnet.data.open_images` twice with a fresh cache (and, with ``--threads``, the decoding alone on
threads instead of processes, into another fresh cache). The issue's targets, for 60,000 images on the
2-core machine: <= 60 s the first time, <= 2 s after. Prints the load average too: the machine is
shared, and the figures mean little without it.
"""

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import convnet  # noqa: F401  (before NumPy, as convnet asks)
import numpy as np
from PIL import Image

from convnet.data import cache, folders, mnist, open_images


def images_to_write(count):
    """(uint8 images (count, 28, 28), labels (count,), where they came from)."""
    try:
        images, labels = mnist.load("fashion-mnist", "train")
        repeats = -(-count // len(images))
        return np.tile(images, (repeats, 1, 1))[:count], np.tile(labels, repeats)[:count], "Fashion-MNIST"
    except mnist.DatasetNotFound:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), np.arange(count) % 10, "random pixels"


def write_folder(root, images, labels):
    for label in range(10):
        (root / f"class {label}").mkdir(parents=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / f"class {label}" / f"{index:05d}.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60000)
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default: every core)")
    parser.add_argument("--threads", action="store_true", help="also time decoding on threads")
    args = parser.parse_args()
    images, labels, origin = images_to_write(args.count)
    with tempfile.TemporaryDirectory() as folder:
        root, cache_dir = Path(folder) / "images", Path(folder) / "cache"
        started = time.perf_counter()
        write_folder(root, images, labels)
        print(f"wrote {args.count:,} 28x28 PNGs ({origin}) in {time.perf_counter() - started:.1f} s")
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            data = open_images(root, cache_dir=cache_dir, workers=args.workers, progress=sys.stderr.isatty())
            timings.append(time.perf_counter() - started)
        print(data.summary)
        workers = args.workers or len(os.sched_getaffinity(0))
        print(f"first open (decode on {workers} processes): {timings[0]:.1f} s "
              f"({args.count / timings[0]:,.0f} images/s); second open: {timings[1]:.2f} s")
        if args.threads:
            listing = folders.scan_folder(root)
            started = time.perf_counter()
            cache.decoded(listing.paths, folders.Manifest.of(listing), Path(folder) / "thread cache",
                          workers=args.workers, progress=False, executor=ThreadPoolExecutor)
            print(f"decoding alone on {workers} threads: {time.perf_counter() - started:.1f} s")
        print(f"load average (1, 5, 15 min): {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
