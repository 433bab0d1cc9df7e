"""The benchmark runs end to end on a reduced case list and writes a sound report."""

import json

from convnet import bench
from convnet.cli import main


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
    assert "GFLOP/s" in capsys.readouterr().out


def test_memory_probe_reports_a_plausible_peak(capsys):
    bench.probe_memory("convnet", steps=1, batch_norm=True)
    peak = float(capsys.readouterr().out)
    assert 20 < peak < 1024
