"""convnet.onnx.load against two independent oracles: the PyTorch model an ONNX file was exported
from (by both of torch's exporters), and onnxruntime running the same file. Graphs built by hand
cover what torch never writes (auto_pad with strides, Gemm's alpha and beta, opset 11's Softmax).
A loaded model must agree within 1e-5 of the output's scale and pick the same top-1 class; it must
also train like the torch model it came from, save as a convnet checkpoint and be drawn.
"""

import contextlib
import io
import logging
import os
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
from conftest import (
    assert_close_relative_to_scale,
    finite_difference_check,
    requires_torch,
    torch,
    torchvision_models,
)
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import convnet
import convnet.functional as F
from convnet import checkpoint, models, nn, optim, viz
from convnet.onnx import OnnxError
from convnet.onnx.load import load
from convnet.onnx.reading import tensor_array

MNIST = (1, 28, 28)
VALID_KEY = re.compile(r"[0-9A-Za-z_]+(\.[0-9A-Za-z_]+)+")


# ------------------------------------------------------------------ oracles
def run_onnx(path, x):
    """onnxruntime's outputs; onnx's ReferenceEvaluator's for the convolutions onnxruntime refuses
    (auto_pad SAME_UPPER or SAME_LOWER with a dilation: "Dilation not supported")."""
    proto = onnx.load(path)
    if any(node.op_type == "Conv" and attribute_value(node, "auto_pad", b"NOTSET").startswith(b"SAME")
           and set(attribute_value(node, "dilations", [1])) != {1} for node in proto.graph.node):
        return ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: x})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def attribute_value(node, name, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def evaluate(model, x):
    with convnet.no_grad():
        out = model(x)
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else out.numpy()


def assert_same_answers(actual, expected):
    """Within 1e-5 of the output's scale, and (for class scores) the same top-1 class in each row."""
    assert_close_relative_to_scale(actual, expected)
    if expected.ndim == 2 and expected.shape[1] > 1:
        np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))


def check_against_onnx(path, x):
    """Load ``path``, compare its outputs on ``x`` with `run_onnx`'s; returns the loaded model."""
    loaded = load(path)
    ours, theirs = evaluate(loaded, x), run_onnx(path, x)
    for actual, expected in zip(ours if isinstance(ours, tuple) else (ours,), theirs, strict=True):
        assert_same_answers(actual, expected)
    return loaded


def images(batch, shape=MNIST, seed=0):
    return np.random.default_rng(seed).standard_normal((batch,) + tuple(shape)).astype(np.float32)


def child_types(model):
    return [type(module) for module in model.children()]


# ------------------------------------------------------------------ torch models and their exports
def torch_basic_block(in_channels, out_channels, stride=1):
    """convnet's nn.BasicBlock in torch (torchvision's, which this environment may lack)."""
    class BasicBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(out_channels)
            self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(out_channels)
            self.downsample = None
            if stride != 1 or in_channels != out_channels:
                self.downsample = torch.nn.Sequential(
                    torch.nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    torch.nn.BatchNorm2d(out_channels))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    return BasicBlock()


def torch_zoo(name, **config):
    """The zoo model ``name`` built with torch.nn (convnet's models take the layers module)."""
    torch.manual_seed(0)
    model = models.build(name, layers=SimpleNamespace(**vars(torch.nn), BasicBlock=torch_basic_block), **config)
    return randomize_batch_norm(model).eval()


def randomize_batch_norm(model):
    """Statistics away from 0 and 1, so that folding batch norm into a convolution changes its weights."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def export(model, path, x, exporter, **options):
    """``model`` written by torch's TorchScript exporter or its default (dynamo) one, batch dynamic."""
    model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # the dynamo exporter's notes on torchvision
        try:
            if exporter == "torchscript":
                torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                                  dynamic_axes={"x": {0: "batch"}}, **options)
            else:
                torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=True, input_names=["x"],
                                  dynamic_shapes=({0: torch.export.Dim("batch")},), **options)
        finally:
            logging.disable(logging.NOTSET)
    return path


def torch_output(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


EXPORTERS = ["torchscript", "dynamo"]
ZOO = ["reference_cnn", "lenet5", "simple_cnn", "resnet8"]


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    """(name, exporter) -> (torch model, its ONNX file), each exported once for the whole module."""
    cache = {}

    def get(name, exporter):
        if (name, exporter) not in cache:
            model = torch_zoo(name)
            path = tmp_path_factory.mktemp(f"{name}_{exporter}") / f"{name}.onnx"
            cache[name, exporter] = model, export(model, path, images(2), exporter)
        return cache[name, exporter]
    return get


# ------------------------------------------------------------------ the zoo, both exporters
@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ZOO)
def test_zoo_models_compute_what_torch_and_onnxruntime_compute(name, exporter, zoo_file):
    model, path = zoo_file(name, exporter)
    if exporter == "dynamo":
        assert path.with_name(path.name + ".data").is_file()  # its weights are external data
    x = images(5, seed=1)  # exported with a batch of 2: the batch is dynamic
    ours = evaluate(check_against_onnx(path, x), x)
    assert_same_answers(ours, torch_output(model, x))


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ZOO)
def test_gradients_reach_every_weight(name, exporter, zoo_file):
    loaded = load(zoo_file(name, exporter)[1]).train()
    F.cross_entropy(loaded(images(4, seed=2)), np.arange(4)).backward()
    parameters = dict(loaded.named_parameters())
    assert parameters
    for key, parameter in parameters.items():
        assert parameter.grad is not None, key
        grad = parameter.grad.numpy()
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0, key


@requires_torch
def test_layers_are_convnet_layers_keyed_like_the_exported_model(zoo_file):
    model, path = zoo_file("lenet5", "torchscript")
    loaded = load(path)
    assert list(loaded.state_dict()) == list(model.state_dict())  # '0.weight', '0.bias', '3.weight', ...
    assert child_types(loaded) == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear,
                                   nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    np.testing.assert_array_equal(loaded.state_dict()["3.weight"], model[3].weight.detach().numpy())
    # The dynamo exporter folds batch norm into the convolutions but keeps their names.
    dynamo = load(zoo_file("resnet8", "dynamo")[1])
    assert {"stem.0.weight", "stem.0.bias", "layers.1.downsample.0.weight", "fc.weight", "fc.bias"} <= \
        set(dynamo.state_dict())
    # The TorchScript one names the folded weights onnx::Conv_89: the layers take the nodes' names.
    folded = load(zoo_file("resnet8", "torchscript")[1])
    assert "stem_stem_0_Conv.weight" in folded.state_dict()
    for loaded in (dynamo, folded):
        keys = list(loaded.state_dict())
        assert all(VALID_KEY.fullmatch(key) for key in keys), keys
        assert len(set(keys)) == len(keys) == 2 * 10  # ten convolutions and linear layers, each with a bias


@requires_torch
def test_a_loaded_model_saves_and_restores_as_a_convnet_checkpoint(zoo_file, tmp_path):
    path = zoo_file("resnet8", "torchscript")[1]
    trained = load(path).train()
    F.cross_entropy(trained(images(4)), np.arange(4)).backward()
    optim.SGD(trained.parameters(), lr=0.1).step()
    (tmp_path / "run").mkdir()
    checkpoint.save(tmp_path / "run", trained)
    state, _, _ = checkpoint.load(tmp_path / "run")
    x, restored = images(3, seed=4), load(path)
    expected = evaluate(trained.eval(), x)
    assert np.abs(evaluate(restored, x) - expected).max() > 1e-3  # training changed the model
    restored.load_state_dict(state)
    np.testing.assert_array_equal(evaluate(restored, x), expected)


