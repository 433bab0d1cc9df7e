"""An ONNX file as a `LoadedModel`: the metadata `export_onnx` records in the files it writes (so
that convnet uses such a file as it does the run it came from), and what is assumed, and said, for
a file that lacks it.
"""

import json

import numpy as np

from ..data import mnist, transforms
from ..nn import Module
from ..tensor import Tensor, no_grad
from .config import IMAGE_KINDS, RunConfig
from .loaded_model import IMAGE_SHAPE, LoadedModel
from .sources import SPLIT_SEED, data_options

# Where `export_onnx` records, in an ONNX file's metadata_props, what `load_onnx_file` needs to use it
# as it was trained: the dataset, the (mean, std) its [0, 1] pixels were normalised with, the class names.
ONNX_DATASET, ONNX_NORMALIZATION, ONNX_CLASSES = "convnet.dataset", "convnet.normalization", "convnet.classes"
# ... and whether its figures average each image with its mirror image (`nn.logits`), which the graph does not.
ONNX_TEST_MIRROR = "convnet.test_mirror"
# ... and, where it is not 0, by how many pixels its test views are also shifted (`nn.logits`' translate).
ONNX_TEST_TRANSLATE = "convnet.test_translate"
# ... and, for any other program, how an image becomes the input: {"channels", "size": [H, W], "mean",
# "std" (per channel), "scale", "resize"}, the words of `_preprocessing`.
ONNX_PREPROCESSING = "convnet.preprocessing"
# ... and, for an image folder or CSV, everything that decides which of its files are the test images and how
# they are prepared (`sources.data_options`: `open_images`'s val_split, seed, image_size, channels, skip_bad,
# and the files left out as unreadable), so that evaluate FILE.onnx --data PATH scores the images evaluate RUN
# scores.
ONNX_DATA_OPTIONS = "convnet.data_options"
# What files of the previous version record instead: the val_split alone (still read).
ONNX_VAL_SPLIT = "convnet.val_split"
# ONNX_DATA_OPTIONS's keys, each with what it must be: (accepts the JSON value, says what it expects).
_OPTIONS = {
    "val_split": (lambda v: _is_number(v) and 0 < v < 1, "a fraction between 0 and 1"),
    "seed": (lambda v: v == SPLIT_SEED and not isinstance(v, bool), f"{SPLIT_SEED} (the seed convnet splits with)"),
    "image_size": (lambda v: v is None or isinstance(v, list) and len(v) == 2 and all(
        isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in v), "null or [height, width]"),
    "channels": (lambda v: v in (None, 1, 3) and not isinstance(v, bool), "null, 1 or 3"),
    "skip_bad": (lambda v: isinstance(v, bool), "true or false"),
    "left_out": (lambda v: isinstance(v, list) and all(isinstance(name, str) for name in v), "a list of file names"),
}


def onnx_metadata(loaded):
    """The metadata_props that let `load_onnx_file` use an exported ``loaded`` model as convnet did."""
    if loaded.spec is not None:  # the recorded values, not their float32 copies
        mean, std = loaded.spec["mean"], loaded.spec["std"]
    elif loaded.config.is_idx:
        mean, std = mnist.NORMALIZATION[loaded.config.dataset]
    elif loaded.normalize is not None:
        mean, std = loaded.normalize.mean.ravel().tolist(), loaded.normalize.std.ravel().tolist()
    else:
        mean, std = [0.0] * loaded.input_shape[0], [1.0] * loaded.input_shape[0]
    metadata = {ONNX_DATASET: loaded.config.dataset, ONNX_NORMALIZATION: json.dumps([mean, std]),
                ONNX_CLASSES: json.dumps(list(loaded.classes)), ONNX_TEST_MIRROR: json.dumps(loaded.mirror),
                ONNX_PREPROCESSING: json.dumps(_preprocessing(loaded, mean, std), ensure_ascii=False)}
    if loaded.translate:
        metadata[ONNX_TEST_TRANSLATE] = json.dumps(loaded.translate)
    if loaded.config.dataset in IMAGE_KINDS:
        options = (loaded.spec or {}).get("options") or data_options(loaded.config, {})
        metadata[ONNX_DATA_OPTIONS] = json.dumps(options, ensure_ascii=False)
    return metadata


def _preprocessing(loaded, mean, std):
    channels, height, width = loaded.input_shape
    return {"channels": channels, "size": [height, width],
            "mean": mean if isinstance(mean, list) else [mean] * channels,
            "std": std if isinstance(std, list) else [std] * channels,
            "colour": "greyscale (L = 0.299 R + 0.587 G + 0.114 B)" if channels == 1 else "RGB",
            "scale": "pixel / 255, then (x - mean) / std per channel",
            "resize": ("the shorter side to the size, then the centre cropped" if loaded.crop
                       else "the whole image to the size")}


