"""The convnet command: train, evaluate, predict, summary, download; bad input exits non-zero
with one clear line and no traceback."""

import gzip
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet import checkpoint
from convnet.cli import main
from convnet.data import mnist
from convnet.data.download import SOURCES
from convnet.experiment import RunConfig, build_trainer, load_datasets
from conftest import write_tiny_fashion

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "SYSTEM_DIRS", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVNET_DATA", raising=False)


@pytest.fixture
def trained_run(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "2", "--batch-size", "32",
                       "--augment", "none", "--label-smoothing", "0",  # 256 images: learn them fast
                       "--out", str(run_dir), "--no-progress")
    assert code == 0, out
    return run_dir, out


def test_train_evaluate_summary(trained_run, tiny_fashion, capsys):
    run_dir, out = trained_run
    assert "epoch 2/2" in out and "test accuracy:" in out and "Ankle boot" in out
    for name in ("checkpoint.safetensors", "checkpoint.json", "metrics.csv", "curves.png", "confusion.png"):
        assert (run_dir / name).stat().st_size > 100, name
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--data", str(tiny_fashion))
    assert code == 0 and "per" not in out.split("\n")[0] and "confusion matrix (rows: true" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert 0.5 < accuracy <= 1.0
    code, out, _ = run(capsys, "summary", str(run_dir))
    assert code == 0 and "Total params: 421,738" in out and "(1, 64, 7, 7)" in out
    code, out, _ = run(capsys, "summary", "resnet8")
    assert code == 0 and "layers.2.downsample.0 (Conv2d)" in out


def test_predict_converts_images_and_reports_unreadable_ones(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(gray)
    color = tmp_path / "color.jpg"
    Image.fromarray(np.full((60, 40, 3), 200, np.uint8)).save(color)
    broken = tmp_path / "notes.png"
    broken.write_text("not an image")
    code, out, err = run(capsys, "predict", str(run_dir), str(gray), str(broken), str(color))
    assert code == 1
    assert f"{broken}: not a readable image" in err
    assert out.count("  1. ") == 2 and out.count("  3. ") == 2
    assert "converted RGB to grayscale; resized 40x60 to 28x28" in out
    probabilities = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("  ")]
    assert all(0 <= p <= 1 for p in probabilities)


def test_resume_rules(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    code, _, err = run(capsys, "train", "--resume", str(run_dir), "--lr", "0.1")
    assert code == 1 and "--resume continues a run with its saved settings; drop --lr" in err
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "nothing"))
    assert code == 1 and "no checkpoint in" in err
    code, _, err = run(capsys, "train", "--out", str(run_dir), "--epochs", "1")
    assert code == 1 and f"{run_dir} already holds a run; continue it with --resume" in err


