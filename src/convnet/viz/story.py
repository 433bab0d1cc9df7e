"""The data behind the pictures: one image through a model, step by step, as the lesson tells it.

Every number comes from the model's own forward pass (`convnet.nn.record_outputs`); nothing
is recomputed here, so the pictures show what the network really did.
"""

from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from .. import nn
from ..errors import InvalidValue
from ..tensor import Tensor, no_grad

DEEPER_STAGES = 4  # deeper stages shown at most: ResNet's four, one a resolution


@dataclass
class ConvolutionStep:
    """A few successive positions of one kernel over the input, and what each produced."""
    layer: str
    map_index: int                # which kernel / feature map is shown
    kernel: np.ndarray            # (kH, kW): the kernel's weights on input channel 0
    feature_map: np.ndarray       # (H', W'): that kernel's output over the whole image
    positions: list               # [(row, col)] in the feature map
    values: list                  # feature_map at each position
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)       # (top, left) zeros added before the image
    extent: tuple = (1, 1)        # (height, width) of a window: the kernel's, spread by its dilation

    @property
    def windows(self):
        """[(top, left, height, width)] in input pixels of each position's window (may poke into padding)."""
        return [self.window(row, col) for row, col in self.positions]

    def window(self, row, col):
        """(top, left, height, width) in input pixels of the window that gave output (row, col)."""
        (sh, sw), (top_pad, left_pad) = self.stride, self.padding
        return row * sh - top_pad, col * sw - left_pad, *self.extent


@dataclass
class PoolingStep:
    """One max-pooling neighbourhood: where it is, which value won, where the winner lands."""
    layer: str
    feature_map: np.ndarray       # (H', W'): the pooling layer's input for the shown map
    pooled: np.ndarray            # (H'', W''): its output for that map
    window: tuple                 # (top, left, height, width) in feature-map pixels
    output_position: tuple        # (row, col) in the pooled map
    winner: tuple                 # (row, col) of the maximum in the feature map
    maximum: float


@dataclass
class Story:
    image: np.ndarray             # (C, H, W) as the model saw it
    convolution: ConvolutionStep
    feature_maps: np.ndarray      # (K, H', W'): every map of the shown conv layer
    kernels: np.ndarray           # (K, C, kH, kW): that layer's kernels
    pooling: PoolingStep | None
    pooled_maps: np.ndarray | None
    deeper: list = field(default_factory=list)   # [(layer name, (K, h, w) maps)]: one a stage (`deeper_stages`)
    probabilities: np.ndarray | None = None
    classes: tuple = ()
    mirrored: bool = False        # probabilities averaged with the mirror image's (`nn.logits`)


def tell(model, image, layer=0, classes=(), mirror=False, recorded=None):
    """The story of ``image`` (C, H, W) float32 through ``model``, centred on conv layer ``layer``;
    with ``mirror``, its class probabilities average the answers for the image and its mirror image,
    as the model was evaluated (`nn.logits`). ``recorded``: (records, output) of the model's pass on
    ``image[None]`` (`nn.record_outputs` with containers), if already run."""
    records, output = recorded or nn.record_outputs(model, image[None], containers=True)
    convs = [i for i, r in enumerate(records) if isinstance(r.module, nn.Conv2d)]
    if not convs:
        raise InvalidValue(f"{type(model).__name__} has no Conv2d layer, so there is no convolution to show")
    if not isinstance(layer, int) or not 0 <= layer < len(convs):
        raise InvalidValue(f"layer index {layer} is out of range: the model has {len(convs)} convolution layer"
                         f"{'s' if len(convs) > 1 else ''} (0 to {len(convs) - 1})")
    at = convs[layer]
    conv = records[at]
    maps = conv.output[0]
    convolution = _convolution_step(conv, maps)
    pool_at = next((i for i in range(at + 1, len(records)) if isinstance(records[i].module, nn.MaxPool2d)), None)
    pooling = pooled_maps = None
    if pool_at is not None:
        pooled_maps = records[pool_at].output[0]
        pooled_input = records[pool_at].input[0]
        # The pooled maps are the shown layer's (through its norm and activation) when their counts agree;
        # else another convolution came between (VGG): show that layer's strongest map.
        shown = convolution.map_index if len(pooled_input) == len(maps) else int(strongest_first(pooled_input)[0])
        pooling = _pooling_step(records[pool_at], shown, conv.module.resolved_padding[::2])
    deeper = deeper_stages(records, at)
    probabilities = None
    if output.ndim == 2 and output.shape[1] > 1:
        if mirror:
            output = _mirrored_answer(model, image)
        probabilities = F.softmax(Tensor(output), dim=1).numpy()[0]
    return Story(image, convolution, maps, conv.module.weight.numpy().copy(), pooling, pooled_maps, deeper,
                 probabilities, tuple(classes), mirror and probabilities is not None)


def strongest_first(maps):
    """The channel indices of ``maps`` (K, H, W) from the strongest map to the weakest, by mean
    absolute value (the mean activation, for maps after a ReLU); ties keep channel order."""
    maps = np.asarray(maps)
    return np.argsort(-np.abs(maps).reshape(len(maps), -1).mean(axis=1), kind="stable")


def top_classes(probabilities, k):
    """The indices of the ``k`` largest ``probabilities`` (classes,), largest first; ties in class order."""
    return np.argsort(-np.asarray(probabilities), kind="stable")[:k]


