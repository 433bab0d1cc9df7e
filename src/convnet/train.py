"""The training loop: `Trainer.fit` trains a model epoch by epoch and tells its callbacks.

The loop only trains and evaluates. Everything else hangs on it as a `Callback` (Keras'
model): the progress bar, the epoch log, the run folder's checkpoints and pictures
(``convnet.reports``). Everything a run depends on is in `Trainer.state` (the position in the
epoch, the running totals, the history, the schedule and the random generator) together with
the model's and optimizer's state_dicts, so a run stopped at any point and restored with
`Trainer.restore` ends with exactly the weights of an uninterrupted run with the same seed.
"""

import itertools
import math
import signal
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import functional as F
from . import random as _random
from .distributed import ONE_PROCESS, batch_share, flat_gradients
from .errors import ConvnetError, InvalidType, InvalidValue
from .evaluation import evaluate
# The training batches (of epoch 0, so a pure function of the run's seed) over which an averaged
# model's batch norm statistics are recomputed: about 4,000 images at the default batch of 128.
AVERAGE_STATISTICS_BATCHES = 32


class TrainingDiverged(ConvnetError, RuntimeError):
    pass


class TrainingInterrupted(ConvnetError, RuntimeError):
    """``signal_number``: SIGINT (Ctrl-C) or SIGTERM (kill, a job scheduler, docker stop)."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number


class Callback:
    """Hooks into `Trainer.fit`; each receives the trainer, whose attributes are the loop's state
    (``epoch`` and ``batch`` done so far, ``partial`` running totals of the epoch, ``history``,
    ``model``, ``optimizer``) and whose `request_stop` asks the loop to stop after this batch."""

    def on_train_begin(self, trainer):
        """Before the first batch (of this call to ``fit``; a resumed run calls it again)."""

    def on_epoch_begin(self, trainer):
        """Before the epoch's first batch, or the first batch still to do in a resumed epoch."""

    def on_batch_end(self, trainer, loss):
        """After each optimizer step; ``loss`` is the batch's mean loss."""

    def on_epoch_end(self, trainer, record, evaluation):
        """After the epoch's test evaluation: ``record`` is the new history entry, ``evaluation``
        what `evaluate` returned (per-class accuracy and confusion matrix included)."""

    def on_train_end(self, trainer):
        """When the loop ends: all epochs done, or stopped on request (``trainer.stop_requested``).
        Not called when the loss diverges, so the last good checkpoint stays."""


class LambdaCallback(Callback):
    """A callback made of plain functions, one per hook (Keras' LambdaCallback): each takes the
    arguments of the `Callback` method of its name.

    >>> losses = []
    >>> callback = LambdaCallback(on_batch_end=lambda trainer, loss: losses.append(loss))
    """

    HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")

    def __init__(self, **hooks):
        unknown = sorted(set(hooks) - set(self.HOOKS))
        if unknown:
            raise InvalidType(f"LambdaCallback: expected hooks among {', '.join(self.HOOKS)}, got {', '.join(unknown)}")
        for name, function in hooks.items():
            if not callable(function):
                raise InvalidType(f"LambdaCallback: expected {name} to be a function, got {type(function).__name__}")
            setattr(self, name, function)


class EarlyStopping(Callback):
    """Stop when the test loss has not improved for ``patience`` epochs (Keras' EarlyStopping on
    val_loss). It reads only the history, so a resumed run decides as the uninterrupted one would,
    and so does every rank of a distributed job; ``log`` says why it stopped."""

    def __init__(self, patience, log=print):
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise InvalidValue(f"EarlyStopping: expected patience to be a positive int, got {patience!r}")
        self.patience, self.log = patience, log

    def on_train_begin(self, trainer):
        self._check(trainer)

    def on_epoch_end(self, trainer, record, evaluation):
        self._check(trainer)

    def _check(self, trainer):
        losses = [entry["test_loss"] for entry in trainer.history]
        if not losses or trainer.stop_requested:
            return
        best = min(range(len(losses)), key=losses.__getitem__)
        if len(losses) - 1 - best >= self.patience:
            self.log(f"stopped early after epoch {len(losses)}: the test loss has not improved for "
                     f"{len(losses) - 1 - best} epochs (best {losses[best]:.4f} after epoch {best + 1})")
            trainer.request_stop()


