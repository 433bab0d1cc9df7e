"""convnet.onnx.export on the ImageNet zoo (issue 31): every architecture in `models.IMAGENET`
exports, onnxruntime computes convnet's evaluation output from the file, the initializers are
the state_dict's tensors under the state_dict's names, and convnet's own importer reads the file
back to the same output (or, where it does not run an operator yet, refuses it clearly).

Weights are random and every normalisation's affine parameters and running statistics (and
ConvNeXt's layer scales, 1e-6 at first) are drawn away from their starting values, so that a
mixed-up buffer cannot pass. Images are 32 px, the smallest side VGG and ConvNeXt take (their
strides leave one pixel), so that the networks, full width and depth, run on two shared cores.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
from conftest import assert_close_relative_to_scale

import convnet
from convnet import models, nn
from convnet.onnx import OnnxError, load
from convnet.onnx.export import DEFAULT_OPSET, MIN_OPSET, export

SIDE = 32
SHAPE = (1, 3, SIDE, SIDE)
TOLERANCE = 1e-4  # of the output's scale: float32 sums over hundreds of layers, in another order
SLOW = {"resnet18", "resnet34", "resnet50", "vgg11_bn", "densenet121", "convnext_tiny", "efficientnet_b0", "regnet_y_400mf",
        "mobilenet_v3_large"}  # more than ~3 s each on two shared cores
# Written by the same writers as a smaller sibling tested here, and 30-50 s each (their classifiers hold
# 100 million weights): VGG-16 is VGG-11 with more of the same blocks.
SIBLINGS = {"vgg16_bn": "vgg11_bn"}


def zoo_cases():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
            for name in models.IMAGENET if name not in SIBLINGS]


def randomized(name, seed=0):
    """``name`` for 3-channel 32 px images and 10 classes, every normalisation's parameters and
    statistics and every layer scale drawn away from 1, 0, 0, 1 and 1e-6."""
    convnet.manual_seed(seed)
    model = models.build(name, in_channels=3, classes=10, image_size=SIDE)
    rng = np.random.default_rng(seed)
    ranges = {"running_mean": (-0.5, 0.5), "running_var": (0.5, 1.5), "layer_scale": (0.5, 1.0)}
    for key, tensor in model.state_dict().items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ranges:
            _named(model, key).data[...] = rng.uniform(*ranges[leaf], _named(model, key).shape)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            module.weight.data[...] = rng.uniform(0.5, 1.5, module.weight.shape)
            module.bias.data[...] = rng.uniform(-0.2, 0.2, module.bias.shape)
    return model.eval()


def _named(model, key):
    return dict((*model.named_parameters(), *model.named_buffers()))[key]


def images(batch=2, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, *SHAPE[1:])).astype(np.float32)


def convnet_output(model, x):
    with convnet.no_grad():
        return model(convnet.Tensor(x)).numpy()


def onnxruntime_output(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return out


@pytest.mark.parametrize("name", zoo_cases())
def test_each_imagenet_model_exports_and_onnxruntime_computes_its_output(name, tmp_path):
    model = randomized(name)
    path = tmp_path / f"{name}.onnx"
    proto = export(model, path, SHAPE)
    x = images()
    expected = convnet_output(model, x)
    assert expected.shape == (2, 10)
    assert_close_relative_to_scale(onnxruntime_output(path, x), expected, TOLERANCE)

    # Every parameter and running statistic is an initializer under its state_dict key, holding its values.
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    state = {key: value for key, value in model.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert set(state) <= set(initializers), sorted(set(state) - set(initializers))[:5]
    for key, value in state.items():
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(initializers[key]), value, err_msg=key)
    # The rest are the constants the nodes need (shapes, axes, bounds), named after the node.
    assert all(not key.endswith(("weight", "bias", "running_mean", "running_var")) for key in
               set(initializers) - set(state))

    # convnet's importer reads it back (or refuses an operator in one clear line).
    try:
        imported = load(path)
    except OnnxError as error:
        pytest.xfail(f"convnet's importer refuses it: {error}")
    assert_close_relative_to_scale(convnet_output(imported, x), expected, TOLERANCE)


@pytest.mark.parametrize("opset", [MIN_OPSET, 16, 17, 19, DEFAULT_OPSET])
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x1_0", "squeezenet1_1"])
def test_every_opset_exports_the_new_operations(name, opset, tmp_path):
    """HardSwish (a node from opset 14), channel shuffle's Reshape/Transpose, chunk's Slice,
    Concat, ceil_mode pooling and the SE blocks' Mul at each supported opset."""
    model = randomized(name)
    path = tmp_path / f"{name}.onnx"
    proto = export(model, path, SHAPE, opset=opset)
    assert proto.opset_import[0].version == opset
    x = images(batch=3, seed=opset)
    assert_close_relative_to_scale(onnxruntime_output(path, x), convnet_output(model, x), TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("opset", [MIN_OPSET, 17])
def test_convnext_writes_layer_norm_as_its_formula_before_opset_17(opset, tmp_path):
    model = randomized("convnext_tiny")
    path = tmp_path / "convnext.onnx"
    proto = export(model, path, SHAPE, opset=opset)
    found = {node.op_type for node in proto.graph.node}
    assert ("LayerNormalization" in found) == (opset >= 17)
    x = images()
    assert_close_relative_to_scale(onnxruntime_output(path, x), convnet_output(model, x), TOLERANCE)


def test_the_graph_follows_the_modules_names(tmp_path):
    """ResNet-18: nodes named by the layer's path, or the block's path and the Function; the
    residual additions read the block's last batch norm and its shortcut."""
    proto = export(randomized("resnet18"), tmp_path / "resnet18.onnx", SHAPE)
    nodes = {node.name: node for node in proto.graph.node}
    assert nodes["conv1"].op_type == "Conv" and nodes["maxpool"].op_type == "MaxPool"
    assert list(nodes["layer2.0.add"].input) == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert list(nodes["layer1.0.add"].input) == ["layer1.0.bn2", "maxpool"]
    assert nodes["layer1.0"].op_type == "Relu" and nodes["reshape"].op_type == "Reshape"  # the model's own flatten(1)
    assert list(nodes["fc"].input) == ["reshape", "fc.weight", "fc.bias"] and list(nodes["fc"].output) == ["output"]


@pytest.mark.parametrize("name", ["lenet5", "simple_cnn", "reference_cnn"])
def test_the_small_zoo_still_exports_one_node_per_layer_named_by_its_index(name, tmp_path):
    """A Sequential model is written as it was before tracing (the files are the same, byte for
    byte, as checked when tracing came): one node per layer (Dropout none), each named by the
    layer's index, in order, its parameters under their state_dict keys, in order."""
    model = models.MODELS[name]()
    proto = export(model, tmp_path / f"{name}.onnx")
    exported = [str(index) for index, layer in enumerate(model) if not isinstance(layer, nn.Dropout)]
    assert [node.name for node in proto.graph.node] == exported
    names = [tensor.name for tensor in proto.graph.initializer]
    assert names == [key for key in model.state_dict() if not key.endswith("num_batches_tracked")]