def deeper_stages(records, first, most=DEEPER_STAGES):
    """[(layer name, (K, h, w) maps)]: the deeper stages after record ``first`` (the shown convolution),
    found by resolution in any architecture: for each output size (h, w) that a Conv2d gives after
    the shown layer, other than the shown layer's own, the outermost module's output of that size
    (the last of those) among modules that hold no output of another of these sizes: a ResNet's
    'layer1', after its residual sums; MobileNet's last block at that size, not a block's expansion
    that precedes a stride, nor 'features' as a whole; a VGG stage's ReLU before its pooling;
    maps of at least 2x2 (not squeeze-and-excitation's 1x1). Spread evenly over the network, the
    deepest always included, at most ``most``."""
    own = records[first].output.shape[2:]
    sizes = list(dict.fromkeys(tuple(r.output.shape[2:]) for r in records[first + 1:]
                               if isinstance(r.module, nn.Conv2d) and r.output.ndim == 4))
    sizes = [size for size in sizes if size != tuple(own) and min(size) >= 2]
    found = [(index, record.name, tuple(record.output.shape[2:])) for index, record in enumerate(records)
             if index > first and record.name and record.output.ndim == 4 and tuple(record.output.shape[2:]) in sizes]
    chosen = {}  # size -> (depth, -index) of the outermost, then last, output of that size
    for index, name, size in found:
        spans = any(other != size and inner.startswith(name + ".") for _, inner, other in found)
        if not spans:  # not a module holding several stages ('features', a ResNet's 'layers')
            chosen[size] = min(chosen.get(size, (np.inf, 0)), (name.count("."), -index))
    stages = sorted(-index for _, index in chosen.values())
    if len(stages) > most:
        stages = [stages[round(k * (len(stages) - 1) / (most - 1))] for k in range(most)] if most > 1 else stages[-1:]
    return [(records[i].name, records[i].output[0]) for i in stages]


def _mirrored_answer(model, image):
    """The model's outputs (1, classes) for ``image`` averaged with its mirror image's, in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return nn.logits(model, image[None], mirror=True).numpy()
    finally:
        model.train(was_training)


def _convolution_step(record, maps):
    """The most varied map, and three side-by-side kernel positions around its strongest response
    among those whose three windows lie wholly inside the image (a window in the padding shows
    blank border, and zero padding makes responses there that are artefacts, not features)."""
    module = record.module
    map_index = int(np.argmax(maps.reshape(len(maps), -1).std(axis=1)))
    feature_map = maps[map_index]
    (kh, kw), (sh, sw), (dh, dw) = module.kernel_size, module.stride, module.dilation
    top_pad, _, left_pad, _ = module.resolved_padding
    height, width = record.input.shape[2:]
    extent_h, extent_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    spacing = max(1, -(-kw // sw))  # windows side by side, not on top of each other
    rows, cols = np.arange(feature_map.shape[0]), np.arange(feature_map.shape[1])
    rows_inside = (rows * sh - top_pad >= 0) & (rows * sh - top_pad + extent_h <= height)
    cols_inside = ((cols - spacing) * sw - left_pad >= 0) & ((cols + spacing) * sw - left_pad + extent_w <= width)
    inside = np.outer(rows_inside, cols_inside)
    if inside.any():
        row, col = np.unravel_index(np.argmax(np.where(inside, feature_map, -np.inf)), feature_map.shape)
        cols = [col - spacing, col, col + spacing]
    else:  # an image too small for three windows inside it: around the strongest response anywhere
        row, col = np.unravel_index(np.argmax(feature_map), feature_map.shape)
        cols = [col + spacing * k for k in (-1, 0, 1)]
        if cols[0] < 0:
            cols = [c - cols[0] for c in cols]
        if cols[-1] >= feature_map.shape[1]:
            cols = [max(0, c - (cols[-1] - feature_map.shape[1] + 1)) for c in cols]
    positions = [(int(row), int(c)) for c in dict.fromkeys(cols)]
    return ConvolutionStep(record.name, map_index, module.weight.numpy()[map_index, 0].copy(), feature_map, positions,
                           [float(feature_map[p]) for p in positions], (sh, sw), (top_pad, left_pad),
                           (extent_h, extent_w))


def _pooling_step(record, map_index, border=(0, 0)):
    """The neighbourhood of the strongest pooled value among those clear of the feature map's
    ``border`` (rows, cols) on each side: the outputs the convolution's zero padding reached."""
    module = record.module
    feature_map, pooled = record.input[0, map_index], record.output[0, map_index]
    (kh, kw), (sh, sw) = module.kernel_size, module.stride
    ph, _, pw, _ = module.resolved_padding  # (top, bottom, left, right): only the top and left shift windows
    rows, cols = np.arange(pooled.shape[0]) * sh - ph, np.arange(pooled.shape[1]) * sw - pw
    clear = np.outer((rows >= border[0]) & (rows + kh <= feature_map.shape[0] - border[0]),
                     (cols >= border[1]) & (cols + kw <= feature_map.shape[1] - border[1]))
    candidates = np.where(clear, pooled, -np.inf) if clear.any() else pooled
    row, col = np.unravel_index(np.argmax(candidates), pooled.shape)
    top, left = row * sh - ph, col * sw - pw
    rows = slice(max(top, 0), min(top + kh, feature_map.shape[0]))
    cols = slice(max(left, 0), min(left + kw, feature_map.shape[1]))
    neighbourhood = feature_map[rows, cols]
    winner = np.unravel_index(np.argmax(neighbourhood), neighbourhood.shape)
    return PoolingStep(record.name, feature_map, pooled, (int(top), int(left), kh, kw), (int(row), int(col)),
                       (int(rows.start + winner[0]), int(cols.start + winner[1])), float(neighbourhood[winner]))