class FreezeAfter(Callback):
    """Train ``parameters`` for the first ``epochs`` epochs, then freeze them: from then on backward
    gives them no gradient, so no optimizer moves them (as airbench trains its whitening layer's bias
    for 3 epochs). Decided by the epoch alone, so a resumed run freezes where the whole one would."""

    def __init__(self, parameters, epochs):
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise InvalidValue(f"FreezeAfter: expected epochs to be an int >= 0, got {epochs!r}")
        self.parameters, self.epochs = list(parameters), epochs

    def on_epoch_begin(self, trainer):
        if trainer.epoch >= self.epochs:
            for p in self.parameters:
                p.requires_grad, p.grad = False, None


INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_interrupt(trainer):
    """While training in the main thread, the first Ctrl-C or SIGTERM interrupts the trainer cleanly
    (a job scheduler's or `docker stop`'s SIGTERM saves like Ctrl-C); a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.interrupted:
            raise KeyboardInterrupt
        trainer.interrupt(signum)

    previous = {number: signal.signal(number, handler) for number in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def _empty_totals():
    return {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _state_problems(state, batches):
    """What in a saved `Trainer.state` is not as it writes it, each as "field: expected X, got Y"."""
    if not isinstance(state, dict):
        return [f"expected the loop's state to be a dict, got {type(state).__name__}"]
    problems = []
    missing = [name for name in ("epoch", "batch", "partial", "history", "rng") if name not in state]
    if missing:
        return [f"missing {', '.join(missing)}"]
    epoch, batch, partial, history = state["epoch"], state["batch"], state["partial"], state["history"]
    if not _is_count(batch) or batch > batches:
        problems.append(f"batch: expected the batch reached in the epoch to be in 0..{batches} (this run's batches "
                        f"per epoch), got {batch!r}")
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        problems.append(f"history: expected a list of one dict per epoch, got {str(history)[:60]}")
    else:
        if not _is_count(epoch) or epoch != len(history):
            problems.append(f"epoch: expected the number of finished epochs, {len(history)} (the history's rows), "
                            f"got {epoch!r}")
        bad = [f"{row.get('epoch', index + 1)}.{name}" for index, row in enumerate(history)
               for name, value in row.items() if not _is_number(value)]
        if bad:
            problems.append(f"history: expected finite numbers, got others in {', '.join(bad[:3])}")
    if not isinstance(partial, dict) or set(partial) != set(_empty_totals()) or not all(
            _is_number(value) and value >= 0 for value in partial.values()):
        problems.append(f"partial: expected non-negative totals {sorted(_empty_totals())}, got {str(partial)[:80]}")
    if not isinstance(state["rng"], dict):
        problems.append(f"rng: expected the generator's state (a dict), got {type(state['rng']).__name__}")
    return problems


class Trainer:
    """Trains ``model`` on ``train_loader``, evaluating on ``test_loader`` after every epoch (with
    ``test_mirror``, each test image averaged with its mirror image, and with ``test_translate``
    with views shifted by that many pixels: `nn.logits`).

    ``schedule`` (or None) steps once per batch; ``callbacks`` are told about every step (see
    `Callback`). ``group``: the ranks of a distributed job (`convnet.distributed`), each training
    on its share of every batch; by default this process alone. With ``average`` (an
    `optim.ExponentialMovingAverage` of ``model``, updated after every step) the average is the
    model evaluated and saved (`evaluated_model`); ``model`` is the one trained.
    `convnet.experiment.build_trainer` makes one from a run configuration.
    """

    def __init__(self, model, train_loader, test_loader, optimizer, schedule=None, label_smoothing=0.0,
                 callbacks=(), group=ONE_PROCESS, test_mirror=False, test_translate=0, average=None):
        if average is not None and group.size > 1:
            raise InvalidValue(f"Trainer: expected one process to average the weights (each rank would recompute "
                               f"batch norm's statistics from its own share), got a group of {group.size}")
        self.model, self.train_loader, self.test_loader, self.average = model, train_loader, test_loader, average
        self.test_mirror, self.test_translate = test_mirror, test_translate
        self.group = group
        self.optimizer, self.schedule, self.label_smoothing = optimizer, schedule, label_smoothing
        self.callbacks = list(callbacks)
        self.history, self.epoch, self.batch, self.partial = [], 0, 0, _empty_totals()
        self.stop_requested, self.interrupted, self.agreed_stop = False, None, False

    # ------------------------------------------------------------------ state
    def state(self):
        """The loop's JSON-able state; with the model's and optimizer's state_dicts, all a run needs."""
        state = {"epoch": self.epoch, "batch": self.batch, "partial": self.partial, "history": self.history,
                 "schedule": self.schedule.state_dict() if self.schedule else None, "rng": _random.get_state()}
        return state if self.average is None else {**state, "average_updates": self.average.n_averaged}

    def restore(self, model_state, optimizer_state, state, training_state=None):
        """Continue from a saved run: the inverse of (evaluated_model().state_dict(), optimizer.state_dict(),
        `state`, and with ``average`` model.state_dict(): the weights being trained). The state is checked
        whole first; a ValueError lists every field that is not as `state` writes it."""
        problems = _state_problems(state, len(self.train_loader))
        if self.average is not None and not (isinstance(state, dict) and _is_count(state.get("average_updates"))
                                             and training_state is not None):
            problems.append("average_updates: expected the count of averaged steps and the trained weights beside "
                            "the averaged ones (a run that averages its weights saves both)")
        if problems:
            raise InvalidValue(f"restore: {'; '.join(problems)}")
        if self.average is None:
            self.model.load_state_dict(model_state)
        else:
            self.model.load_state_dict(training_state)
            self.average.load_state_dict({"module": model_state, "n_averaged": state["average_updates"],
                                          "decay": self.average.decay, "use_buffers": self.average.use_buffers})
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        if self.schedule is not None and state.get("schedule"):
            self.schedule.load_state_dict(state["schedule"])
        self.epoch, self.batch, self.partial = state["epoch"], state["batch"], state["partial"]
        self.history = state["history"]
        _random.set_state(state["rng"])

    def evaluated_model(self):
        """What the loop evaluates and a run folder saves: ``model``, or ``average`` with its batch norm
        statistics recomputed over the first `AVERAGE_STATISTICS_BATCHES` training batches (the random
        generator left as it was, so a model with dropout trains on as if they had not been)."""
        if self.average is None:
            return self.model
        generator = _random.get_state()
        model = self.average.with_statistics(
            lambda: itertools.islice(self.train_loader.batches(0), AVERAGE_STATISTICS_BATCHES))
        _random.set_state(generator)
        return model

    def evaluate(self):
        """`evaluate`'s figures for the model as it is now, as the loop evaluates it after an epoch."""
        return evaluate(self.evaluated_model(), self.test_loader, self.group, self.test_mirror, self.test_translate)

    # ------------------------------------------------------------------ loop
    def request_stop(self):
        """Stop after the current batch; ``fit`` then returns (a callback's way to end a run)."""
        self.stop_requested = True

    def interrupt(self, signal_number=signal.SIGINT):
        """What Ctrl-C (or SIGTERM) does: stop after the current batch, and ``fit`` raises
        `TrainingInterrupted` once the callbacks have ended the run (the run folder's saves it)."""
        self.interrupted = signal.Signals(signal_number)
        self.request_stop()

    def fit(self, epochs):
        """Train until ``epochs`` epochs are complete; return the per-epoch history.

        Ctrl-C (SIGINT) or SIGTERM finishes the current batch, ends the run through the callbacks and
        raises `TrainingInterrupted`; a second one stops at once.
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise InvalidValue(f"fit: expected epochs to be a positive int, got {epochs!r}")
        self.stop_requested, self.interrupted, self.agreed_stop = False, None, False
        self._tell("on_train_begin")
        # A diverging run is stopped by the loss check below; NumPy's overflow warnings on the way
        # there say nothing a user can act on.
        with _signals_interrupt(self), np.errstate(over="ignore", invalid="ignore"):
            while self.epoch < epochs and not self.stop_requested:
                self._train_epoch()
                if self.batch == len(self.train_loader):
                    self._finish_epoch()
        self._tell("on_train_end")
        if self.interrupted:
            raise TrainingInterrupted(f"interrupted ({self.interrupted.name}) in epoch {self.epoch + 1} after "
                                      f"{self.batch} batches", self.interrupted)
        return self.history

    def _tell(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _train_epoch(self):
        self.model.train()
        self._tell("on_epoch_begin")
        partial = self.partial
        for images, labels in self.train_loader.batches(self.epoch, self.batch):
            start = time.perf_counter()
            if self.group.size > 1:
                value, correct = self._distributed_step(images, labels)
            else:
                logits = self.model(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDiverged(f"the loss became {value} at epoch {self.epoch + 1}, batch "
                                           f"{self.batch + 1}")
                self.optimizer.zero_grad()
                loss.backward()
                correct = int((logits.numpy().argmax(axis=1) == labels).sum())
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            if self.average is not None:
                self.average.update(self.model)
            self.batch += 1
            partial["loss"] += value * len(labels)
            partial["correct"] += correct
            partial["count"] += len(labels)
            partial["seconds"] += time.perf_counter() - start
            self._tell("on_batch_end", value)
            if self.stop_requested if self.group.size == 1 else self.agreed_stop:
                break

    def _distributed_step(self, images, labels):
        """This rank's share of the batch, forward and backward, its loss weighted by its share so
        that the summed gradients are those of the batch's mean loss; one Allreduce sums them, and
        a second the batch's loss, correct answers and stop requests (so every rank stops after the
        same batch: a rank stops when all have heard, not when it alone did). Rank 0's buffers
        (batch norm's running statistics) are everyone's first.
        Returns (the batch's mean loss, its correct answers), the same on every rank."""
        self._buffers_from_rank_0()
        local_images, local_labels = batch_share(self.group, images, labels)
        logits = self.model(local_images)
        loss = F.cross_entropy(logits, local_labels, label_smoothing=self.label_smoothing)
        weight = len(local_labels) / len(labels)
        self.optimizer.zero_grad()
        (loss * weight).backward()
        # Not a frozen one (`FreezeAfter`): a zero gradient would still move it by momentum and decay.
        parameters = [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]
        gradients, write_back = flat_gradients(parameters)
        self.group.sum(gradients)
        write_back()
        totals = np.array([loss.item() * weight, (logits.numpy().argmax(axis=1) == local_labels).sum(),
                           self.stop_requested], dtype=np.float64)
        self.group.sum(totals)
        value, correct, self.agreed_stop = float(totals[0]), int(totals[1]), bool(totals[2])
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value} at epoch {self.epoch + 1}, batch {self.batch + 1}")
        if self.agreed_stop and not self.stop_requested:  # another rank was interrupted or asked to stop
            self.interrupted = self.interrupted or signal.Signals(signal.SIGTERM)
            self.request_stop()
        return value, correct

    def _buffers_from_rank_0(self):
        for buffer in self.model.buffers():
            self.group.broadcast(buffer.data)

    def _finish_epoch(self):
        partial = self.partial
        if self.group.size > 1:
            self._buffers_from_rank_0()  # what rank 0 saves is what every rank evaluates with
        evaluating = time.perf_counter()
        evaluation = self.evaluate()
        evaluation_seconds = time.perf_counter() - evaluating
        self.epoch += 1
        record = {"epoch": self.epoch, "train_loss": partial["loss"] / max(partial["count"], 1),
                  "train_accuracy": partial["correct"] / max(partial["count"], 1), "test_loss": evaluation["loss"],
                  "test_accuracy": evaluation["accuracy"],
                  "images_per_second": partial["count"] / max(partial["seconds"], 1e-9),
                  "lr": self.optimizer.param_groups[0]["lr"],
                  # wall-clock seconds of the epoch's steps and its test evaluation: what accuracy per
                  # minute of training is measured in (reporting's own time left out)
                  "seconds": partial["seconds"] + evaluation_seconds}
        self.history.append(record)
        self.batch, self.partial = 0, _empty_totals()
        self._tell("on_epoch_end", record, evaluation)
