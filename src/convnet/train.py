"""Training and evaluation: the loop behind ``convnet train``, usable from Python.

A run folder holds ``checkpoint.safetensors`` (+ ``checkpoint.json``), ``metrics.csv`` and
``curves.png``, all rewritten atomically after every epoch. Everything a run depends on is in
the checkpoint (weights, optimizer and schedule state, the random generator, the position in
the epoch), so a run stopped at any point and resumed ends with exactly the weights of an
uninterrupted run with the same seed.
"""

import csv
import io
import math
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint
from . import functional as F
from . import optim
from . import random as _random
from .backend import retain_freed_memory
from .tensor import no_grad

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "none")
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(RuntimeError):
    pass


def make_optimizer(name, parameters, lr=None, weight_decay=0.0, momentum=0.9):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    return (optim.Adam if name == "adam" else optim.AdamW)(parameters, lr=lr, weight_decay=weight_decay)


def make_schedule(name, optimizer, epochs, steps_per_epoch):
    """A per-step schedule over the whole run (None for a constant learning rate)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    lr = optimizer.param_groups[0]["lr"]
    total = epochs * steps_per_epoch
    if name == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total, 2))
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    if name == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return None


def evaluate(model, loader):
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` over ``loader``."""
    classes = len(loader.dataset.classes)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    total_loss, count = 0.0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for images, labels in loader.batches(0):
            logits = model(images)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            np.add.at(confusion, (labels, logits.numpy().argmax(axis=1)), 1)
            count += len(labels)
    model.train(was_training)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {"loss": total_loss / max(count, 1), "accuracy": float(np.trace(confusion) / max(count, 1)),
            "per_class_accuracy": per_class.tolist(), "confusion": confusion.tolist()}


@contextmanager
def _sigint_requests_stop(trainer):
    """While training in the main thread, the first Ctrl-C asks the trainer to stop cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """Trains ``model`` on ``train_loader``, evaluating on ``test_loader`` after every epoch.

    ``config`` (JSON-able) is stored in the checkpoint so a run folder can rebuild its model;
    ``run_dir`` None trains without writing anything.
    """

    def __init__(self, model, train_loader, test_loader, optimizer, schedule=None, run_dir=None,
                 label_smoothing=0.0, config=None, progress=True, log=print):
        self.model, self.train_loader, self.test_loader = model, train_loader, test_loader
        self.optimizer, self.schedule = optimizer, schedule
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.label_smoothing, self.config, self.progress, self.log = label_smoothing, dict(config or {}), progress, log
        self.history, self.epoch, self.batch = [], 0, 0
        self.partial = {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
        retain_freed_memory()

    # ------------------------------------------------------------------ state
    def state(self):
        return {"config": self.config, "epoch": self.epoch, "batch": self.batch, "partial": self.partial,
                "history": self.history, "schedule": self.schedule.state_dict() if self.schedule else None,
                "rng": _random.get_state()}

    def save(self):
        if self.run_dir is None:
            return
        checkpoint.save(self.run_dir, self.model, self.optimizer, self.state())

    def resume(self):
        """Restore everything from ``run_dir``'s checkpoint."""
        model_state, optimizer_state, meta = checkpoint.load(self.run_dir)
        saved_model = meta.get("config", {}).get("model")
        if saved_model and self.config.get("model") and saved_model != self.config["model"]:
            raise checkpoint.CheckpointError(f"{self.run_dir} holds a {saved_model} run, not {self.config['model']}")
        self.model.load_state_dict(model_state)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        if self.schedule is not None and meta.get("schedule"):
            self.schedule.load_state_dict(meta["schedule"])
        self.epoch, self.batch, self.partial = meta["epoch"], meta["batch"], meta["partial"]
        self.history = meta["history"]
        _random.set_state(meta["rng"])

    # ------------------------------------------------------------------ loop
    def request_stop(self):
        """Stop after the current batch, saving the run (what Ctrl-C does)."""
        self.stop_requested = True

    def fit(self, epochs):
        """Train until ``epochs`` epochs are complete; return the per-epoch history.

        Ctrl-C (SIGINT) finishes the current batch, saves and raises `TrainingInterrupted`; a
        second Ctrl-C stops at once without saving.
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"fit: expected epochs to be a positive int, got {epochs!r}")
        if self.run_dir is not None:
            checkpoint.check_writable(self.run_dir)
        self.stop_requested = False
        with _sigint_requests_stop(self):
            while self.epoch < epochs:
                self._train_epoch(epochs)
                if self.stop_requested:
                    self.save()
                    where = f"{self.run_dir / checkpoint.WEIGHTS}" if self.run_dir else "nowhere (no run folder)"
                    raise TrainingInterrupted(
                        f"interrupted in epoch {self.epoch + 1} after {self.batch} batches; saved to {where}"
                        + (f"; resume with: convnet train --resume {self.run_dir}" if self.run_dir else ""))
                record = self._finish_epoch()
                self.log(f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
                         f"acc {record['train_accuracy']:.4f} | test loss {record['test_loss']:.4f} "
                         f"acc {record['test_accuracy']:.4f} | {record['images_per_second']:.0f} img/s")
        return self.history

    def _train_epoch(self, epochs):
        loader = self.train_loader
        self.model.train()
        bar = tqdm(loader.batches(self.epoch, self.batch), total=len(loader), initial=self.batch,
                   desc=f"epoch {self.epoch + 1}/{epochs}", disable=not self.progress, leave=False, unit="batch")
        partial = self.partial
        for images, labels in bar:
            start = time.perf_counter()
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the loss became {value} at epoch {self.epoch + 1}, batch {self.batch + 1}; the last "
                    f"good checkpoint is kept. Try a lower learning rate (--lr).")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            self.batch += 1
            partial["loss"] += value * len(labels)
            partial["correct"] += int((logits.numpy().argmax(axis=1) == labels).sum())
            partial["count"] += len(labels)
            partial["seconds"] += time.perf_counter() - start
            bar.set_postfix(loss=f"{partial['loss'] / partial['count']:.4f}",
                            acc=f"{partial['correct'] / partial['count']:.4f}",
                            img_s=f"{partial['count'] / max(partial['seconds'], 1e-9):.0f}")
            if self.stop_requested:
                break
        bar.close()

    def _finish_epoch(self):
        partial = self.partial
        result = evaluate(self.model, self.test_loader)
        self.epoch += 1
        record = {"epoch": self.epoch, "train_loss": partial["loss"] / max(partial["count"], 1),
                  "train_accuracy": partial["correct"] / max(partial["count"], 1), "test_loss": result["loss"],
                  "test_accuracy": result["accuracy"],
                  "images_per_second": partial["count"] / max(partial["seconds"], 1e-9),
                  "lr": self.optimizer.param_groups[0]["lr"]}
        self.history.append(record)
        self.batch, self.partial = 0, {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
        self.save()
        self._write_reports()
        return record

    def _write_reports(self):
        if self.run_dir is None:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.history[0]))
        writer.writeheader()
        writer.writerows(self.history)
        checkpoint.atomic_write(self.run_dir / "metrics.csv", text.getvalue())
        from .viz import save_curves
        conditions = ["augmented"] if self.config.get("augment") else []
        if self.label_smoothing:
            conditions.append(f"label smoothing {self.label_smoothing:g}")
        save_curves(self.history, self.run_dir / "curves.png", conditions)
