"""Where a run's images come from, and what it records of them.

``--data PATH`` is recognised by what it holds (`data_kind`): IDX files (Fashion-MNIST, MNIST, as
``dataset`` names), a CIFAR-10/100 python folder, an image folder or a CSV manifest; the run's
``dataset`` then names that kind. `load_datasets` opens the training and test (validation) sets.

A run records its data in its checkpoint's metadata (`data_record`): for IDX and CIFAR each split's
``source`` (files or folder and the SHA-256 of what was read); for images the description
`data.open_images` gives (classes, channels, size, per-channel mean and std, the split, what was
left out) with the manifest's text, so that a resume names the files added, removed or edited.
What the model takes and how its images are prepared (`input_spec`: kind, path, classes, channels,
size, mean, std) is read back from it (`recorded_input`); IDX runs' follow from their ``dataset``.

Under ``mpirun`` (a distributed `Group`) rank 0 opens an image folder first, decoding it into the
cache once, and the other ranks then open that cache; each rank's training batches read only its
share of the images (`RankShare`).
"""

from pathlib import Path

import numpy as np

from ..data import cifar, mnist, transforms
from ..data.datasets import channel_statistics
from ..data.folders import Manifest, recognise
from ..data.loader import ArrayDataset
from ..data.own_images import open_images, summary
from ..errors import ConvnetError, InvalidValue, MissingFile
from ..train import ONE_PROCESS
from .config import CIFAR_KINDS, IMAGE_KINDS, RunConfig

INPUT_KEYS = ("kind", "path", "classes", "channels", "size", "mean", "std")
IDX_SIZE = [28, 28]
SPLIT_SEED = 0  # the validation split's: the same images whatever the run's --seed
# A folder of IDX files holds these (each optionally .gz): what `data_kind` looks for.
IDX_FILES = tuple(stem for pair in mnist.FILES.values() for stem in pair)


class DataChanged(ConvnetError, ValueError):
    """A run's dataset is not the one it was trained on."""


class DataNotRecorded(ConvnetError, ValueError):
    """A run that does not say what data it was trained on: convnet assumes none."""


class DataNotOpened(ConvnetError, RuntimeError):
    """Rank 0 of a distributed job could not open the data, so the other ranks do not try."""


def absolute_data(data):
    """A --data path as an absolute path, so a run means the same files from any directory."""
    return None if data is None else str(Path(data).resolve())