@requires_torch
def test_a_loaded_model_can_be_drawn(zoo_file):
    model, path = zoo_file("lenet5", "dynamo")
    loaded = load(path)
    image = images(1, seed=3)[0]
    story = viz.tell(loaded, image)
    assert story.convolution.layer == "0"
    assert_close_relative_to_scale(story.feature_maps, torch_output(model[0], image[None])[0])
    assert story.pooled_maps.shape == (6, 14, 14)
    np.testing.assert_allclose(story.probabilities.sum(), 1, rtol=1e-6)
    rows = nn.summary_rows(loaded, (1,) + MNIST)
    assert [kind for _, kind, _, _ in rows] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                                "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert sum(count for *_, count in rows) == sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ training like torch
def train_both(loaded, model, labels, input_shape, steps=3):
    """SGD with momentum on both models in train mode, one random batch a step; returns both loss curves."""
    loaded.train()
    model.train()
    ours = optim.SGD(loaded.parameters(), lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    curves = [], []
    for step in range(steps):
        x = images(len(labels), input_shape, seed=10 + step)
        ours.zero_grad()
        loss = F.cross_entropy(loaded(x), labels)
        loss.backward()
        ours.step()
        theirs.zero_grad()
        their_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels))
        their_loss.backward()
        theirs.step()
        curves[0].append(loss.item())
        curves[1].append(their_loss.item())
    return curves


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_sgd_steps_match_torch(exporter, tmp_path):
    """With zero biases, the TorchScript exporter writes equal initializers once and names the copies
    with Identity nodes: each must stay a bias of its own, or training would tie them. (The dynamo
    exporter drops zero biases altogether, so its model keeps torch's random ones.)"""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 3 * 3, 8),
                                torch.nn.ReLU(), torch.nn.Linear(8, 8))
    if exporter == "torchscript":
        for layer in model:
            if hasattr(layer, "bias"):
                torch.nn.init.zeros_(layer.bias)
    shape, labels = (1, 10, 10), np.arange(6) % 8
    path = export(model, tmp_path / "net.onnx", images(2, shape), exporter)
    if exporter == "torchscript":
        assert [node.op_type for node in onnx.load(path).graph.node].count("Identity") == 3
    loaded = load(path)
    assert len(list(loaded.parameters())) == len(list(model.parameters()))
    our_losses, their_losses = train_both(loaded, model, labels, shape)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-5)
    x = images(4, shape, seed=20)
    assert_same_answers(evaluate(loaded.eval(), x), torch_output(model.eval(), x))


