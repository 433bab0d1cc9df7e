"""The benchmark runs end to end on a reduced case list and writes a sound report."""

import json
import subprocess
import sys

from convnet import bench
from convnet.cli import main
from conftest import requires_torch


@requires_torch  # the report's ratios need PyTorch's figures
def test_bench_ops_writes_table_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "CONV_CASES", [("conv 3->4 3x3 p1 8x8 N=4", 4, 3, 8, 8, 4, 3, 1, 1, 1)])
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--parts", "ops", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    assert "conv 3->4 3x3 p1 8x8 N=4 forward+backward" in names
    assert any(name.startswith("max_pool2d 2x2") for name in names)
    for row in report["rows"]:
        assert row["convnet"] > 0 and row["torch"] > 0
        assert abs(row["ratio"] - row["convnet"] / row["torch"]) < 1e-9
    assert report["machine"]["matmul_peak_gflops"] > 0
    assert report["command"] == f"convnet bench --quick --repeats 1 --parts ops --out {out}"
    assert "GFLOP/s" in capsys.readouterr().out


def test_the_report_records_the_command_that_repeats_it():
    parser = bench.argparse.ArgumentParser()
    bench.add_arguments(parser)
    for argv, expected in [([], "convnet bench"), (["--quick"], "convnet bench --quick"),
                           (["--no-torch", "--parts", "ops", "train", "--data", "/d", "--repeats", "7"],
                            "convnet bench --repeats 7 --parts ops train --data /d --no-torch")]:
        command = bench.command_line(parser.parse_args(argv))
        assert command == expected
        assert parser.parse_args(command.split()[2:]) == parser.parse_args(argv)


def test_memory_probe_reports_a_plausible_peak():
    """In a fresh process, as the bench runs it: this one's peak is whatever the earlier tests used."""
    probe = subprocess.run([sys.executable, "-m", "convnet.bench", "--probe-memory", "convnet", "--steps", "1",
                            "--batch-norm"], capture_output=True, text=True, check=True, timeout=120)
    assert 20 < float(probe.stdout.strip().splitlines()[-1]) < 1024
