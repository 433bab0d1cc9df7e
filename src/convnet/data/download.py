"""``convnet download``: fetch a dataset's official files into the user cache, verified.

Fashion-MNIST's files are each checked against a pinned SHA-256 of their *decompressed*
contents: the official .gz files and Debian's recompressed copies differ byte for byte but hold
the same data. CIFAR's one archive is checked against the SHA-256 of its bytes, then unpacked
(regular files and folders only, all inside the archive's one folder) into a temporary folder
that is renamed into place once complete. A transfer goes to a temporary file that is renamed
only once verified, so an interrupted or corrupted download never leaves a file behind that a
later run would trust.
"""

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from .cifar import LAYOUTS as CIFAR_LAYOUTS
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
    # The archives' SHA-256 as Keras pins them (keras/datasets/cifar10.py and cifar100.py: get_file's
    # file_hash) and torchvision's prototype datasets do (torchvision/prototype/datasets/_builtin/
    # cifar.py: _SHA256), the same two values in both; the archives are 170,498,071 and 169,001,437
    # bytes, MD5 c58f30108f718f92721af3b95e74349a and eb9058c3a382ffc7106e4002c42a8d85 (torchvision's
    # CIFAR10 and CIFAR100 tgz_md5).
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/",
        "files": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
        "layout": CIFAR_LAYOUTS["cifar10"],
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/",
        "files": {"cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"},
        "layout": CIFAR_LAYOUTS["cifar100"],
    },
}


class DownloadError(ConvnetError, RuntimeError):
    pass


def decompressed_sha256(path):
    with gzip.open(path, "rb") as stream:
        return _sha256(stream)


def file_sha256(path):
    with open(path, "rb") as stream:
        return _sha256(stream)


def _sha256(stream):
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def download(name, directory=None, base_url=None, progress=True, timeout=60):
    """Fetch and verify every file of dataset ``name``; return the directory holding them.

    Files already present and verified are kept. ``base_url`` replaces the official location
    (a mirror, or a local server in tests). For CIFAR, the archive's folder is returned
    (``directory/cifar-10-batches-py``); once unpacked, the archive itself is deleted.
    """
    if name not in SOURCES:
        raise InvalidValue(f"download: unknown dataset {name!r}; expected one of {sorted(SOURCES)}")
    source = SOURCES[name]
    directory = Path(directory) if directory else cache_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    base_url = base_url or source["url"]
    if "layout" in source:
        return _download_archive(source, directory, base_url, progress, timeout)
    for filename, expected in source["files"].items():
        target = directory / filename
        if target.exists() and _verified(target, expected, decompressed_sha256):
            continue
        _fetch(base_url.rstrip("/") + "/" + filename, target, expected, decompressed_sha256, progress, timeout)
    return directory


def _download_archive(source, directory, base_url, progress, timeout):
    """Fetch, verify and unpack the one archive of ``source``; return the folder it holds."""
    layout = source["layout"]
    folder = directory / layout["folder"]
    required = [layout["meta"], *(name for names in layout["splits"].values() for name in names)]
    if folder.is_dir():  # renamed into place only complete, from a verified archive
        missing = [name for name in required if not (folder / name).is_file()]
        if missing:
            raise DownloadError(f"{folder} exists but lacks {', '.join(missing)}; remove it to download it again")
        return folder
    (filename, expected), = source["files"].items()
    archive = directory / filename
    if not (archive.exists() and _verified(archive, expected, file_sha256)):
        _fetch(base_url.rstrip("/") + "/" + filename, archive, expected, file_sha256, progress, timeout)
    _unpack(archive, folder, required)
    archive.unlink()
    return folder


def _unpack(archive, folder, required):
    """Extract the tar.gz ``archive``, which must hold only regular files and folders, all in
    ``folder.name``/, among them the files ``required``, to ``folder``: through a temporary
    folder, so that nothing half-extracted is ever found at ``folder``."""
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))

    def only_files_in_folder(member, destination):
        member = tarfile.data_filter(member, destination)  # no absolute paths, no '..', nothing outside
        if not (member.isfile() or member.isdir()):
            raise DownloadError(f"{archive}: member {member.name!r} is a link or a special file; expected only "
                                f"regular files and folders (nothing was kept)")
        if member.name.split("/")[0] != folder.name:
            raise DownloadError(f"{archive}: member {member.name!r} is outside {folder.name}/, the archive's one "
                                f"folder (nothing was kept)")
        return member

    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(temporary, filter=only_files_in_folder)
        missing = [name for name in required if not (temporary / folder.name / name).is_file()]
        if missing:
            raise DownloadError(f"{archive}: lacks {folder.name}/{missing[0]} ({len(missing)} of the {len(required)} "
                                f"files expected are missing); nothing was kept")
        os.replace(temporary / folder.name, folder)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DownloadError(f"{archive}: cannot be unpacked ({type(error).__name__}: {error}); nothing was kept") \
            from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _verified(path, expected, digest):
    try:
        return digest(path) == expected
    except (OSError, EOFError, zlib.error):  # a damaged file is one to download again
        return False


def _fetch(url, target, expected, digest, progress, timeout):
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
        if not _verified(Path(temporary), expected, digest):
            raise DownloadError(f"{url}: contents do not match the pinned SHA-256 {expected[:16]}...; "
                                f"the file was discarded")
        shutil.move(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
