"""convnet.onnx.export: the written graph computes what the model computes in evaluation mode.

Two independent oracles run every exported file: onnxruntime and onnx's own ReferenceEvaluator
(NumPy, written from the operator specs). Each must agree with convnet's forward pass within
1e-5 of the output's scale and pick the same top-1 class, for the zoo models (random weights,
non-trivial batch norm statistics), for hand-picked layer configurations and for
hypothesis-generated small CNNs. Failures are errors that name the module and its path.
"""

import os
import sys
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
from conftest import assert_close_relative_to_scale
from onnx.reference import ReferenceEvaluator

import convnet
from convnet import functional as F
from convnet import models, nn
from convnet.files import WriteError
from convnet.onnx import INSTALL, OnnxError, OnnxMissing
from convnet.onnx.export import DEFAULT_OPSET, MIN_OPSET, export

MNIST = (1, 1, 28, 28)


# ------------------------------------------------------------------ oracles
def randomize(model, seed=0):
    """Non-trivial batch norm: weights, biases and running statistics away from 1, 0, 0, 1 (the
    convolutions and linear layers are random already)."""
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = module.num_features
            if module.affine:
                module.weight.data[...] = rng.uniform(0.5, 1.5, c)
                module.bias.data[...] = rng.normal(0, 0.3, c)
            if module.track_running_stats:
                module.running_mean.data[...] = rng.normal(0, 0.3, c)
                module.running_var.data[...] = rng.uniform(0.5, 2.0, c)
    return model


def convnet_output(model, x):
    was_training = [(module, module.training) for module in model.modules()]
    model.eval()
    with convnet.no_grad():
        out = model(convnet.Tensor(x)).numpy()
    for module, training in was_training:
        object.__setattr__(module, "training", training)
    return out


def reference_evaluator_is_wrong(proto):
    """Where onnx's ReferenceEvaluator (1.23) computes something else than the spec says, or
    None: BatchNormalization before opset 14 (it mixes in the batch's statistics through the
    momentum attribute's default), grouped ConvTranspose (it slices the weight by output
    channels) and MaxPool with stride 1 padding height and width differently (it reads ONNX's
    pads [top, left, bottom, right] as [top, bottom, left, right])."""
    opset = proto.opset_import[0].version

    def attribute(node, name):
        return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)

    for node in proto.graph.node:
        if node.op_type == "BatchNormalization" and opset < 14:
            return "BatchNormalization before opset 14"
        if node.op_type == "ConvTranspose" and (attribute(node, "group") or 1) > 1:
            return "grouped ConvTranspose"
        pads = attribute(node, "pads") or [0, 0, 0, 0]
        if node.op_type == "MaxPool" and set(attribute(node, "strides")) == {1} and pads[0] != pads[1]:
            return "MaxPool with stride 1 and unequal pads"
    return None


def assert_same_top1(actual, expected, tolerance):
    """The same class wins in every row whose winner leads by more than the tolerance."""
    if expected.ndim != 2:
        return
    ranked = np.sort(expected, axis=1)
    clear = ranked[:, -1] - ranked[:, -2] > 2 * tolerance
    np.testing.assert_array_equal(actual.argmax(axis=1)[clear], expected.argmax(axis=1)[clear])


def check_oracles(model, path, x, strict_top1=True):
    """The file at ``path`` passes the full checker, and onnxruntime and the ReferenceEvaluator
    both compute ``model``'s evaluation output on ``x``. Returns the loaded ModelProto."""
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    expected = convnet_output(model, x)
    tolerance = 1e-5 * np.abs(expected).max()
    runs = {"onnxruntime": ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])}
    if not reference_evaluator_is_wrong(proto):
        runs["ReferenceEvaluator"] = ReferenceEvaluator(proto)
    for oracle, session in runs.items():
        (actual,) = session.run(None, {"input": x})
        assert actual.dtype == np.float32, oracle
        assert_close_relative_to_scale(actual, expected)
        if strict_top1 and expected.ndim == 2:
            np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1), err_msg=oracle)
        else:
            assert_same_top1(actual, expected, tolerance)
    return proto


def inputs(shape, batch=5, seed=0):
    return np.random.default_rng(seed).standard_normal((batch,) + tuple(shape[1:])).astype(np.float32)


# ------------------------------------------------------------------ the zoo
ZOO = {"lenet5": models.lenet5, "simple_cnn": models.simple_cnn, "reference_cnn": models.reference_cnn,
       "reference_cnn_without_bn": lambda: models.reference_cnn(batch_norm=False), "resnet8": models.resnet8,
       "lesson_network": models.lesson_network}


