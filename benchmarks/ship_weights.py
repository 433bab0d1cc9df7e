"""Train a zoo model with a recipe and ship its weights in the package, with the card that says
how they were made (`convnet.pretrained`).

    python benchmarks/ship_weights.py [--keep RUN_DIR] -- --epochs 15 --label-smoothing 0.1 --weight-decay 0.05

runs ``convnet train`` with those options in a fresh run folder, timing the command's wall time,
evaluates the run on the 10,000 test images, and writes ``src/convnet/weights/MODEL.safetensors``
(the weights alone) and ``MODEL.json`` (its card), and ``docs/MODEL_confusion.png`` for the
README's model card. Run it alone on an idle machine: the card records the time it took here.
"""

import argparse
import hashlib
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import convnet  # noqa: F401  (first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads)
from safetensors.numpy import save as save_tensors

from convnet import pretrained
from convnet.experiment import evaluate_run, load_run
from convnet.process import available_cores
from convnet.viz import save_confusion

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", metavar="RUN_DIR", help="train in this new folder and keep it (its history for the "
                        "docs' tables and pictures); default: a temporary folder")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="convnet train's options, after --")
    arguments = parser.parse_args()
    options = [option for option in arguments.options if option != "--"]
    if "--out" in options or "--resume" in options:
        parser.error("the run folder is this script's own: give neither --out nor --resume")
    trained_by = _commit()  # before this script writes the weights, which would make every tree dirty
    if arguments.keep and Path(arguments.keep).exists():
        parser.error(f"--keep {arguments.keep}: expected a new folder, and it exists")
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(arguments.keep or Path(folder) / "run")
        command = [sys.executable, "-m", "convnet", "train", *options, "--out", str(run_dir), "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - started
        config, model, meta = load_run(run_dir)
        figures = _figures(run_dir, config)
    weights = save_tensors({name: array for name, array in model.state_dict().items()})
    name = config.model
    pretrained.WEIGHTS.mkdir(exist_ok=True)
    (pretrained.WEIGHTS / f"{name}.safetensors").write_bytes(weights)
    card = {"model": name, "file": f"{name}.safetensors", "sha256": hashlib.sha256(weights).hexdigest(),
            "dataset": config.dataset, "command": shlex.join(["convnet", "train", *options]), "config": asdict(config),
            "settings": {"learning_rate": config.learning_rate, "weight_decay": config.decay,
                         "augment": config.augmentation, "test_time_mirroring": config.test_time_mirroring},
            # the defaults the configuration left to this version
            "seed": config.seed,
            "epochs": config.epochs, "training_seconds": round(seconds, 1),
            "machine": f"{_processor()}, {available_cores()} cores, {platform.system()}",
            "convnet_commit": trained_by, "trained": time.strftime("%Y-%m-%d"),
            **figures, "history": meta["history"]}
    (pretrained.WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"shipped {name}: test accuracy {card['test_accuracy']:.4f} after {seconds:.0f} s ({card['command']})")


def _figures(run_dir, config):
    """The card's test figures: as convnet evaluates the run (``config``'s test-time mirroring),
    per class, and in one pass and mirrored where it was trained on mirrored images; the confusion
    matrix drawn into docs/."""
    classes, result, warnings = evaluate_run(run_dir)
    if warnings:
        sys.exit(f"ship_weights: refusing a run evaluated on other data: {warnings}")
    figures = {"test_accuracy": result["accuracy"], "test_loss": result["loss"],
               "test_time_mirroring": config.test_time_mirroring,
               "per_class_accuracy": dict(zip(classes, result["per_class_accuracy"]))}
    if config.mirrors_training_images:  # both ways, so that the card says what test-time mirroring gives
        other = evaluate_run(run_dir, mirror=not config.test_time_mirroring)[1]["accuracy"]
        mirrored, one_pass = (result["accuracy"], other) if config.test_time_mirroring else (other, result["accuracy"])
        figures.update(test_accuracy_one_pass=one_pass, test_accuracy_mirrored=mirrored)
    save_confusion(result["confusion"], classes, ROOT / "docs" / f"{config.model}_confusion.png")
    return figures


def _processor():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown processor"


def _commit():
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return described.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