@requires_torch
def test_batch_norm_nodes_become_batch_norm_layers_that_train_like_torch(tmp_path):
    """Kept in the graph (no constant folding), BatchNormalization is nn.BatchNorm2d: scale and bias
    are parameters, the running statistics buffers, updated in train mode as torch updates them."""
    model = torch_zoo("reference_cnn")
    path = export(model, tmp_path / "bn.onnx", images(2), "torchscript", do_constant_folding=False,
                  training=torch.onnx.TrainingMode.PRESERVE)
    loaded = check_against_onnx(path, images(3))
    assert child_types(loaded).count(nn.BatchNorm2d) == 2
    assert {"1.running_mean", "1.running_var"} <= set(loaded.state_dict()) - {k for k, _ in loaded.named_parameters()}
    assert list(loaded.state_dict()) == list(model.state_dict())
    our_losses, their_losses = train_both(loaded, model, np.arange(4), MNIST, steps=2)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-5)
    their_state = model.state_dict()
    for key, value in loaded.state_dict().items():
        np.testing.assert_allclose(value, their_state[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    x = images(4, seed=21)
    assert_same_answers(evaluate(loaded.eval(), x), torch_output(model.eval(), x))


# ------------------------------------------------------------------ random small CNNs
@st.composite
def torch_cnns(draw):
    """(torch model, input shape (C, H, W)): convolutions with any padding, stride, dilation and
    groups, transposed convolutions, batch norm, activations and pooling, then a classifier or none."""
    channels, height, width = draw(st.integers(1, 3)), draw(st.integers(5, 10)), draw(st.integers(5, 10))
    shape = (channels, height, width)
    layers, c, h, w = [], channels, height, width
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "conv_transpose", "batch_norm", "activation", "max_pool",
                                     "avg_pool"]))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
            out, k = groups * draw(st.integers(1, 3)), draw(st.integers(1, 4))
            stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
            padding = "same" if stride == 1 and draw(st.booleans()) else draw(st.integers(0, k // 2))
            span = dilation * (k - 1) + 1
            size = [n if padding == "same" else (n + 2 * padding - span) // stride + 1 for n in (h, w)]
            if min(size) < 1:
                continue
            layers.append(torch.nn.Conv2d(c, out, k, stride, padding, dilation, groups, bias=draw(st.booleans())))
            c, (h, w) = out, size
        elif kind == "conv_transpose":
            out, k, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
            padding, output_padding = draw(st.integers(0, (k - 1) // 2)), draw(st.integers(0, stride - 1))
            layers.append(torch.nn.ConvTranspose2d(c, out, k, stride, padding, output_padding))
            c, h, w = out, *((n - 1) * stride - 2 * padding + k + output_padding for n in (h, w))
        elif kind == "batch_norm":
            layers.append(torch.nn.BatchNorm2d(c))
        elif kind == "activation":
            layers.append(draw(st.sampled_from([torch.nn.ReLU(), torch.nn.LeakyReLU(0.2), torch.nn.Sigmoid(),
                                                torch.nn.Tanh(), torch.nn.GELU(), torch.nn.GELU("tanh")])))
        else:
            k, stride = draw(st.integers(2, 3)), draw(st.integers(1, 2))
            padding = draw(st.integers(0, k // 2))
            if min(h, w) + 2 * padding < k:
                continue
            layers.append(torch.nn.MaxPool2d(k, stride, padding) if kind == "max_pool" else
                          torch.nn.AvgPool2d(k, stride, padding, count_include_pad=draw(st.booleans())))
            h, w = ((n + 2 * padding - k) // stride + 1 for n in (h, w))
    head = draw(st.sampled_from(["linear", "global_pool", "none"]))
    if head == "linear":
        layers += [torch.nn.Flatten(), torch.nn.Linear(c * h * w, 5)]
    elif head == "global_pool":
        layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, 5)]
    if head != "none":
        layers += draw(st.sampled_from([[], [torch.nn.Softmax(dim=1)], [torch.nn.LogSoftmax(dim=1)]]))
    torch.manual_seed(draw(st.integers(0, 2 ** 16)))
    return randomize_batch_norm(torch.nn.Sequential(*layers)).eval(), shape


@requires_torch
@given(cnn=torch_cnns(), opset=st.sampled_from([11, 13, 17, 20]))
def test_random_cnns_from_the_torchscript_exporter(cnn, opset, tmp_path_factory):
    model, shape = cnn
    path = export(model, tmp_path_factory.mktemp("cnn") / "cnn.onnx", images(2, shape), "torchscript",
                  opset_version=opset)
    x = images(3, shape, seed=5)
    assert_same_answers(evaluate(check_against_onnx(path, x), x), torch_output(model, x))


@pytest.mark.slow
@requires_torch
@settings(max_examples=6)  # about a second each: the exporter traces, decomposes and optimises
@given(cnn=torch_cnns())
def test_random_cnns_from_the_dynamo_exporter(cnn, tmp_path_factory):
    model, shape = cnn
    path = export(model, tmp_path_factory.mktemp("cnn") / "cnn.onnx", images(2, shape), "dynamo")
    x = images(3, shape, seed=6)
    assert_same_answers(evaluate(check_against_onnx(path, x), x), torch_output(model, x))


# ------------------------------------------------------------------ graphs built by hand
def onnx_file(path, nodes, input_shape, initializers=None, opset=20, outputs=("y",), input_type=TensorProto.FLOAT,
              extra_inputs=(), domains=(), output_shape=None):
    """Write a graph of ``nodes`` (input 'x', outputs ``outputs``, shapes inferred unless given) to ``path``."""
    inputs = [helper.make_tensor_value_info(name, input_type, input_shape) for name in ("x", *extra_inputs)]
    graph = helper.make_graph(nodes, "graph", inputs, [
        helper.make_empty_tensor_value_info(name) if output_shape is None else
        helper.make_tensor_value_info(name, TensorProto.FLOAT, output_shape) for name in outputs],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in (initializers or {}).items()])
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(domain, 1) for domain in domains]
    model = helper.make_model(graph, opset_imports=imports, ir_version=10)
    onnx.save(onnx.shape_inference.infer_shapes(model), path)  # the checker wants the outputs' shapes
    return path


def weights(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@given(kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), size=st.tuples(st.integers(4, 9), st.integers(4, 9)),
       padding=st.one_of(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]),
                         st.lists(st.integers(0, 3), min_size=4, max_size=4)),
       grouping=st.sampled_from([(1, 3), (2, 4), (2, 2)]), bias=st.booleans())
def test_conv_attributes_match_onnxruntime(kernel, stride, dilation, size, padding, grouping, bias, tmp_path_factory):
    groups, out = grouping
    pads = padding if isinstance(padding, list) else [0] * 4
    assume(all(n + before + after >= d * (k - 1) + 1
               for n, before, after, d, k in zip(size, pads[:2], pads[2:], dilation, kernel)))
    attributes = {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilation), "group": groups}
    attributes.update(pads=padding) if isinstance(padding, list) else attributes.update(auto_pad=padding)
    initializers = {"w": weights(out, 2 // groups, *kernel), **({"b": weights(out, seed=1)} if bias else {})}
    node = helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["y"], **attributes)
    path = onnx_file(tmp_path_factory.mktemp("conv") / "conv.onnx", [node], ["N", 2, *size], initializers)
    loaded = check_against_onnx(path, images(2, (2, *size)))
    (layer,) = loaded.children()
    assert type(layer) is nn.Conv2d  # the layer users know, whatever the padding
    top, bottom, left, right = layer.resolved_padding
    assert layer.padding == ((top, left) if (top, left) == (bottom, right) else (top, bottom, left, right))


def case(nodes, input_shape, layers, initializers=None, opset=20):
    """A hand-built graph: its nodes, input shape ('N' and 'M' free), the convnet layers it must
    become (in order), its initializers and opset."""
    return {"nodes": nodes, "input_shape": input_shape, "layers": layers, "initializers": initializers,
            "opset": opset}


node = helper.make_node
HAND_BUILT = {
    "average_pool_excluding_padding": case(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        ["N", 3, 7, 8], [nn.AvgPool2d]),
    "average_pool_including_padding": case(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
        ["N", 3, 7, 8], [nn.AvgPool2d]),
    "max_pool_of_stride_1": case(
        [node("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], pads=[0, 1, 0, 1])], ["N", 3, 5, 6], [nn.MaxPool2d]),
    "pools_padded_differently_on_opposite_sides": case(
        [node("MaxPool", ["x"], ["pooled"], kernel_shape=[3, 3], pads=[0, 0, 1, 1]),
         node("AveragePool", ["pooled"], ["y"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 0, 1])],
        ["N", 3, 7, 8], [nn.MaxPool2d, nn.AvgPool2d]),
    "gemm_with_alpha_beta_and_transposes": case(
        [node("Gemm", ["x", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=1)], [4, "M"], [],
        {"b": weights(4, 5), "c": weights(1, 5, seed=1)}),
    "gemm_as_linear": case(
        [node("Gemm", ["x", "w", "b"], ["y"], transB=1)], ["N", 4], [nn.Linear],
        {"w": weights(5, 4), "b": weights(5, seed=1)}),
    "gemm_untransposed_as_linear": case(
        [node("Gemm", ["x", "w"], ["y"])], ["N", 4], [nn.Linear], {"w": weights(4, 5)}),
    "matmul_add_as_linear": case(
        [node("MatMul", ["x", "w"], ["product"]), node("Add", ["product", "b"], ["y"])], ["N", 3, 4], [nn.Linear],
        {"w": weights(4, 5), "b": weights(5, seed=1)}),
    "softmax_of_opset_11_flattens": case(
        [node("Softmax", ["x"], ["y"], axis=1)], ["N", 3, 2, 2], [], opset=11),
    "log_softmax_along_channels": case(
        [node("LogSoftmax", ["x"], ["y"], axis=1)], ["N", 3, 2, 2], [nn.LogSoftmax], opset=13),
    "reduce_mean_axes_attribute": case(
        [node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)], ["N", 3, 4, 5], [], opset=13),
    "reduce_mean_axes_input_then_squeeze": case(
        [node("ReduceMean", ["x", "axes"], ["mean"]), node("Squeeze", ["mean", "axes"], ["y"])], ["N", 3, 4, 5],
        [nn.AdaptiveAvgPool2d], {"axes": np.array([-1, -2])}, opset=18),
    "squeeze_and_unsqueeze_of_opset_11": case(
        [node("Unsqueeze", ["x"], ["wide"], axes=[0, 3]), node("Squeeze", ["wide"], ["y"], axes=[0])], ["N", 3, 4],
        [], opset=11),
    "flatten_at_axis_2": case([node("Flatten", ["x"], ["y"], axis=2)], ["N", 3, 4, 5], []),
    "shape_arithmetic": case(  # torch's flatten, with int64 Gather, Unsqueeze, Div and Concat
        [node("Shape", ["x"], ["shape"], end=1), node("Gather", ["shape", "zero"], ["batch"], axis=0),
         node("Unsqueeze", ["batch", "zero_axis"], ["batch_1d"]), node("Constant", [], ["total"], value_ints=[120]),
         node("Div", ["total", "two"], ["half"]), node("Concat", ["batch_1d", "half", "minus_one"], ["target"], axis=0),
         node("Reshape", ["x", "target"], ["rows"]), node("Reshape", ["rows", "keep_rows"], ["y"])],
        ["N", 3, 4, 10], [], {"zero": np.array(0), "zero_axis": np.array([0]), "two": np.array([2]),
                              "minus_one": np.array([-1]), "keep_rows": np.array([0, -1])}, opset=15),
    "dropout_erf_and_arithmetic": case(
        [node("Dropout", ["x", "ratio"], ["dropped"]), node("Erf", ["dropped"], ["erf"]),
         node("Sub", ["erf", "half"], ["shifted"]), node("Div", ["shifted", "scale"], ["scaled"]),
         node("Constant", [], ["twos"], value_floats=[2.0]), node("Mul", ["twos", "scaled"], ["doubled"]),
         node("LeakyRelu", ["doubled"], ["leaky"], alpha=0.3), node("Identity", ["leaky"], ["y"])],
        ["N", 3, 4, 4], [nn.Dropout, nn.LeakyReLU],
        {"ratio": np.array(0.3, np.float32), "half": np.array(0.5, np.float32),
         "scale": np.linspace(0.5, 2, 3, dtype=np.float32).reshape(1, 3, 1, 1)}, opset=13),
    "activations": case(
        [node("Sigmoid", ["x"], ["a"]), node("Tanh", ["a"], ["b"]), node("Gelu", ["b"], ["c"], approximate="tanh"),
         node("Relu", ["c"], ["y"])], ["N", 3], [nn.Sigmoid, nn.Tanh, nn.GELU, nn.ReLU]),
    "grouped_dilated_conv_transpose": case(
        [node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 1],
              output_padding=[1, 0])], ["N", 4, 3, 5], [nn.ConvTranspose2d],
        {"w": weights(4, 3, 3, 3), "b": weights(6, seed=1)}),
    "batch_norm_2d_and_1d": case(
        [node("BatchNormalization", ["x", "g", "b", "m", "v"], ["normed"], epsilon=1e-3, momentum=0.8),
         node("GlobalAveragePool", ["normed"], ["pooled"]), node("Flatten", ["pooled"], ["flat"]),
         node("BatchNormalization", ["flat", "g", "b", "m", "v"], ["y"])], ["N", 3, 4, 4],
        [nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.BatchNorm1d],
        {"g": weights(3) + 2, "b": weights(3, seed=1), "m": weights(3, seed=2),
         "v": np.linspace(0.5, 2, 3, dtype=np.float32)}),
    # What ONNX's functions expand into, and what exporters write around convolutions (issue 31)
    "softmax_as_reduce_max_exp_reduce_sum": case(
        [node("ReduceMax", ["x"], ["top"], axes=[1], keepdims=1), node("Sub", ["x", "top"], ["shifted"]),
         node("Exp", ["shifted"], ["e"]), node("ReduceSum", ["e", "channel"], ["total"], keepdims=1),
         node("Div", ["e", "total"], ["p"]), node("Log", ["p"], ["y"])], ["N", 3, 2, 2], [],
        {"channel": np.array([1])}, opset=13),
    "gelu_as_pow_sqrt_tanh_castlike_sum": case(
        [node("CastLike", ["three", "x"], ["three_like"]), node("Pow", ["x", "three_like"], ["cube"]),
         node("Mul", ["cube", "c"], ["scaled"]), node("Sum", ["x", "scaled"], ["inner"]),
         node("Sqrt", ["two_over_pi"], ["root"]), node("Mul", ["inner", "root"], ["argument"]),
         node("Tanh", ["argument"], ["t"]), node("Add", ["t", "one"], ["t1"]), node("Mul", ["x", "t1"], ["xt"]),
         node("Mul", ["xt", "half"], ["y"])], ["N", 3],
        [nn.Tanh], {"three": np.array(3.0, np.float64), "c": np.array(0.044715, np.float32),
                    "two_over_pi": np.array(2 / np.pi, np.float32), "one": np.array(1.0, np.float32),
                    "half": np.array(0.5, np.float32)}),
    "leaky_relu_as_less_where": case(
        [node("Less", ["x", "zero"], ["negative"]), node("Mul", ["x", "alpha"], ["scaled"]),
         node("Where", ["negative", "scaled", "x"], ["y"])], ["N", 3, 4],
        [], {"zero": np.array(0.0, np.float32), "alpha": np.array(0.1, np.float32)}),
    "max_min_mean_of_several_inputs": case(
        [node("Max", ["x", "bias"], ["high"]), node("Min", ["high", "cap"], ["low"]),
         node("Mean", ["low", "x"], ["y"])], ["N", 3], [],
        {"bias": weights(3, seed=3), "cap": np.array(0.8, np.float32)}),
    "squeeze_excitation_with_hard_swish_and_relu6": case(  # MobileNetV3's block, as torch exports it
        [node("Clip", ["x", "zero", "six"], ["relu6"]), node("HardSwish", ["relu6"], ["hs"]),
         node("GlobalAveragePool", ["hs"], ["squeezed"]), node("Conv", ["squeezed", "w1", "b1"], ["reduced"]),
         node("Relu", ["reduced"], ["r"]), node("Conv", ["r", "w2", "b2"], ["expanded"]),
         node("HardSigmoid", ["expanded"], ["gate"], alpha=1 / 6, beta=0.5), node("Mul", ["hs", "gate"], ["y"])],
        ["N", 4, 5, 5], [nn.AdaptiveAvgPool2d, nn.Conv2d, nn.ReLU, nn.Conv2d],
        {"zero": np.array(0.0, np.float32), "six": np.array(6.0, np.float32), "w1": weights(2, 4, 1, 1),
         "b1": weights(2, seed=1), "w2": weights(4, 2, 1, 1, seed=2), "b2": weights(4, seed=3)}),
    "channel_shuffle_with_shape_gather_concat_reshape_transpose": case(  # ShuffleNetV2's
        [node("Shape", ["x"], ["shape"]), node("Gather", ["shape", "zero"], ["batch"], axis=0),
         node("Unsqueeze", ["batch", "axis0"], ["batch_1d"]),
         node("Concat", ["batch_1d", "groups_shape"], ["grouped"], axis=0), node("Reshape", ["x", "grouped"], ["g"]),
         node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
         node("Concat", ["batch_1d", "flat_shape"], ["flat"], axis=0), node("Reshape", ["t", "flat"], ["y"])],
        ["N", 4, 3, 3], [], {"zero": np.array(0), "axis0": np.array([0]), "groups_shape": np.array([2, 2, 3, 3]),
                             "flat_shape": np.array([4, 3, 3])}),
    "layer_norm_over_channels_as_convnext_writes_it": case(
        [node("Transpose", ["x"], ["last"], perm=[0, 2, 3, 1]),
         node("LayerNormalization", ["last", "g", "b"], ["normed"], axis=-1, epsilon=1e-6),
         node("Transpose", ["normed"], ["y"], perm=[0, 3, 1, 2])], ["N", 4, 3, 3], [],
        {"g": weights(4) + 2, "b": weights(4, seed=1)}),
    "split_slice_pad_concat": case(
        [node("Split", ["x", "sizes"], ["a", "b"], axis=1), node("Slice", ["b", "starts", "ends", "axes", "steps"],
                                                                  ["sliced"]),
         node("Pad", ["a", "pads", "fill"], ["padded"]), node("Concat", ["padded", "sliced"], ["y"], axis=1)],
        ["N", 3, 6, 6], [], {"sizes": np.array([1, 2]), "starts": np.array([0, 5]), "ends": np.array([6, -100]),
                             "axes": np.array([2, 3]), "steps": np.array([2, -2]),
                             "pads": np.array([0, 0, 0, 0, 0, 0, -3, -3]), "fill": np.array(0.5, np.float32)}),
    "elu_selu_softplus_prelu": case(
        [node("PRelu", ["x", "slope"], ["p"]), node("Elu", ["p"], ["e"], alpha=0.7), node("Selu", ["e"], ["s"]),
         node("Softplus", ["s"], ["y"])], ["N", 3, 2], [], {"slope": weights(3, 1, seed=4)}),
    "ceil_mode_and_dilated_pooling_layers": case(
        [node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], dilations=[1, 2], ceil_mode=1),
         node("AveragePool", ["m"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
        ["N", 2, 9, 10], [nn.MaxPool2d, nn.AvgPool2d]),
    "pooling_no_layer_holds": case(  # a dilated average, padding wider than half the kernel, indices
        [node("AveragePool", ["x"], ["a"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 0, 1]),
         node("MaxPool", ["a"], ["m", "indices"], kernel_shape=[3, 3], pads=[2, 2, 2, 2]),
         node("Cast", ["indices"], ["float_indices"], to=TensorProto.DOUBLE),
         node("Mul", ["float_indices", "zero"], ["nothing"]), node("CastLike", ["nothing", "m"], ["zeros"]),
         node("Add", ["m", "zeros"], ["y"])], ["N", 2, 7, 6], [], {"zero": np.array(0.0)}),
    "conv_transpose_with_asymmetric_pads_and_output_shape": case(
        [node("ConvTranspose", ["x", "w", "b"], ["t"], strides=[2, 2], pads=[0, 1, 1, 0]),
         node("ConvTranspose", ["t", "w2"], ["y"], strides=[2, 1], output_shape=[12, 8])], ["N", 2, 3, 4], [],
        {"w": weights(2, 3, 3, 3), "b": weights(3, seed=1), "w2": weights(3, 1, 2, 2, seed=2)}),
    "batch_norm_of_rank_3_and_constant_of_shape_expand": case(
        [node("BatchNormalization", ["x", "g", "b", "m", "v"], ["normed"]),
         node("ConstantOfShape", ["shape"], ["ones"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
         node("Expand", ["ones", "row"], ["grid"]), node("Mul", ["normed", "grid"], ["y"])], ["N", 3, 4], [],
        {"g": weights(3) + 2, "b": weights(3, seed=1), "m": weights(3, seed=2),
         "v": np.linspace(0.5, 2, 3, dtype=np.float32), "shape": np.array([3, 1]), "row": np.array([1, 3, 4])}),
    "split_to_sequence_and_sequence_at": case(  # the dynamo exporter's torch.chunk, unoptimised (ShuffleNetV2)
        [node("SplitToSequence", ["x"], ["rows"], axis=2, keepdims=0), node("SequenceAt", ["rows", "first"], ["r"]),
         node("Unsqueeze", ["r", "axis"], ["row"]), node("Mul", ["x", "row"], ["product"]),
         node("SplitToSequence", ["product", "two"], ["halves"], axis=1),
         node("SequenceAt", ["halves", "last"], ["y"])], ["N", 4, 3, 5], [],
        {"two": np.array(2), "last": np.array(-1), "first": np.array(0), "axis": np.array([2])}),
}



def hand_built(name, tmp_path):
    """The loaded graph ``name`` of `HAND_BUILT`, checked against onnxruntime, and its input's shape."""
    spec = HAND_BUILT[name]
    path = onnx_file(tmp_path / f"{name}.onnx", spec["nodes"], spec["input_shape"], spec["initializers"],
                     spec["opset"])
    shape = [3 if size in ("N", "M") else size for size in spec["input_shape"]]
    return check_against_onnx(path, images(shape[0], shape[1:], seed=7)), shape


@pytest.mark.parametrize("name", HAND_BUILT)
def test_hand_built_graphs_match_onnxruntime(name, tmp_path):
    loaded, _ = hand_built(name, tmp_path)  # outputs compared with onnxruntime's (`check_against_onnx`)
    assert child_types(loaded) == HAND_BUILT[name]["layers"]


@pytest.mark.parametrize("name", HAND_BUILT)
def test_hand_built_graphs_have_the_gradients_of_finite_differences(name, tmp_path):
    loaded, shape = hand_built(name, tmp_path)
    # Gradients: the input's against finite differences, and every weight gets one ('scale' too).
    finite_difference_check(loaded.double(), [images(shape[0], shape[1:], seed=8).astype(np.float64)])
    for key, parameter in loaded.named_parameters():
        assert parameter.grad is not None and np.abs(parameter.grad.numpy()).max() > 0, key


def test_weights_that_arithmetic_reads_are_parameters_named_after_them(tmp_path):
    spec = HAND_BUILT["dropout_erf_and_arithmetic"]
    loaded = load(onnx_file(tmp_path / "g.onnx", spec["nodes"], spec["input_shape"], spec["initializers"],
                            spec["opset"]))
    assert [key for key, _ in loaded.named_parameters()] == ["scale"]  # 'ratio' and 'half' are constants
    assert loaded._modules[next(iter(loaded._modules))].p == pytest.approx(0.3)


def test_a_graph_with_two_outputs_returns_both(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["z"])]
    path = onnx_file(tmp_path / "two.onnx", nodes, ["N", 3], outputs=("y", "z"))
    x = images(2, (3,))
    outputs = evaluate(check_against_onnx(path, x), x)  # each compared with onnxruntime's
    assert len(outputs) == 2


# ------------------------------------------------------------------ errors
def test_every_node_convnet_cannot_run_is_named_in_one_error(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv"),
             helper.make_node("Pad", ["c", "pads"], ["p"], name="/pad/Pad", mode="reflect"),
             helper.make_node("LRN", ["p"], ["l"], name="/lrn/LRN", size=3),
             helper.make_node("Dropout", ["l", "ratio", "training"], ["d"], name="/drop/Dropout"),
             helper.make_node("Foo", ["d"], ["y"], name="/fc/Foo", domain="custom")]
    initializers = {"w": weights(2, 2, 3, 3), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1]),
                    "ratio": np.array(0.5, np.float32), "training": np.array(True)}
    path = onnx_file(tmp_path / "model.onnx", nodes, ["N", 2, 8, 8], initializers, domains=["custom"],
                     output_shape=["N", 2, 8, 8])
    with pytest.raises(OnnxError) as error:
        load(path)
    assert str(error.value) == (
        f"{path}: cannot load 4 nodes: /pad/Pad (Pad attribute mode=reflect: convnet pads with a constant), "
        f"/lrn/LRN (LRN: an operator convnet does not run), "
        f"/drop/Dropout (Dropout with training_mode=true and a ratio above 0), "
        f"/fc/Foo (custom.Foo: an operator convnet does not run)")


@pytest.mark.parametrize("node, input_shape, message", [
    (helper.make_node("Conv", ["x", "w1d"], ["y"]), ["N", 2, 8], "Conv of 1-D kernels: convnet works on 2-D images"),
    (helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2]), ["N", 2, "H", "W"],
     ("Conv attribute auto_pad=SAME_UPPER with strides=[2, 2] on an input whose height and width the graph does "
     "not fix")),
    (helper.make_node("ConvTranspose", ["x", "w1d"], ["y"]), ["N", 2, 8],
     "ConvTranspose of 1-D kernels: convnet works on 2-D images"),
    (helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"]), ["N", 2], None),
    (helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT16), ["N", 2],
     "Cast to float16: convnet computes in float32, float64, integers and booleans"),
    (helper.make_node("LayerNormalization", ["x", "s"], ["y"], stash_type=0), ["N", 2],
     "LayerNormalization attribute stash_type=0"),
])
def test_an_unsupported_attribute_is_named(node, input_shape, message, tmp_path):
    initializers = {"w": weights(2, 2, 3, 3), "w1d": weights(2, 2, 3), "s": np.ones(2, np.float32)}
    outputs = ("y", "mean") if len(node.output) == 2 else ("y",)
    path = onnx_file(tmp_path / "model.onnx", [node], input_shape, initializers, outputs=outputs)
    with pytest.raises(OnnxError) as error:
        load(path)
    message = message or "LayerNormalization output 2 (mean), which convnet does not compute"
    assert str(error.value) == f"{path}: cannot load 1 node: node 0 ({message})"


def test_a_layer_over_integers_is_refused_naming_the_type(tmp_path):
    path = onnx_file(tmp_path / "model.onnx", [helper.make_node("Relu", ["x"], ["y"], name="/relu")], ["N", 3],
                     input_type=TensorProto.INT64)
    with pytest.raises(OnnxError) as error:
        load(path)
    assert str(error.value) == (f"{path}: cannot load 1 node: /relu (Relu of INT64 values: convnet's layers compute "
                                f"in float or double)")


def test_a_weight_computed_by_the_graph_is_computed_and_trains(tmp_path):
    nodes = [helper.make_node("Add", ["w", "w"], ["doubled"]), helper.make_node("Conv", ["x", "doubled"], ["y"])]
    path = onnx_file(tmp_path / "model.onnx", nodes, ["N", 2, 8, 8], {"w": weights(2, 2, 3, 3)})
    x = images(2, (2, 8, 8))
    loaded = check_against_onnx(path, x)
    assert child_types(loaded) == []  # a function of the weight, not a layer holding it
    loaded(x).sum().backward()
    # d sum(conv(x, 2w)) / dw = 2 * (the sum of each weight's window over the batch and positions)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3)).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(loaded.w.grad.numpy(), 2 * np.broadcast_to(windows, (2, 2, 3, 3)), rtol=1e-4)


@requires_torch
@pytest.mark.parametrize("damage, message", [
    (lambda data: b"not an ONNX file, just text", "not an ONNX model, or a truncated one"),
    (lambda data: data[:len(data) // 2], "not an ONNX model, or a truncated one"),
    (lambda data: data[:-1], None),
])
def test_a_file_that_is_not_onnx_or_is_truncated_is_refused_in_one_line(damage, message, zoo_file, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(damage(zoo_file("lenet5", "torchscript")[1].read_bytes()))
    with pytest.raises(OnnxError) as error:
        load(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert message is None or message in text


def test_a_graph_that_fails_the_checker_is_refused_in_one_line(tmp_path):
    """(A value read before anything provides it, a cycle among them, is named by convnet itself:
    test_a_bad_onnx_file_is_refused_in_one_line_by_load_and_by_the_cli.)"""
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])]  # y written twice
    path = onnx_file(tmp_path / "model.onnx", nodes, ["N", 3])
    with pytest.raises(OnnxError) as error:
        load(path)
    assert re.fullmatch(f"{re.escape(str(path))}: fails onnx.checker: .*static single assignment.*|"
                        f"{re.escape(str(path))}: fails onnx.checker: .*SSA.*", str(error.value)), str(error.value)
    with pytest.raises(OnnxError, match="cannot read it: No such file or directory"):
        load(tmp_path / "absent.onnx")


@pytest.mark.parametrize("options, message", [
    ({"input_type": TensorProto.FLOAT16}, "input 'x' holds FLOAT16; convnet models take float, double, integer or "
                                          "bool tensors"),
    ({"opset": 10}, ("opset 10 is older than 11, the oldest convnet reads; "
                     "onnx.version_converter.convert_version(model, 13) updates it")),
])
def test_a_graph_convnet_cannot_take_is_refused(options, message, tmp_path):
    path = onnx_file(tmp_path / "model.onnx", [helper.make_node("Relu", ["x"], ["y"])], ["N", 3], **options)
    with pytest.raises(OnnxError) as error:
        load(path)
    assert str(error.value) == f"{path}: {message}"


def test_an_input_of_the_wrong_shape_is_refused_and_a_failing_node_named(tmp_path):
    loaded = load(onnx_file(tmp_path / "model.onnx", [helper.make_node("Relu", ["x"], ["y"])], ["N", 1, 28, 28]))
    with pytest.raises(ValueError, match=r"expected input 'x' of shape \(N, 1, 28, 28\), got \(2, 3, 28, 28\)$"):
        loaded(images(2, (3, 28, 28)))
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="/fc/Reshape")]
    loaded = load(onnx_file(tmp_path / "reshape.onnx", nodes, ["N", 3, 4], {"shape": np.array([5, -1])}))
    with pytest.raises(ValueError, match=r"^OnnxModel\('reshape.onnx'\): /fc/Reshape: reshape: cannot reshape a "
                                         r"tensor of shape \(2, 3, 4\) \(24 elements\) into \(5, -1\)$"):
        loaded(images(2, (3, 4)))