@pytest.mark.parametrize("opset", [MIN_OPSET, 17, DEFAULT_OPSET])
@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_runs_the_same_in_onnxruntime_and_the_reference_evaluator(name, opset, tmp_path):
    model = randomize(ZOO[name]())
    path = tmp_path / f"{name}.onnx"
    proto = export(model, path, MNIST, opset=opset)
    assert proto.opset_import[0].version == opset
    assert reference_evaluator_is_wrong(proto) is None or opset < 14  # both oracles run from opset 14
    check_oracles(model, path, inputs(MNIST, batch=5))


def test_names_follow_the_state_dict_and_the_module_paths(tmp_path):
    model = models.resnet8()
    proto = export(model, tmp_path / "resnet8.onnx")
    initializers = {tensor.name for tensor in proto.graph.initializer}
    state = {key for key in model.state_dict() if not key.endswith("num_batches_tracked")}
    assert initializers == state  # 'stem.0.weight', 'layers.1.downsample.1.running_var', ...
    nodes = {node.name: node.op_type for node in proto.graph.node}
    assert nodes["stem.0"] == "Conv" and nodes["stem.1"] == "BatchNormalization" and nodes["stem.2"] == "Relu"
    assert nodes["layers.1.conv1"] == "Conv" and nodes["layers.1.downsample.0"] == "Conv"
    # What BasicBlock's forward computes itself is named by its path and the Function; its output by its path.
    assert (nodes["layers.1.relu"], nodes["layers.1.add"], nodes["layers.1"]) == ("Relu", "Add", "Relu")
    add = next(node for node in proto.graph.node if node.name == "layers.1.add")
    assert list(add.input) == ["layers.1.bn2", "layers.1.downsample.1"]
    assert "layers.0.downsample.0" not in nodes  # the first block's shortcut is the identity
    assert (nodes["pool"], nodes["flatten"], nodes["fc"]) == ("GlobalAveragePool", "Flatten", "Gemm")
    fc = next(node for node in proto.graph.node if node.name == "fc")
    assert list(fc.input) == ["flatten", "fc.weight", "fc.bias"] and list(fc.output) == ["output"]
    assert [a.i for a in fc.attribute if a.name == "transB"] == [1]
    assert proto.producer_name == "convnet" and proto.producer_version == convnet.__version__
    assert "Sequential" in proto.doc_string and "(batch, 1, 28, 28)" in proto.doc_string
    assert proto.opset_import[0].version == DEFAULT_OPSET
    assert proto.graph.value_info  # every edge's shape, for Netron


def test_metadata_is_stored_as_the_models_properties_and_must_be_text(tmp_path):
    proto = export(models.lenet5(), tmp_path / "lenet5.onnx", metadata={"convnet.dataset": "fashion-mnist"})
    written = onnx.load(tmp_path / "lenet5.onnx")
    assert {entry.key: entry.value for entry in written.metadata_props} == {"convnet.dataset": "fashion-mnist"}
    assert proto.metadata_props == written.metadata_props
    with pytest.raises(OnnxError, match=r"^export: expected metadata to map text to text, got \{'mean': 0.5\}$"):
        export(models.lenet5(), tmp_path / "other.onnx", metadata={"mean": 0.5})


def test_lenet_exports_relu_then_max_pool_although_sequential_fuses_them(tmp_path):
    proto = export(models.lenet5(), tmp_path / "lenet5.onnx")
    assert [node.op_type for node in proto.graph.node] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert [node.name for node in proto.graph.node][:3] == ["0", "1", "2"]


def test_the_batch_dimension_is_dynamic(tmp_path):
    model = randomize(models.reference_cnn())
    path = tmp_path / "model.onnx"
    proto = export(model, path, input_shape=(3, 1, 28, 28))
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim] == ["batch", 10]
    for batch in (1, 5):
        check_oracles(model, path, inputs(MNIST, batch=batch, seed=batch))


def test_export_uses_evaluation_semantics_and_leaves_the_model_as_it_was(tmp_path):
    model = randomize(models.reference_cnn())
    model.train()
    model[1].eval()  # a mixed state, to be restored exactly
    flags = [module.training for module in model.modules()]
    state = model.state_dict()
    x = inputs(MNIST)
    path = tmp_path / "model.onnx"
    proto = export(nn.Sequential(model, nn.Dropout(0.5)), path)
    assert [module.training for module in model.modules()] == flags
    assert not any(module._forward_hooks or "forward" in vars(module) for module in model.modules())  # untraced
    for key, value in model.state_dict().items():  # the running statistics did not move
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert "Dropout" not in {node.op_type for node in proto.graph.node}
    check_oracles(model, path, x)  # batch norm with its running statistics


