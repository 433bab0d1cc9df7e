"""Test accuracy against wall-clock minutes: the minutes to reach an accuracy (hand-computed), the
picture's lines read back from matplotlib, the run folder's picture and step log, the live page's
chart, and benchmarks/accuracy_minutes.py on run folders written by convnet's own checkpoint writer."""

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib import pyplot as plt

from convnet import checkpoint, nn, pretrained, watch
from convnet.cli import main
from convnet.errors import InvalidValue
from convnet.reports import RunFolder, StepLog
from convnet.run_folder import ACCURACY_MINUTES, REPORTS, STEPS, read_steps, report_file
from convnet.viz.training import (ACCURACY_TARGETS, UnknownMinutes, accuracy_minutes_figure, cumulative_minutes,
                                  minutes_to_reach)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import accuracy_minutes  # noqa: E402  (benchmarks/accuracy_minutes.py)
from test_watch import chromium, served_and_rendered  # noqa: E402  (the watch tests' headless browser)

PNG = b"\x89PNG\r\n\x1a\n"


def history(accuracies, seconds, images_per_second=None):
    """One record per epoch as `Trainer` writes them; a None in ``seconds``: an epoch trained before
    convnet timed its epochs (no "seconds" key at all)."""
    rates = images_per_second or [1000.0] * len(accuracies)
    records = []
    for epoch, (accuracy, spent, rate) in enumerate(zip(accuracies, seconds, rates), 1):
        record = {"epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.9, "test_loss": 0.3,
                  "test_accuracy": accuracy, "images_per_second": rate, "lr": 0.01}
        records.append(record if spent is None else {**record, "seconds": spent})
    return records


def test_the_minutes_to_reach_an_accuracy_are_those_of_the_first_epoch_that_does():
    run = history([0.91, 0.94, 0.93, 0.95], [30.0, 90.0, 60.0, 45.0])  # minutes by each epoch's end: .5 2 3 3.75
    assert cumulative_minutes(run) == [0.5, 2.0, 3.0, 3.75]
    assert minutes_to_reach(run, 0.90) == 0.5
    assert minutes_to_reach(run, 0.93) == 2.0  # epoch 2, not epoch 3 that comes back to it
    assert minutes_to_reach(run, 0.94) == 2.0  # reaching it exactly counts
    assert minutes_to_reach(run, 0.945) == 3.75
    assert minutes_to_reach(run, 0.951) is None
    assert minutes_to_reach([], 0.5) is None


def test_epochs_without_seconds_make_their_minutes_and_every_later_epochs_unknown():
    run = history([0.92, 0.93, 0.95], [60.0, None, 30.0])
    assert cumulative_minutes(run) == [1.0, None, None]
    assert minutes_to_reach(run, 0.92) == 1.0  # reached before the untimed epoch
    assert minutes_to_reach(run, 0.96) is None  # never reached, whatever the time
    with pytest.raises(UnknownMinutes, match=r"^epoch 3 reached test accuracy 0\.9500 >= 0\.945, but epoch 2 has no "
                                             r"wall-clock seconds .*: the minutes to reach it are unknown$"):
        minutes_to_reach(run, 0.945)
    with pytest.raises(ValueError, match="epoch 1 reached"):  # UnknownMinutes is a ValueError too
        minutes_to_reach(history([0.95], [None]), 0.9)


@pytest.mark.parametrize("target", [94, -0.1, True, "0.94", None])
def test_a_target_that_is_not_an_accuracy_is_refused(target):
    with pytest.raises(InvalidValue, match=rf"^minutes_to_reach: expected a target accuracy in \[0, 1\], got "
                                           rf"{re.escape(repr(target))}$"):
        minutes_to_reach(history([0.9], [1.0]), target)


