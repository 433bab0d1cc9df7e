"""Finding a user's images: a folder of class folders, or a CSV manifest; the seeded, stratified
validation split; and the manifest (paths, sizes, modification times) a later resume compares.

A `Listing` is what a scan finds: the image files, their labels, the class names, which files
are for validation (when the data says so), and how many non-image files were passed over.
"""

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import EXTENSIONS
from ..errors import InvalidValue, MissingFile

# The names a folder of validation images goes by (torchvision, Keras, Kaggle).
VALIDATION_FOLDERS = ("val", "valid", "validation", "test")


@dataclass
class Listing:
    """Image ``paths`` (absolute, str) with their ``labels`` (indices into ``classes``) under ``root``
    (the folder, or the CSV file's folder), found at ``source`` (the folder or the CSV file);
    ``validation`` is a bool per path when the data itself splits (folders, a CSV column), else None.
    (Strings, not `Path`s: pathlib's parsing took seconds for 60,000 files.)"""
    kind: str
    source: Path
    root: Path
    paths: list
    labels: np.ndarray
    classes: tuple
    validation: np.ndarray = None
    split: dict = field(default_factory=dict)
    non_images: int = 0

    def relative(self):
        """The paths relative to ``root`` with forward slashes (what a run records); a path outside
        ``root`` (a CSV may name any file) stays as it is."""
        prefix = os.path.join(self.root, "")
        return [path[len(prefix):].replace(os.sep, "/") if path.startswith(prefix) else path for path in self.paths]


