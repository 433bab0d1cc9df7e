"""The model cases: a training step and inference of the zoo's models and of an ImageNet-sized
ResNet-18 (224 px, batch 16), built with convnet's layers or with torch.nn's (the builders take the
layer library as an argument), and inference in onnxruntime of convnet's model exported to ONNX.
convnet's images are in the memory layout ``layout`` names (`case.LAYOUTS`); each training step
carries its FLOPs, counted from the model's layers (`flops`)."""

import functools
import os
import tempfile
from collections import OrderedDict

import numpy as np

from .. import functional as F
from .. import models, optim
from ..data import mnist
from ..process import available_cores
from ..tensor import Tensor, no_grad
from .case import BATCH, CONTENDERS, DEFAULT_LAYOUT, Case, import_onnxruntime, import_torch, in_layout, torch_inputs
from .flops import training_step_flops, weighted_layer_flops

IMAGENET_BATCH = 16
IMAGENET_SIDE = 224


def load_images(split, data_dir):
    """Preprocessed Fashion-MNIST images and labels, or random images of the same shape without it."""
    try:
        images, labels = mnist.load("fashion-mnist", split, data_dir)
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        count = 60000 if split == "train" else 10000
        images, labels = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count)
        source = "random 28x28 images"
    return mnist.preprocess("fashion-mnist", images[:, None]), labels.astype(np.int64), source


def resnet18(layers, classes=1000):
    """ResNet-18 (He et al., 2016) as torchvision builds it, from ``layers`` (convnet.nn, or
    `TorchLayers` for PyTorch's twin): a 7x7 stride-2 stem with batch norm, ReLU and 3x3 stride-2
    max pooling, four stages of two BasicBlocks (64, 128, 256, 512 channels, the last three halving
    the side), global average pooling and a linear classifier; torchvision's keys and parameter
    shapes (11,689,512 parameters for 1000 classes). Input (N, 3, H, W), output (N, classes)."""
    def stage(in_channels, out_channels, stride):
        return layers.Sequential(layers.BasicBlock(in_channels, out_channels, stride),
                                 layers.BasicBlock(out_channels, out_channels))
    return layers.Sequential(OrderedDict(
        conv1=layers.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), bn1=layers.BatchNorm2d(64),
        relu=layers.ReLU(), maxpool=layers.MaxPool2d(3, stride=2, padding=1),
        layer1=stage(64, 64, 1), layer2=stage(64, 128, 2), layer3=stage(128, 256, 2), layer4=stage(256, 512, 2),
        avgpool=layers.AdaptiveAvgPool2d(1), flatten=layers.Flatten(), fc=layers.Linear(512, classes)))


MODELS = {"reference CNN": lambda layers: models.reference_cnn(False, layers=layers),
          "reference CNN + BN": lambda layers: models.reference_cnn(True, layers=layers),
          "ResNet-8": lambda layers: models.resnet8(layers=layers),
          "ResNet-18": resnet18}
NEEDS_BASIC_BLOCK = ("ResNet-8", "ResNet-18")  # torch.nn has no BasicBlock: TorchLayers adds it


def _model(name, contender):
    if contender == "convnet":
        return MODELS[name](models.convnet_nn)
    torch = import_torch()
    layers = torch.nn
    if name in NEEDS_BASIC_BLOCK:
        layers = TorchLayers(torch)
    model = MODELS[name](layers)
    return model.to(memory_format=torch.channels_last) if contender == "torch_cl" else model


class TorchLayers:
    """torch.nn with torchvision's BasicBlock (same keys and computation as convnet's), so the
    zoo's resnet8 builds in PyTorch without torchvision."""

    def __init__(self, torch):
        self._nn = torch.nn

        class BasicBlock(torch.nn.Module):
            def __init__(self, in_channels, out_channels, stride=1):
                super().__init__()
                nn = torch.nn
                self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(out_channels)
                self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(out_channels)
                self.downsample = None
                if stride != 1 or in_channels != out_channels:
                    self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                                    nn.BatchNorm2d(out_channels))

            def forward(self, x):
                out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

        self.BasicBlock = BasicBlock

    def __getattr__(self, name):
        return getattr(self._nn, name)


OPTIMIZERS = {"Adam": lambda library, parameters: library.Adam(parameters, lr=1e-3),
              "SGD": lambda library, parameters: library.SGD(parameters, lr=0.01, momentum=0.9)}