def test_the_picture_draws_one_line_per_timed_run_at_its_cumulative_minutes():
    seconds_a, seconds_b = [30.0, 90.0, 60.0], [120.0, 120.0]
    runs = [("old", history([0.90, 0.93, 0.94], seconds_a)), ("new", history([0.935, 0.951], seconds_b)),
            ("ancient", history([0.8, 0.85], [None, None]))]
    figure = accuracy_minutes_figure(runs)
    try:
        axes = figure.axes[0]
        drawn = {line.get_label(): line for line in axes.get_lines() if not line.get_label().startswith("_")}
        assert list(drawn) == ["old", "new"]
        np.testing.assert_allclose(drawn["old"].get_xdata(), np.cumsum(seconds_a) / 60)
        np.testing.assert_allclose(drawn["new"].get_xdata(), np.cumsum(seconds_b) / 60)
        np.testing.assert_allclose(drawn["new"].get_ydata(), [0.935, 0.951])
        assert all(line.get_marker() == "o" for line in drawn.values())
        guides = [line for line in axes.get_lines() if line.get_label().startswith("_target")]
        assert sorted(line.get_ydata()[0] for line in guides) == list(ACCURACY_TARGETS)
        assert all(line.get_linestyle() == "--" for line in guides)
        assert [text.get_text() for text in axes.get_legend().get_texts()] == ["old", "new"]
        assert any("ancient" in text.get_text() for text in axes.texts)  # named, not drawn
        assert axes.get_xlim()[0] == 0
    finally:
        plt.close(figure)
    with pytest.raises(InvalidValue, match="expected at least one"):
        accuracy_minutes_figure([])


def test_the_run_folder_draws_its_own_run_and_the_page_may_serve_it(tmp_path):
    folder = RunFolder(tmp_path, {"model": "lenet5"}, classes=["a", "b"])
    folder._write_reports(history([0.5, 0.6], [10.0, 12.0]), None)
    assert (tmp_path / ACCURACY_MINUTES).read_bytes()[:8] == PNG
    assert ACCURACY_MINUTES in REPORTS and report_file(tmp_path, ACCURACY_MINUTES) == tmp_path / ACCURACY_MINUTES
    (tmp_path / ACCURACY_MINUTES).unlink()
    folder._write_reports(history([0.5], [None]), None)  # a run trained before epochs were timed: drawn all the same
    assert (tmp_path / ACCURACY_MINUTES).read_bytes()[:8] == PNG


def test_a_run_resumed_after_the_upgrade_tables_its_untimed_and_timed_epochs_together(tmp_path):
    RunFolder(tmp_path, {"model": "lenet5"}, classes=["a", "b"])._write_reports(history([0.5, 0.6], [None, 12.0]), None)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].endswith(",lr,seconds") and rows[1].endswith(",0.01,") and rows[2].endswith(",0.01,12.0")


def test_the_step_logs_epoch_entries_carry_the_epochs_seconds(tmp_path):
    test_images = SimpleNamespace(batches=lambda start: iter([(SimpleNamespace(data=np.zeros((2, 1, 4, 4))), None)]))
    trainer = SimpleNamespace(epoch=1, batch=0, train_loader=[None] * 5, test_loader=test_images)
    log = StepLog(tmp_path, {"epochs": 2}, ["a", "b"], snapshot_every=1)  # every step drawn already: no snapshot
    log.on_train_begin(trainer)
    log.on_epoch_end(trainer, history([0.75], [12.5])[0], {"per_class_accuracy": [0.5, 1.0]})
    log.on_train_end(SimpleNamespace(**vars(trainer), interrupted=None, stop_requested=False))
    (entry,) = read_steps(tmp_path / STEPS)
    assert (entry["kind"], entry["step"], entry["test_accuracy"], entry["seconds"]) == ("epoch", 5, 0.75, 12.5)


