"""What a training run shows and leaves behind, as callbacks on the loop (`convnet.train.Callback`):
a progress bar, one log line per epoch, the run folder's checkpoint and reports (`RunFolder`), its
step log and snapshots (`StepLog`) and TensorBoard's event files (`TensorBoard`). Which file is
which, and the folder's lock, are `convnet.run_folder`'s.
"""

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint
from .errors import ConvnetError
from .evaluation import evaluate
from .files import atomic_write, check_writable, remove_stale_temporaries
from .run_folder import (ACCURACY_MINUTES, CONFUSION, CURVES, METRICS, SNAPSHOTS, STEPS, TENSORBOARD, hold_lock,
                         read_steps, snapshot_pictures)
from .train import Callback

STEP_LOG_EVERY = 10  # training steps between two lines of the step log
SNAPSHOT_EVERY = 200  # training steps between two of the step log's pictures


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss, accuracy and images per second, drawn only on a
    terminal: written to a file or a pipe (``make train > log``) its redraws would be megabytes of
    noise, and `EpochLog`'s line per epoch says what matters."""

    def __init__(self, epochs):
        self.epochs, self.bar = epochs, None

    def on_epoch_begin(self, trainer):
        self.bar = tqdm(total=len(trainer.train_loader), initial=trainer.batch, leave=False, unit="batch",
                        desc=f"epoch {trainer.epoch + 1}/{self.epochs}", disable=None)  # None: off unless a TTY

    def on_batch_end(self, trainer, loss):
        totals = trainer.partial
        self.bar.set_postfix(loss=f"{totals['loss'] / totals['count']:.4f}",
                             acc=f"{totals['correct'] / totals['count']:.4f}",
                             img_s=f"{totals['count'] / max(totals['seconds'], 1e-9):.0f}", refresh=False)
        self.bar.update()  # redraws at most every tqdm.mininterval, with the new postfix

    def on_epoch_end(self, trainer, record, evaluation):
        self._close()

    def on_train_end(self, trainer):
        self._close()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLog(Callback):
    """One line per epoch: train and test loss and accuracy, and the speed."""

    def __init__(self, epochs, log=print):
        self.epochs, self.log = epochs, log

    def on_epoch_end(self, trainer, record, evaluation):
        self.log(f"epoch {record['epoch']}/{self.epochs}: train loss {record['train_loss']:.4f} "
                 f"acc {record['train_accuracy']:.4f} | test loss {record['test_loss']:.4f} "
                 f"acc {record['test_accuracy']:.4f} | {record['images_per_second']:.0f} img/s")