@pytest.mark.slow
@requires_torch
def test_external_data_is_read_only_from_the_models_folder(zoo_file, tmp_path):
    original = zoo_file("lenet5", "dynamo")[1]
    data = original.with_name(original.name + ".data").read_bytes()
    proto = onnx.load(original, load_external_data=False)
    folder = tmp_path / "models"
    folder.mkdir()
    # Pointing outside the folder, by a relative path or by a link.
    (tmp_path / "weights.data").write_bytes(data)
    escaping = onnx.ModelProto.FromString(proto.SerializeToString())
    for tensor in escaping.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.data"
    onnx.save(escaping, folder / "escaping.onnx")
    with pytest.raises(OnnxError, match="outside") as error:
        load(folder / "escaping.onnx")
    assert str(error.value).startswith(f"{folder / 'escaping.onnx'}: ")
    onnx.save(proto, folder / "linked.onnx")
    os.symlink(tmp_path / "weights.data", folder / (original.name + ".data"))
    with pytest.raises(OnnxError, match=r"linked.onnx: .*(symbolic link|outside the model's folder)"):
        load(folder / "linked.onnx")  # onnx.checker refuses links, convnet those that lead out of the folder
    # convnet's own check, whatever onnx.checker lets through (its checks have grown with its versions).
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value="../weights.data")
    with pytest.raises(OnnxError, match=r"model.onnx: initializer 'w' is stored at '../weights.data', outside the "
                                        r"model's folder .*models; convnet reads external data only from there$"):
        tensor_array(onnx, tensor, folder / "model.onnx")
    # Truncated.
    (folder / (original.name + ".data")).unlink()
    (folder / (original.name + ".data")).write_bytes(data[:len(data) // 2])
    with pytest.raises(OnnxError, match=r"linked.onnx: lenet5.onnx.data is truncated: initializer '.*' needs bytes"):
        load(folder / "linked.onnx")


# ------------------------------------------------------------------ convnet -> ONNX -> convnet
@pytest.mark.parametrize("name", ["lenet5", "reference_cnn", "resnet8"])
def test_convnet_models_come_back_from_their_onnx_export(name, tmp_path):
    from convnet.onnx.export import export as export_convnet

    model = models.build(name)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.data[...] = weights(module.num_features) * 0.3
            module.running_var.data[...] = np.linspace(0.5, 2, module.num_features)
    export_convnet(model, tmp_path / "model.onnx", (1,) + MNIST)
    loaded = load(tmp_path / "model.onnx")
    assert set(loaded.state_dict()) == set(model.state_dict())  # the keys carry over
    x = images(3, seed=9)
    assert_same_answers(evaluate(loaded, x), evaluate(model.eval(), x))
    loaded.load_state_dict(model.state_dict())


# ------------------------------------------------------------------ ONNX -> convnet -> ONNX
def test_an_imported_network_exports_back_with_its_padding_and_its_average(tmp_path):
    """Padding that differs on opposite sides, and an average that leaves the padding out (ONNX's
    default count_include_pad=0), load into the plain layers, which export them back as they came."""
    from convnet.onnx.export import export as export_convnet

    nodes = [node("Conv", ["x", "w", "b"], ["c"], pads=[0, 1, 1, 2], strides=[2, 1]),
             node("MaxPool", ["c"], ["m"], kernel_shape=[3, 3], pads=[1, 0, 0, 1]),
             node("AveragePool", ["m"], ["y"], kernel_shape=[2, 3], pads=[1, 1, 0, 1])]
    path = onnx_file(tmp_path / "imported.onnx", nodes, ["N", 2, 9, 8],
                     {"w": weights(3, 2, 3, 2), "b": weights(3, seed=1)})
    loaded = load(path)
    conv, max_pool, average_pool = loaded.children()
    assert child_types(loaded) == [nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d]
    assert [layer.resolved_padding for layer in (conv, max_pool, average_pool)] == [(0, 1, 1, 2), (1, 0, 0, 1),
                                                                                   (1, 0, 1, 1)]
    assert repr(average_pool) == ("AvgPool2d(kernel_size=(2, 3), stride=(1, 1), padding=(1, 0, 1, 1), "
                                  "count_include_pad=False)")
    exported = export_convnet(nn.Sequential(*loaded.children()), tmp_path / "exported.onnx", (1, 2, 9, 8))
    for original, written in zip(onnx.load(path).graph.node, exported.graph.node, strict=True):
        assert written.op_type == original.op_type
        assert attribute_value(written, "pads", None) == attribute_value(original, "pads", None)
    assert attribute_value(exported.graph.node[2], "count_include_pad", None) == 0
    x = images(3, (2, 9, 8), seed=10)
    assert_same_answers(run_onnx(tmp_path / "exported.onnx", x)[0], run_onnx(path, x)[0])


# ------------------------------------------------------------------ real files (issue 31)
def test_a_graph_taking_its_weights_as_inputs_runs_as_model_x_w_and_differentiates_them(tmp_path):
    """Conv(x, W, B) with all three graph inputs: ``model(x, w, b)`` equals onnxruntime, and the
    gradients reaching x, W and B equal torch's."""
    nodes = [node("Conv", ["x", "W", "B"], ["c"], strides=[2, 2], pads=[0, 1, 1, 0]), node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 7, 7]),
                                           helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 2, 3, 3]),
                                           helper.make_tensor_value_info("B", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "model.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)), path)
    x, w, b = images(2, (2, 7, 7)), weights(3, 2, 3, 3, seed=1), weights(3, seed=2)
    loaded = load(path)
    assert loaded.input_names == ["x", "W", "B"] and loaded.shapes["c"] == (None, 3, 3, 3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_same_answers(loaded(x, w, b).numpy(), session.run(None, {"x": x, "W": w, "B": b})[0])
    with pytest.raises(ValueError, match=r"expected 3 inputs \(x, W, B\), got 1"):
        loaded(x)
    if torch is None:
        return
    ours = [convnet.Tensor(value, requires_grad=True) for value in (x, w, b)]
    loaded(*ours).sum().backward()
    theirs = [torch.from_numpy(value).requires_grad_() for value in (x, w, b)]
    padded = torch.nn.functional.pad(theirs[0], (1, 0, 0, 1))  # (left, right, top, bottom)
    torch.relu(torch.nn.functional.conv2d(padded, theirs[1], theirs[2], stride=2)).sum().backward()
    for mine, reference in zip(ours, theirs):
        assert_close_relative_to_scale(mine.grad.numpy(), reference.grad.numpy())


def torch_real_blocks():
    """Torch modules with the constructs real ImageNet CNNs export: MobileNetV3's HardSwish and
    squeeze-and-excitation (Hardsigmoid gate), ShuffleNetV2's channel split and shuffle (Split, Reshape,
    Transpose, Concat), ConvNeXt's LayerNorm over channels (Transpose around LayerNormalization), a
    ReLU6, SiLU, SqueezeNet's ceil_mode pooling and a stride-2 convolution padded like TensorFlow's 'same'."""
    nn_ = torch.nn

    class SqueezeExcitation(nn_.Module):
        def __init__(self, channels):
            super().__init__()
            self.fc1, self.fc2 = nn_.Conv2d(channels, 4, 1), nn_.Conv2d(4, channels, 1)

        def forward(self, x):
            scale = nn_.functional.adaptive_avg_pool2d(x, 1)
            return nn_.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(scale)))) * x

    class ShuffleUnit(nn_.Module):
        def __init__(self, channels):
            super().__init__()
            half = channels // 2
            self.branch = nn_.Sequential(nn_.Conv2d(half, half, 1), nn_.BatchNorm2d(half), nn_.ReLU6(),
                                         nn_.Conv2d(half, half, 3, padding=1, groups=half), nn_.SiLU())

        def forward(self, x):
            kept, changed = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch(changed)), dim=1)
            batch, channels, height, width = out.shape
            out = out.view(batch, 2, channels // 2, height, width).transpose(1, 2).contiguous()
            return out.view(batch, channels, height, width)

    class ConvNeXtBlock(nn_.Module):
        def __init__(self, channels):
            super().__init__()
            self.depthwise = nn_.Conv2d(channels, channels, 7, padding=3, groups=channels)
            self.norm = nn_.LayerNorm(channels, eps=1e-6)
            self.up, self.down = nn_.Linear(channels, 4 * channels), nn_.Linear(4 * channels, channels)
            self.layer_scale = nn_.Parameter(torch.full((channels, 1, 1), 0.5))

        def forward(self, x):
            out = self.norm(self.depthwise(x).permute(0, 2, 3, 1))
            out = self.down(nn_.functional.gelu(self.up(out))).permute(0, 3, 1, 2)
            return self.layer_scale * out + x

    class Network(nn_.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn_.Sequential(nn_.ZeroPad2d((0, 1, 0, 1)), nn_.Conv2d(3, 8, 3, stride=2),
                                       nn_.BatchNorm2d(8), nn_.Hardswish())
            self.se, self.shuffle, self.convnext = SqueezeExcitation(8), ShuffleUnit(8), ConvNeXtBlock(8)
            self.pool = nn_.MaxPool2d(3, 2, ceil_mode=True)
            self.head = nn_.Linear(8, 5)

        def forward(self, x):
            out = self.pool(self.convnext(self.shuffle(self.se(self.stem(x)))))
            return self.head(out.mean(dim=(2, 3)))

    torch.manual_seed(0)
    blocks = {"network": Network(), "squeeze_excitation": SqueezeExcitation(8), "channel_shuffle": ShuffleUnit(8),
              "convnext": ConvNeXtBlock(8)}
    return {name: randomize_batch_norm(block).eval() for name, block in blocks.items()}


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_real_cnn_blocks_exported_by_torch_equal_onnxruntime_and_torch(exporter, tmp_path):
    model = torch_real_blocks()["network"]
    path = export(model, tmp_path / "blocks.onnx", images(2, (3, 17, 17)), exporter, opset_version=18)
    x = images(3, (3, 17, 17), seed=11)
    loaded = check_against_onnx(path, x)
    assert_same_answers(evaluate(loaded, x), torch_output(model, x))
    assert all(shape is not None for shape in loaded.shapes.values())  # every value's shape, before running


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["squeeze_excitation", "convnext", "channel_shuffle", "network"])
def test_imported_blocks_have_torchs_gradients(name, exporter, tmp_path):
    """Backward through the imported graph: the input's gradient and every weight's equal torch's.
    (The channel shuffle's Concat reads one half of the split input directly and the other through
    its branch; ConvNeXt's residual Add reads its input directly and through the block: a backward
    that ordered such graphs wrongly lost the deeper path's gradient.)"""
    model = torch_real_blocks()[name]
    shape = (3, 17, 17) if name == "network" else (8, 6, 6)
    path = export(model, tmp_path / f"{name}.onnx", images(2, shape), exporter, opset_version=18)
    x = images(3, shape, seed=11)
    loaded = load(path)
    ours, theirs = convnet.Tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
    expected = model(theirs)
    out_weights = weights(*expected.shape, seed=12)
    (expected * torch.from_numpy(out_weights)).sum().backward()
    (loaded(ours) * convnet.Tensor(out_weights)).sum().backward()
    assert_close_relative_to_scale(ours.grad.numpy(), theirs.grad.numpy(), 1e-4)
    torch_parameters = dict(model.named_parameters())
    compared = 0
    for key, parameter in loaded.named_parameters():
        # The same weight under the same name (the exporters fold batch norm into the convolution before it).
        if key in torch_parameters and np.array_equal(parameter.numpy(), torch_parameters[key].detach().numpy()):
            assert_close_relative_to_scale(parameter.grad.numpy(), torch_parameters[key].grad.numpy(), 1e-4)
            compared += 1
    assert compared >= 2 or exporter == "torchscript"


def test_dropouts_mask_is_ones_in_evaluation_and_the_kept_elements_in_training(tmp_path):
    nodes = [node("Dropout", ["x", "ratio"], ["y", "mask"])]
    path = onnx_file(tmp_path / "model.onnx", nodes, ["N", 4, 5], {"ratio": np.array(0.25, np.float32)},
                     outputs=("y", "mask"))
    loaded = load(path)
    x = images(3, (4, 5))
    out, mask = loaded(x)
    np.testing.assert_array_equal(out.numpy(), x)
    assert mask.dtype == np.bool_ and mask.numpy().all()
    convnet.manual_seed(0)
    out, mask = loaded.train()(x)
    kept = mask.numpy()
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out.numpy(), np.where(kept, x / 0.75, 0), rtol=1e-6)


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_0", "googlenet", "shufflenet_v2_x0_5",
                                  "convnext_tiny"])