@pytest.mark.slow
def test_a_read_only_run_folder_is_refused_before_training_and_kept(tiny_fashion, tmp_path):
    """A real permission denial. chmod does not stop root, so as root the command runs without
    the capabilities that override file permissions (util-linux's setpriv)."""
    run_dir = tmp_path / "run"
    cfg = RunConfig(model="simple_cnn", data=str(tiny_fashion), epochs=2, batch_size=32)
    build_trainer(cfg, *load_datasets(cfg), run_dir, progress=False, log=lambda line: None).fit(1)
    before = {path.name: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    without_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    run_dir.chmod(0o555)
    try:
        result = subprocess.run([*without_override, sys.executable, "-m", "convnet", "train", "--resume", str(run_dir),
                                 "--no-progress"], capture_output=True, text=True, timeout=120)
    finally:
        run_dir.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"convnet: error: cannot write to {run_dir}: Permission denied"
    assert "resuming" in result.stdout and "epoch 2/2" not in result.stdout  # refused before training
    assert {path.name: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["train", "--batch-size", "-3"], "argument --batch-size: expected a positive integer, got -3"),
    (["train", "--lr", "0"], "argument --lr: expected a positive number, got 0"),
    (["train", "--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
    (["train", "--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["train", "--time-budget", "five"], "argument --time-budget: expected a duration such as 300s, 5m or 1.5h, got "
                                         "'five'"),
    (["train", "--time-budget", "0m"], "argument --time-budget: expected a duration such as 300s, 5m or 1.5h, got "
                                       "'0m'"),
    (["train", "--time-budget", "2d"], "argument --time-budget: expected a duration such as 300s, 5m or 1.5h, got "
                                       "'2d'"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_truncated_and_mismatched_datasets(tiny_fashion, tmp_path, capsys, no_system_data):
    code, _, err = run(capsys, "train", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code == 1 and "apt-get install dataset-fashion-mnist, or convnet download fashion-mnist" in err
    code, _, err = run(capsys, "train", "--data", str(tmp_path / "typo"), "--epochs", "1")
    assert code == 1 and f"--data {tmp_path / 'typo'} is not a directory" in err
    images = tiny_fashion / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(data[:1000]))
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code == 1 and "truncated: the header promises" in err
    images.write_bytes(gzip.compress(b"\x08\x03" + data[2:]))
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code == 1 and "expected magic 0x0000, got 0803" in err
    images.write_bytes(gzip.compress(data))
    labels = tiny_fashion / "train-labels-idx1-ubyte.gz"
    label_data = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(label_data[:4] + (200).to_bytes(4, "big") + label_data[8:208]))  # 200 labels
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code == 1 and "has 256 images but train-labels-idx1-ubyte.gz has 200 labels" in err


def test_evaluate_a_run_folder_of_another_model(trained_run, capsys):
    run_dir, _ = trained_run
    _, _, meta = checkpoint.load(run_dir)
    meta["config"]["model"] = "lenet5"
    from convnet.models import build
    checkpoint.save(run_dir, build("reference_cnn"), None, meta)
    code, _, err = run(capsys, "evaluate", str(run_dir))
    assert code == 1 and "the checkpoint does not fit a lenet5" in err


@pytest.mark.slow
@pytest.mark.parametrize("interruption", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_or_sigterm_saves_and_says_how_to_resume(tiny_fashion, tmp_path, interruption):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "convnet", "train", "--data", str(tiny_fashion), "--epochs",
                                "1000", "--batch-size", "16", "--out", str(run_dir), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in process.stdout:
        if line.startswith("epoch 1/1000"):
            break
    process.send_signal(interruption)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + interruption
    assert f"interrupted ({interruption.name}) in epoch" in err
    assert f"resume with: convnet train --resume {run_dir}" in err and "Traceback" not in err
    _, _, meta = checkpoint.load(run_dir)
    assert meta["epoch"] >= 1 and meta["config"]["epochs"] == 1000


# ---------------------------------------------------------------------------- download
class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (the http.server name)
        if self.path.endswith("cut-short/t10k-labels-idx1-ubyte.gz"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\x00" * 500)
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        super().do_GET()


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving copies of the real files, plus broken variants."""
    if not SYSTEM_FASHION.is_dir() and not os.environ.get("CI"):
        pytest.skip("needs Debian's dataset-fashion-mnist (make test installs it)")
    root = tmp_path / "www"
    (root / "good").mkdir(parents=True)
    for name in SOURCES["fashion-mnist"]["files"]:
        shutil.copy(SYSTEM_FASHION / name, root / "good" / name)
    shutil.copytree(root / "good", root / "corrupt")
    labels = root / "corrupt" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[100] ^= 1
    labels.write_bytes(gzip.compress(bytes(data)))
    shutil.copytree(root / "good", root / "cut-short")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a: _Handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_rejects_corrupt_or_interrupted_files(mirror, tmp_path, capsys):
    target = tmp_path / "cache"
    code, out, err = run(capsys, "download", "fashion-mnist", "--dir", str(target), "--url", f"{mirror}/corrupt")
    assert code == 1 and "contents do not match the pinned SHA-256" in err and "the file was discarded" in err
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in os.listdir(target) if p.endswith(".part")]
    code, _, err = run(capsys, "download", "fashion-mnist", "--dir", str(target), "--url", f"{mirror}/cut-short")
    assert code == 1 and ("interrupted" in err or "download failed" in err)
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in os.listdir(target) if p.endswith(".part")]
    start = time.time()
    code, out, _ = run(capsys, "download", "fashion-mnist", "--dir", str(target), "--url", f"{mirror}/good")
    assert code == 0 and f"fashion-mnist is in {target}" in out
    images, labels = mnist.load("fashion-mnist", "test", target)
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [9, 2, 1]
    assert time.time() - start < 60


def test_a_bad_kernels_setting_is_one_line_not_an_import_traceback():
    result = subprocess.run([sys.executable, "-m", "convnet", "summary", "reference_cnn"], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, CONVNET_KERNELS="fast"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "convnet: error: Conv2d(1, 32, kernel_size=3): kernels.set_mode (or CONVNET_KERNELS): expected one of "
        "compiled, reference, got 'fast'"]


# ---------------------------------------------------------------------------- the run's own data
def _evaluation_accuracy(out):
    return float(out.split("test accuracy: ")[1].split()[0])


@pytest.mark.slow
def test_a_relative_data_folder_means_the_same_files_from_any_directory(tiny_fashion, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.chdir(tiny_fashion.parent)
    code, out, _ = run(capsys, "train", "--data", tiny_fashion.name, "--epochs", "1", "--batch-size", "32",
                       "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0
    trained = _evaluation_accuracy(out)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / tiny_fashion.name).mkdir(parents=True)
    write_tiny_fashion(elsewhere / tiny_fashion.name, seed=1)  # other files under the same relative name
    monkeypatch.chdir(elsewhere)
    stored = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert stored["config"]["data"] == str(tiny_fashion) and stored["data"]["test"]["files"][0].startswith(
        str(tiny_fashion))
    files = {path.name: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    code, out, err = run(capsys, "evaluate", str(tmp_path / "run"))
    assert code == 0 and err == "" and _evaluation_accuracy(out) == trained
    evaluated = {path.name: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    assert evaluated == files  # evaluating writes nothing


@pytest.mark.slow
def test_changed_data_is_refused_or_named(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "2", "--batch-size", "32",
               "--out", str(run_dir), "--no-progress")[0] == 0
    (run_dir / "checkpoint.json").unlink()  # only the safetensors file counts
    test_images = tiny_fashion / "t10k-images-idx3-ubyte.gz"
    pixels = bytearray(gzip.decompress(test_images.read_bytes()))
    pixels[-1] ^= 1  # one pixel of one test image
    test_images.write_bytes(gzip.compress(bytes(pixels)))
    code, _, err = run(capsys, "evaluate", str(run_dir))
    assert code == 1 and "its test set is not the one it was trained with" in err and str(test_images) in err
    other = tmp_path / "other"
    other.mkdir()
    write_tiny_fashion(other, seed=3)
    code, out, err = run(capsys, "evaluate", str(run_dir), "--data", str(other))
    assert code == 0 and "convnet: warning:" in err and f"the figures below are for {other}" in err
    code, _, err = run(capsys, "train", "--resume", str(run_dir))
    assert code == 1 and "cannot resume: its test set is not the one" in err


def test_an_explicit_data_folder_must_hold_all_four_files(tiny_fashion, tmp_path, capsys):
    half = tmp_path / "half"
    half.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(tiny_fashion / name, half / name)
    code, _, err = run(capsys, "train", "--data", str(half), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert code == 1 and f"t10k-images-idx3-ubyte(.gz) not found in --data {half}, which must hold all four" in err


@pytest.mark.parametrize("change, message", [
    (lambda images, labels: (images[:0], labels[:0]), "expected at least one image, got none"),
    (lambda images, labels: (images, labels.astype(np.float32)), "expected integer labels of shape (N,), got float32"),
])
def test_empty_datasets_and_float_labels_are_refused(tiny_fashion, tmp_path, capsys, change, message):
    from convnet.data import read_idx, write_idx
    images_path, labels_path = tiny_fashion / "train-images-idx3-ubyte.gz", tiny_fashion / "train-labels-idx1-ubyte.gz"
    images, labels = change(read_idx(images_path), read_idx(labels_path))
    write_idx(images_path, images)
    write_idx(labels_path, labels)
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert code == 1 and message in err


@pytest.mark.slow
def test_one_writer_per_run_folder_and_no_stale_lock_after_kill_9(tiny_fashion, tmp_path, capsys):
    run_dir = tmp_path / "run"
    hold = ("import sys, time, types; from convnet.reports import RunFolder; folder = RunFolder(sys.argv[1], {}, ()); "
            "folder.on_train_begin(types.SimpleNamespace(history=[], batch=0)); print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["train", "--data", str(tiny_fashion), "--epochs", "1", "--batch-size", "64", "--out", str(run_dir),
                "--no-progress"]
        code, _, err = run(capsys, *argv)
        assert code == 1 and f"is being trained by another process (PID {holder.pid})" in err
        assert not (run_dir / checkpoint.WEIGHTS).exists()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    code, _, err = run(capsys, *argv)
    assert code == 0, err


def test_resuming_a_finished_run_says_so_and_rebuilds_stale_reports(trained_run, capsys):
    run_dir, _ = trained_run
    metrics = (run_dir / "metrics.csv").read_text()
    # What a kill between the last checkpoint and the reports leaves: the reports an epoch behind.
    (run_dir / "metrics.csv").write_text("\n".join(metrics.splitlines()[:2]) + "\n")
    (run_dir / "curves.png").write_bytes(b"stale")
    (run_dir / "confusion.png").unlink()
    code, out, _ = run(capsys, "train", "--resume", str(run_dir), "--no-progress")
    assert code == 0 and f"{run_dir} finished its 2 epochs already" in out and "epoch 3" not in out
    assert (run_dir / "metrics.csv").read_text() == metrics
    for name in ("curves.png", "confusion.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_run_diverging_before_its_first_checkpoint_says_so_and_leaves_no_empty_folder(tiny_fashion, tmp_path,
                                                                                        capsys):
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--epochs", "1", "--lr", "1e30",
                       "--batch-size", "32", "--out", str(run_dir), "--no-progress")
    assert code == 1 and "the loss became" in err and "no epoch finished, so nothing was saved" in err
    assert "Warning" not in err and not run_dir.exists()


def test_missing_mnist_says_what_works(tmp_path, capsys, no_system_data):
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert code == 1 and "pass --data DIR" in err and "convnet download mnist" not in err


def test_the_printed_confusion_matrix_numbers_its_columns(trained_run, capsys):
    run_dir, _ = trained_run
    code, out, _ = run(capsys, "evaluate", str(run_dir))
    lines = out.split("confusion matrix (rows: true class, columns: predicted class, numbered as the rows):\n")[1]
    header, first, *rest = lines.splitlines()
    assert header.split() == [str(index) for index in range(10)]
    assert first.split()[:2] == ["0", "T-shirt/top"] and rest[-1].split()[:3] == ["9", "Ankle", "boot"]
    assert sum(int(cell) for line in [first, *rest] for cell in line.split()[-10:]) == 64  # every test image once


def test_impossible_requests_are_refused_before_any_work(tiny_fashion, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--data", str(tiny_fashion), "--batch-size", "100000", "--out",
                       str(tmp_path / "run"))
    assert code == 1 and "batch_size 100000 is larger than the training set (256 images); expected at most 256" in err
    assert not (tmp_path / "run").exists()
    a_file = tmp_path / "pictures"
    a_file.write_text("mine")
    code, _, err = run(capsys, "show", "reference_cnn", "--out", str(a_file))
    assert code == 1 and f"--out {a_file} is a file; expected a folder" in err and a_file.read_text() == "mine"


@pytest.mark.slow
def test_a_folder_being_trained_always_reads_as_a_whole_checkpoint(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "convnet", "train", "--data", str(tiny_fashion), "--epochs", "6",
                                "--batch-size", "64", "--out", str(run_dir), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    epochs_seen = set()
    try:
        while trainer.poll() is None:
            if (run_dir / checkpoint.WEIGHTS).exists():
                _, _, meta = checkpoint.load(run_dir)  # never half-written: atomic renames
                epochs_seen.add(meta["epoch"])
    finally:
        trainer.kill()
        _, err = trainer.communicate()
    assert trainer.returncode == 0, err
    assert len(epochs_seen) >= 2 and max(epochs_seen) <= 6


@pytest.mark.slow
def test_the_progress_bar_is_drawn_on_a_terminal_only(tiny_fashion, tmp_path):
    """Redirected to a file (`make train > log`), a bar's redraws would fill it: one line per epoch
    instead. On a terminal (a pseudo-terminal here) the bar is drawn."""
    import fcntl
    import pty
    import struct
    import termios
    argv = [sys.executable, "-m", "convnet", "train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs",
            "1", "--batch-size", "16"]
    piped = subprocess.run([*argv, "--out", str(tmp_path / "piped")], capture_output=True, text=True)
    assert piped.returncode == 0 and "%|" not in piped.stderr and "epoch 1/1: train loss" in piped.stdout
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new one is 0 columns wide
    with subprocess.Popen([*argv, "--out", str(tmp_path / "terminal")], stdout=subprocess.DEVNULL, stderr=terminal) \
            as process:
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
    os.close(controller)
    assert process.returncode == 0 and b"%|" in drawn and b"batch/s" in drawn


@pytest.mark.slow
def test_early_stop_ends_a_run_whose_test_loss_stopped_improving_and_says_so(tiny_fashion, tmp_path, capsys):
    """A learning rate far too high makes the tiny set's test loss worse at once: with --early-stop 1
    the run stops after the epoch that did not improve, and the folder keeps that epoch."""
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs", "20",
                       "--batch-size", "16", "--lr", "0.2", "--schedule", "none", "--early-stop", "1", "--out",
                       str(run_dir), "--no-progress")
    assert code == 0 and "stopped early after epoch " in out
    epochs = int(out.split("stopped early after epoch ")[1].split(":")[0])
    _, _, meta = checkpoint.load(run_dir)
    losses = [entry["test_loss"] for entry in meta["history"]]
    assert meta["epoch"] == epochs == len(losses) < 20 and min(losses[:-1]) <= losses[-1]
    assert meta["config"]["early_stop"] == 1


@pytest.mark.parametrize("text, seconds", [("300", 300), ("300s", 300), ("5m", 300), ("5min", 300), ("1.5h", 5400)])
def test_time_budgets_read_as_seconds(text, seconds):
    from convnet.cli.options import duration
    assert duration(text) == seconds


def test_a_time_budget_with_epochs_or_on_resume_is_refused(trained_run, capsys):
    run_dir, _ = trained_run
    code, _, err = run(capsys, "train", "--time-budget", "5m", "--epochs", "3")
    assert code == 1 and err == ("convnet: error: give --epochs or --time-budget, not both: the budget decides the "
                                 "epochs\n")
    code, _, err = run(capsys, "train", "--resume", str(run_dir), "--time-budget", "5m")
    assert code == 1 and "--resume continues a run with its saved settings; drop --time-budget" in err


def test_test_time_mirroring_follows_the_run_and_can_be_turned_off_or_refused(trained_run, tiny_fashion, tmp_path,
                                                                               capsys):
    run_dir = tmp_path / "mirrored"
    code, out, _ = run(capsys, "train", "--model", "lenet5", "--data", str(tiny_fashion), "--epochs", "1",
                       "--batch-size", "32", "--out", str(run_dir), "--no-progress")
    assert code == 0 and "; test images are also scored mirrored (test-time mirroring); run folder" in out
    recorded = json.loads((run_dir / "checkpoint.json").read_text())["history"][-1]
    code, out, _ = run(capsys, "evaluate", str(run_dir))
    assert code == 0 and out.startswith(f"test accuracy: {recorded['test_accuracy']:.4f} (loss "
                                        f"{recorded['test_loss']:.4f}, each image averaged with its mirror image)\n")
    from convnet.experiment import evaluate_run
    one_pass = evaluate_run(run_dir, mirror=False)[1]
    assert one_pass["loss"] != recorded["test_loss"]
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--no-test-mirror")
    assert code == 0 and out.startswith(f"test accuracy: {one_pass['accuracy']:.4f} (loss {one_pass['loss']:.4f})\n")
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(image)
    answers = {flag: run(capsys, "predict", str(run_dir), str(image), flag)[1]
               for flag in ("--test-mirror", "--no-test-mirror")}
    assert answers["--test-mirror"] == run(capsys, "predict", str(run_dir), str(image))[1]
    assert answers["--test-mirror"] != answers["--no-test-mirror"]
    unmirrored, _ = trained_run  # trained with --augment none
    for argv, message in [
            (["evaluate", unmirrored, "--test-mirror"], f"{unmirrored}: test_mirror averages each test image with its "
                                                        f"mirror image, which helps only a network trained on mirrored "
                                                        f"images"),
            (["train", "--data", tiny_fashion, "--augment", "none", "--test-mirror", "--out", tmp_path / "never"],
             "test_mirror averages each test image with its mirror image"),
            (["show", "--lesson", "--test-mirror", "--out", tmp_path / "never"],
             "--lesson draws an untrained network, which has no answer to mirror; give it without --test-mirror")]:
        code, _, err = run(capsys, *map(str, argv))
        assert code == 1 and err.startswith(f"convnet: error: {message}") and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------------------- options, the same way everywhere
def test_summary_takes_model_as_evaluate_and_predict_do(capsys):
    code, by_option, _ = run(capsys, "summary", "--model", "resnet8")
    assert code == 0 and "layers.2.downsample.0 (Conv2d)" in by_option
    assert run(capsys, "summary", "resnet8")[1] == by_option


def test_options_and_file_arguments_come_in_any_order(tmp_path, capsys):
    images = []
    for index in range(2):
        images.append(tmp_path / f"{index}.png")
        Image.fromarray(np.random.default_rng(index).integers(0, 255, (28, 28), dtype=np.uint8)).save(images[-1])
    answers = [run(capsys, *argv) for argv in (
        ["predict", "reference_cnn", "--no-test-mirror", *map(str, images)],
        ["predict", "--no-test-mirror", "reference_cnn", *map(str, images)],
        ["predict", "reference_cnn", str(images[0]), "--no-test-mirror", str(images[1])],
        ["predict", str(images[0]), "--model", "reference_cnn", str(images[1]), "--no-test-mirror"])]
    assert [code for code, _, _ in answers] == [0] * 4
    assert all(out == answers[0][1] for _, out, _ in answers) and answers[0][1].count("  1. ") == 2


def test_a_wrong_option_shows_the_commands_usage_not_the_top_level_one(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--bogus", "reference_cnn", "image.png"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("usage: convnet predict ")
    assert err.splitlines()[-1] == "convnet predict: error: unrecognized arguments: --bogus"


def _train_options():
    from convnet.cli import build_parser
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {action.dest: action for action in train._actions}


def test_every_run_setting_is_an_option_of_train_with_the_configs_choices():
    from dataclasses import fields
    from convnet import experiment
    options = _train_options()
    for field in fields(experiment.RunConfig):
        assert options[field.name].option_strings[0] == "--" + field.name.replace("_", "-"), field.name
        assert options[field.name].default is None, field.name  # not given: the run takes RunConfig's default
    assert tuple(options["optimizer"].choices) == experiment.OPTIMIZERS
    assert tuple(options["schedule"].choices) == experiment.SCHEDULES
    assert "(default 200)" in options["snapshot_every"].help and "(default 15)" in options["epochs"].help


def test_train_with_no_options_makes_the_default_run_config_and_each_option_lands_in_its_field():
    from convnet import experiment
    from convnet.cli import build_parser
    from convnet.cli.options import given_settings
    parser = build_parser()
    assert experiment.RunConfig(**given_settings(parser.parse_args(["train"]))) == experiment.RunConfig()
    args = parser.parse_args(["train", "--batch-size", "7", "--no-test-mirror", "--sync-bn", "--augment",
                              "--time-budget", "2m", "--weight-decay", "0.01", "--data", "d"])
    assert given_settings(args) == {"batch_size": 7, "test_mirror": False, "sync_bn": True, "augment": "full",
                                    "time_budget": 120.0, "weight_decay": 0.01, "data": "d"}


def test_a_new_run_setting_without_help_cannot_be_forgotten(monkeypatch):
    from dataclasses import field, make_dataclass
    from convnet import experiment
    from convnet.cli import build_parser
    extended = make_dataclass("RunConfig", [("warmup_epochs", int, field(default=0))], bases=(experiment.RunConfig,))
    monkeypatch.setattr(experiment, "RunConfig", extended)
    with pytest.raises(KeyError, match="warmup_epochs"):
        build_parser()
