"""Loading a model to score images with (`load_model`) from whatever names one: a run folder, a zoo
model (with the weights that ship with convnet) or an ONNX file; and writing one as ONNX
(`export_onnx`) so that loading the file gives the same figures.
"""

from dataclasses import replace
from pathlib import Path

from .. import models, pretrained
from ..data import mnist
from ..errors import InvalidValue
from ..random import manual_seed
from .build import build_model
from .config import RunConfig
from .loaded_model import IMAGE_SHAPE, LoadedModel
from .onnx_file import load_onnx_file, onnx_metadata
from .run import load_run
from .sources import normalization, recorded_input


def load_model(target, data=None, mirror=None):
    """A run folder's model, a zoo model (with the weights that ship with convnet, else untrained
    from seed 0) or an ONNX file's, as a `LoadedModel` whose test set is read from ``data``;
    ``mirror`` turns test-time mirroring on or off (None: as the run, the shipped weights or the
    exported file evaluated)."""
    path = Path(target)
    if path.is_dir():
        config, model, meta = load_run(path)
        return _convnet_model(model, with_mirroring(config, mirror, target), f"{config.model} trained in {target}",
                              path, spec=recorded_input(path, meta, config))
    if target in pretrained.available():
        card = pretrained.card(target)
        config = with_mirroring(replace(RunConfig.from_dict(card["config"]), data=data), mirror, target)
        return _convnet_model(models.build(target, pretrained=True), config,
                              f"{target} with the weights that ship with convnet (test accuracy "
                              f"{card['test_accuracy']:.4f})")
    if target in models.MODELS:
        config = RunConfig(model=target, data=data, test_mirror=bool(mirror))
        manual_seed(0)
        return _convnet_model(build_model(config), config, f"{target} (untrained)",
                              notes=[f"{target} is untrained (random weights, seed 0): convnet ships trained weights "
                                     f"for {', '.join(pretrained.available()) or 'no model'}"])
    if path.suffix == ".onnx":
        return load_onnx_file(path, data, mirror)
    raise InvalidValue(f"{target} is neither a run folder, a model ({', '.join(models.MODELS)}) nor an ONNX file "
                     f"(.onnx)")


def _convnet_model(model, config, title, run_dir=None, notes=(), spec=None):
    if spec is None:
        return LoadedModel(model, config, title, IMAGE_SHAPE, mnist.CLASSES[config.dataset],
                           mnist.normalization(config.dataset), run_dir, list(notes), config.test_time_mirroring,
                           translate=config.test_translate)
    return LoadedModel(model, config, title, (spec["channels"], *spec["size"]), tuple(spec["classes"]),
                       normalization(config, spec), run_dir, list(notes), config.test_time_mirroring, crop=True,
                       spec=spec, translate=config.test_translate)


def with_mirroring(config, mirror, target):
    """``config`` with test-time mirroring as asked (None: as it is), refused for a model trained
    without mirrored images."""
    if mirror is None:
        return config
    try:
        return replace(config, test_mirror=mirror)
    except ValueError as error:
        raise InvalidValue(f"{target}: {error}") from None


def export_onnx(target, path, opset=None):
    """Write ``target``'s model (`load_model`) to ``path`` as ONNX, recording in its metadata how
    it takes images and names its classes (`onnx_metadata`), so that `load_model` uses the file
    as it does the run."""
    from ..onnx import export
    loaded = load_model(target)
    return export(loaded.model, path, (1, *loaded.input_shape), opset, onnx_metadata(loaded))