def data_kind(path, dataset=RunConfig.dataset):
    """What ``path`` holds: ``dataset`` (an IDX dataset's name) for a folder of IDX files or for no
    path (the usual places are searched), 'cifar10' or 'cifar100', 'image folder' or 'csv'.
    Anything else is a `MissingFile` or `InvalidValue` naming what was looked for."""
    idx = dataset if dataset in mnist.CLASSES else RunConfig.dataset
    if path is None:
        if dataset not in mnist.CLASSES:
            raise InvalidValue(f"dataset {dataset}: expected --data PATH naming where its images are")
        return dataset
    folder = Path(path)
    if not folder.exists():
        raise MissingFile(f"--data {path} is not a directory, nor a file: nothing is there")
    if folder.is_dir() and any((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in IDX_FILES):
        return idx
    found = cifar.find(folder)
    if found is not None:
        return found[0]
    kind = recognise(folder)
    if kind is None:
        raise InvalidValue(f"--data {path}: expected IDX files ({', '.join(IDX_FILES)}), a CIFAR folder "
                           f"(cifar-10-batches-py or cifar-100-python), an image folder (PATH/<class name>/<images>) "
                           f"or a CSV manifest (a .csv file of path,label rows); found none of them")
    return kind


def load_datasets(config, splits=("train", "test"), progress=False, group=ONE_PROCESS):
    """The datasets of ``splits`` ('train', and 'test': the validation images of an image folder),
    each with its ``source``, for ``config.dataset`` read from ``config.data``.

    In a distributed ``group`` rank 0 opens an image folder or CSV manifest first, decoding it into
    the cache, while the other ranks wait; then they open it, finding the cache (memory-mapped,
    nothing decoded), so the images are decoded once, not once per rank racing on one cache. A
    failure on rank 0 is a `DataNotOpened` on the others. (IDX and CIFAR files are only read.)"""
    if config.dataset not in IMAGE_KINDS:
        return _opened(config, splits, progress)
    if group.rank == 0:
        try:
            datasets = _opened(config, splits, progress)
        except BaseException as error:  # the others wait for word of the outcome, whatever it is
            group.broadcast_object(str(error) or type(error).__name__)
            raise
        group.broadcast_object(None)
        return datasets
    failure = group.broadcast_object(None)
    if failure is not None:
        raise DataNotOpened(f"rank 0 could not open --data {config.data}: {failure}")
    return _opened(config, splits, progress)


def _opened(config, splits, progress):
    if config.is_idx:
        datasets = []
        for split in splits:
            images, labels, source = mnist.load_with_source(config.dataset, split, config.data)
            datasets.append(ArrayDataset(images, labels, mnist.CLASSES[config.dataset], source))
        return tuple(datasets)
    if config.dataset in CIFAR_KINDS:
        return tuple(_cifar(config.data, split, "train" in splits) for split in splits)
    data = open_images(config.data, val_split=config.val_split, seed=SPLIT_SEED, image_size=config.image_size,
                       channels=config.channels, skip_bad=config.skip_bad, progress=progress)
    source = {key: value for key, value in data.description.items() if key != "cache"}
    source["manifest"] = {**source["manifest"], "text": data.manifest.text()}
    for dataset in (data.train, data.validation):
        dataset.source = source  # one dict: the run records it once (`data_record`)
    return tuple(data.train if split == "train" else data.validation for split in splits)


class RankShare:
    """The training set as one rank of a distributed ``group`` reads it: ``batch(index)`` reads from
    ``dataset`` (one with ``batch`` and ``labels``: `ArrayDataset`, `CachedImages`) only the images
    of this rank's share of ``index`` (`Group.share`; from a memory-mapped cache, only those rows)
    and leaves the rest of the batch zeros, which the trainer never uses: it takes the same share
    of every batch (`train.Trainer`). The batch keeps its whole size so that the loader's
    augmentations, drawing one set of random numbers per batch and applying them image by image,
    give the share's images exactly as in one process. Everything else (``len``, ``dataset[i]``,
    ``classes``, ``source``, ...) is ``dataset``'s. The test set is read whole by every rank: rank 0
    also evaluates it alone, as one process, when a resumed run rebuilds its reports."""

    def __init__(self, dataset, group):
        self.dataset, self.group = dataset, group

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def batch(self, index):
        """(float32 images (B, C, H, W), zeros outside this rank's share; int64 labels (B,), all of them)."""
        share = self.group.share(len(index))
        mine = index[share]
        images, _ = self.dataset.batch(mine)
        whole = np.zeros((len(index), *images.shape[1:]), np.float32)
        whole[share] = images
        return whole, self.dataset.labels[index]


def rank_share(train, group):
    """``train`` as ``group``'s rank reads it (`RankShare`); the dataset itself in one process."""
    return train if group.size == 1 else RankShare(train, group)


def _cifar(path, split, with_statistics):
    dataset = cifar.load(path, split)
    source = {**dataset.source, "classes": list(dataset.classes), "channels": 3, "size": [cifar.SIDE, cifar.SIDE]}
    if with_statistics:  # the training images' per-channel mean and std, as for an image folder
        source["mean"], source["std"] = channel_statistics(dataset.images, np.arange(len(dataset)))
    dataset.source = source
    return dataset


def describe_data(config, train, test):
    """One line naming the data a run trains on."""
    if config.dataset in IMAGE_KINDS:
        return summary(train.source)
    if config.dataset in CIFAR_KINDS:
        return f"{cifar.describe(train)} for training, {len(test):,} test images"
    return f"{config.dataset} ({len(train):,} training / {len(test):,} test images)"


def data_record(config, train, test):
    """What the run's checkpoint keeps of its data (metadata ``data``)."""
    if config.dataset in IMAGE_KINDS:
        return {"images": train.source}
    return {"train": train.source, "test": test.source}


def input_spec(config, train):
    """{kind, path, classes, channels, size, mean, std} of a run's training set, or None for IDX
    data (its ``dataset`` says them: 1 channel, 28x28, `mnist.NORMALIZATION`)."""
    return None if config.is_idx else {key: train.source[key] for key in INPUT_KEYS}


def recorded_input(where, meta, config):
    """`input_spec` as the run at ``where`` recorded it in ``meta``; a run that does not record its
    data (saved from Python without it) is a `DataNotRecorded`, never taken for Fashion-MNIST."""
    data = meta.get("data")
    if config.is_idx:
        # Before convnet recorded data (no "data" key) its runs trained on IDX files alone; since, an IDX
        # run records its files.
        if "data" not in meta or isinstance(data, dict) and "files" in (data.get("train") or {}):
            return None
    else:
        source = (data.get("images") or data.get("train") or {}) if isinstance(data, dict) else {}
        if isinstance(source, dict) and all(key in source for key in INPUT_KEYS):
            spec = _checked({key: source[key] for key in INPUT_KEYS}, where)
            if config.dataset in IMAGE_KINDS:
                spec["options"] = data_options(config, source)
            return spec
    raise DataNotRecorded(f"{where}: its checkpoint does not record the data it was trained on (saved from Python "
                          f"without it), so its classes and how its images were prepared are unknown, and convnet "
                          f"assumes none: train it with convnet train --data PATH (or experiment.start), which "
                          f"records them")


def data_options(config, source):
    """Everything that decides which of an image folder's (or CSV's) files a run used and how they
    were prepared: `open_images`'s options as the run recorded them (those of ``config`` where it
    did not), with ``left_out``, the files it left out as unreadable (relative paths)."""
    recorded = source.get("options") or {"val_split": config.val_split, "seed": SPLIT_SEED,
                                         "image_size": config.image_size, "channels": config.channels,
                                         "skip_bad": config.skip_bad}
    return {**recorded, "left_out": [entry["file"] for entry in source.get("left_out", [])]}


def _checked(spec, where):
    """``spec`` as recorded, or a `DataNotRecorded` naming the first value that cannot be what it says."""
    def numbers(values, positive):
        return isinstance(values, list) and len(values) == spec["channels"] and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and (v > 0 if positive else True) for v in values)

    checks = [("channels", spec["channels"] in (1, 3) and not isinstance(spec["channels"], bool), "1 or 3"),
              ("size", isinstance(spec["size"], list) and len(spec["size"]) == 2 and all(
                  isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in spec["size"]),
               "[height, width]"),
              ("classes", isinstance(spec["classes"], list) and len(spec["classes"]) >= 2 and all(
                  isinstance(name, str) for name in spec["classes"]), "a list of at least 2 names"),
              ("mean", numbers(spec["mean"], False), "a number per channel"),
              ("std", numbers(spec["std"], True), "a positive number per channel")]
    for key, good, expected in checks:
        if not good:
            raise DataNotRecorded(f"{where}: its recorded data is damaged: expected {key} to be {expected}, got "
                                  f"{str(spec[key])[:60]}")
    return spec