def recognise(path):
    """"image folder", "csv" or None: what ``path`` holds, as far as images go."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    if path.is_dir() and any(entry.is_dir() and not entry.name.startswith(".") for entry in path.iterdir()):
        return "image folder"
    return None


def scan_folder(root):
    """The `Listing` of ``root/<class>/**/<image>``, or of ``root/train/<class>/...`` beside one of
    ``root/val|valid|validation|test/<class>/...``. Classes are the sorted folder names (as
    torchvision's ImageFolder); hidden files and folders are ignored, symlinked folders followed
    once (a loop ends), non-image files counted. An empty class folder, or a validation class
    with no training folder, is an `InvalidValue` naming it."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise MissingFile(f"{root}: no such folder (expected a folder of class folders or a CSV file)")
    names = {entry.name.lower(): entry for entry in _visible_dirs(root)}
    held_out = next((names[name] for name in VALIDATION_FOLDERS if name in names), None)
    if "train" in names and held_out is not None:
        classes = _class_names(names["train"])
        train, train_skipped = _files_by_class(names["train"], classes)
        unknown = sorted(set(_class_names(held_out)) - set(classes))
        if unknown:
            raise InvalidValue(f"{held_out / unknown[0]}: validation class {unknown[0]!r} has no training folder "
                               f"(expected one of the classes in {names['train']}: {', '.join(classes)})")
        held, held_skipped = _files_by_class(held_out, classes, allow_empty=True)
        paths = [path for path, _ in train + held]
        labels = np.array([label for _, label in train + held], dtype=np.int64)
        validation = np.arange(len(paths)) >= len(train)
        split = {"kind": "folders", "train": names["train"].name, "validation": held_out.name}
        return Listing("image folder", root, root, paths, labels, tuple(classes), validation, split,
                       train_skipped + held_skipped)
    classes = _class_names(root)
    files, skipped = _files_by_class(root, classes)
    return Listing("image folder", root, root, [path for path, _ in files],
                   np.array([label for _, label in files], dtype=np.int64), tuple(classes), non_images=skipped)


def _visible_dirs(folder):
    return sorted(entry for entry in Path(folder).iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _class_names(folder):
    classes = [entry.name for entry in _visible_dirs(folder)]
    if not classes:
        raise InvalidValue(f"{folder}: no class folders (expected {folder}/<class name>/<images>)")
    return classes


def _files_by_class(folder, classes, allow_empty=False):
    """([(path, label)] in sorted order (str paths), count of non-image files) under ``folder/<class>``."""
    files, skipped = [], 0
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        found, others = images_under(str(folder / name))
        if not found and not allow_empty:
            raise InvalidValue(f"{folder / name}: class {name!r} has no images "
                               f"(expected files ending in {', '.join(EXTENSIONS)})")
        files += [(path, label) for path in found]
        skipped += others
    return files, skipped


def images_under(folder):
    """(sorted image paths (str) under ``folder`` at any depth, count of other files), following
    symlinked folders but each real folder once, so a symlink loop ends. A FIFO or device with an
    image's name is another file (reading it could block forever); a broken symlink with one is
    kept, so that reading it fails naming it."""
    images, others, seen, pending = [], 0, set(), [folder]
    while pending:
        directory = pending.pop()
        real = os.path.realpath(directory)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(directory))
        except OSError as error:
            raise InvalidValue(f"{directory}: cannot be read ({error.strerror or error})") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                pending.append(entry.path)
            elif entry.name.lower().endswith(EXTENSIONS) and (entry.is_file() or not os.path.exists(entry.path)):
                images.append(entry.path)
            else:
                others += 1
    return sorted(images), others


def read_csv(csv_path):
    """The `Listing` of a CSV manifest: a header row naming ``path`` and ``label`` columns (and
    optionally ``split``: train, or val/valid/validation/test), paths relative to the CSV's folder.
    Classes are the labels sorted (as numbers when all are integers). A row naming a missing file,
    a row with no label, and a validation label absent from training are each an `InvalidValue`
    naming the row."""
    csv_path = Path(csv_path).resolve()
    if not csv_path.is_file():
        raise MissingFile(f"{csv_path}: no such CSV file")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as stream:
            rows = list(csv.reader(stream))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidValue(f"{csv_path}: expected a CSV file in UTF-8, "
                           f"got {error.__class__.__name__}: {error}") from None
    header = [name.strip().lower() for name in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        raise InvalidValue(f"{csv_path}: expected a header row naming the columns path and label, got {rows[:1]}")
    column = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    paths, names, held_out = [], [], []
    for number, row in enumerate(rows[1:], start=2):  # row 1 is the header, as a spreadsheet counts
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[index].strip() if index < len(row) else "") for name, index in column.items()}
        if not cells["label"]:
            raise InvalidValue(f"{csv_path}, row {number}: no label (expected path,label, got {','.join(row)})")
        path = csv_path.parent / cells["path"]
        if not cells["path"] or not path.is_file():
            raise InvalidValue(f"{csv_path}, row {number}: {path} does not exist")
        paths.append(str(path))
        names.append(cells["label"])
        if "split" in column:
            held_out.append(_is_validation(csv_path, number, cells["split"]))
    if not paths:
        raise InvalidValue(f"{csv_path}: no rows after the header (expected path,label rows)")
    validation = np.array(held_out) if "split" in column else None
    trained = set(names) if validation is None else {name for name, val in zip(names, validation) if not val}
    if validation is not None:
        for number, (name, val) in enumerate(zip(names, validation), start=2):
            if val and name not in trained:
                raise InvalidValue(f"{csv_path}, row {number}: label {name!r} is in no training row "
                                   f"(expected one of {', '.join(_sorted_labels(trained))})")
    classes = _sorted_labels(trained)
    labels = np.array([classes.index(name) for name in names], dtype=np.int64)
    split = {"kind": "csv column"} if validation is not None else {}
    return Listing("csv", csv_path, csv_path.parent, paths, labels, tuple(classes), validation, split)


def _is_validation(csv_path, number, value):
    if value.lower() == "train":
        return False
    if value.lower() in VALIDATION_FOLDERS:
        return True
    raise InvalidValue(f"{csv_path}, row {number}: expected split train or {'/'.join(VALIDATION_FOLDERS)}, "
                       f"got {value!r}")


