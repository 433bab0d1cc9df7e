"""``convnet download``: fetch a dataset's official files into the user cache, verified.

Each file is checked against a pinned SHA-256 of its *decompressed* contents: the official
.gz files and Debian's recompressed copies differ byte for byte but hold the same data. A
transfer goes to a temporary file that is renamed only once verified, so an interrupted or
corrupted download never leaves a file behind that a later run would trust.
"""

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from .mnist import cache_dir
from ..errors import ConvnetError, InvalidValue

SOURCES = {
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "files": {
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    },
}


class DownloadError(ConvnetError, RuntimeError):
    pass


def decompressed_sha256(path):
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name, directory=None, base_url=None, progress=True, timeout=60):
    """Fetch and verify every file of dataset ``name``; return the directory holding them.

    Files already present and verified are kept. ``base_url`` replaces the official location
    (a mirror, or a local server in tests).
    """
    if name not in SOURCES:
        raise InvalidValue(f"download: unknown dataset {name!r}; expected one of {sorted(SOURCES)}")
    source = SOURCES[name]
    directory = Path(directory) if directory else cache_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    base_url = base_url or source["url"]
    for filename, expected in source["files"].items():
        target = directory / filename
        if target.exists() and _verified(target, expected):
            continue
        _fetch(base_url.rstrip("/") + "/" + filename, target, expected, progress, timeout)
    return directory


def _verified(path, expected):
    try:
        return decompressed_sha256(path) == expected
    except (OSError, EOFError, zlib.error):  # a damaged file is one to download again
        return False


def _fetch(url, target, expected, progress, timeout):
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length else None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                        received = 0
                        for chunk in iter(lambda: response.read(1 << 16), b""):
                            out.write(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except OSError as error:
                raise DownloadError(f"{url}: download failed ({error})") from None
            if total is not None and received != total:
                raise DownloadError(f"{url}: transfer interrupted after {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if not _verified(Path(temporary), expected):
            raise DownloadError(f"{url}: contents do not match the pinned SHA-256 {expected[:16]}...; "
                                f"the file was discarded")
        shutil.move(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