def normalization(config, spec):
    """The `Normalize` the run's images are prepared with: IDX's by its dataset, else the recorded per-channel one."""
    return mnist.normalization(config.dataset) if spec is None else transforms.Normalize(spec["mean"], spec["std"])


def data_changes(meta, datasets):
    """For each split whose data differ from what the run recorded, a line saying how; runs
    saved before convnet recorded its data have nothing to compare."""
    recorded = meta.get("data") or {}
    lines = []
    if "images" in recorded:
        before = recorded["images"]
        now = next(iter(datasets.values())).source
        changed = Manifest.parse(now["manifest"]["text"]).changes(Manifest.parse(before["manifest"]["text"]))
        if changed:
            lines.append(f"the files in {before['path']} changed since it was trained: {changed}")
        elif now["split"].get("validation_sha256") != before["split"].get("validation_sha256"):
            lines.append(f"{before['path']}'s validation images are not the ones it was trained with")
        return lines
    for split, dataset in datasets.items():
        before = recorded.get(split)
        if before is not None and before["sha256"] != dataset.source["sha256"]:
            lines.append(f"its {split} set is not the one it was trained with: {_named(dataset.source)} "
                         f"(SHA-256 {dataset.source['sha256'][:12]}...) instead of {_named(before)} "
                         f"(SHA-256 {before['sha256'][:12]}...)")
    return lines


def fingerprint(dataset):
    """A digest of what ``dataset`` holds: its images' SHA-256 (IDX, CIFAR), or its files' manifest's
    and its split's (images)."""
    source = dataset.source
    if "sha256" in source:
        return source["sha256"]
    return source["manifest"]["sha256"] + source["split"]["validation_sha256"]


def _named(source):
    return ", ".join(source["files"]) if "files" in source else source.get("path", "?")


def check_same_kind(where, spec, test):
    """Refuse other data (``evaluate RUN --data OTHER``) whose classes or image shape differ from the run's."""
    shape = (spec["channels"], *spec["size"])
    got = tuple(test.shape) if hasattr(test, "shape") else tuple(test.images.shape[1:])
    if list(test.classes) != list(spec["classes"]) or got != shape:
        raise InvalidValue(f"{where} was trained on {len(spec['classes'])} classes ({', '.join(spec['classes'][:5])}"
                           f"{', ...' if len(spec['classes']) > 5 else ''}) of {shape[0]}x{shape[1]}x{shape[2]} "
                           f"images; the data given has {len(test.classes)} ({', '.join(test.classes[:5])}"
                           f"{', ...' if len(test.classes) > 5 else ''}) of {'x'.join(map(str, got))}")
