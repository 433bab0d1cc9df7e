"""The README's main job (for now the synthetic demo) and the command line's basics."""

import subprocess
import sys

import pytest

import convnet
from convnet.cli import main
from convnet.demo import train_bars


@pytest.mark.slow
def test_a_small_cnn_learns_bars_to_full_accuracy():
    # How long it takes is the README's figure, not this test's: a timed assertion fails on a busy machine.
    history = train_bars(epochs=5, log=lambda line: None)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["test_accuracy"] == 1.0


@pytest.mark.slow
def test_version_help_and_demo(capsys):
    result = subprocess.run([sys.executable, "-m", "convnet", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"convnet {convnet.__version__}"
    result = subprocess.run([sys.executable, "-m", "convnet", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    assert main(["demo", "--epochs", "1"]) == 0
    assert "final test accuracy" in capsys.readouterr().out


def test_bad_arguments_exit_non_zero_with_a_message():
    result = subprocess.run([sys.executable, "-m", "convnet", "demo", "--epochs", "0"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "expected a positive integer, got 0" in result.stderr and "Traceback" not in result.stderr
