"""Training runs: learning, checkpoints, exact resume, divergence and failing disks."""

import csv
import errno
import io
import json
import os
from dataclasses import asdict, replace

import numpy as np
import pytest

import convnet
from convnet import checkpoint, experiment, run_folder
from convnet.experiment import RunConfig, build_trainer, load_datasets, load_run, train_transform
from convnet.files import WriteError
from convnet.train import Callback, EarlyStopping, TrainingDiverged, TrainingInterrupted



def config(data, **changes):
    values = dict(model="simple_cnn", data=str(data), epochs=2, batch_size=32, augment="full", seed=5)
    return RunConfig(**{**values, **changes})


def trainer_for(cfg, run_dir):
    train, test = load_datasets(cfg)
    return build_trainer(cfg, train, test, run_dir, progress=False, log=lambda line: None)


@pytest.mark.slow
def test_a_run_learns_and_writes_its_folder(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    history = trainer_for(config(tiny_fashion, model="reference_cnn", epochs=3, augment="none"), run_dir).fit(3)
    assert history[-1]["test_accuracy"] > 0.5 and history[-1]["train_loss"] < history[0]["train_loss"]
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["test_accuracy"]) == pytest.approx(history[-1]["test_accuracy"])
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg, model, meta = load_run(run_dir)
    assert cfg.model == "reference_cnn" and meta["epoch"] == 3 and not model.training
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]


@pytest.mark.slow
def test_stopped_and_resumed_run_ends_with_the_same_weights_bit_for_bit(tiny_fashion, tmp_path):
    cfg = config(tiny_fashion)  # dropout, augmentation, shuffling and a one-cycle schedule all in play
    straight = trainer_for(cfg, tmp_path / "straight")
    straight.fit(cfg.epochs)

    stopped = trainer_for(cfg, tmp_path / "stopped")
    batches = stopped.train_loader.dataset.batch

    def stop_in_epoch_two(index, calls=[0]):  # noqa: B006  (counts calls across batches)
        calls[0] += 1
        if calls[0] == len(stopped.train_loader) + 3:
            stopped.interrupt()  # what Ctrl-C does
        return batches(index)

    stopped.train_loader.dataset.batch = stop_in_epoch_two
    with pytest.raises(TrainingInterrupted, match=r"^interrupted \(SIGINT\) in epoch 2 after 3 batches$"):
        stopped.fit(cfg.epochs)
    convnet.manual_seed(999)  # the resumed run must restore the generator, not rely on it
    resumed = experiment.resume(tmp_path / "stopped", progress=False, log=lambda line: None).trainer
    assert (resumed.epoch, resumed.batch) == (1, 3)
    resumed.fit(cfg.epochs)
    expected, actual = straight.model.state_dict(), resumed.model.state_dict()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert resumed.history == straight.history or [
        {k: v for k, v in r.items() if k not in ("images_per_second", "seconds")} for r in resumed.history] == [
        {k: v for k, v in r.items() if k not in ("images_per_second", "seconds")} for r in straight.history]


def test_a_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_fashion, tmp_path):
    trainer = trainer_for(config(tiny_fashion, epochs=2, augment="none"), tmp_path / "run")
    trainer.fit(1)
    trainer.model[0].weight.data[...] = np.nan
    with pytest.raises(TrainingDiverged, match=r"^the loss became nan at epoch 2, batch 1$"):
        trainer.fit(2)
    state, _, meta = checkpoint.load(tmp_path / "run")
    assert meta["epoch"] == 1 and np.isfinite(state["0.weight"]).all()