def load_onnx_file(path, data=None, mirror=None):
    """The model in the ONNX file at ``path`` as a `LoadedModel` whose test set is read from ``data``;
    ``mirror`` as for `load_model`. What its metadata does not say is assumed and noted."""
    from ..onnx import OnnxError, load
    model = load(path)
    recorded = model.metadata
    notes = []
    options = _data_options(path, recorded)
    try:
        config = RunConfig(dataset=recorded.get(ONNX_DATASET, RunConfig.dataset), data=data,
                           **{key: value for key, value in options.items() if key in _CONFIG_OPTIONS})
    except ValueError as error:
        raise OnnxError(f"{path}: its metadata {ONNX_DATASET}: {error}") from None
    shape = model.input_shape
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int):
        raise OnnxError(f"{path}: expected a model of images (batch, C, H, W) with a fixed C, got input shape "
                        f"{shape}")
    channels, height, width = shape[1:]
    if not (isinstance(height, int) and isinstance(width, int)):
        height, width = IMAGE_SHAPE[1:]
        notes.append(f"{path} takes images of any size: they are given at {height}x{width}")
    normalize = None
    if ONNX_NORMALIZATION in recorded:
        normalize = _recorded(path, recorded, ONNX_NORMALIZATION, lambda v: transforms.Normalize(*v),
                              "[mean, std]")
    else:
        notes.append(f"{path} does not record how its pixels were scaled: they are given in [0, 1], unnormalised")
    with no_grad():
        outputs = model(np.zeros((1, channels, height, width), np.float32))
    if not isinstance(outputs, Tensor) or outputs.ndim != 2:
        raise OnnxError(f"{path}: expected one output of class scores (batch, classes), got "
                        f"{'several outputs' if isinstance(outputs, tuple) else f'shape {outputs.shape}'}")
    count = outputs.shape[1]
    if ONNX_CLASSES in recorded:
        classes = _recorded(path, recorded, ONNX_CLASSES, tuple, f"a list of {count} names",
                            lambda v: isinstance(v, list) and len(v) == count and all(isinstance(n, str) for n in v))
    elif config.is_idx and count == len(mnist.CLASSES[config.dataset]):
        classes = mnist.CLASSES[config.dataset]
        notes.append(f"{path} does not name its classes: they are taken as {config.dataset}'s")
    else:
        classes = tuple(f"class {index}" for index in range(count))
    if mirror is None:
        mirror = ONNX_TEST_MIRROR in recorded and _recorded(path, recorded, ONNX_TEST_MIRROR, bool, "true or false",
                                                              lambda v: isinstance(v, bool))
    translate = ONNX_TEST_TRANSLATE in recorded and _recorded(
        path, recorded, ONNX_TEST_TRANSLATE, int, "a whole number of pixels from 0 to 4",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4)
    if model.answers_probabilities:
        model = _LogProbabilities(model)  # the rest of convnet takes logits; log p are logits of p
    spec = None
    if not config.is_idx and normalize is not None:  # data recorded by `onnx_metadata`: compared by evaluate --data
        spec = {"kind": config.dataset, "path": None, "classes": list(classes), "channels": channels,
                "size": [height, width], "mean": normalize.mean.ravel().tolist(), "std": normalize.std.ravel().tolist()}
        if ONNX_DATA_OPTIONS in recorded:
            spec["options"] = options
    return LoadedModel(model, config, f"{path.name} (ONNX)", (channels, height, width), classes, normalize,
                       notes=notes, mirror=mirror, crop=not config.is_idx, spec=spec, translate=int(translate))


# The options `RunConfig` holds (the seed is convnet's own; the left-out files follow from skip_bad).
_CONFIG_OPTIONS = ("val_split", "image_size", "channels", "skip_bad")


def _data_options(path, recorded):
    """The image data's options an ONNX file records (``ONNX_DATA_OPTIONS``; in a file of the previous
    version, ``ONNX_VAL_SPLIT`` alone), as a dict of `_OPTIONS`'s keys ({"val_split"} alone for a file of
    the previous version; {} when it records none).
    A value that is not what it should be is an `OnnxError` naming the key."""
    from ..onnx import OnnxError
    if ONNX_DATA_OPTIONS not in recorded:
        if ONNX_VAL_SPLIT not in recorded:
            return {}
        accept, expected = _OPTIONS["val_split"]
        return {"val_split": _recorded(path, recorded, ONNX_VAL_SPLIT, float, expected, accept)}
    options = _recorded(path, recorded, ONNX_DATA_OPTIONS, dict, f"an object of {', '.join(_OPTIONS)}",
                        lambda v: isinstance(v, dict) and v.keys() == _OPTIONS.keys())
    for key, (accept, expected) in _OPTIONS.items():
        if not accept(options[key]):
            raise OnnxError(f"{path}: its metadata {ONNX_DATA_OPTIONS}: expected {key} {expected}, "
                            f"got {json.dumps(options[key], ensure_ascii=False)[:80]}")
    if options["left_out"] and not options["skip_bad"]:
        raise OnnxError(f"{path}: its metadata {ONNX_DATA_OPTIONS}: expected no left_out files with skip_bad false, "
                        f"got {len(options['left_out'])}")
    return options


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _recorded(path, recorded, key, convert, expected, accept=lambda value: True):
    """``recorded[key]`` (JSON text) converted, or `OnnxError` naming the key and what was expected."""
    from ..onnx import OnnxError
    try:
        value = json.loads(recorded[key])
        if accept(value):
            return convert(value)
    except (ValueError, TypeError):
        pass
    raise OnnxError(f"{path}: its metadata {key}: expected {expected}, got {recorded[key][:80]!r}")


class _LogProbabilities(Module):
    """An ONNX model that ends in Softmax, answering log-probabilities: logits of the same
    probabilities (softmax(log p) = p), so evaluation's loss and ``show``'s bars mean what they do
    for a convnet model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).clip(np.finfo(np.float32).tiny, None).log()
