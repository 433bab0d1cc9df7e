"""Decoding a listing's images once, in parallel, into a uint8 cache file that later opens in
an instant, memory-mapped (so a dataset larger than memory trains).

The cache is ``<key>.npy`` (pixels (N, C, H, W), uint8) and ``<key>.json`` (the chosen size and
channels, the unreadable files, each file's SHA-256, the conversions made, and the per-channel
statistics of the training subsets asked for so far), where the key hashes the files' manifest
(paths, sizes, modification times) with the size and channels asked for. The pixels are written
under a temporary name and renamed, then the JSON is written (atomically, as each later rewrite
that adds statistics); only a key with both files is used, so a decoding killed at any moment is
never mistaken for a finished one: the next open decodes again.
"""

import hashlib
import io
import json
import math
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image
from tqdm import tqdm

from .datasets import channel_statistics
from .images import ImageError, read_image
from ..errors import InvalidValue
from ..files import WriteError, atomic_write

CACHE_VERSION = 1
# The training subsets whose statistics a cache keeps (the latest): a few splits of one folder, not every one tried.
STATISTICS_KEPT = 16
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F")
# EXIF orientations 5..8 turn the picture a quarter: its width becomes its height.
_QUARTER_TURNS = (5, 6, 7, 8)


@dataclass
class Decoded:
    """The cache of one listing: ``pixels`` (N, C, H, W) uint8, memory-mapped; ``bad`` maps an
    index to why its file cannot be read (its pixels are zeros); ``digests`` the SHA-256 of each
    file's bytes (None for a file that cannot be read); ``notes`` counts the conversions made;
    ``statistics`` maps a `statistics_key` to the [mean, std] kept for it (see `statistics`)."""
    pixels: np.ndarray
    size: tuple
    channels: int
    bad: dict
    digests: list
    notes: dict
    path: Path
    statistics: dict


def cache_key(manifest, image_size, channels):
    """The hex key of a cache: the manifest's hash with the size and channels asked for (None: chosen by the data)."""
    asked = json.dumps([CACHE_VERSION, manifest.sha256, image_size and list(image_size), channels])
    return hashlib.sha256(asked.encode()).hexdigest()[:32]


def decoded(paths, manifest, cache_dir, image_size=None, channels=None, workers=None, progress=True,
            executor=ProcessPoolExecutor):
    """The `Decoded` cache of ``paths`` (whose `folders.Manifest` is ``manifest``) in ``cache_dir``,
    opened if there, else made: a first pass reads each file's header (size once upright, whether
    it is grayscale) and hashes its bytes; the size and channels are chosen (``image_size`` (H, W)
    resizes the shorter side and centre-crops; without it all images must share a size, else an
    `InvalidValue` lists the sizes found; ``channels`` None is 1 when every image is grayscale,
    else 3); a second pass decodes. Both passes run on ``workers`` processes (default: every core
    this process may use) in chunks, with a progress bar when ``progress``."""
    cache_dir = Path(cache_dir).resolve()
    key = cache_key(manifest, image_size, channels)
    found = _opened(cache_dir, key, len(paths))
    if found is not None:
        return found
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"cannot write the image cache in {cache_dir}: {error.strerror or error}; "
                         f"pass another cache_dir") from None
    _remove_abandoned(cache_dir, key)
    workers = workers or len(os.sched_getaffinity(0))
    chunks = _chunks(len(paths), workers)
    headers = _run(executor, workers, _headers, [(paths[c],) for c in chunks], progress, "reading images", chunks)
    headers = [header for chunk in headers for header in chunk]
    bad = {index: header for index, header in enumerate(headers) if isinstance(header, str)}
    good = [header for header in headers if not isinstance(header, str)]
    channels = channels or (1 if good and all(grey for _, grey, _ in good) else 3)
    size = tuple(image_size) if image_size else _common_size(paths, headers)
    temporary = cache_dir / f".{key}.npy.{os.getpid()}.tmp"
    try:
        np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(paths), channels, *size))
    except OSError as error:
        raise WriteError(f"cannot write the image cache {temporary}: {error.strerror or error}; "
                         f"pass another cache_dir") from None
    tasks = [(temporary, c.start, [None if c.start + i in bad else p for i, p in enumerate(paths[c])], size, channels,
              image_size is not None) for c in chunks]
    try:
        results = _run(executor, workers, _decode_chunk, tasks, progress, "decoding images", chunks)
        with open(temporary, "rb+") as stream:  # on disk before it has its final name
            os.fsync(stream.fileno())
        os.replace(temporary, cache_dir / f"{key}.npy")
    finally:  # interrupted (Ctrl-C, a worker's crash): nothing half-written stays behind
        temporary.unlink(missing_ok=True)
    notes = Counter()
    for chunk_bad, chunk_notes in results:
        bad.update(chunk_bad)
        notes.update(chunk_notes)
    meta = {"version": CACHE_VERSION, "files": len(paths), "size": list(size), "channels": channels,
            "bad": {str(index): reason for index, reason in sorted(bad.items())},
            "digests": [None if isinstance(header, str) else header[2] for header in headers], "notes": dict(notes)}
    atomic_write(cache_dir / f"{key}.json", json.dumps(meta))
    return _opened(cache_dir, key, len(paths))


