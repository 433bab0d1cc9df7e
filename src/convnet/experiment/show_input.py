"""What ``convnet show`` draws, prepared: a model on one image, with its title, classes and notes
(`ModelOnImage`), for the lesson's network (`lesson_on_image`) or for a run folder's, zoo model's or
ONNX file's model (`model_on_image`).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .. import models
from ..data import mnist, read_image, transforms
from ..errors import InvalidValue
from ..language import words
from ..nn import Module
from ..random import manual_seed
from ..run_folder import CURVES
from .load import load_model
from .loaded_model import IMAGE_SHAPE
from .sources import load_datasets


@dataclass
class ModelOnImage:
    """What ``convnet show`` draws: a model, one image (C, H, W) as the model takes it, and words;
    ``curves_png``: the learning curves of the run it was trained in, if any; ``mirror``: whether
    its answer averages the image's and the mirror image's (`LoadedModel.mirror`)."""
    model: Module
    image: np.ndarray
    title: str
    classes: tuple = ()
    notes: list = field(default_factory=list)
    curves_png: bytes | None = None
    mirror: bool = False


LESSON_IMAGE = "grace_hopper.jpg"  # a photograph that matplotlib ships, so the lesson needs no download


def lesson_on_image(image_path=None, seed=0, language="en"):
    """The lesson's network (`models.lesson_network`, kernels drawn with ``seed``) on a 256x256
    photograph, or on the image at ``image_path``; its title in ``language``."""
    manual_seed(seed)
    model = models.lesson_network()
    if image_path is None:
        from matplotlib import cbook
        image_path = cbook.get_sample_data(LESSON_IMAGE, asfileobj=False)
    pixels, notes = read_image(image_path, size=(256, 256), channels=1, crop=True)
    conv = model[0]
    title = words(language)["lesson.title"].format(kernels=conv.out_channels, size=conv.kernel_size[0],
                                                   height=pixels.shape[1], width=pixels.shape[2])
    return ModelOnImage(model, transforms.unit_range(pixels), title, notes=[f"{image_path}: {note}" for note in notes])


def model_on_image(target, image_path=None, data=None, mirror=None):
    """A run folder's, zoo model's or ONNX file's model on the image at ``image_path``, or on the
    first test image of its dataset; ``mirror`` as for `load_model`."""
    loaded = load_model(target, data, mirror)
    notes = list(loaded.notes)
    if image_path is not None:
        image, read_notes = loaded.read(image_path)
        notes += [f"{image_path}: {note}" for note in read_notes]
    elif loaded.config.is_idx and loaded.input_shape == IMAGE_SHAPE:
        images, labels = mnist.load(loaded.config.dataset, "test", loaded.config.data)
        image = loaded.preprocess(images[:1])[0]
        notes.append(f"no IMAGE given: the first {loaded.config.dataset} test image "
                     f"({mnist.CLASSES[loaded.config.dataset][labels[0]]})")
    elif not loaded.config.is_idx and loaded.config.data is not None:
        config = loaded.config
        if loaded.run_dir is None and loaded.spec is not None:  # an ONNX file's --data: at the size it takes
            config = replace(config, channels=loaded.spec["channels"], image_size=list(loaded.spec["size"]))
        test, = load_datasets(config, ("test",))
        pixels, label = test[0]
        image = loaded.preprocess(np.asarray(pixels)[None])[0]
        notes.append(f"no IMAGE given: the first test image of {loaded.config.data} ({test.classes[label]})")
    elif loaded.config.is_idx:
        raise InvalidValue(f"{target} takes images of shape {loaded.input_shape}, unlike {loaded.config.dataset}'s: "
                           f"give an IMAGE to show it")
    else:
        raise InvalidValue(f"{target} takes images of shape {loaded.input_shape} and records no test set to take "
                           f"one from: give an IMAGE to show it (or --data PATH)")
    curves = loaded.run_dir / CURVES if loaded.run_dir is not None else None
    return ModelOnImage(loaded.model, image, loaded.title, loaded.classes, notes,
                        curves.read_bytes() if curves is not None and curves.exists() else None, loaded.mirror)
