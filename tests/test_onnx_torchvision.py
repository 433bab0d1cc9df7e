"""torchvision's CNNs, random weights, through torch's two ONNX exporters into convnet.onnx.load: a
subset small enough for CI (64 px, the width-reduced members, one exporter each, alternating) of
what benchmarks/onnx_torchvision.py runs at 224 px over every family (its table: docs/onnx.md).
Oracles: onnxruntime on the same file, and the torch model it was exported from (its output, and
the gradients of one training step).
"""

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")
from conftest import assert_close_relative_to_scale, requires_torch, torch, torchvision_models
from test_onnx_load import (
    assert_same_answers,
    check_against_onnx,
    evaluate,
    export,
    images,
    randomize_batch_norm,
    torch_output,
)

import convnet
import convnet.functional as F
from convnet.onnx.load import load

SHAPE = (3, 64, 64)


def torchvision_network(name, dtype=None):
    """torchvision's ``name``, random weights and batch-norm statistics, dropout and stochastic depth off."""
    torch.manual_seed(0)
    model = randomize_batch_norm(getattr(torchvision_models(), name)())
    for module in model.modules():
        if hasattr(module, "p") and isinstance(module.p, float):  # Dropout, StochasticDepth: random masks
            module.p = 0.0
    return model.to(dtype or torch.float32).eval()


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("name, exporter", [("shufflenet_v2_x0_5", "torchscript"), ("mobilenet_v3_small", "dynamo"),
                                            ("squeezenet1_1", "torchscript"), ("regnet_y_400mf", "dynamo"),
                                            ("efficientnet_b0", "torchscript")])
def test_torchvisions_networks_equal_onnxruntime_and_torch(name, exporter, tmp_path):
    model = torchvision_network(name)
    path = export(model, tmp_path / f"{name}.onnx", images(2, SHAPE), exporter, opset_version=18)
    x = images(2, SHAPE, seed=3)
    assert_same_answers(evaluate(check_against_onnx(path, x), x), torch_output(model, x))


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("name, exporter", [("shufflenet_v2_x0_5", "dynamo"), ("mobilenet_v3_small", "torchscript")])
def test_a_training_step_has_torchs_gradients(name, exporter, tmp_path):
    """In training mode, batch norm normalising with the batch's statistics: the TorchScript exporter
    writes BatchNormalization with training_mode=1 when asked to export training; the dynamo one
    writes its inference form whatever the mode, which, kept unfolded (optimize=False), loads as
    nn.BatchNorm2d and uses the batch's statistics once the model is in train(). In float64: two
    images' batch statistics make float32 gradients of a random network ill-conditioned. (Within
    1e-6, not 1e-12: ONNX's attributes are float32, so HardSigmoid's alpha is 1/6 rounded.)"""
    options = ({"training": torch.onnx.TrainingMode.TRAINING, "do_constant_folding": False, "opset_version": 18}
               if exporter == "torchscript" else {"optimize": False})
    x = images(2, SHAPE, seed=4).astype(np.float64)
    path = export(torchvision_network(name, torch.float64), tmp_path / f"{name}.onnx", x, exporter, **options)
    model, loaded = torchvision_network(name, torch.float64).train(), load(path).train()
    theirs, ours = torch.from_numpy(x).requires_grad_(), convnet.Tensor(x, requires_grad=True)
    labels = np.array([3, 7])
    torch.nn.functional.cross_entropy(model(theirs), torch.from_numpy(labels)).backward()
    F.cross_entropy(loaded(ours), labels).backward()
    assert_close_relative_to_scale(ours.grad.numpy(), theirs.grad.numpy(), 1e-6)
    torch_parameters = dict(model.named_parameters())
    compared = 0
    for key, parameter in loaded.named_parameters():
        if key in torch_parameters:
            expected = torch_parameters[key].grad.numpy()
            # A bias that another batch norm follows has no gradient in exact arithmetic: torch's is noise.
            assert np.abs(parameter.grad.numpy() - expected).max() <= 1e-6 * max(np.abs(expected).max(), 1e-3), key
            compared += 1
    assert compared == len(torch_parameters)  # every weight, batch norms' included, under torch's name
