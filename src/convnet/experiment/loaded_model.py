"""`LoadedModel`: a model ready to score images, with what it takes and what it answers. `load_model`
makes one of a run folder, a zoo model or an ONNX file for ``evaluate``, ``predict``, ``summary``,
``show`` and ``export``.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..data import read_image, transforms
from ..nn import Module
from .config import RunConfig

IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of the datasets' images, which the zoo's models take


@dataclass
class LoadedModel:
    """A model that ``evaluate``, ``predict``, ``summary`` and ``show`` use, and what it takes:
    images of ``input_shape`` (C, H, W) with pixels in [0, 1], normalised by ``normalize`` (None:
    as they are); its outputs are logits of ``classes``, averaged with those of the mirror image
    where ``mirror`` and with views shifted ``translate`` pixels where that is not 0 (`nn.logits`). ``config``: its dataset and where that is read from;
    ``run_dir``: the run folder it was trained in, if any. ``notes``: what had to be assumed, to be said.
    ``crop``: an image of another aspect ratio is centre-cropped before it is resized, as an image
    folder's images were for training (IDX models: resized whole, as before). ``spec``: the recorded
    data (`sources.input_spec`), None for IDX."""
    model: Module
    config: RunConfig
    title: str
    input_shape: tuple = IMAGE_SHAPE
    classes: tuple = ()
    normalize: transforms.Normalize | None = None
    run_dir: Path | None = None
    notes: list = field(default_factory=list)
    mirror: bool = False
    crop: bool = False
    translate: int = 0
    spec: dict | None = None

    def __post_init__(self):
        # Every use is inference, often of one image alone (`predict`): batch norm must answer with
        # its running statistics, not the statistics of the images it is given.
        self.model.eval()

    def preprocess(self, pixels):
        """uint8 images (N, C, H, W) -> the model's input."""
        scaled = transforms.unit_range(pixels)
        return scaled if self.normalize is None else self.normalize(scaled)

    def read(self, path):
        """(the image file at ``path`` as the model's input (C, H, W), conversion notes)."""
        channels, height, width = self.input_shape
        pixels, notes = read_image(path, size=(height, width), channels=channels, crop=self.crop)
        return self.preprocess(pixels[None])[0], notes