class RunFolder(Callback):
    """Keeps ``run_dir`` up to date: the checkpoint (with ``config``, the JSON-able run
    configuration, so the folder can rebuild its model) after every epoch and when the run
    stops, the metrics table, the learning curves, test accuracy against minutes and the confusion
    matrix after every epoch.

    ``train_conditions`` (e.g. ``["augmented"]``) label the train curves, measured under them;
    ``data`` (``{"train": source, "test": source}``, the datasets' `ArrayDataset.source`) goes
    into the checkpoint so that a resumed or evaluated run can tell whether its data changed.
    """

    def __init__(self, run_dir, config, classes, train_conditions=(), data=None):
        self.run_dir, self.config, self.classes = Path(run_dir), dict(config), classes
        self.train_conditions, self.data = list(train_conditions), data
        self.reports_written = False  # by this object: until then, the folder's may be stale

    def on_train_begin(self, trainer):
        check_writable(self.run_dir)  # refuse a read-only folder before training, not after an epoch
        self.lock_file = hold_lock(self.run_dir)  # while training: a second writer is refused at once
        remove_stale_temporaries(self.run_dir)  # left by a writer that was killed; none can be writing now
        if (trainer.history or trainer.batch) and not self.reports_written:
            self.rebuild_reports(trainer)

    def on_epoch_end(self, trainer, record, evaluation):
        self.save(trainer)
        self._write_reports(trainer.history, evaluation)

    def rebuild_reports(self, trainer):
        """Rewrite everything derived from the checkpoint (the single source of truth) as a resumed
        run starts: a run killed between its checkpoint and the rest leaves the readable copy and the
        reports an epoch behind, or missing. The confusion matrix needs the model of the history's
        last epoch, which the checkpoint holds only when it was saved at an epoch's end."""
        self.save(trainer)  # the restored state, so the same checkpoint again, and its readable copy
        if trainer.history:
            # rank 0 alone writes reports: it evaluates as one process, not with the job's group
            evaluation = (evaluate(trainer.evaluated_model(), trainer.test_loader, mirror=trainer.test_mirror,
                                   translate=trainer.test_translate)
                          if trainer.batch == 0 else None)
            self._write_reports(trainer.history, evaluation)

    def _write_reports(self, history, evaluation):
        from .viz import save_confusion, save_curves  # matplotlib: loaded by the first epoch, not by --help
        from .viz.training import save_accuracy_minutes
        text = io.StringIO()
        # Every epoch's columns: a run resumed after an upgrade adds columns (seconds) its first epochs lack.
        writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for record in history for key in record)))
        writer.writeheader()
        writer.writerows(history)
        atomic_write(self.run_dir / METRICS, text.getvalue())
        save_curves(history, self.run_dir / CURVES, self.train_conditions)
        save_accuracy_minutes([(self.run_dir.name, history)], self.run_dir / ACCURACY_MINUTES)
        if evaluation is not None:
            save_confusion(evaluation["confusion"], self.classes, self.run_dir / CONFUSION)
        self.reports_written = True

    def on_train_end(self, trainer):
        if trainer.stop_requested:
            self.save(trainer)
        self.lock_file.close()  # releases the lock

    def save(self, trainer):
        model = trainer.evaluated_model()  # the averaged weights of a run that averages them
        checkpoint.save(self.run_dir, model, trainer.optimizer, {"config": self.config, "data": self.data,
                                                                 **trainer.state()},
                        training=trainer.model if model is not trainer.model else None)


