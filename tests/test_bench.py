"""The benchmark runs end to end on a reduced case list and writes a sound report."""

import argparse
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from convnet import bench, manual_seed
from convnet.bench.case import CONTENDERS, Case
from convnet.bench.model_cases import inference_case
from convnet.bench.rounds import measure
from convnet.cli import main
from conftest import FixedTime, requires, requires_torch


@pytest.mark.slow
@requires_torch  # the report's ratios need PyTorch's figures
def test_bench_times_each_contender_in_its_own_process_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--parts", "ops", "--cases", "max_pool2d 2x2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row["name"] for row in report["rows"]] == ["max_pool2d 2x2 (N, 32, 28, 28) forward",
                                                       "max_pool2d 2x2 (N, 32, 28, 28) forward+backward"]
    for row in report["rows"]:
        assert set(row["figures"]) == {"convnet", "torch", "torch_cl"} and min(row["figures"].values()) > 0
        assert row["rounds"] == 3 and 0 <= row["quiet_rounds"] <= 3
        for name in ("torch", "torch_cl"):
            median, low, high = row["ratios"][name]
            assert low <= median <= high and low > 0
    assert report["machine"]["contenders"] == ["convnet", "torch", "torch_cl"]
    assert report["machine"]["matmul_peak_gflops"] > 0
    assert report["machine"]["numba"]["threading_layer"] in ("omp", "tbb", "workqueue")
    assert report["command"] == f"convnet bench --quick --parts ops --cases 'max_pool2d 2x2' --out {out}"
    assert "max_pool2d 2x2" in capsys.readouterr().out


def test_throughput_rows_invert_the_time_ratios():
    case = Case("train step tiny batch 128", build=None, images=128)
    step, throughput = measure(case, [FixedTime("convnet", 0.02), FixedTime("torch", 0.04)], rounds=3)
    assert step.figures == {"convnet": 20.0, "torch": 40.0} and step.ratios["torch"] == (0.5, 0.5, 0.5)
    assert throughput.name == "training throughput tiny batch 128" and throughput.unit == "img/s"
    assert throughput.figures == {"convnet": 6400.0, "torch": 3200.0} and throughput.ratios["torch"] == (2.0, 2.0, 2.0)


def test_a_contender_that_does_not_run_a_case_is_left_out_of_its_row():
    case = Case("max_pool2d tiny forward", build=None)
    row, = measure(case, [FixedTime("convnet", 0.02), FixedTime("onnxruntime", None)], rounds=3)
    assert row.figures == {"convnet": 20.0} and row.ratios == {}


@requires("onnx", "onnxruntime")
def test_onnxruntime_runs_the_exported_model_and_answers_as_convnet_does():
    images = np.random.default_rng(0).standard_normal((8, 1, 28, 28), dtype=np.float32)
    case = inference_case("reference CNN + BN", images)
    assert case.contenders == CONTENDERS
    answers = []
    for contender in ("convnet", "onnxruntime"):
        manual_seed(0)  # the same weights
        answers.append(case.build(contender)())
    np.testing.assert_array_equal(answers[1], answers[0])
    assert len(set(answers[0])) > 1  # not a constant answer


def test_the_report_records_the_command_that_repeats_it():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    for argv, expected in [([], "convnet bench"), (["--quick"], "convnet bench --quick"),
                           (["--no-torch", "--parts", "ops", "train", "--data", "/d", "--repeats", "7"],
                            "convnet bench --repeats 7 --parts ops train --data /d --no-torch"),
                           (["--cases", "conv 1->32"], "convnet bench --cases 'conv 1->32'"),
                           (["--parts", "convgrid", "--layout", "nchw"],
                            "convnet bench --parts convgrid --layout nchw")]:
        command = bench.command_line(parser.parse_args(argv))
        assert command == expected
        assert parser.parse_args(shlex.split(command)[2:]) == parser.parse_args(argv)


def test_a_round_count_below_one_is_refused_by_name(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    for text in ("0", "-2", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--repeats", text])
        assert f"argument --repeats: expected a positive integer, got '{text}'" in capsys.readouterr().err


@pytest.mark.slow
def test_memory_probe_reports_a_plausible_peak():
    """In a fresh process, as the bench runs it: this one's peak is whatever the earlier tests used."""
    probe = subprocess.run([sys.executable, "-m", "convnet.bench", "--probe-memory", "convnet", "--steps", "1",
                            "--batch-norm"], capture_output=True, text=True, check=True, timeout=120)
    assert 20 < float(probe.stdout.strip().splitlines()[-1]) < 1024