def training_case(model_name, images, labels, batch=BATCH, optimizer="Adam", layout=DEFAULT_LAYOUT):
    """One training step (``optimizer``: Adam or SGD with momentum) at ``batch``, each call on the
    next of the first (at most 8) batches of ``images`` (M, C, H, W); its FLOPs counted from the layers."""
    batches = [np.arange(i * batch, (i + 1) * batch) for i in range(min(8, len(images) // batch))]

    def build(contender):
        model, turn = _model(model_name, contender), [0]
        if contender == "convnet":
            update = OPTIMIZERS[optimizer](optim, model.parameters())
            inputs = [in_layout(images[index], layout) for index in batches]

            def step():
                index = turn[0] % len(batches)
                turn[0] += 1
                loss = F.cross_entropy(model(Tensor(inputs[index])), labels[batches[index]])
                update.zero_grad()
                loss.backward()
                update.step()
            return step
        torch = import_torch()
        update = OPTIMIZERS[optimizer](torch.optim, model.parameters())
        inputs = [torch_inputs(torch, [images[index]], contender == "torch_cl")[0] for index in batches]
        targets = [torch.from_numpy(labels[index]) for index in batches]

        def step():
            index = turn[0] % len(batches)
            turn[0] += 1
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), targets[index])
            update.zero_grad()
            loss.backward()
            update.step()
        return step
    flops = batch * training_step_flops(_flops_per_image(model_name, images.shape[1:]))
    suffix = "" if optimizer == "Adam" else f" ({optimizer})"
    return Case(f"train step {model_name} batch {batch}{suffix}", build, images=batch, flops=flops)


@functools.lru_cache(maxsize=None)
def _flops_per_image(model_name, image_shape):
    """The forward FLOPs of each weighted layer of convnet's ``model_name`` on one image of
    ``image_shape`` (C, H, W), in the order they run (counted once per process)."""
    return tuple(weighted_layer_flops(MODELS[model_name](models.convnet_nn), (1, *image_shape)))


def inference_case(model_name, images, layout=DEFAULT_LAYOUT):
    """Classifying ``images`` (N, C, H, W) in one batch, in eval mode; its FLOPs counted from the layers."""
    def build(contender):
        model = _model(model_name, "convnet" if contender == "onnxruntime" else contender)
        model = models.convnet_nn.fuse_for_inference(model) if contender == "convnet" else model.eval()
        if contender == "convnet":
            batch = in_layout(images, layout)

            def classify():
                with no_grad():
                    return model(Tensor(batch)).numpy().argmax(axis=1)
            return classify
        if contender == "onnxruntime":
            return _onnxruntime_classifier(model, images)
        torch = import_torch()
        batch = torch_inputs(torch, [images], contender == "torch_cl")[0]

        def classify():
            with torch.no_grad():
                return model(batch).argmax(dim=1)
        return classify
    flops = len(images) * sum(_flops_per_image(model_name, images.shape[1:]))
    return Case(f"inference {model_name} batch {len(images)}", build, images=len(images), flops=flops,
                contenders=CONTENDERS)


def _onnxruntime_classifier(model, images):
    """``model`` exported to ONNX and run by onnxruntime on as many threads as the others use."""
    from ..onnx import export
    ort = import_onnxruntime()
    with tempfile.TemporaryDirectory() as folder:
        graph = export(model, os.path.join(folder, "model.onnx"), (1, *images.shape[1:]))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = available_cores(), 1
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def classify():
        return session.run(None, {"input": images})[0].argmax(axis=1)
    return classify


def imagenet_cases(quick, layout=DEFAULT_LAYOUT):
    """ResNet-18 on random 224 px images of 1000 classes (batch 16; 4 with ``quick``): one SGD
    training step, cycling over two fixed batches, and inference on one batch."""
    batch = IMAGENET_BATCH // 4 if quick else IMAGENET_BATCH
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2 * batch, 3, IMAGENET_SIDE, IMAGENET_SIDE), dtype=np.float32)
    labels = rng.integers(0, 1000, len(images))
    return [training_case("ResNet-18", images, labels, batch, "SGD", layout),
            inference_case("ResNet-18", images[:batch], layout)]


def model_cases(quick, data_dir, layout=DEFAULT_LAYOUT):
    images, labels, _ = load_images("train", data_dir)
    test_images = load_images("test", data_dir)[0][:250 if quick else 1000]
    cases = [training_case(name, images, labels, layout=layout) for name in MODELS if name != "ResNet-18"]
    cases += [inference_case(name, test_images, layout) for name in ("reference CNN", "reference CNN + BN")]
    return cases + imagenet_cases(quick, layout)