def _opened(cache_dir, key, count):
    """The finished cache ``key`` in ``cache_dir``, or None when there is none (or it is not whole)."""
    try:
        meta = json.loads((cache_dir / f"{key}.json").read_text())
        pixels = np.load(cache_dir / f"{key}.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if meta.get("version") != CACHE_VERSION or pixels.shape != (count, meta["channels"], *meta["size"]):
        return None
    statistics = meta.get("statistics")
    return Decoded(pixels, tuple(meta["size"]), meta["channels"], {int(i): r for i, r in meta["bad"].items()},
                   meta["digests"], meta["notes"], cache_dir / f"{key}.npy",
                   statistics if isinstance(statistics, dict) else {})


def statistics_key(found, indices):
    """What decides the statistics of the images ``indices`` of the cache ``found``: its channels and
    size, and the SHA-256 of the sorted indices (which images: the split, what was left out)."""
    rows = np.sort(np.asarray(indices, dtype=np.int64))
    return f"{found.channels}x{found.size[0]}x{found.size[1]}:{hashlib.sha256(rows.tobytes()).hexdigest()}"


def statistics(found, indices):
    """Per-channel (mean, std) of the images ``indices`` of the cache ``found`` (two lists of C
    floats, as `datasets.channel_statistics`), computed once: the cache's JSON keeps them under
    `statistics_key` (atomically rewritten, the latest `STATISTICS_KEPT` subsets), so a second
    start, and every rank of a distributed job after the first, reads them (JSON floats read back
    bit for bit). A cache whose JSON cannot be rewritten (a read-only folder) computes them each time."""
    key = statistics_key(found, indices)
    kept = found.statistics.get(key)
    if _are_statistics(kept, found.channels):
        return kept[0], kept[1]
    mean, std = channel_statistics(found.pixels, indices)
    sidecar = found.path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        latest = {name: value for name, value in meta.get("statistics", {}).items() if name != key}
        latest[key] = [mean, std]
        meta["statistics"] = dict(list(latest.items())[-STATISTICS_KEPT:])
        atomic_write(sidecar, json.dumps(meta))
    except (OSError, ValueError, AttributeError):  # gone, damaged or read-only (WriteError): computed again next time
        pass
    return mean, std


def _are_statistics(kept, channels):
    """Whether ``kept`` is [mean, std] of ``channels`` numbers each (a hand-edited JSON is computed again)."""
    return (isinstance(kept, list) and len(kept) == 2 and all(
        isinstance(values, list) and len(values) == channels and all(
            isinstance(v, float) and math.isfinite(v) for v in values) for values in kept) and min(kept[1]) >= 0)


def _remove_abandoned(cache_dir, key):
    """Delete temporary files of ``key`` whose decoding process is gone (killed mid-way)."""
    for temporary in cache_dir.glob(f".{key}.npy.*.tmp"):
        pid = temporary.name.split(".")[-2]
        if pid.isdigit() and not _running(int(pid)):
            temporary.unlink(missing_ok=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chunks(count, workers):
    """Slices of about 256 files, smaller when there are few, so that every worker gets some."""
    step = max(1, min(256, math.ceil(count / (workers * 4))))
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def _run(executor, workers, function, tasks, progress, description, chunks):
    """``[function(*task) for task in tasks]``, on ``workers`` of ``executor`` when more than one."""
    with tqdm(total=chunks[-1].stop if chunks else 0, desc=description, unit="img", disable=not progress,
              leave=False) as bar:
        if workers == 1 or len(tasks) == 1:
            results = []
            for task, chunk in zip(tasks, chunks):
                results.append(function(*task))
                bar.update(chunk.stop - chunk.start)
            return results
        with executor(max_workers=workers) as pool:
            futures = [pool.submit(function, *task) for task in tasks]
            for future, chunk in zip(futures, chunks):
                future.result()
                bar.update(chunk.stop - chunk.start)
            return [future.result() for future in futures]


def _headers(paths):
    """For each path, ((height, width) once upright, whether grayscale, SHA-256 of its bytes), or
    why it cannot be read (a str, as `read_image` says it)."""
    found = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
            with warnings.catch_warnings():
                # said once, as notes, when `read_image` decodes it; a bomb is refused there too
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                    if image.getexif().get(ExifTags.Base.Orientation, 1) in _QUARTER_TURNS:
                        width, height = height, width
                    found.append(((height, width), _is_gray(image), hashlib.sha256(data).hexdigest()))
        except Exception as error:  # noqa: BLE001  (damaged files make Pillow raise OSError, SyntaxError, ...)
            found.append(_why_unreadable(path, error))
    return found


def _why_unreadable(path, error):
    """`read_image`'s words for why ``path`` cannot be read (it names huge images, missing files)."""
    try:
        read_image(path)
    except ImageError as refusal:
        return str(refusal)
    return f"{path}: not a readable image ({error.__class__.__name__}: {error})"


def _is_gray(image):
    if image.mode.startswith("I;16") or image.mode in _GRAY_MODES:
        return True
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
        return bool((palette == palette[:, :1]).all())
    return False


def _common_size(paths, headers):
    sizes = Counter(header[0] for header in headers if not isinstance(header, str))
    if len(sizes) <= 1:
        return next(iter(sizes), (1, 1))
    listed = ", ".join(f"{h}x{w} ({count} image{'s' * (count != 1)}, e.g. {_example(paths, headers, (h, w))})"
                       for (h, w), count in sizes.most_common(3))
    more = f" and {len(sizes) - 3} more sizes" if len(sizes) > 3 else ""
    (h, w), _ = sizes.most_common(1)[0]
    raise InvalidValue(f"the images have {len(sizes)} different sizes (height x width): {listed}{more}; "
                       f"pass an image size (--image-size {h}x{w}, or image_size=({h}, {w})) to resize them all")


def _example(paths, headers, size):
    return next(Path(p).name for p, header in zip(paths, headers) if not isinstance(header, str) and header[0] == size)


def _decode_chunk(temporary, start, paths, size, channels, crop):
    """Decode ``paths`` (None: a file already known to be bad) into rows ``start...`` of the cache
    being written at ``temporary``; returns ({index: why it cannot be read}, Counter of notes)."""
    pixels = np.load(temporary, mmap_mode="r+")
    bad, notes = {}, Counter()
    for offset, path in enumerate(paths):
        if path is None:
            continue
        try:
            array, file_notes = read_image(path, size if crop else None, channels, crop=crop)
        except ImageError as error:
            bad[start + offset] = str(error)
            continue
        if array.shape[1:] != size:
            bad[start + offset] = f"{path}: decoded as {array.shape[1]}x{array.shape[2]}, expected {size[0]}x{size[1]}"
            continue
        pixels[start + offset] = array
        # "resized 40x30 to 28x28" and "resized 50x30 to 28x28" count as one kind of conversion
        notes.update(re.sub(r"\d+", "#", note) for note in dict.fromkeys(file_notes))
    pixels.flush()
    return bad, notes