class StepLog(Callback):
    """Appends the run as it goes to its step log (`run_folder.STEPS`), one JSON object per line, flushed.

    A new run's log begins with ``{"kind": "run", "step": 0, "config", "effective", "classes",
    "summary"}``: its settings, the value it uses for each one ``config`` leaves to convnet's
    defaults (``effective``, e.g. the optimizer's learning rate for an ``lr`` of None), its class
    names and its model's summary table. Then every ``every`` training
    steps ``{"kind": "step", "step", "epoch", "batch", "loss", "accuracy", "lr",
    "images_per_second", "time"}`` (loss and accuracy: the epoch's running means; epoch: the one in
    progress, from 1; time: seconds since the epoch 1970), and after every epoch ``{"kind":
    "epoch", "step", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "per_class_accuracy", "lr", "seconds", "time"}`` (seconds: the epoch's wall-clock time, as its
    history record has it). As training begins, every ``snapshot_every`` steps and after every
    epoch, the first convolution layer's kernels and its feature maps of the first test image are
    drawn (`run_folder.snapshot_pictures`) and announced by ``{"kind": "snapshot", "step",
    "epochs_done", "image", "kernels", "feature_maps", "time"}`` (PNG paths within the run folder;
    epochs_done: steps over the epoch's length), so that the live page can show the kernels taking
    shape. A run that ends by itself, all of its ``config["epochs"]`` done or stopped by a
    callback (`convnet.train.EarlyStopping`), not by a signal or a kill, ends its log with
    ``{"kind": "finished", "step", "epoch", "time"}``.

    Append-only, so a kill -9 costs at most a partial last line, which `read_steps` skips; a
    resumed run first cuts the log back to its checkpoint's step, so the steps it trains again are
    not written twice. It hangs before `RunFolder`, so that an epoch's lines are written before
    the epoch's checkpoint: the log may run ahead of the checkpoint (and is cut back), never behind
    it. It opens the log at its first line, once `RunFolder` holds the folder's lock."""

    def __init__(self, run_dir, config, classes, every=STEP_LOG_EVERY, snapshot_every=SNAPSHOT_EVERY, effective=None):
        self.run_dir, self.config, self.classes = Path(run_dir), config, list(classes)
        self.effective = dict(effective or {})
        self.path, self.every, self.snapshot_every, self.file = self.run_dir / STEPS, every, snapshot_every, None

    def _open(self):
        """Cut the log back to the step the run (re)started from, then append to it. A run that
        starts from step 0 keeps nothing: what is there is a run killed before its first checkpoint.
        A finished run that is resumed says it finished again as it ends, so its old line goes."""
        if self.path.exists():
            kept = [entry for entry in read_steps(self.path)
                    if entry["step"] <= self.start and entry.get("kind") != "finished"] if self.start else []
            rewritten = "".join(json.dumps(entry) + "\n" for entry in kept)
            if rewritten != self.path.read_text():  # lines past the checkpoint, or a last one cut short
                atomic_write(self.path, rewritten)
        self.file = open(self.path, "a")

    def on_train_begin(self, trainer):
        self.start = _step(trainer)  # where the checkpoint left the run
        images, _ = next(trainer.test_loader.batches(0))
        self.image, self.image_drawn = images.data[:1], False

    def on_epoch_begin(self, trainer):
        if self.start == 0 and self.file is None:  # a new run, the lock held: say what it is, and how it starts
            from .nn import summary
            self._write({"kind": "run", "step": 0, "config": self.config, "effective": self.effective,
                         "classes": self.classes, "summary": summary(trainer.model, self.image.shape)})
            self._snapshot(trainer)

    def on_batch_end(self, trainer, loss):
        step = _step(trainer)
        if step % self.every == 0:
            totals = trainer.partial
            self._write({"kind": "step", "step": step, "epoch": trainer.epoch + 1, "batch": trainer.batch,
                         "loss": totals["loss"] / totals["count"], "accuracy": totals["correct"] / totals["count"],
                         "lr": trainer.optimizer.param_groups[0]["lr"],
                         "images_per_second": totals["count"] / max(totals["seconds"], 1e-9)})
        if step % self.snapshot_every == 0:
            self._snapshot(trainer)

    def on_epoch_end(self, trainer, record, evaluation):
        step = _step(trainer)
        self._write({"kind": "epoch", "step": step, "epoch": record["epoch"],
                     "train_loss": record["train_loss"], "train_accuracy": record["train_accuracy"],
                     "test_loss": record["test_loss"], "test_accuracy": record["test_accuracy"],
                     "per_class_accuracy": evaluation["per_class_accuracy"], "lr": record["lr"],
                     "seconds": record["seconds"]})
        if step % self.snapshot_every:  # not drawn at this step already
            self._snapshot(trainer)

    def on_train_end(self, trainer):
        ended_by_itself = trainer.interrupted is None and (
            trainer.stop_requested or trainer.epoch >= self.config["epochs"])
        if ended_by_itself:
            self._write({"kind": "finished", "step": _step(trainer), "epoch": trainer.epoch})
        if self.file is not None:
            self.file.close()
            self.file = None

    def _snapshot(self, trainer):
        """Draw the first convolution layer's kernels and maps now, and say so in the log."""
        from .viz.snapshots import feature_maps_png, image_png, kernels_png
        first = first_convolution(trainer.model, self.image)
        if first is None:
            return
        kernels, maps = first
        step = _step(trainer)
        folder = self.run_dir / SNAPSHOTS
        folder.mkdir(exist_ok=True)
        names = snapshot_pictures(step)
        if not self.image_drawn:
            atomic_write(self.run_dir / names["image"], image_png(self.image[0]))
            self.image_drawn = True
        atomic_write(self.run_dir / names["kernels"], kernels_png(kernels))
        atomic_write(self.run_dir / names["feature_maps"], feature_maps_png(maps))
        self._write({"kind": "snapshot", "step": step, "epochs_done": round(step / len(trainer.train_loader), 3),
                     **names})

    def _write(self, entry):
        if self.file is None:
            self._open()
        self.file.write(json.dumps({**entry, "time": time.time()}) + "\n")
        self.file.flush()


