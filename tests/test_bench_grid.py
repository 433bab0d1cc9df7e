"""The bench's convolution grid, its worst-case line, the memory layout convnet is given, and the
FLOPs counted from layers (against hand computations)."""

import json

import numpy as np
import pytest

from convnet import nn
from convnet.bench.case import LAYOUTS, Case, in_layout
from convnet.bench.flops import conv_flops, layer_flops, training_step_flops, weighted_layer_flops
from convnet.bench.grid_cases import CONV_GRID, POOL_GRID, conv_name, grid_cases
from convnet.bench.model_cases import resnet18, training_case
from convnet.bench.op_cases import op_case
from convnet.bench.report import format_grid_summary, format_table, grid_summary
from convnet.bench.rounds import Row, measure
from convnet.cli import main
from convnet.kernels.convolution import is_channels_last
from convnet.tensor import Function
from conftest import FixedTime, requires_torch


def test_every_grid_shape_is_a_valid_convolution_or_pooling():
    for n, c, h, w, o, k, s, p, g in CONV_GRID:
        assert c % g == 0 and o % g == 0 and 0 <= p < k and s in (1, 2), conv_name(n, c, h, w, o, k, s, p, g)
        assert (h + 2 * p - k) // s + 1 >= 1 and (w + 2 * p - k) // s + 1 >= 1
    for n, c, h, w, k, s, p in POOL_GRID:
        assert 2 * p <= k and (h + 2 * p - k) // s + 1 >= 1  # PyTorch's rule: padding at most half the window


def test_the_grid_covers_every_axis_of_the_issue_and_the_issues_own_shapes():
    kernels, strides = {shape[5] for shape in CONV_GRID}, {shape[6] for shape in CONV_GRID}
    assert {1, 3, 5, 7, 10} <= kernels and strides == {1, 2}
    batches, channels = [shape[0] for shape in CONV_GRID], [shape[1] for shape in CONV_GRID]
    sides = [shape[2] for shape in CONV_GRID]
    assert min(batches) == 1 and max(batches) == 128 and min(channels) == 1 and max(channels) >= 256
    assert min(sides) == 7 and max(sides) >= 224
    issue = [(64, 16, 24, 24, 32, 5, 1, 2), (128, 64, 7, 7, 128, 3, 1, 1), (16, 3, 64, 64, 16, 7, 2, 3),
             (32, 48, 20, 20, 96, 3, 2, 0), (8, 3, 224, 224, 64, 7, 2, 3), (2, 1, 256, 256, 100, 10, 1, 0)]
    assert set(issue) <= {shape[:8] for shape in CONV_GRID}
    resnet18_body = {(16, 64 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i, 64 * 2 ** i, 3, 1, 1) for i in range(4)}
    assert resnet18_body <= {shape[:8] for shape in CONV_GRID}
    assert {(k, s) for n, c, h, w, k, s, p in POOL_GRID} == {(2, 2), (3, 2)}
    assert 25 <= len(CONV_GRID) <= 40


def test_grid_cases_are_named_uniquely_and_quick_divides_the_batch_by_four():
    cases, quick = grid_cases(False), grid_cases(True)
    assert len(cases) == 2 * (len(CONV_GRID) + len(POOL_GRID)) == len({case.name for case in cases})
    assert cases[0].name == "conv 64x16x24x24->32 5x5 p2 forward"
    assert quick[0].name == "conv 16x16x24x24->32 5x5 p2 forward"
    assert "conv 1x3x224x224->64 7x7 s2 p3 forward" in {case.name for case in quick}  # batch 1 stays 1
    forward, backward = cases[0], cases[1]
    assert backward.name.endswith("forward+backward")
    assert forward.flops == 2 * 64 * 32 * 24 * 24 * 16 * 25 and backward.flops == 3 * forward.flops


def row(name, ratio, against="torch_cl"):
    return Row(name, "ms", {"convnet": 1.0}, {against: (ratio, ratio * 0.9, ratio * 1.1)})


def test_the_grid_summary_names_the_worst_case_and_counts_those_at_or_under_one():
    rows = [row("a", 0.8), row("b", 1.7), row("c", 1.0), row("d", 1.2), row("e", 3.0, against="torch")]
    summary = grid_summary(rows)
    assert summary == {"against": "torch_cl", "worst": "b", "worst_ratio": 1.7, "median_ratio": 1.1,
                       "at_or_under_1": 2, "cases": 4}
    assert format_grid_summary(summary) == ("grid against torch_cl: worst b 1.70x; median 1.10x; "
                                            "2 of 4 cases at or under 1.0x")
    assert grid_summary([row("e", 3.0, against="torch")]) is None  # --no-torch: nothing to compare


def test_in_layout_keeps_the_values_and_gives_the_memory_order_asked_for():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5), dtype=np.float32)
    for layout in LAYOUTS:
        np.testing.assert_array_equal(in_layout(x, layout), x)
    assert is_channels_last(in_layout(x, "channels_last")) and not is_channels_last(x)
    assert in_layout(x, "nchw").flags.c_contiguous
    assert in_layout(x, "channel_major").transpose(1, 0, 2, 3).flags.c_contiguous
    labels = np.arange(3)
    assert in_layout(labels, "channels_last") is labels