# ------------------------------------------------------------------ each layer's options
# name: (the layers, in a Sequential, or one module; the example input's shape)
LAYER_CASES = {
    "conv_same_padding_even_kernel": (lambda: [nn.Conv2d(2, 3, 4, padding="same")], (1, 2, 9, 8)),
    "conv_same_padding_dilated": (lambda: [nn.Conv2d(2, 4, (3, 2), padding="same", dilation=(2, 3))], (1, 2, 9, 9)),
    "conv_pairs_and_groups": (lambda: [nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                                 groups=2)], (1, 4, 9, 7)),
    "conv_depthwise_no_bias": (lambda: [nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)], (1, 3, 6, 6)),
    "conv_transpose_output_padding": (lambda: [nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)],
                                      (1, 4, 5, 5)),
    "conv_transpose_grouped_dilated": (lambda: [nn.ConvTranspose2d(4, 6, (2, 3), stride=(3, 2), padding=(1, 0),
                                                                   output_padding=(2, 1), groups=2, dilation=(1, 2))],
                                       (1, 4, 5, 4)),
    "conv_transpose_output_padding_beyond_stride": (lambda: [
        nn.ConvTranspose2d(2, 3, 3, padding=1, output_padding=(1, 2), dilation=3),
        nn.ConvTranspose2d(3, 2, 2, padding=(0, 1), output_padding=(1, 0), dilation=(2, 1), bias=False)],
        (1, 2, 4, 5)),
    "max_pool_floor_and_padding": (lambda: [nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(2)], (1, 2, 7, 7)),
    "avg_pool_counts_padding": (lambda: [nn.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1))], (1, 2, 7, 6)),
    "avg_pool_leaves_padding_out": (lambda: [nn.AvgPool2d(3, stride=2, padding=(1, 0), count_include_pad=False)],
                                    (1, 2, 7, 6)),
    "four_sided_padding": (lambda: [nn.Conv2d(2, 3, (2, 3), stride=(2, 1), padding=(0, 1, 2, 1)),
                                    nn.MaxPool2d(3, stride=1, padding=(1, 0, 0, 1)),
                                    nn.AvgPool2d(2, padding=(1, 0, 1, 1), count_include_pad=False),
                                    nn.AvgPool2d(3, stride=2, padding=(0, 1, 1, 0))], (1, 2, 9, 8)),
    "adaptive_avg_pool_dividing": (lambda: [nn.AdaptiveAvgPool2d((2, 3))], (1, 2, 8, 9)),
    "adaptive_avg_pool_global": (lambda: [nn.AdaptiveAvgPool2d(1), nn.Flatten()], (1, 3, 5, 7)),
    "activations": (lambda: [nn.LeakyReLU(0.2), nn.Conv2d(2, 2, 1), nn.Sigmoid(), nn.Conv2d(2, 2, 1), nn.Tanh(),
                             nn.Conv2d(2, 2, 1), nn.GELU(), nn.Conv2d(2, 2, 1), nn.GELU("tanh")], (1, 2, 4, 4)),
    "softmax_over_channels": (lambda: [nn.Conv2d(2, 3, 1), nn.Softmax(dim=1)], (1, 2, 3, 3)),
    "softmax_default_dim_and_log_softmax": (lambda: [nn.Softmax(), nn.Conv2d(2, 3, 1), nn.LogSoftmax(dim=1)],
                                            (1, 2, 3, 3)),
    "batch_norm_1d_after_linear": (lambda: [nn.Flatten(), nn.Linear(12, 5), nn.BatchNorm1d(5), nn.ReLU()],
                                   (1, 3, 2, 2)),
    "batch_norm_without_affine": (lambda: [nn.BatchNorm2d(3, affine=False)], (1, 3, 4, 4)),
    "batch_norm_with_batch_statistics": (lambda: [nn.BatchNorm2d(3, track_running_stats=False), nn.Flatten(),
                                                  nn.BatchNorm1d(48, track_running_stats=False, affine=False)],
                                         (2, 3, 4, 4)),  # batch statistics need more than one value
    "linear_on_the_last_dimension": (lambda: [nn.Linear(4, 3), nn.Linear(3, 2, bias=False)], (1, 2, 5, 4)),
    "flatten_inner_dimensions": (lambda: [nn.Flatten(2, 3), nn.Softmax(dim=-1), nn.Flatten(1, 2)], (1, 2, 3, 4)),
    "identity_dropout_and_nesting": (lambda: [nn.Identity(), nn.Sequential(nn.Dropout(0.9), nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Identity()))], (1, 1, 5, 5)),
    "basic_block_identity_shortcut": (lambda: nn.BasicBlock(3, 3), (1, 3, 6, 6)),
    "basic_block_downsample": (lambda: nn.BasicBlock(2, 4, stride=2), (1, 2, 7, 7)),
    "single_layer": (lambda: nn.Conv2d(1, 2, 3), (1, 1, 5, 5)),
    "nothing_at_all": (lambda: [nn.Dropout()], (1, 1, 2, 2)),
}