def first_convolution(model, image):
    """The first Conv2d that ``image`` (1, C, H, W) passes through: its kernels (K, C, kH, kW), all
    input channels, so a colour network's are drawn in colour, and its feature maps of the image
    (K, H', W'); None for a model without one."""
    from .nn import Conv2d, record_outputs
    records, _ = record_outputs(model, image)
    first = next((record for record in records if isinstance(record.module, Conv2d)), None)
    return None if first is None else (first.module.weight.data, first.output[0])


def _step(trainer):
    """Training steps done since the run began."""
    return trainer.epoch * len(trainer.train_loader) + trainer.batch


TENSORBOARD_INSTALL = "pip install 'convnet-numpy[tensorboard]'"


class TensorBoardMissing(ConvnetError, ImportError):
    pass


class TensorBoard(Callback):
    """TensorBoard event files in ``run_dir/tensorboard`` (tensorboardX, the optional extra
    ``convnet[tensorboard]``): every ``every`` steps the running loss and accuracy, the learning
    rate and images/s; after every epoch the test loss and accuracy, each layer's weight and
    gradient histograms, the first convolution's kernels and its feature maps of the first test
    image, as images; at the end the run's settings with its final figures (hparams). A resumed
    run purges what was logged past its checkpoint's step."""

    def __init__(self, run_dir, config, every=STEP_LOG_EVERY):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TensorBoardMissing(f"--tensorboard needs tensorboardX, which is not installed: "
                                     f"{TENSORBOARD_INSTALL}") from None
        self.writer_class, self.folder = SummaryWriter, Path(run_dir) / TENSORBOARD
        self.config, self.every, self.writer = config, every, None

    def on_train_begin(self, trainer):
        self.writer = self.writer_class(str(self.folder), purge_step=_step(trainer) or None)
        images, _ = next(trainer.test_loader.batches(0))
        self.image = images.data[:1]

    def on_batch_end(self, trainer, loss):
        step = _step(trainer)
        if step % self.every == 0:
            totals = trainer.partial
            self.writer.add_scalar("train/loss", totals["loss"] / totals["count"], step)
            self.writer.add_scalar("train/accuracy", totals["correct"] / totals["count"], step)
            self.writer.add_scalar("learning_rate", trainer.optimizer.param_groups[0]["lr"], step)
            self.writer.add_scalar("images_per_second", totals["count"] / max(totals["seconds"], 1e-9), step)

    def on_epoch_end(self, trainer, record, evaluation):
        step = _step(trainer)
        self.writer.add_scalar("test/loss", record["test_loss"], step)
        self.writer.add_scalar("test/accuracy", record["test_accuracy"], step)
        for name, parameter in trainer.model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", parameter.data, step)
            if parameter.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", parameter.grad.data, step)
        first = first_convolution(trainer.model, self.image)
        if first is not None:
            kernels, maps = first
            # A colour network's kernels in colour; any other's on input channel 0.
            shown = kernels if kernels.shape[1] == 3 else kernels[:, :1]
            self.writer.add_images("first_conv/kernels", _unit(shown), step)
            self.writer.add_images("first_conv/feature_maps", _unit(maps[:, None]), step)
        self.writer.flush()

    def on_train_end(self, trainer):
        if trainer.history:
            settings = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                        for key, value in self.config.items()}
            last = trainer.history[-1]
            self.writer.add_hparams(settings, {"hparam/test_accuracy": last["test_accuracy"],
                                               "hparam/test_loss": last["test_loss"]}, name="hparams")
        self.writer.close()


def _unit(images):
    """(N, C, H, W) scaled to [0, 1] image by image, so each kernel or map shows its own contrast."""
    low = images.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(images.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    return ((images - low) / span).astype(np.float32)