def test_the_page_has_the_minutes_chart_in_both_languages_with_the_pictures_targets():
    english, korean = watch.page("en"), watch.page("ko")
    assert '<h2>Test accuracy against minutes</h2>' in english and '<svg id="minutes"></svg>' in english
    assert '<h2>학습 시간(분)에 따른 테스트 정확도</h2>' in korean and '<svg id="minutes"></svg>' in korean
    assert watch.ACCURACY_TARGETS == ACCURACY_TARGETS
    assert f"TARGETS = {json.dumps(list(ACCURACY_TARGETS))}, SHIPPED = " in english


@pytest.mark.system
@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (make test installs it)")
def test_the_live_page_draws_accuracy_against_minutes_from_the_epochs_seconds(tmp_path, monkeypatch):
    """Epochs 1 and 2 took 30 and 90 s: dots at 0.5 and 2.0 minutes; epoch 3, logged without seconds
    (before convnet timed its epochs), and what follows it are left out, and the note says so."""
    monkeypatch.setattr(watch, "STREAM_SECONDS", 0)
    entries = [{"kind": "run", "step": 0, "config": {"model": "lenet5", "epochs": 4, "batch_size": 16},
                "classes": ["a", "b"], "summary": ""}]
    for epoch, (accuracy, seconds) in enumerate([(0.9, 30.0), (0.94, 90.0), (0.95, None)], 1):
        entry = {"kind": "epoch", "step": 10 * epoch, "epoch": epoch, "test_loss": 0.3, "test_accuracy": accuracy,
                 "per_class_accuracy": [accuracy, accuracy], "lr": 0.01}
        entries.append(entry if seconds is None else {**entry, "seconds": seconds})
    (tmp_path / STEPS).write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    page = served_and_rendered(tmp_path, tmp_path / "profile")
    chart = page[page.index('<svg id="minutes">'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count("<circle") == 2, chart
    assert ">minutes 0.5</text>" in chart and ">2.0</text>" in chart  # the x axis: the first and last dots
    # of the targets, 0.93 and 0.94 lie within the dots' accuracies, 0.9 to 0.94
    assert chart.count('class="guide"') == 2 and ">0.93</text>" in chart and ">0.94</text>" in chart
    assert 'id="minutes-note">epochs logged before convnet timed them' in page
    assert 'stroke="#99a" stroke-width="2"' not in chart and '<p class="note" id="minutes-shipped"></p>' in page


def test_the_minutes_chart_carries_the_run_of_each_shipped_model_whose_card_timed_its_epochs():
    curves = watch.shipped_minutes()
    card = pretrained.card("reference_cnn")
    minutes = np.cumsum([row["seconds"] for row in card["history"]]) / 60
    assert [point[0] for point in curves["reference_cnn"]["points"]] == pytest.approx(minutes.tolist(), rel=1e-12)
    assert [point[1] for point in curves["reference_cnn"]["points"]] == [row["test_accuracy"] for row in card["history"]]
    assert curves["reference_cnn"]["command"] == "convnet train --recipe fast" and minutes[-1] < 5
    resnet8 = pretrained.card("resnet8")
    assert curves["resnet8"]["command"] == resnet8["command"] == "convnet train --recipe hour --seed 2"
    assert curves["resnet8"]["points"][-1][0] < 60 and curves["resnet8"]["points"][-1][1] >= 0.950  # the hour's target
    assert f"SHIPPED = {json.dumps(curves)};" in watch.page("en")


def test_a_shipped_card_trained_before_convnet_timed_epochs_gives_no_yardstick(monkeypatch):
    card = pretrained.card
    untimed = {**card("resnet8"), "history": [{key: value for key, value in row.items() if key != "seconds"}
                                               for row in card("resnet8")["history"]]}
    monkeypatch.setattr(pretrained, "card", lambda name: untimed if name == "resnet8" else card(name))
    assert set(watch.shipped_minutes()) == {"reference_cnn"}


@pytest.mark.system
@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (make test installs it)")
def test_a_run_of_a_shipped_model_is_drawn_beside_the_run_that_trained_its_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "STREAM_SECONDS", 0)
    entries = [{"kind": "run", "step": 0, "config": {"model": "reference_cnn", "dataset": "fashion-mnist",
                                                     "epochs": 15, "batch_size": 128}, "classes": ["a", "b"],
                "summary": ""},
               {"kind": "epoch", "step": 469, "epoch": 1, "test_loss": 0.4, "test_accuracy": 0.85,
                "per_class_accuracy": [0.85, 0.85], "lr": 0.001, "seconds": 20.0}]
    (tmp_path / STEPS).write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    page = served_and_rendered(tmp_path, tmp_path / "profile", language="ko")
    chart = page[page.index('<svg id="minutes">'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count('stroke="#99a" stroke-width="2"') == 1 and ">배포된 가중치</text>" in chart, chart
    assert chart.count("<circle") == 1  # the run's one epoch; the shipped run is a line
    assert 'id="minutes-shipped">배포된 가중치: convnet train --recipe fast (AMD EPYC, 2 cores, Linux)</p>' in page


def fabricated_run(folder, accuracies, seconds, images_per_second):
    folder.mkdir()
    checkpoint.save(folder, nn.Linear(2, 2), None, {"history": history(accuracies, seconds, images_per_second)})
    return folder


def test_the_benchmark_draws_runs_and_tables_their_minutes_to_each_target(tmp_path, capsys):
    old = fabricated_run(tmp_path / "old", [0.92, 0.935, 0.941], [60.0, 60.0, 60.0], [500.0, 500.0, 500.0])
    new = fabricated_run(tmp_path / "new", [0.931, 0.946, 0.952], [90.0, 90.0, 90.0], [250.0, 500.0, 500.0])
    ancient = fabricated_run(tmp_path / "ancient", [0.95], [None], [100.0])
    out = tmp_path / "docs" / "accuracy_minutes.png"
    out.parent.mkdir()
    accuracy_minutes.main([str(old), f"{new}=new recipe", str(ancient), "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.splitlines()[:5] == [
        "| run | epochs | final accuracy | minutes to 0.930 | minutes to 0.940 | minutes to 0.945 | minutes to 0.950 "
        "| images/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| old | 3 | 0.9410 | 2.0 | 3.0 | - | - | 500 |",
        "| new recipe | 3 | 0.9520 | 1.5 | 3.0 | 3.0 | 4.5 | 375 |",  # 3 epochs over 1/250 + 2/500 s per image
        "| ancient | 1 | 0.9500 | ? | ? | ? | ? | 100 |"]
    assert out.read_bytes()[:8] == PNG and printed.endswith(f"wrote {out}\n")


def test_the_benchmark_says_which_folder_has_no_run(tmp_path):
    with pytest.raises(SystemExit, match=r"^accuracy_minutes: no checkpoint in .*empty"):
        accuracy_minutes.main([str(tmp_path / "empty"), "--out", str(tmp_path / "a.png")])
    run = fabricated_run(tmp_path / "run", [0.9], [1.0], [1.0])
    with pytest.raises(SystemExit, match=r"expected a target accuracy in \[0, 1\], got 94\.0"):
        accuracy_minutes.main([str(run), "--out", str(tmp_path / "a.png"), "--targets", "94"])
    assert not (tmp_path / "a.png").exists()


@pytest.mark.slow
def test_a_trained_runs_seconds_reach_its_history_step_log_and_picture(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--data", str(tiny_fashion), "--epochs", "2", "--batch-size", "32", "--augment", "none",
                 "--out", str(run_dir), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    recorded = [record["seconds"] for record in checkpoint.load(run_dir)[2]["history"]]
    logged = [entry["seconds"] for entry in read_steps(run_dir / STEPS) if entry["kind"] == "epoch"]
    assert logged == recorded and all(seconds > 0 for seconds in recorded)
    assert (run_dir / ACCURACY_MINUTES).read_bytes()[:8] == PNG