@pytest.mark.parametrize("opset", [MIN_OPSET, 19, DEFAULT_OPSET])
@pytest.mark.parametrize("case", LAYER_CASES)
def test_each_layer_option_matches_both_oracles(case, opset, tmp_path):
    build, shape = LAYER_CASES[case]
    model = build()
    model = randomize(nn.Sequential(*model) if isinstance(model, list) else model, seed=len(case))
    path = tmp_path / f"{case}.onnx"
    export(model, path, shape, opset=opset)
    check_oracles(model, path, inputs(shape, batch=3), strict_top1=False)


def test_gelu_is_one_node_from_opset_20_and_its_formula_before(tmp_path):
    for opset, approximate, ops in [(19, "none", {"Erf"}), (19, "tanh", {"Tanh"}), (20, "tanh", {"Gelu"})]:
        proto = export(nn.GELU(approximate), tmp_path / "gelu.onnx", (1, 1, 2, 2), opset=opset)
        found = {node.op_type for node in proto.graph.node}
        assert ops <= found and ("Gelu" in found) == (opset >= 20)
        if opset >= 20:
            assert [a.s for a in proto.graph.node[0].attribute if a.name == "approximate"] == [approximate.encode()]


def test_a_single_layer_keeps_its_state_dict_names(tmp_path):
    proto = export(nn.Conv2d(1, 2, 3), tmp_path / "conv.onnx", (1, 1, 5, 5))
    assert [tensor.name for tensor in proto.graph.initializer] == ["weight", "bias"]
    assert [(node.name, list(node.output)) for node in proto.graph.node] == [("Conv", ["output"])]


# ------------------------------------------------------------------ hypothesis: small CNNs
ACTIVATIONS = [nn.ReLU, lambda: nn.LeakyReLU(0.1), nn.Sigmoid, nn.Tanh, nn.GELU, lambda: nn.GELU("tanh"),
               nn.Identity, lambda: nn.Dropout(0.3)]


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def pairs(draw, low, high):
    return draw(st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high))))


def as_pair(value):
    return value if isinstance(value, tuple) else (value, value)