def _sorted_labels(names):
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def stratified_split(labels, classes, fraction, seed):
    """A bool mask over ``labels``, True for validation: in each class, round(fraction * count)
    images (at least 1, and at least 1 left for training), drawn by a generator seeded with
    (seed, class index), so each class's draw depends on nothing else."""
    if not 0 < fraction < 1:
        raise InvalidValue(f"val_split: expected a fraction between 0 and 1, got {fraction!r}")
    validation = np.zeros(len(labels), dtype=bool)
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        held = max(1, round(fraction * len(members)))
        if len(members) - held < 1:
            raise InvalidValue(f"class {name!r} has {len(members)} image{'s' * (len(members) != 1)}, too few for "
                               f"a validation split of {fraction} (expected at least 2)")
        validation[np.random.default_rng([seed, label]).permutation(members)[:held]] = True
    return validation


def check_classes(listing):
    """At least two classes, each with a training image: else an `InvalidValue` naming the class."""
    if len(listing.classes) < 2:
        raise InvalidValue(f"{listing.root}: only one class ({listing.classes[0]!r}); a classifier needs at least 2")
    training = listing.labels if listing.validation is None else listing.labels[~listing.validation]
    counts = np.bincount(training, minlength=len(listing.classes))
    for name, count in zip(listing.classes, counts):
        if count == 0:
            raise InvalidValue(f"{listing.root}: class {name!r} has no training images")


class Manifest:
    """The files' relative paths with their sizes in bytes and modification times in ns, and their
    SHA-256: what a run records so that a resume can tell whether its data changed, and say how.
    Sorted by path; ``paths`` a list of str, ``sizes`` and ``mtimes`` int64 arrays (N,), not a
    tuple of Python ints per file: a folder of a million files costs 16 MB for them, not 130."""

    def __init__(self, paths, sizes, mtimes):
        order = sorted(range(len(paths)), key=paths.__getitem__)
        self.paths = [paths[i] for i in order]
        self.sizes = np.asarray(sizes, dtype=np.int64)[order] if len(paths) else np.zeros(0, np.int64)
        self.mtimes = np.asarray(mtimes, dtype=np.int64)[order] if len(paths) else np.zeros(0, np.int64)
        self.sha256 = hashlib.sha256(self.text().encode()).hexdigest()

    def __len__(self):
        return len(self.paths)

    @classmethod
    def of(cls, listing, relative=None):
        """The manifest of ``listing``'s files; ``relative``: its `Listing.relative` if already made
        (the same strings then serve both)."""
        stats = np.array([_size_and_time(path) for path in listing.paths], dtype=np.int64).reshape(-1, 2)
        return cls(listing.relative() if relative is None else relative, stats[:, 0], stats[:, 1])

    @classmethod
    def parse(cls, text):
        """The manifest `text` wrote."""
        fields = [line.split("\t", 2) for line in text.splitlines()]
        return cls([path for _, _, path in fields], [int(size) for size, _, _ in fields],
                   [int(mtime) for _, mtime, _ in fields])

    def text(self):
        """One line per file: size, tab, mtime in ns, tab, path."""
        return "".join(f"{size}\t{mtime}\t{path}\n"
                       for path, size, mtime in zip(self.paths, self.sizes.tolist(), self.mtimes.tolist()))

    def changes(self, before):
        """"" if nothing changed since the manifest ``before``, else a line naming the files added,
        removed and edited (a size or modification time that differs)."""
        was = dict(zip(before.paths, zip(before.sizes.tolist(), before.mtimes.tolist())))
        now = dict(zip(self.paths, zip(self.sizes.tolist(), self.mtimes.tolist())))
        parts = []
        for what, names in (("added", sorted(now.keys() - was.keys())), ("removed", sorted(was.keys() - now.keys())),
                            ("edited", sorted(p for p in now.keys() & was.keys() if now[p] != was[p]))):
            if names:
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                parts.append(f"{len(names)} {what} ({shown})")
        return "; ".join(parts)


def _size_and_time(path):
    """(size in bytes, modification time in ns) of ``path``; (-1, 0) for a file that cannot be
    stat'ed (a broken symlink): reading it fails later, naming it."""
    try:
        stat = os.stat(path)
    except OSError:
        return -1, 0
    return stat.st_size, stat.st_mtime_ns
