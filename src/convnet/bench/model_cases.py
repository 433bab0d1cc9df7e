"""The model cases: a training step and inference of the zoo's models, built with convnet's layers
or with torch.nn's (the zoo takes the layer library as an argument), and inference in onnxruntime
of convnet's model exported to ONNX."""

import os
import tempfile

import numpy as np

from .. import functional as F
from .. import models, optim
from ..data import mnist
from ..process import available_cores
from ..tensor import Tensor, no_grad
from .case import BATCH, CONTENDERS, Case, import_onnxruntime, import_torch, torch_inputs


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


MODELS = {"reference CNN": lambda layers: models.reference_cnn(False, layers=layers),
          "reference CNN + BN": lambda layers: models.reference_cnn(True, layers=layers),
          "ResNet-8": lambda layers: models.resnet8(layers=layers)}


def _model(name, contender):
    if contender == "convnet":
        return MODELS[name](models.convnet_nn)
    torch = import_torch()
    layers = torch.nn
    if name == "ResNet-8":
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


def training_case(model_name, images, labels):
    """One Adam training step at batch 128, on the next of a few fixed batches each call."""
    batches = [np.arange(i * BATCH, (i + 1) * BATCH) for i in range(8)]

    def build(contender):
        model, turn = _model(model_name, contender), [0]
        if contender == "convnet":
            optimizer = optim.Adam(model.parameters(), lr=1e-3)

            def step():
                index = batches[turn[0] % len(batches)]
                turn[0] += 1
                loss = F.cross_entropy(model(Tensor(images[index])), labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return step
        torch = import_torch()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        inputs = [torch_inputs(torch, [images[index]], contender == "torch_cl")[0] for index in batches]
        targets = [torch.from_numpy(labels[index]) for index in batches]

        def step():
            index = turn[0] % len(batches)
            turn[0] += 1
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step
    return Case(f"train step {model_name} batch {BATCH}", build, images=BATCH)


def inference_case(model_name, images):
    def build(contender):
        model = _model(model_name, "convnet" if contender == "onnxruntime" else contender)
        model.eval()
        if contender == "convnet":
            def classify():
                with no_grad():
                    return model(Tensor(images)).numpy().argmax(axis=1)
            return classify
        if contender == "onnxruntime":
            return _onnxruntime_classifier(model, images)
        torch = import_torch()
        batch = torch_inputs(torch, [images], contender == "torch_cl")[0]

        def classify():
            with torch.no_grad():
                return model(batch).argmax(dim=1)
        return classify
    return Case(f"inference {model_name} batch {len(images)}", build, images=len(images), contenders=CONTENDERS)


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


def model_cases(quick, data_dir):
    images, labels, _ = load_images("train", data_dir)
    test_images = load_images("test", data_dir)[0][:250 if quick else 1000]
    cases = [training_case(name, images, labels) for name in MODELS]
    return cases + [inference_case(name, test_images) for name in ("reference CNN", "reference CNN + BN")]
