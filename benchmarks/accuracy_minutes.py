"""Test accuracy against wall-clock minutes of training, for several runs on one picture, and the
table beside it: how many minutes each run took to reach each target accuracy.

    python benchmarks/accuracy_minutes.py runs/old=old runs/new=new --out docs/accuracy_minutes.png

reads each run folder's history from its checkpoint (``RUN_DIR=LABEL`` names its line; by default
the folder's name), draws them on one picture (`convnet.viz.training.accuracy_minutes_figure`) and
prints a markdown table: the run, its epochs, its final test accuracy, the minutes to each
``--targets`` accuracy (`minutes_to_reach`: "-" never reached, "?" reached at an epoch trained
before convnet timed its epochs) and its images/s (training steps alone: the epochs' figures
combined as the whole run's images over its seconds, each epoch having the same images). Minutes
are the machine's and its load's: say which machine they were measured on.
"""

import argparse
import sys
from pathlib import Path

import convnet  # noqa: F401  (first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads)

from convnet import checkpoint
from convnet.errors import ConvnetError
from convnet.viz.training import ACCURACY_TARGETS, UnknownMinutes, minutes_to_reach, save_accuracy_minutes


def run_argument(text):
    """``RUN_DIR`` or ``RUN_DIR=LABEL`` -> (folder, label); a folder whose own name holds "=" is
    taken whole when it exists."""
    folder, equals, label = text.rpartition("=")
    if not equals or Path(text).is_dir():
        folder, label = text, ""
    if not folder:
        raise argparse.ArgumentTypeError(f"expected RUN_DIR or RUN_DIR=LABEL, got {text!r}")
    return Path(folder), label or Path(folder).name


def read_history(run_dir):
    """The run's history (one record per epoch) as its checkpoint holds it."""
    _, _, meta = checkpoint.load(run_dir)
    history = meta.get("history")
    if not isinstance(history, list) or not history:
        raise ConvnetError(f"{run_dir}: its checkpoint holds no finished epoch (expected a history of "
                           f"one record per epoch)")
    return history


def table(runs, targets=ACCURACY_TARGETS):
    """The markdown table of ``runs`` ((label, history) pairs), one row per run, as a string."""
    header = ["run", "epochs", "final accuracy", *[f"minutes to {target:.3f}" for target in targets], "images/s"]
    rows = [header, ["---"] * len(header)]
    for label, history in runs:
        rows.append([label, str(len(history)), f"{history[-1]['test_accuracy']:.4f}",
                     *[_minutes(history, target) for target in targets], _images_per_second(history)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _minutes(history, target):
    try:
        minutes = minutes_to_reach(history, target)
    except UnknownMinutes:
        return "?"
    return "-" if minutes is None else f"{minutes:.1f}"


def _images_per_second(history):
    """The whole run's images over its training seconds: the harmonic mean of the epochs' figures."""
    return f"{len(history) / sum(1 / record['images_per_second'] for record in history):.0f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=run_argument, metavar="RUN_DIR[=LABEL]")
    parser.add_argument("--out", type=Path, required=True, help="the picture (PNG) to write")
    parser.add_argument("--targets", type=float, nargs="+", default=list(ACCURACY_TARGETS),
                        help="test accuracies to mark and time (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        runs = [(label, read_history(folder)) for folder, label in args.runs]
        text = table(runs, args.targets)  # first: it refuses a target that is not an accuracy
        save_accuracy_minutes(runs, args.out, args.targets)
    except ConvnetError as error:
        sys.exit(f"accuracy_minutes: {error}")
    print(f"{text}\n\nwrote {args.out}")


if __name__ == "__main__":
    main()