@st.composite
def stages(draw, channels, size):
    """One stage: a convolution (any stride, padding, dilation, groups), a transposed
    convolution or a BasicBlock, then maybe batch norm, an activation and maybe a pool.
    Returns (layers, channels, size) with the sizes the stage leaves."""
    kind = draw(st.sampled_from(["conv", "conv", "conv", "transpose", "block"]))
    if kind == "block":
        out, stride = draw(st.integers(1, 4)), draw(st.sampled_from([1, 2]))
        return [nn.BasicBlock(channels, out, stride=stride)], out, tuple((s - 1) // stride + 1 for s in size)
    groups = draw(st.sampled_from(divisors(channels)))
    out = groups * draw(st.integers(1, 3))
    kernel, stride, dilation = as_pair(draw(pairs(1, 3))), as_pair(draw(pairs(1, 2))), as_pair(draw(pairs(1, 2)))
    if kind == "conv":
        padding = draw(st.sampled_from(["same", "valid"])) if stride == (1, 1) and draw(st.booleans()) else \
            as_pair(draw(pairs(0, 2)))
        layer = nn.Conv2d(channels, out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                          bias=draw(st.booleans()))
        top, bottom, left, right = layer.resolved_padding
        size = ((size[0] + top + bottom - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
                (size[1] + left + right - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)
    else:
        padding = as_pair(draw(pairs(0, 1)))
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        layer = nn.ConvTranspose2d(channels, out, kernel, stride=stride, padding=padding,
                                   output_padding=output_padding, groups=groups, dilation=dilation)
        size = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                     for n, s, p, d, k, o in zip(size, stride, padding, dilation, kernel, output_padding))
    layers = [layer] + ([nn.BatchNorm2d(out)] if draw(st.booleans()) else [])
    layers.append(draw(st.sampled_from(ACTIVATIONS))())
    if min(size) >= 1 and draw(st.booleans()):
        kernel = as_pair(draw(pairs(1, 3)))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        stride = draw(st.one_of(st.none(), pairs(1, 2)))
        layers.append(draw(st.sampled_from([nn.MaxPool2d, nn.AvgPool2d]))(kernel, stride=stride, padding=padding))
        stride = kernel if stride is None else as_pair(stride)
        size = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(size, padding, kernel, stride))
    return layers, out, size


@st.composite
def small_cnns(draw):
    """(model, input_shape): one to three stages, each maybe its own nested Sequential, then a
    head: global or dividing adaptive pooling or a flatten, a linear layer and maybe a softmax;
    or no head (the output is feature maps)."""
    channels, size = draw(st.integers(1, 4)), (draw(st.integers(3, 10)), draw(st.integers(3, 10)))
    shape, body = (1, channels) + size, []
    for _ in range(draw(st.integers(1, 3))):
        layers, channels, size = draw(stages(channels, size))
        if not 1 <= min(size) or max(size) > 24:
            reject()
        body.extend([nn.Sequential(*layers)] if draw(st.booleans()) else layers)
    head = draw(st.sampled_from(["global", "adaptive", "flatten", "none"]))
    if head != "none":
        bins = (1, 1) if head == "global" else size if head == "flatten" else \
            (draw(st.sampled_from(divisors(size[0]))), draw(st.sampled_from(divisors(size[1]))))
        pool = [] if head == "flatten" else [nn.AdaptiveAvgPool2d(bins)]
        classes = draw(st.integers(2, 5))
        body += pool + [nn.Flatten(), nn.Linear(channels * bins[0] * bins[1], classes)]
        body += draw(st.sampled_from([[], [nn.Softmax(dim=1)], [nn.LogSoftmax(dim=1)]]))
    return nn.Sequential(*body), shape


@given(cnn=small_cnns(), opset=st.sampled_from([MIN_OPSET, 16, 18, 19, 20, DEFAULT_OPSET]),
       batch=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_small_random_cnns_match_both_oracles(cnn, opset, batch, seed, tmp_path_factory):
    model, shape = cnn
    path = tmp_path_factory.mktemp("cnn") / "model.onnx"
    export(randomize(model, seed), path, shape, opset=opset)
    check_oracles(model, path, inputs(shape, batch=batch, seed=seed), strict_top1=False)


# ------------------------------------------------------------------ opsets
def every_op():
    """One of every node the exporter writes (GELU as Gelu, or Erf and Tanh before opset 20)."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2),
        nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2), nn.GELU(),
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), nn.GELU("tanh"),
        nn.BatchNorm2d(6, track_running_stats=False), nn.Sigmoid(), nn.MaxPool2d(3, stride=2, padding=1), nn.Tanh(),
        nn.AvgPool2d(3, stride=1, padding=1), nn.AdaptiveAvgPool2d(2), nn.Linear(2, 5), nn.Flatten(2, 3),
        nn.Softmax(dim=1), nn.Flatten(), nn.Linear(60, 7), nn.BatchNorm1d(7), nn.LogSoftmax(dim=-1), nn.Dropout(),
        nn.Identity())


@pytest.mark.parametrize("opset", range(MIN_OPSET, DEFAULT_OPSET + 1))
def test_onnxruntime_runs_every_node_at_every_supported_opset(opset, tmp_path):
    model = randomize(every_op())
    path = tmp_path / "every.onnx"
    export(model, path, (1, 3, 16, 16), opset=opset)
    check_oracles(model, path, inputs((1, 3, 16, 16), batch=2), strict_top1=False)


def test_the_default_opset_is_the_newest_that_onnxruntime_runs(tmp_path):
    """A tripwire: when onnxruntime runs a newer opset, check each node's newest version there
    and raise DEFAULT_OPSET (tests above then run every node at it)."""
    proto = export(nn.ReLU(), tmp_path / "relu.onnx", (1, 1, 2, 2))
    assert proto.opset_import[0].version == DEFAULT_OPSET <= onnx.defs.onnx_opset_version()
    proto.opset_import[0].version = DEFAULT_OPSET + 1
    with pytest.raises(Exception, match="opset"):
        ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, DEFAULT_OPSET + 1, 0, "17", 17.0, True])
def test_an_opset_outside_the_supported_range_is_refused(opset, tmp_path):
    with pytest.raises(OnnxError, match=rf"export: expected opset between {MIN_OPSET} and {DEFAULT_OPSET}, got "):
        export(models.lenet5(), tmp_path / "model.onnx", opset=opset)
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------ forwards of their own, traced
class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


class ClippedReLU(nn.ReLU):  # computes something else than a ReLU: its own forward is written
    def forward(self, x):
        return F.relu(x) - F.relu(x - 6)


class NamedConv(nn.Conv2d):  # the same forward: exported as the Conv2d it is
    pass


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x)


def test_modules_with_forwards_of_their_own_are_traced(tmp_path):
    model = nn.Sequential(NamedConv(1, 4, 3), Doubler(), nn.Sequential(nn.ReLU(), ClippedReLU(), nn.MaxPool2d(2)),
                          nn.BasicBlock(4, 4), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    model[3].bn2 = Doubler()
    proto = export(randomize(model), tmp_path / "model.onnx")
    check_oracles(model, tmp_path / "model.onnx", inputs(MNIST))
    nodes = {node.name: node.op_type for node in proto.graph.node}
    assert (nodes["0"], nodes["1"], nodes["2.1.relu"], nodes["2.1.sub"], nodes["2.1"]) == (
        "Conv", "Mul", "Relu", "Sub", "Sub")
    assert nodes["3.bn2"] == "Mul" and nodes["3.add"] == "Add" and nodes["3"] == "Relu"
    assert [n.op_type for n in export(Net(), tmp_path / "net.onnx").graph.node] == ["Conv"]


class Everything(nn.Module):
    """Every Function the exporter writes, called functionally in a forward of its own, and the
    layers whose arguments only they keep (Hardtanh, ReLU6, LayerNorm, LayerNorm2d)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.weight = nn.Parameter(convnet.randn(6, 3, 2, 2).numpy() * 0.3)
        self.scale = nn.Parameter(np.linspace(0.5, 1.5, 6, dtype=np.float32).reshape(6, 1, 1))
        self.norm, self.norm2d = nn.LayerNorm(5, eps=1e-3), nn.LayerNorm2d(6)
        self.layers = nn.Sequential(nn.Hardtanh(-0.5, 0.7), nn.ReLU6())
        self.fc = nn.Parameter(convnet.randn(4, 30).numpy() * 0.3)

    def forward(self, x):                                                 # x: (N, 4, 8, 8)
        y = 1.5 - self.conv(x) * self.scale + 0.1                         # Sub, Mul, Add: broadcasts, numbers
        a, b = y.chunk(2, dim=1)                                          # Narrow: (N, 3, 8, 8) each
        y = convnet.cat([F.hardswish(b), F.silu(a) / 2, F.hardsigmoid(a - b)], dim=1)
        y = F.channel_shuffle(F.leaky_relu(y, 0.2), 3).split([6, 3], dim=1)[0]
        y = self.norm2d(F.gelu(y) + F.gelu(y, "tanh") + F.tanh(y) * F.sigmoid(y))
        p = F.relu_max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)  # (N, 6, 5, 5)
        weight = self.weight.permute(0, 1, 3, 2).reshape(6, 3, 2, 2)      # a weight computed in the forward
        z = F.conv2d(F.relu(self.layers(p)) + p, weight, groups=2, padding=1)             # (N, 6, 6, 6)
        z = F.conv_transpose2d(z, self.weight, stride=2, padding=1, output_padding=1, groups=2)  # 11 x 11
        z = F.max_pool2d(z, 2, ceil_mode=True)                                              # 6 x 6
        z = F.avg_pool2d(z, 2, stride=1, padding=1) + F.avg_pool2d(z, 2, 1, 1, count_include_pad=False)  # 7 x 7
        s = convnet.stack([z.mean(axis=(2, 3)), z.max(axis=3).sum(axis=2), z.min(axis=(2, 3)),
                           F.erf(z).abs().sqrt().exp().log().mean(axis=(2, 3)),
                           F.adaptive_avg_pool2d(z, 1).flatten(1)], axis=2)                 # (N, 6, 5)
        ends = s[:, :, 0].reshape(s.shape[0], 6, 1) * s[:, :, -1].reshape(s.shape[0], 6, 1)   # Index: integers
        s = convnet.cat([ends, s[:, :, 1:]], dim=2) + convnet.cat([s[:, ::2], s[:, 1::2]], dim=1)  # slices, steps
        t = self.norm(s.clip(-2, None) ** 2).permute(0, 2, 1).flatten(1)                  # (N, 30)
        logits = F.linear(-t, self.fc) + (t @ self.fc.T) * 0.5
        return F.log_softmax(logits, dim=1) + F.softmax(logits, dim=1)


@pytest.mark.parametrize("opset", [MIN_OPSET, 17, 19, DEFAULT_OPSET])
def test_every_function_in_a_forward_of_its_own_matches_both_oracles(opset, tmp_path):
    convnet.manual_seed(3)
    model = Everything()
    proto = export(model, tmp_path / "everything.onnx", (1, 4, 8, 8), opset=opset)
    check_oracles(model, tmp_path / "everything.onnx", inputs((1, 4, 8, 8), batch=3), strict_top1=False)
    found = {node.op_type for node in proto.graph.node}
    assert {"Slice", "Concat", "Transpose", "Reshape", "ReduceMax", "ReduceMin", "ReduceSum", "Clip", "Pow",
            "ConvTranspose", "MatMul", "Gemm", "Unsqueeze", "HardSigmoid", "Squeeze"} <= found
    assert ("LayerNormalization" in found) == (opset >= 17) and ("HardSwish" in found) == (opset >= 14)
    names = {tensor.name for tensor in proto.graph.initializer}
    assert {"weight", "scale", "fc", "conv.weight", "norm.weight", "norm2d.bias"} <= names


class Cube(convnet.Function):
    def forward(self, x):
        return x ** 3

    def backward(self, grad):
        raise NotImplementedError


class Cubed(nn.Module):
    def forward(self, x):
        return Cube.apply(x) + 1


class Clamped(nn.Module):  # hardtanh's bounds and layer_norm's eps are kept by their layers only
    def forward(self, x):
        return F.layer_norm(F.hardtanh(x, 0, 2), (3,))


def test_every_operation_without_an_onnx_form_is_named_with_its_path_in_one_error(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), Cubed(), nn.Sequential(nn.ReLU(), Cubed()), nn.BasicBlock(4, 4),
                          nn.Conv2d(4, 3, 24), Clamped(), nn.Flatten(), nn.Linear(27, 10))
    model[3].bn2 = Cubed()
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous export")
    with pytest.raises(OnnxError) as error:
        export(model, path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cannot export Sequential to ONNX; 4 modules at fault: 1: cannot export Cube (run by "
                              "Cubed) to ONNX; 2.1: cannot export Cube (run by Cubed) to ONNX; 3.bn2: cannot export "
                              "Cube (run by Cubed) to ONNX; 5: cannot export Hardtanh (run by Clamped) to ONNX; 5: "
                              "cannot export LayerNorm (run by Clamped) to ONNX (exportable: the layers ")
    assert "Conv2d" in message.split("(exportable: ")[1] and "ChannelShuffle" in message.split("operations ")[1]
    assert path.read_bytes() == b"the previous export"  # nothing written, nothing lost
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_a_model_that_returns_no_tensor_or_a_constant_is_refused(tmp_path):
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Constant(nn.Module):
        def forward(self, x):
            return convnet.ones(1, 2)

    with pytest.raises(OnnxError, match=r"^export: expected the model to return one Tensor, got tuple$"):
        export(Pair(), tmp_path / "model.onnx")
    with pytest.raises(OnnxError, match=r"^export: the model's output does not depend on its input"):
        export(Constant(), tmp_path / "model.onnx")
    assert not os.listdir(tmp_path)


def test_an_inference_only_copy_is_refused_naming_its_first_fused_layer(tmp_path):
    fused = nn.fuse_for_inference(models.reference_cnn().eval())
    with pytest.raises(OnnxError, match=r"^export: cannot trace 0 \(FusedConv2d\(1, 32, kernel_size=\(3, 3\)\)\): "
                                        r"fuse_for_inference's copies run only without gradients"):
        export(fused, tmp_path / "model.onnx")


def test_indexing_other_than_slices_and_integers_is_refused(tmp_path):
    class Picked(nn.Module):
        def forward(self, x):
            return x[:, np.array([0, 0])] + x[:, :, ::-1]

    with pytest.raises(OnnxError, match=r"at fault: model: cannot export indexing with \(slice\(None, None, None\), "
                                        r"array\(\[0, 0\]\)\) to ONNX: only slices with positive steps and integers "
                                        r"are written; model: cannot export indexing with .*slice\(None, None, -1\)"):
        export(Picked(), tmp_path / "model.onnx", (1, 1, 3, 3))


def test_a_reshape_that_changes_the_batch_is_refused(tmp_path):
    class Merge(nn.Module):
        def forward(self, x):
            return x.reshape(-1)

    with pytest.raises(OnnxError, match=r"at fault: model: cannot export reshape \(2, 1, 3, 3\) -> \(18,\) to ONNX: "
                                        r"it changes the first \(batch\) dimension"):
        export(Merge(), tmp_path / "model.onnx", (2, 1, 3, 3))


@pytest.mark.parametrize("shape, bins", [((1, 2, 10, 10), 3), ((1, 3, 1, 2), 7), ((1, 1, 5, 4), (2, 3))])
def test_adaptive_pooling_into_uneven_bins_is_two_products(shape, bins, tmp_path):
    model = nn.Sequential(nn.Conv2d(shape[1], 2, 1), nn.Sequential(nn.AdaptiveAvgPool2d(bins)))
    proto = export(model, tmp_path / "model.onnx", shape)
    assert [node.op_type for node in proto.graph.node] == ["Conv", "MatMul", "MatMul"]
    check_oracles(model, tmp_path / "model.onnx", inputs(shape, batch=2), strict_top1=False)


def test_a_flatten_that_merges_the_batch_is_refused(tmp_path):
    with pytest.raises(OnnxError, match=r"at fault: 0: cannot export Flatten\(start_dim=0, end_dim=-1\) to ONNX: it merges "
                                        r"the batch dimension"):
        export(nn.Sequential(nn.Flatten(0)), tmp_path / "model.onnx", (2, 1, 3, 3))


@pytest.mark.parametrize("input_shape, message", [
    ((1, 28, 28), r"expected input_shape to be 4 positive ints \(N, C, H, W\), got \(1, 28, 28\)"),
    ((0, 1, 28, 28), r"got \(0, 1, 28, 28\)"),
    ((1, 1, 28.0, 28), r"got \(1, 1, 28.0, 28\)"),
    ((1, True, 28, 28), r"got \(1, True, 28, 28\)"),
    ("1x1x28x28", r"got '1x1x28x28'"),
    ((1, 3, 28, 28), (r"input_shape=\(1, 3, 28, 28\) has 3 channels, but the model's first layer 0 "
                      r"\(Conv2d\(1, 6, kernel_size=5\)\) takes 1")),
    ((1, 1, 8, 8), r"the model cannot run on input_shape=\(1, 1, 8, 8\): at 3, Conv2d\(6, 16, kernel_size=5\): "),
    ((1, 1, 32, 32), (r"the model cannot run on input_shape=\(1, 1, 32, 32\): at 7, Linear\(in_features=400, "
                      r"out_features=120, bias=True\): expected input of shape \(\*, 400\), got \(1, 576\)")),
])
def test_a_bad_input_shape_is_refused_naming_the_layer(input_shape, message, tmp_path):
    with pytest.raises(OnnxError, match=message):
        export(models.lenet5(), tmp_path / "model.onnx", input_shape)
    assert not os.listdir(tmp_path)


def test_the_first_layer_that_reads_channels_is_checked_through_containers(tmp_path):
    with pytest.raises(OnnxError, match=r"first layer layers.0.conv1 \(Conv2d\(3, 8, kernel_size=3\)\) takes 3"):
        export(nn.Sequential(OrderedDict(layers=nn.Sequential(nn.BasicBlock(3, 8)))), tmp_path / "m.onnx")


def test_the_folder_must_exist_and_the_path_must_be_a_file(tmp_path):
    with pytest.raises(WriteError, match=r"the folder .*missing does not exist"):
        export(models.lenet5(), tmp_path / "missing" / "model.onnx")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(WriteError, match="it is a folder"):
        export(models.lenet5(), tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder this user cannot write to")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="cannot write to"):
            export(models.lenet5(), folder / "model.onnx")
    finally:
        folder.chmod(0o700)


def test_a_model_that_is_not_a_convnet_module_is_refused(tmp_path):
    with pytest.raises(TypeError, match="export: expected model to be a convnet nn.Module, got list"):
        export([nn.ReLU()], tmp_path / "model.onnx")


def test_without_onnx_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(OnnxMissing, match=INSTALL.replace("[", r"\[").replace("]", r"\]")):
        export(models.lenet5(), tmp_path / "model.onnx")
