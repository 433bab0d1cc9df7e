"""What ``convnet show`` draws, prepared: a model on one image, with its title, classes and notes
(`ModelOnImage`), for the lesson's network (`lesson_on_image`) or for a run folder's, zoo model's or
ONNX file's model (`model_on_image`).
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .. import models
from ..data import mnist, read_image, transforms
from ..errors import InvalidValue
from ..language import words
from ..nn import Module
from ..random import manual_seed
from ..run_folder import CURVES
from ..viz.imagenet_classes import IMAGENET_CLASSES
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


def model_on_image(target, image_path=None, data=None, mirror=None, weights=None):
    """A run folder's, zoo model's or ONNX file's model on the image at ``image_path``, or on the
    first test image of its dataset; ``mirror`` as for `load_model`. An ImageNet zoo model named
    without ``data`` is shown as torchvision builds it, with ``weights`` (a state_dict file) if given
    (`imagenet_on_image`)."""
    imagenet = target in models.IMAGENET and data is None and not Path(target).exists()
    if weights is not None and not imagenet:
        raise InvalidValue(f"--weights {weights}: expected with an ImageNet architecture named alone "
                           f"({', '.join(models.IMAGENET)}), without --data; a run folder or an ONNX file "
                           f"carries its own weights")
    if imagenet:
        return imagenet_on_image(target, image_path, bool(mirror), weights)
    loaded = load_model(target, data, mirror)
    if image_path is not None and _unrecorded_imagenet(loaded):
        image, read_notes = imagenet_input(image_path)
        notes = [note for note in loaded.notes if UNSCALED not in note]
        notes.append(f"{target} records neither its classes nor how it scales pixels, and takes 3x224x224 images "
                     f"to 1000 classes: taken as an ImageNet classifier (torchvision's), its classes ImageNet's")
        return ModelOnImage(loaded.model, image, loaded.title, IMAGENET_CLASSES,
                            notes + [f"{image_path}: {note}" for note in read_notes], mirror=loaded.mirror)
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


UNSCALED = "does not record how its pixels were scaled"  # `load_onnx_file`'s note for a file from elsewhere


def _unrecorded_imagenet(loaded):
    """Whether ``loaded`` is an ONNX file from elsewhere with ImageNet's shapes: no run, no recorded
    scaling, 3x224x224 in, and 1000 classes named only by number."""
    return (loaded.run_dir is None and loaded.normalize is None and tuple(loaded.input_shape) == (3, 224, 224)
            and loaded.classes == tuple(f"class {index}" for index in range(len(IMAGENET_CLASSES))))


IMAGENET_SIZE, IMAGENET_RESIZE = 224, 256  # torchvision's evaluation: resize the shorter side to 256, crop 224
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagenet_on_image(name, image_path=None, mirror=False, weights=None):
    """The ImageNet zoo model ``name`` as torchvision builds it (3 channels, 1000 classes, named
    `IMAGENET_CLASSES`) on the photograph at ``image_path`` (None: the lesson's, matplotlib's sample
    photograph), prepared as torchvision's ImageNet models take it (`imagenet_input`). Untrained
    (seed 0: no ImageNet weights ship), or with ``weights``: a torchvision ``state_dict`` file (read
    without PyTorch), whose classifier says the number of classes (another than 1000: numbered)."""
    if weights is None:
        classes = IMAGENET_CLASSES
        model = _imagenet_model(name, len(classes))
        notes = [f"{name} is untrained (random weights, seed 0): it shows its random kernels, and its answer is "
                 f"chance; show it with --weights a torchvision checkpoint, or train it on your photos (convnet "
                 f"train --model {name} --data PATH) to see what it learned"]
        described = f"{name} (untrained)"
    else:
        model, classes = _imagenet_model_with(name, weights)
        notes = [f"{name} with the weights of {weights}" + ("" if classes is IMAGENET_CLASSES else
                                                            f": {len(classes)} classes, numbered (the file names none)")]
        described = f"{name} ({Path(weights).name})"
    if image_path is None:
        from matplotlib import cbook
        image_path = cbook.get_sample_data(LESSON_IMAGE, asfileobj=False)
        notes.append(f"no IMAGE given: matplotlib's sample photograph {LESSON_IMAGE}")
    image, read_notes = imagenet_input(image_path)
    notes += [f"{image_path}: {note}" for note in read_notes]
    title = f"{described} on a {IMAGENET_SIZE}x{IMAGENET_SIZE} photograph"
    return ModelOnImage(model, image, title, classes, notes, mirror=mirror)


def _imagenet_model(name, classes):
    manual_seed(0)
    return models.build(name, in_channels=3, classes=classes, image_size=IMAGENET_SIZE).eval()


def _imagenet_model_with(name, weights):
    """(``name`` holding the state_dict in the file ``weights``, its classes), refused in one line
    naming every key or shape that does not fit."""
    from .run import initial_weights
    state = initial_weights(weights, "--weights")
    classifier = f"{models.classifier_name(_imagenet_model(name, len(IMAGENET_CLASSES)))}.weight"
    count = int(np.shape(state[classifier])[0]) if classifier in state else len(IMAGENET_CLASSES)
    model = _imagenet_model(name, count)
    try:
        model.load_state_dict(state)
    except ValueError as error:
        raise InvalidValue(f"--weights {weights}: not {name}'s weights: {error}") from None
    return model, IMAGENET_CLASSES if count == len(IMAGENET_CLASSES) else tuple(f"class {i}" for i in range(count))


def model_to_summarise(target):
    """(title, model, input shape (C, H, W)) of ``target`` for ``convnet summary``: an ImageNet zoo
    model as torchvision builds it (3x224x224 in, 1000 classes out; `imagenet_on_image`), anything
    else as `load_model` opens it."""
    if target in models.IMAGENET and not Path(target).exists():
        manual_seed(0)
        model = models.build(target, in_channels=3, classes=len(IMAGENET_CLASSES), image_size=IMAGENET_SIZE)
        return (f"{target} as torchvision builds it (3x{IMAGENET_SIZE}x{IMAGENET_SIZE} images, "
                f"{len(IMAGENET_CLASSES)} classes)", model, (3, IMAGENET_SIZE, IMAGENET_SIZE))
    loaded = load_model(target)
    return loaded.title, loaded.model, loaded.input_shape


def imagenet_input(path, size=IMAGENET_SIZE, resize=IMAGENET_RESIZE):
    """(the image at ``path`` as torchvision's ImageNet classifiers take it, (3, size, size) float32;
    notes): torchvision's evaluation transform, Resize(resize) (the shorter side to ``resize``, the
    longer in proportion, bilinear with antialiasing), CenterCrop(size), then pixels / 255 normalised
    by ImageNet's mean and standard deviation per channel. Any size of photograph fits."""
    pixels, notes = read_image(path, channels=3)
    height, width = pixels.shape[1:]
    scale = resize / min(height, width)
    new_height, new_width = (resize, int(resize * width / height)) if height <= width else \
        (int(resize * height / width), resize)
    resized = np.asarray(Image.fromarray(pixels.transpose(1, 2, 0)).resize((new_width, new_height),
                                                                           Image.Resampling.BILINEAR))
    top, left = int(round((new_height - size) / 2)), int(round((new_width - size) / 2))
    if top < 0 or left < 0:
        raise InvalidValue(f"imagenet_input: resize {resize} is smaller than the crop {size}")
    cropped = resized[top:top + size, left:left + size].transpose(2, 0, 1)
    notes.append(f"resized {width}x{height} to {new_width}x{new_height} (x{scale:.3g}) and centre-cropped to "
                 f"{size}x{size}, as torchvision's ImageNet models take photographs")
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return normalize(transforms.unit_range(cropped)[None])[0], notes