def test_torchvisions_networks_that_were_refused_now_equal_onnxruntime(name, tmp_path):
    """HardSwish (MobileNetV3), ceil_mode pooling (SqueezeNet, GoogLeNet), the channel shuffle
    (ShuffleNetV2) and LayerNorm between Transposes (ConvNeXt): random weights, 64 px."""
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision_models(), name)(**options).eval()
    x = images(1, (3, 64, 64), seed=13)
    check_against_onnx(export(model, tmp_path / f"{name}.onnx", x, "torchscript", opset_version=18), x)


# ------------------------------------------------------------------ bad files, through the command line
def bad_onnx_files(folder):
    """{problem: (path, a pattern of the one line convnet answers)}: an unknown operator, a cycle, a missing
    initializer (a node reading a weight the file lacks; external data whose file is gone), a
    dynamic shape that a node needs fixed, and external data stored outside the model's folder."""
    x, w = ["N", 1, 8, 8], {"w": weights(2, 1, 3, 3)}
    files = {"unknown operator": (onnx_file(folder / "unknown.onnx", [node("LRN", ["x"], ["y"], name="/lrn/LRN",
                                                                           size=3)], x),
                                  re.escape("cannot load 1 node: /lrn/LRN (LRN: an operator convnet does not run)"))}
    cycle = [node("Relu", ["b"], ["a"]), node("Relu", ["a"], ["b"]), node("Add", ["x", "a"], ["y"])]
    graph = helper.make_graph(cycle, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10),
              folder / "cycle.onnx")
    files["cycle"] = folder / "cycle.onnx", re.escape("node 'a' (Relu) reads 'b' before node 'b' (Relu) writes it: "
                                                      "a cycle, or nodes out of topological order")
    files["missing initializer"] = (
        onnx_file(folder / "missing.onnx", [node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], x),
        re.escape("node '/conv/Conv' (Conv) reads 'w', which no initializer, graph input or node provides"))
    # The weight written to external data, then its file deleted.
    proto = onnx.load(onnx_file(folder / "external.onnx", [node("Conv", ["x", "w"], ["y"])], x, w))
    onnx.save(proto, folder / "gone.onnx", save_as_external_data=True, location="gone.onnx.data",
              size_threshold=0)
    (folder / "gone.onnx.data").unlink()
    files["missing external data"] = folder / "gone.onnx", "gone.onnx.data"
    files["unresolved dynamic shape"] = (
        onnx_file(folder / "dynamic.onnx", [node("Conv", ["x", "w"], ["y"], name="/conv/Conv", auto_pad="SAME_UPPER",
                                                 strides=[2, 2])], ["N", 1, "H", "W"], w),
        r"cannot load 1 node: /conv/Conv \(Conv attribute auto_pad=SAME_UPPER with strides=\[2, 2\] on an input "
        r"whose height and width the graph does not fix\)")
    (folder / "models").mkdir()
    onnx.save(proto, folder / "outside.onnx.data.onnx", save_as_external_data=True, location="outside.data",
              size_threshold=0)
    escaping = onnx.load(folder / "outside.onnx.data.onnx", load_external_data=False)
    for tensor in escaping.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    onnx.save(escaping, folder / "models" / "outside.onnx")
    files["external data outside its folder"] = folder / "models" / "outside.onnx", "outside"
    return files


@pytest.mark.parametrize("problem", ["unknown operator", "cycle", "missing initializer", "missing external data",
                                     "unresolved dynamic shape", "external data outside its folder"])
def test_a_bad_onnx_file_is_refused_in_one_line_by_load_and_by_the_cli(problem, tmp_path, capsys):
    from PIL import Image

    from convnet.cli import main

    path, message = bad_onnx_files(tmp_path)[problem]
    with pytest.raises(OnnxError) as error:
        load(path)
    assert re.match(f"{re.escape(str(path))}: .*{message}", str(error.value)) and "\n" not in str(error.value)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "photo.png")
    for command in (["predict", path, tmp_path / "photo.png"], ["evaluate", path]):
        code = main([str(argument) for argument in command])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (command, err)
        assert re.match(f"convnet: error: {re.escape(str(path))}: .*{message}", err), (command, err)