def test_a_failing_disk_leaves_the_previous_checkpoint_intact(tiny_fashion, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    trainer = trainer_for(config(tiny_fashion, epochs=2, augment="none"), run_dir)
    trainer.fit(1)
    before = (run_dir / checkpoint.WEIGHTS).read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(WriteError, match="No space left on device; the previous file, if any, is intact"):
        trainer.fit(2)  # the epoch's snapshot is its first write, then the checkpoint would be
    assert (run_dir / checkpoint.WEIGHTS).read_bytes() == before
    assert not [p for p in os.listdir(run_dir) if p.startswith(".") and p != run_folder.LOCK]  # no temporaries
    assert not [p for p in os.listdir(run_dir / run_folder.SNAPSHOTS) if p.startswith(".")]


def test_checkpoints_that_do_not_fit_are_refused(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    trainer_for(config(tiny_fashion, epochs=1, augment="none"), run_dir).fit(1)
    state, optimizer_state, meta = checkpoint.load(run_dir)
    meta["config"]["model"] = "lenet5"  # a run folder claiming another architecture
    from convnet.models import build
    checkpoint.save(run_dir, build("simple_cnn"), None, meta)
    with pytest.raises(checkpoint.CheckpointError, match=r"does not fit a lenet5 run: .*missing keys: \['3.weight'.*"
                                                             r"wrong shapes: 0.weight: expected shape \(6, 1, 5, 5\), "
                                                             r"got \(100, 1, 5, 5\)"):
        load_run(run_dir)
    (run_dir / checkpoint.WEIGHTS).write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable convnet checkpoint"):
        checkpoint.load(run_dir)
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint in"):
        checkpoint.load(tmp_path / "empty")


def test_a_checkpoint_past_the_end_of_an_epoch_is_refused(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    trainer_for(config(tiny_fashion, epochs=2, augment="none"), run_dir).fit(1)
    model_state, optimizer_state, meta = checkpoint.load(run_dir)
    model = load_run(run_dir)[1]
    batches = len(experiment.resume(run_dir, progress=False).trainer.train_loader)
    for batch in (batches + 1, -1, 1.5):
        meta["batch"] = batch
        checkpoint.save(run_dir, model, None, meta)
        with pytest.raises(checkpoint.CheckpointError,
                           match=rf"expected the batch reached in the epoch to be in 0..{batches} .*got {batch}"):
            experiment.resume(run_dir, progress=False)


def test_a_checkpoint_whose_loop_state_was_tampered_with_is_refused_field_by_field(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    trainer_for(config(tiny_fashion, epochs=2, augment="none"), run_dir).fit(1)
    model_state, optimizer_state, meta = checkpoint.load(run_dir)
    model = load_run(run_dir)[1]
    meta.update(epoch=10 ** 30, partial={"loss": -1.0}, rng=[1, 2])
    meta["history"][0]["test_accuracy"] = "0.9"
    checkpoint.save(run_dir, model, None, meta)  # a consistent file, so its checksums pass
    with pytest.raises(checkpoint.CheckpointError) as refused:
        experiment.resume(run_dir, progress=False)
    message = str(refused.value)
    assert f"epoch: expected the number of finished epochs, 1 (the history's rows), got {10 ** 30}" in message
    assert "history: expected finite numbers, got others in 1.test_accuracy" in message
    assert "partial: expected non-negative totals ['correct', 'count', 'loss', 'seconds']" in message
    assert "rng: expected the generator's state (a dict), got list" in message and "\n" not in message


def test_config_checks_every_value_at_once():
    with pytest.raises(ValueError, match=r"epochs must be a positive integer, got 0; .*lr must be positive, got -1"):
        RunConfig(epochs=0, lr=-1)
    # What an edited checkpoint could hold: every wrong type named, none a TypeError.
    with pytest.raises(ValueError) as refused:
        RunConfig.from_dict({"data": 7, "augment": "yes", "seed": 1.5, "lr": "0.1", "weight_decay": "0.05",
                             "label_smoothing": [0.1]})
    for expected in ("data must be a folder's path or None, got 7", "augment must be none, full or a comma-separated choice of crop, flip, altflip, erase (or None: "
                     "the dataset's default), got 'yes'",
                     "seed must be an integer, got 1.5", "lr must be positive, got '0.1'",
                     "weight_decay must be >= 0, got '0.05'", "label_smoothing must be in [0, 1), got [0.1]"):
        assert expected in str(refused.value)


class Recorder(Callback):
    """Writes down every hook the loop calls, with the loop's position at that moment."""

    def __init__(self, stop_after_batches=None):
        self.calls, self.stop_after_batches, self.batches = [], stop_after_batches, 0

    def on_train_begin(self, trainer):
        self.calls.append(("train_begin", trainer.epoch, trainer.batch))

    def on_epoch_begin(self, trainer):
        self.calls.append(("epoch_begin", trainer.epoch, trainer.batch))

    def on_batch_end(self, trainer, loss):
        self.batches += 1
        assert np.isfinite(loss) and trainer.partial["count"] > 0
        if self.batches == self.stop_after_batches:
            trainer.request_stop()

    def on_epoch_end(self, trainer, record, evaluation):
        assert record is trainer.history[-1] and record["test_accuracy"] == evaluation["accuracy"]
        assert np.sum(evaluation["confusion"]) == len(trainer.test_loader.dataset)
        self.calls.append(("epoch_end", trainer.epoch, trainer.batch))

    def on_train_end(self, trainer):
        self.calls.append(("train_end", trainer.epoch, trainer.batch, trainer.stop_requested))


def test_callbacks_hear_every_step_in_order(tiny_fashion):
    cfg = config(tiny_fashion, epochs=2, augment="none")
    trainer = trainer_for(cfg, None)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit(2)
    steps = len(trainer.train_loader)
    assert recorder.batches == 2 * steps
    assert recorder.calls == [("train_begin", 0, 0), ("epoch_begin", 0, 0), ("epoch_end", 1, 0),
                              ("epoch_begin", 1, 0), ("epoch_end", 2, 0), ("train_end", 2, 0, False)]


@pytest.mark.slow
def test_a_callback_can_stop_the_run_which_is_saved_and_resumes_exactly(tiny_fashion, tmp_path):
    cfg = config(tiny_fashion, epochs=2)
    straight = trainer_for(cfg, None)
    straight.fit(2)
    stopped = trainer_for(cfg, tmp_path / "run")
    stopped.callbacks.append(Recorder(stop_after_batches=5))
    history = stopped.fit(2)  # a requested stop is not an interruption: fit returns
    assert history == [] and (stopped.epoch, stopped.batch) == (0, 5)
    _, _, meta = checkpoint.load(tmp_path / "run")
    assert (meta["epoch"], meta["batch"]) == (0, 5) and meta["config"]["seed"] == cfg.seed
    resumed = experiment.resume(tmp_path / "run", progress=False, log=lambda line: None).trainer
    resumed.fit(2)
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)


def test_resume_reads_the_checkpoint_once(tiny_fashion, tmp_path, monkeypatch):
    trainer_for(config(tiny_fashion, epochs=1, augment="none"), tmp_path / "run").fit(1)
    reads = []
    read = checkpoint._read  # every load of the file goes through it
    monkeypatch.setattr(checkpoint, "_read", lambda run_dir: reads.append(run_dir) or read(run_dir))
    run = experiment.resume(tmp_path / "run", progress=False, log=lambda line: None)
    assert len(reads) == 1 and run.trainer.epoch == 1 and run.config.model == "simple_cnn"


def test_a_new_run_refuses_a_folder_that_holds_one(tiny_fashion, tmp_path):
    cfg = config(tiny_fashion, epochs=1, augment="none")
    trainer_for(cfg, tmp_path / "run").fit(1)
    with pytest.raises(experiment.RunExists, match="already holds a run"):
        experiment.start(cfg, tmp_path / "run", progress=False)


def test_temporaries_left_by_a_killed_writer_are_removed_when_training_starts(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = [run_dir / ".checkpoint.safetensors.k3j2_x.tmp", run_dir / ".metrics.csv.9a8b7c.tmp"]
    kept = [run_dir / "notes.tmp", run_dir / ".keep"]  # not atomic_write's: the user's own
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    trainer_for(config(tiny_fashion, epochs=1, augment="none"), run_dir).fit(1)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_evaluation_of_a_model_answering_infinity_is_an_error_not_a_figure(tiny_fashion):
    from convnet.evaluation import NonFiniteOutput, evaluate
    cfg = config(tiny_fashion, epochs=1, augment="none")
    _, test = load_datasets(cfg)
    model = convnet.nn.Sequential(convnet.nn.Flatten(), convnet.nn.Linear(784, 10))
    model[1].weight.data[3] = 3e38  # finite weights whose products overflow float32
    with pytest.raises(NonFiniteOutput, match=r"outputs are NaN or infinite for \d+ of \d+ images"):
        evaluate(model, experiment.evaluation_loader(cfg, test))


class _History:
    """What EarlyStopping reads of a trainer: its history and whether a stop was asked for."""

    def __init__(self, test_losses):
        self.history = [{"epoch": i + 1, "test_loss": loss} for i, loss in enumerate(test_losses)]
        self.stop_requested = False

    def request_stop(self):
        self.stop_requested = True


@pytest.mark.parametrize(("losses", "patience", "stops"), [
    ([1.0, 0.9, 0.95, 0.97], 2, True),    # best after epoch 2, two epochs without improvement
    ([1.0, 0.9, 0.95, 0.97], 3, False),
    ([1.0, 0.9, 0.95, 0.85], 2, False),   # improved again
    ([1.0, 1.0, 1.0], 2, True),           # equal is not better
    ([], 1, False),
])
def test_early_stopping_stops_when_the_test_loss_has_not_improved_for_patience_epochs(losses, patience, stops):
    said = []
    trainer = _History(losses)
    EarlyStopping(patience, said.append).on_epoch_end(trainer, None, None)
    assert trainer.stop_requested == stops and len(said) == stops
    if stops:
        assert said[0].startswith(f"stopped early after epoch {len(losses)}: the test loss has not improved for ")


def test_a_resumed_run_that_had_stopped_early_stops_again_before_training():
    trainer = _History([1.0, 0.9, 0.95, 0.97])
    EarlyStopping(2, lambda line: None).on_train_begin(trainer)
    assert trainer.stop_requested


def test_early_stopping_wants_a_positive_patience():
    with pytest.raises(ValueError, match=r"^EarlyStopping: expected patience to be a positive int, got 0$"):
        EarlyStopping(0)


def test_the_step_log_has_a_line_every_few_steps_and_one_per_epoch(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    trainer = trainer_for(config(tiny_fashion, model="lenet5", batch_size=16, augment="none"), run_dir)
    history = trainer.fit(2)  # 256 images: 16 steps an epoch
    entries = run_folder.read_steps(run_dir / run_folder.STEPS)
    steps = [entry for entry in entries if entry["kind"] == "step"]
    epochs = [entry for entry in entries if entry["kind"] == "epoch"]
    assert [entry["step"] for entry in steps] == [10, 20, 30]
    assert [(entry["epoch"], entry["batch"]) for entry in steps] == [(1, 10), (2, 4), (2, 14)]
    assert [entry["step"] for entry in epochs] == [16, 32]
    for entry, record in zip(epochs, history):
        assert entry["test_accuracy"] == record["test_accuracy"] and entry["test_loss"] == record["test_loss"]
        assert len(entry["per_class_accuracy"]) == 10
    assert all(set(entry) >= {"loss", "accuracy", "lr", "images_per_second", "time"} for entry in steps)
    assert [entry["step"] for entry in entries] == sorted(entry["step"] for entry in entries)


def test_the_step_log_says_what_the_run_is_and_snapshots_its_first_layer(tiny_fashion, tmp_path):
    """The pictures are checked against the weights and SciPy's correlation of the test image."""
    from PIL import Image
    from scipy.signal import correlate2d
    from convnet.nn import summary
    from convnet.viz.snapshots import feature_maps_png, kernels_png
    run_dir = tmp_path / "run"
    cfg = config(tiny_fashion, model="lenet5", batch_size=16, augment="none", snapshot_every=12)
    trainer = trainer_for(cfg, run_dir)
    trainer.fit(2)  # 16 steps an epoch
    entries = run_folder.read_steps(run_dir / run_folder.STEPS)
    run = entries[0]
    assert run["kind"] == "run" and run["step"] == 0 and run["config"] == json.loads(json.dumps(asdict(cfg)))
    assert run["classes"] == list(trainer.test_loader.dataset.classes)
    assert run["summary"] == summary(trainer.model, (1, 1, 28, 28))
    snapshots = [entry for entry in entries if entry["kind"] == "snapshot"]
    assert [(entry["step"], entry["epochs_done"]) for entry in snapshots] == [(0, 0), (12, 0.75), (16, 1), (24, 1.5),
                                                                             (32, 2)]
    last = snapshots[-1]
    weight, bias = trainer.model[0].weight.data, trainer.model[0].bias.data
    assert (run_dir / last["kernels"]).read_bytes() == kernels_png(weight[:, 0])
    images, _ = next(trainer.test_loader.batches(0))
    maps = np.stack([correlate2d(np.pad(images.data[0, 0].astype(np.float64), 2), kernel[0], "valid") + b  # pad 2
                     for kernel, b in zip(weight.astype(np.float64), bias)])
    drawn = np.asarray(Image.open(run_dir / last["feature_maps"]), dtype=int)
    assert np.abs(drawn - np.asarray(Image.open(io.BytesIO(feature_maps_png(maps))), dtype=int)).max() <= 1
    pictures = [f"{kind}-{entry['step']:07d}.png" for entry in snapshots for kind in ("kernels", "feature_maps")]
    assert sorted(path.name for path in (run_dir / run_folder.SNAPSHOTS).iterdir()) == sorted(["image.png", *pictures])


@pytest.mark.slow
def test_a_resumed_run_continues_its_step_log_and_a_new_one_replaces_a_dead_ones(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    cfg = config(tiny_fashion, model="lenet5", batch_size=16, augment="none", snapshot_every=12)
    trainer_for(cfg, tmp_path / "whole").fit(2)
    whole = run_folder.read_steps(tmp_path / "whole" / run_folder.STEPS)
    trainer_for(cfg, run_dir).fit(1)
    with open(run_dir / run_folder.STEPS, "a") as log:  # written past the checkpoint before a kill
        log.write(json.dumps({"kind": "step", "step": 20}) + "\n")
    experiment.resume(run_dir, progress=False, log=lambda line: None).trainer.fit(2)
    assert untimed(run_folder.read_steps(run_dir / run_folder.STEPS)) == untimed(whole)
    (run_dir / run_folder.STEPS).write_text(json.dumps({"kind": "step", "step": 10}) + "\n")  # a run killed early
    for name in (checkpoint.WEIGHTS, checkpoint.SIDECAR):
        (run_dir / name).unlink()
    trainer_for(cfg, run_dir).fit(1)
    restarted = untimed(run_folder.read_steps(run_dir / run_folder.STEPS))
    assert restarted == untimed(whole)[:len(restarted)] and restarted[-1]["kind"] == "snapshot"


def untimed(entries):
    return [{key: value for key, value in entry.items() if key not in ("time", "images_per_second", "seconds")}
            for entry in entries]


def test_a_step_log_cut_short_by_a_kill_reads_to_its_last_whole_line(tmp_path):
    path = tmp_path / run_folder.STEPS
    path.write_text('{"kind": "step", "step": 10}\n{"kind": "step", "st')
    assert run_folder.read_steps(path) == [{"kind": "step", "step": 10}]
    path.write_text('{"kind": "step", "step": 10}\nnot json\n{"kind": "step", "step": 30}\n')
    with pytest.raises(ValueError, match=r"steps.jsonl: line 2 is not a JSON object \('not json'\)$"):
        run_folder.read_steps(path)


def test_a_users_own_functions_hang_on_the_loop_as_a_lambda_callback(tiny_fashion):
    from convnet.train import LambdaCallback
    seen = []
    cfg = config(tiny_fashion, model="lenet5", epochs=1, batch_size=64, augment="none")
    trainer = trainer_for(cfg, None)
    trainer.callbacks.append(LambdaCallback(
        on_batch_end=lambda trainer, loss: seen.append(("batch", trainer.batch, round(loss, 6))),
        on_epoch_end=lambda trainer, record, evaluation: seen.append(("epoch", record["epoch"]))))
    trainer.fit(1)
    assert [entry[:2] for entry in seen] == [("batch", 1), ("batch", 2), ("batch", 3), ("batch", 4), ("epoch", 1)]
    with pytest.raises(TypeError, match=r"^LambdaCallback: expected hooks among on_train_begin, .*, got on_step$"):
        LambdaCallback(on_step=print)
    with pytest.raises(TypeError, match=r"^LambdaCallback: expected on_batch_end to be a function, got int$"):
        LambdaCallback(on_batch_end=3)


def test_the_default_augmentation_mirrors_clothes_and_leaves_digits_alone():
    assert RunConfig().augmentation == "flip" and RunConfig(dataset="mnist").augmentation == "none"
    assert RunConfig(augment="full").train_conditions == ["augmented", "label smoothing 0.1"]
    assert RunConfig(label_smoothing=0).train_conditions == ["mirrored at random"]
    with pytest.raises(ValueError, match="^augment flip mirrors the images, and mnist's do not mirror; choose from "
                                         "none, full, crop and erase$"):
        RunConfig(dataset="mnist", augment="flip")
    # A run saved when augment was true or false means what it meant then.
    assert RunConfig.from_dict({"augment": True}).augment == "full"
    assert RunConfig.from_dict({"augment": False}).augment == "none"


def test_augment_names_a_comma_separated_choice_of_steps_applied_in_a_fixed_order():
    assert RunConfig(augment="full").augmentation_steps == ("crop", "flip", "erase")
    assert RunConfig(augment="full", dataset="mnist").augmentation_steps == ("crop", "erase")
    assert RunConfig(augment="flip,crop").augmentation_steps == ("crop", "flip")
    assert RunConfig(augment="none").augmentation_steps == ()
    assert RunConfig(augment="crop,flip").train_conditions == ["augmented (crop, flip)", "label smoothing 0.1"]
    assert RunConfig(augment="crop,flip").test_time_mirroring and not RunConfig(augment="crop").test_time_mirroring
    # "full" is exactly crop, flip and erase: the same batches, bit for bit.
    images = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
    full = train_transform(RunConfig(augment="full"))(images, np.random.default_rng(7))
    np.testing.assert_array_equal(full, train_transform(RunConfig(augment="erase,flip,crop"))(images, np.random.default_rng(7)))
    # Crops move each image by at most 2 pixels and flips mirror it, nothing else: undoing the
    # drawn shift and mirror of a pixel-unique image finds it again inside the padding.
    unique = np.arange(28 * 28, dtype=np.float32).reshape(1, 1, 28, 28) + 1
    crop_flip = train_transform(RunConfig(augment="crop,flip"))
    normalize = train_transform(RunConfig(augment="none"))
    padded = np.pad(normalize(np.repeat(unique, 32, axis=0)), ((0, 0), (0, 0), (2, 2), (2, 2)),
                    constant_values=normalize(np.zeros((1, 1, 1, 1), np.float32)).item())
    seen = crop_flip(np.repeat(unique, 32, axis=0), np.random.default_rng(3))
    mirrored_seen = set()
    for image, pad in zip(seen, padded):
        windows = {(top, left, mirrored) for top in range(5) for left in range(5) for mirrored in (False, True)
                   if np.array_equal(image, (pad[:, top:top + 28, left:left + 28])[..., ::-1 if mirrored else 1])}
        assert len(windows) == 1
        mirrored_seen.add(windows.pop()[2])
    assert mirrored_seen == {False, True}
    for bad in ("crop,crop", "full,flip", "", "crop;flip"):
        with pytest.raises(ValueError, match=r"^augment must be none, full or a comma-separated choice of crop, flip, altflip, "
                                             rf"erase \(or None: the dataset's default\), got '{bad}'$"):
            RunConfig(augment=bad)


def test_test_time_mirroring_is_on_where_training_mirrors_and_refused_where_it_does_not():
    assert RunConfig().test_time_mirroring and RunConfig(augment="full").test_time_mirroring
    assert not RunConfig(augment="none").test_time_mirroring
    assert not RunConfig(dataset="mnist", augment="full").test_time_mirroring  # crops and erasing, no flips
    assert not RunConfig(test_mirror=False).test_time_mirroring
    with pytest.raises(ValueError, match=r"^test_mirror averages each test image with its mirror image, which helps "
                                         r"only a network trained on mirrored images .*\(augment none on "
                                         r"fashion-mnist\): choose an augment that flips \(flip, crop,flip or full\) on fashion-mnist$"):
        RunConfig(augment="none", test_mirror=True)
    with pytest.raises(ValueError, match=r"^test_mirror must be true or false, got 'yes'$"):
        RunConfig.from_dict({"test_mirror": "yes"})
    # A run saved before test-time mirroring was evaluated without it, and still is.
    assert not RunConfig.from_dict({"augment": "flip"}).test_time_mirroring


@pytest.mark.slow
def test_test_time_mirroring_changes_the_evaluation_and_nothing_of_the_training(tiny_fashion, tmp_path):
    mirrored = trainer_for(config(tiny_fashion, model="lenet5", augment="flip"), tmp_path / "mirrored")
    one_pass = trainer_for(config(tiny_fashion, model="lenet5", augment="flip", test_mirror=False), tmp_path / "one")
    mirrored.fit(2)
    one_pass.fit(2)
    for key, value in one_pass.model.state_dict().items():
        np.testing.assert_array_equal(mirrored.model.state_dict()[key], value, err_msg=key)
    # The recorded figures are those of each test image's outputs averaged with its mirror image's.
    images, labels = next(mirrored.test_loader.batches(0))
    pixels, model = images.numpy(), mirrored.model.eval()
    with convnet.no_grad():
        single = model(convnet.Tensor(pixels)).numpy()
        scores = single + model(convnet.Tensor(pixels[..., ::-1].copy())).numpy()
    assert len(labels) == len(mirrored.test_loader.dataset)  # one batch holds the whole tiny test set
    assert mirrored.history[-1]["test_accuracy"] == np.mean(scores.argmax(axis=1) == labels)
    assert one_pass.history[-1]["test_accuracy"] == np.mean(single.argmax(axis=1) == labels)
    assert mirrored.history[-1]["test_loss"] != one_pass.history[-1]["test_loss"]
    config_, _, _ = load_run(tmp_path / "mirrored")
    assert config_.test_time_mirroring and not load_run(tmp_path / "one")[0].test_time_mirroring


def test_mirroring_flips_some_images_left_to_right_and_changes_nothing_else(rng):
    batch = rng.random((64, 1, 28, 28)).astype(np.float32)
    mirrored = experiment.train_transform(RunConfig(augment="flip"))(batch, np.random.default_rng(0))
    normalised = experiment.train_transform(RunConfig(augment="none"))(batch, np.random.default_rng(0))
    flipped = [bool(np.array_equal(m, n[..., ::-1])) for m, n in zip(mirrored, normalised)]
    kept = [bool(np.array_equal(m, n)) for m, n in zip(mirrored, normalised)]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48


class FakeClock:
    """`time` for experiment.py: perf_counter() reads 0, 1, 2, ... (seconds), one per call."""

    def __init__(self):
        self.now = -1.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


@pytest.mark.slow
def test_a_time_budget_plans_the_epochs_that_fit_and_leaves_no_trace(tiny_fashion, monkeypatch):
    """With the fake clock each step and the evaluation take 1 s: an epoch of 16 steps costs 17 s,
    the probe's set-up ends at 19 s, and one evaluation is kept for the end: (55 - 19 - 1) // 17 = 2."""
    clock = FakeClock()
    monkeypatch.setattr(experiment.run, "time", clock)
    cfg = config(tiny_fashion, model="lenet5", batch_size=16, augment="flip", time_budget=55.0)
    train, test = load_datasets(cfg)
    lines = []
    assert experiment.plan_epochs(cfg, train, test, started=0.0, log=lines.append) == 2
    assert lines == ["time budget 55 s: a step takes 1000 ms here (16 img/s) and an evaluation 1.0 s, so an epoch "
                     "about 17 s; after 19 s of setting up, 2 epochs fit (0.6 min), and the learning-rate schedule "
                     "spans them"]
    planned = experiment.start(cfg, tiny_fashion.parent / "planned",
                               progress=False, log=lambda line: None)
    assert planned.config.epochs == 2 and planned.config.time_budget == 55.0
    direct = build_trainer(replace(cfg, epochs=2, time_budget=None), train, test, progress=False, log=lambda line: None)
    planned.trainer.fit(2)
    direct.fit(2)
    for key, value in direct.model.state_dict().items():
        np.testing.assert_array_equal(planned.trainer.model.state_dict()[key], value)
    read = clock.now
    resumed = experiment.resume(tiny_fashion.parent / "planned", progress=False, log=lambda line: None)
    assert resumed.config.epochs == 2 and clock.now == read  # the plan is the run's: resuming keeps it


def test_a_time_budget_that_fits_no_epoch_says_what_would(tiny_fashion, monkeypatch):
    monkeypatch.setattr(experiment.run, "time", FakeClock())
    cfg = config(tiny_fashion, model="lenet5", batch_size=16, time_budget=36.0)
    with pytest.raises(ValueError, match=r"^a time budget of 36 s fits no epoch here: setting up took 19 s and an "
                                         r"epoch takes about 17 s; give at least 37 s, or --epochs$"):
        experiment.plan_epochs(cfg, *load_datasets(cfg), started=0.0)