class Probe(Function):
    """Identity that records the memory order of its input and of the gradient it receives; its
    output keeps the input's memory order."""
    seen = {}

    def forward(self, x):
        Probe.seen["input"] = x
        return np.array(x, copy=True, order="K")

    def backward(self, grad):
        Probe.seen["grad"] = grad
        return (grad,)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_convnet_gets_its_input_in_the_layout_asked_for_and_a_gradient_in_its_outputs(layout):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5), dtype=np.float32)
    case = op_case("probe", Probe.apply, None, [x], True, True, layout=layout)
    case.build("convnet")()
    seen, expected = Probe.seen, in_layout(x, layout)
    np.testing.assert_array_equal(seen["input"], x)
    assert seen["input"].strides == expected.strides and seen["grad"].strides == expected.strides
    np.testing.assert_array_equal(seen["grad"], np.ones_like(x))


def test_step_and_inference_rows_give_convnets_gflops_and_share_of_the_peak():
    contenders = [FixedTime("convnet", 0.5), FixedTime("torch_cl", 0.25)]
    step, _ = measure(Case("train step tiny batch 10", None, images=10, flops=40 * 10 ** 9), contenders, 3)
    inference, = measure(Case("inference tiny batch 10", None, images=10, flops=40 * 10 ** 9), contenders, 3)
    assert step.flops == 40 * 10 ** 9 and inference.flops == 4 * 10 ** 9  # per call; per image
    table = format_table([step, inference], ["convnet", "torch_cl"], peak=100.0).splitlines()
    assert table[2].endswith("80 GFLOP/s (80% of peak)")  # 40 GFLOP in 0.5 s
    assert table[3].endswith("80 GFLOP/s (80% of peak)")  # 4 GFLOP per image at 20 img/s


def test_conv_flops_against_hand_counts():
    assert conv_flops(2, 3, 5, 5, 4, 3, padding=1) == 2 * 2 * 4 * (5 * 5) * 3 * 9 == 10800
    assert conv_flops(2, 3, 7, 7, 4, 3, stride=2) == 2 * 2 * 4 * (3 * 3) * 3 * 9 == 3888
    assert conv_flops(1, 8, 6, 6, 8, 3, padding=1, groups=8) == 2 * 8 * 36 * 1 * 9
    layer = nn.Conv2d(3, 4, 3, stride=2)
    assert layer_flops(layer, layer(np.zeros((2, 3, 7, 7), np.float32)).shape) == 3888
    assert layer_flops(nn.Linear(5, 6), (7, 6)) == 2 * 7 * 5 * 6 and layer_flops(nn.ReLU(), (7, 6)) == 0


def test_a_training_steps_flops_against_a_hand_count():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    conv, linear = 2 * 5 * 2 * (4 * 4) * 1 * 9, 2 * 5 * 32 * 3
    assert weighted_layer_flops(model, (5, 1, 6, 6)) == [conv, linear]
    assert training_step_flops([conv, linear]) == 3 * (conv + linear) - conv == 8640
    # the reference CNN per image: conv 1->32 3x3 at 28x28, conv 32->64 3x3 at 14x14, 3136->128, 128->10
    layers = [2 * 32 * 784 * 9, 2 * 64 * 196 * 32 * 9, 2 * 3136 * 128, 2 * 128 * 10]
    images, labels = np.zeros((256, 1, 28, 28), np.float32), np.zeros(256, np.int64)
    assert training_case("reference CNN", images, labels).flops == 128 * (3 * sum(layers) - layers[0])


def test_resnet18_is_torchvisions_in_parameters_and_flops():
    model = resnet18(nn)
    assert sum(p.data.size for p in model.parameters()) == 11_689_512  # torchvision's documented count
    stem = conv_flops(1, 3, 224, 224, 64, 7, 2, 3)
    body = sum(2 * conv_flops(1, 64 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i, 64 * 2 ** i, 3, 1, 1) for i in range(4))
    body += sum(conv_flops(1, 64 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i, 128 * 2 ** i, 3, 2, 1)  # first of a stage
                + conv_flops(1, 128 * 2 ** i, 28 // 2 ** i, 28 // 2 ** i, 128 * 2 ** i, 3, 1, 1)
                + conv_flops(1, 64 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i, 128 * 2 ** i, 1, 2, 0) for i in range(3))
    body += 2 * conv_flops(1, 64, 56, 56, 64, 3, 1, 1)  # layer1's first block (no downsampling)
    counts = weighted_layer_flops(model, (2, 3, 224, 224))
    assert len(counts) == 1 + 16 + 3 + 1 and counts[0] == 2 * stem
    assert sum(counts) == 2 * (stem + body + 2 * 512 * 1000)


@requires_torch
def test_resnet18_has_the_same_keys_and_shapes_in_pytorch():
    import torch

    from convnet.bench.model_cases import TorchLayers
    def shapes(state):
        return {key: tuple(value.shape) for key, value in state.items() if not key.endswith("num_batches_tracked")}
    ours = shapes(resnet18(nn).state_dict())
    assert ours == shapes(resnet18(TorchLayers(torch)).state_dict())
    assert ours["layer2.0.downsample.0.weight"] == (128, 64, 1, 1) and ours["fc.weight"] == (1000, 512)


@pytest.mark.slow
@requires_torch
def test_a_quick_grid_run_of_one_case_ends_with_its_worst_case_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--parts", "convgrid", "--cases", "conv 8x48x20x20->96", "--repeats", "1",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names == ["conv 8x48x20x20->96 3x3 s2 forward", "conv 8x48x20x20->96 3x3 s2 forward+backward"]
    assert report["machine"]["convnet_layout"] == "channels_last" and report["rows"][1]["rounds"] == 1
    worst = max(report["rows"], key=lambda r: r["ratios"]["torch_cl"][0])
    assert report["grid_summary"]["worst"] == worst["name"] and report["grid_summary"]["cases"] == 2
    assert f"grid against torch_cl: worst {worst['name']}" in capsys.readouterr().out
