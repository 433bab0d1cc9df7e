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

# Where `export_onnx` records, in an ONNX file's metadata_props, what `load_onnx_file` needs to use it
# as it was trained: the dataset, the (mean, std) its [0, 1] pixels were normalised with, the class names.
ONNX_DATASET, ONNX_NORMALIZATION, ONNX_CLASSES = "convnet.dataset", "convnet.normalization", "convnet.classes"
# ... and whether its figures average each image with its mirror image (`nn.logits`), which the graph does not.
ONNX_TEST_MIRROR = "convnet.test_mirror"
# ... and, for any other program, how an image becomes the input: {"channels", "size": [H, W], "mean",
# "std" (per channel), "scale", "resize"}, the words of `_preprocessing`.
ONNX_PREPROCESSING = "convnet.preprocessing"
# ... and, for data without a split of its own (an image folder or CSV), the share of each class the run held
# out (`RunConfig.val_split`), so that evaluate FILE.onnx --data PATH scores the images evaluate RUN scores.
ONNX_VAL_SPLIT = "convnet.val_split"


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
    if loaded.config.dataset in IMAGE_KINDS:
        metadata[ONNX_VAL_SPLIT] = json.dumps(loaded.config.val_split)
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
    try:
        config = RunConfig(dataset=recorded.get(ONNX_DATASET, RunConfig.dataset), data=data)
    except ValueError as error:
        raise OnnxError(f"{path}: its metadata {ONNX_DATASET}: {error}") from None
    if ONNX_VAL_SPLIT in recorded:
        config.val_split = _recorded(path, recorded, ONNX_VAL_SPLIT, float, "a fraction between 0 and 1",
                                     lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1)
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
    elif count == len(mnist.CLASSES[config.dataset]):
        classes = mnist.CLASSES[config.dataset]
        notes.append(f"{path} does not name its classes: they are taken as {config.dataset}'s")
    else:
        classes = tuple(f"class {index}" for index in range(count))
    if mirror is None:
        mirror = ONNX_TEST_MIRROR in recorded and _recorded(path, recorded, ONNX_TEST_MIRROR, bool, "true or false",
                                                              lambda v: isinstance(v, bool))
    if model.answers_probabilities:
        model = _LogProbabilities(model)  # the rest of convnet takes logits; log p are logits of p
    spec = None
    if not config.is_idx and normalize is not None:  # data recorded by `onnx_metadata`: compared by evaluate --data
        spec = {"kind": config.dataset, "path": None, "classes": list(classes), "channels": channels,
                "size": [height, width], "mean": normalize.mean.ravel().tolist(), "std": normalize.std.ravel().tolist()}
    return LoadedModel(model, config, f"{path.name} (ONNX)", (channels, height, width), classes, normalize,
                       notes=notes, mirror=mirror, crop=not config.is_idx, spec=spec)


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
