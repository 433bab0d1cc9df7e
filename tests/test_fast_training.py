"""The speed records' methods as a run's settings (issue 32): whitening, Dirac initialisation, batch
norm's learning rate, lookahead, alternating flips, shifted test views, and the recipes that bundle
them; each checked against an oracle, and a run using all of them resumes bit for bit."""

import subprocess
import sys

import numpy as np
import pytest

import convnet
from convnet import experiment, nn, optim
from convnet.data import mnist, transforms
from convnet.experiment import RunConfig, build_trainer, load_datasets
from convnet.experiment.build import build_model, make_optimizer, make_schedule
from convnet.errors import InvalidValue
from convnet.train import evaluate


def config(data, **changes):
    values = dict(model="reference_cnn", data=str(data), epochs=2, batch_size=32, seed=3)
    return RunConfig(**{**values, **changes})


def trainer_for(cfg, run_dir=None):
    train, test = load_datasets(cfg)
    return build_trainer(cfg, train, test, run_dir, progress=False, log=lambda line: None)


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("changes, message", [
    ({"augment": "flip,altflip"}, "mirrors the images twice over; choose flip (at random) or altflip"),
    ({"augment": "altflip", "dataset": "mnist"}, "augment altflip mirrors the images, and mnist's do not mirror"),
    ({"whiten": 1}, "whiten must be true or false, got 1"),
    ({"whiten": True, "whiten_bias_epochs": -1}, "whiten_bias_epochs must be a whole number of epochs >= 0 (or "
                                                 "None: 3), got -1"),
    ({"whiten_bias_epochs": 0}, "whiten_bias_epochs 0 trains the patch-whitening layer's bias, and this run has no "
                                "whitening layer: add --whiten"),
    ({"bn_lr_scale": 0}, "bn_lr_scale must be a positive number, got 0"),
    ({"ema_decay": 1.0}, "ema_decay must be a number between 0 and 1 (or None: no average), got 1.0"),
    ({"test_translate": 5}, "test_translate must be a whole number of pixels from 0 to 4, got 5"),
    ({"test_translate": 1.0}, "test_translate must be a whole number of pixels from 0 to 4, got 1.0"),
    ({"recipe": "fastest"}, "recipe must be one of fast, hour or None, got 'fastest'"),
    ({"test_translate": 1, "augment": "flip"}, "this run's training images are not cropped (augment flip): add crop"),
])
def test_bad_settings_are_refused_naming_what_was_expected(changes, message):
    with pytest.raises(InvalidValue, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(**changes)


def test_alternating_flips_mirror_the_training_images_so_test_time_mirroring_follows():
    run = RunConfig(augment="crop,altflip")
    assert run.augmentation_steps == ("crop", "altflip") and run.test_time_mirroring
    assert RunConfig(augment="altflip").train_conditions == ["mirrored in every other epoch", "label smoothing 0.1"]
    assert RunConfig(augment="full").augmentation_steps == ("crop", "flip", "erase")  # full keeps random flips


def test_a_recipe_gives_its_settings_under_those_given_and_is_recorded():
    recipe = experiment.RECIPES["fast"]["settings"]
    run = RunConfig.from_recipe("fast", seed=4)
    assert run.recipe == "fast" and run.seed == 4
    assert all(getattr(run, name) == value for name, value in recipe.items())
    assert recipe["augment"] != "crop" and RunConfig.from_recipe("fast", augment="crop").augment == "crop"
    with pytest.raises(InvalidValue, match="recipe must be one of fast, hour, got 'nope'"):
        RunConfig.from_recipe("nope")
    assert RunConfig.from_dict(vars(run)) == run  # a stored run keeps its recipe and settings


def test_the_hour_recipe_names_its_model_and_the_fast_recipe_s_methods_which_options_still_override():
    hour = RunConfig.from_recipe("hour")
    fast = RunConfig.from_recipe("fast")
    assert (hour.model, hour.optimizer, hour.augment, hour.epochs) == ("resnet8", "muon", "crop,altflip", 28)
    assert hour.bn_lr_scale == fast.bn_lr_scale and set(fast.augment.split(",")) < set(hour.augment.split(","))
    assert RunConfig.from_recipe("hour", model="reference_cnn", optimizer="adamw").model == "reference_cnn"


# ---------------------------------------------------------------------------- whitening and Dirac
def test_the_whitening_layer_is_frozen_and_whitens_the_first_training_images(tiny_fashion):
    cfg = config(tiny_fashion, whiten=True, whiten_bias_epochs=0)
    trainer = trainer_for(cfg)
    whiten = trainer.model.whiten
    assert whiten.weight.shape == (8, 1, 2, 2) and not whiten.weight.requires_grad and not whiten.bias.requires_grad
    np.testing.assert_array_equal(whiten.bias.numpy(), np.zeros(8, np.float32))
    # airbench's network: the whitening convolution, a GELU, then the rest.
    images = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(np.float32)
    trainer.model.eval()
    np.testing.assert_array_equal(trainer.model(images).numpy(),
                                  trainer.model.network(convnet.functional.gelu(whiten(images))).numpy())
    # Oracle: the normalised images' 2x2 patches, by NumPy; the first 4 filters make their second
    # moment diag(l / (l + eps)) and the last 4 are their negatives.
    train, _ = load_datasets(cfg)
    images = mnist.normalization("fashion-mnist")(transforms.unit_range(train.images[:5000]))
    patches = np.stack([images[:, 0, i:i + 27, j:j + 27] for i in (0, 1) for j in (0, 1)], axis=-1).reshape(-1, 4)
    moment = patches.astype(np.float64).T @ patches / len(patches)
    filters = whiten.weight.numpy().reshape(8, 4).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(moment)[::-1]
    np.testing.assert_allclose(filters[:4] @ moment @ filters[:4].T, np.diag(eigenvalues / (eigenvalues + 5e-4)),
                               atol=2e-5)
    np.testing.assert_array_equal(filters[4:], -filters[:4])
    before = whiten.weight.numpy().copy()
    trainer.fit(1)
    np.testing.assert_array_equal(whiten.weight.numpy(), before)  # frozen: no step moves it
    np.testing.assert_array_equal(whiten.bias.numpy(), np.zeros(8, np.float32))
    assert all(id(p) not in (id(whiten.weight), id(whiten.bias))
               for group in trainer.optimizer.param_groups for p in group["params"])



def test_the_whitening_bias_trains_for_its_first_epochs_then_stays_where_it_left_off(tiny_fashion):
    """airbench's whiten_bias_epochs. The oracle of the first epoch is a run whose bias is never
    frozen; lookahead's pull every 5 steps (the 10th falls in the second epoch of 8) must not move
    it either; the filters never move."""
    assert RunConfig(whiten=True).whitening_bias_epochs == 3 and RunConfig().whitening_bias_epochs == 0
    settings = dict(whiten=True, lookahead=True, epochs=2)
    frozen_after_one = trainer_for(config(tiny_fashion, whiten_bias_epochs=1, **settings))
    never_frozen = trainer_for(config(tiny_fashion, whiten_bias_epochs=2, **settings))
    filters = frozen_after_one.model.whiten.weight.numpy().copy()
    steps = {}
    for name, trainer in (("after one", frozen_after_one), ("never", never_frozen)):
        trainer.callbacks.append(convnet.train.LambdaCallback(on_batch_end=lambda trainer, loss, name=name: steps.setdefault(
            name, []).append(trainer.model.whiten.bias.numpy().copy())))
        assert any(p is trainer.model.whiten.bias for group in trainer.optimizer.param_groups for p in group["params"])
        trainer.fit(2)
        np.testing.assert_array_equal(trainer.model.whiten.weight.numpy(), filters)
    first_epoch = len(frozen_after_one.train_loader)
    assert len(steps["after one"]) == 2 * first_epoch == 16
    for ours, unfrozen in zip(steps["after one"][:first_epoch], steps["never"]):
        np.testing.assert_array_equal(ours, unfrozen)  # trained as if never frozen
    assert np.abs(steps["after one"][0]).min() > 0  # the first step moves it from zero
    for step in steps["after one"][first_epoch:]:
        np.testing.assert_array_equal(step, steps["after one"][first_epoch - 1])
    assert not np.array_equal(steps["never"][-1], steps["never"][first_epoch - 1])
    assert not frozen_after_one.model.whiten.bias.requires_grad


def test_dirac_starts_each_convolution_as_the_identity_on_its_first_channels(tiny_fashion):
    model = trainer_for(config(tiny_fashion, model="resnet8", dirac=True)).model
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convolutions) == 9
    for conv in convolutions:
        out_channels, in_channels, height, width = conv.weight.shape
        identity = np.zeros((min(out_channels, in_channels), in_channels, height, width), np.float32)
        for k in range(len(identity)):
            identity[k, k, height // 2, width // 2] = 1
        np.testing.assert_array_equal(conv.weight.numpy()[:len(identity)], identity)
        if out_channels > in_channels:  # the rest keep their random start
            assert np.abs(conv.weight.numpy()[len(identity):]).min(axis=(1, 2, 3)).all() or np.abs(
                conv.weight.numpy()[len(identity):]).sum(axis=(1, 2, 3)).all()


# ---------------------------------------------------------------------------- optimizer
def test_batch_norm_trains_at_its_own_learning_rate_through_the_one_cycle_schedule(tiny_fashion):
    cfg = config(tiny_fashion, bn_lr_scale=4.0)
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    others, norms = optimizer.param_groups
    assert len(norms["params"]) == 4 and norms["weight_decay"] == 0 and others["weight_decay"] == cfg.decay
    schedule = make_schedule(cfg, optimizer, steps_per_epoch=10)
    for _ in range(13):
        assert norms["lr"] == pytest.approx(4 * others["lr"], rel=1e-12)
        schedule.step()


def test_one_cycle_takes_a_peak_per_group_as_pytorchs():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of the schedule")
    ours = optim.AdamW([{"params": [convnet.Tensor(np.zeros(2), requires_grad=True)], "lr": 1.0},
                        {"params": [convnet.Tensor(np.zeros(2), requires_grad=True)], "lr": 1.0}])
    theirs = torch.optim.AdamW([{"params": [torch.zeros(2, requires_grad=True)]},
                                {"params": [torch.zeros(2, requires_grad=True)]}])
    our_schedule = optim.lr_scheduler.OneCycleLR(ours, max_lr=[0.01, 0.3], total_steps=20)
    their_schedule = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=[0.01, 0.3], total_steps=20)
    for _ in range(19):
        assert [g["lr"] for g in ours.param_groups] == pytest.approx([g["lr"] for g in theirs.param_groups], rel=1e-12)
        theirs.step()
        our_schedule.step()
        their_schedule.step()
    with pytest.raises(InvalidValue, match="expected max_lr for each of the 2 param groups, got 3"):
        optim.lr_scheduler.OneCycleLR(ours, max_lr=[1, 2, 3], total_steps=20)


def test_lookahead_wraps_the_optimizer(tiny_fashion):
    optimizer = make_optimizer(config(tiny_fashion, lookahead=True), build_model(config(tiny_fashion)))
    assert isinstance(optimizer, optim.Lookahead) and (optimizer.k, optimizer.alpha) == (5, 0.5)


# ---------------------------------------------------------------------------- a whole run
@pytest.mark.slow
def test_a_run_with_every_method_stops_and_resumes_bit_for_bit(tiny_fashion, tmp_path):
    cfg = config(tiny_fashion, whiten=True, whiten_bias_epochs=1, dirac=True, bn_lr_scale=4.0, lookahead=True,
                 augment="crop,altflip", test_translate=1, recipe="fast", ema_decay=0.9, optimizer="muon")
    straight = trainer_for(cfg, tmp_path / "straight")
    straight.fit(2)
    stopped = trainer_for(cfg, tmp_path / "stopped")
    stopped.callbacks.append(convnet.train.LambdaCallback(
        on_batch_end=lambda trainer, loss: (trainer.epoch, trainer.batch) == (1, 3) and trainer.request_stop()))
    stopped.fit(2)  # stops in the second epoch, after 3 of its 8 steps (lookahead's 5 straddle it)
    resumed = experiment.resume(tmp_path / "stopped", progress=False, log=lambda line: None)
    assert (resumed.trainer.epoch, resumed.trainer.batch) == (1, 3) and resumed.config == cfg
    resumed.trainer.fit(2)
    for trained, average in ((straight.model, straight.average.module),
                             (resumed.trainer.model, resumed.trainer.average.module)):
        for key, value in trained.state_dict().items():
            np.testing.assert_array_equal(resumed.trainer.model.state_dict()[key], value, err_msg=key)
        for key, value in average.state_dict().items():
            np.testing.assert_array_equal(straight.average.module.state_dict()[key], value, err_msg=key)
    assert [row["test_accuracy"] for row in resumed.trainer.history] == [
        row["test_accuracy"] for row in straight.history]
    assert all(row["seconds"] > 0 for row in straight.history)
    # The run's evaluations use the shifted views and the averaged weights; so does evaluate on the run folder.
    _, model, _ = experiment.load_run(tmp_path / "straight")
    expected = evaluate(model, straight.test_loader, mirror=True, translate=1)
    assert straight.history[-1]["test_accuracy"] == expected["accuracy"]
    _, figures, _ = experiment.evaluate_run(tmp_path / "straight")
    assert figures["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert figures["loss"] != pytest.approx(evaluate(model, straight.test_loader, mirror=True)["loss"], rel=1e-5)


def test_an_averaging_run_evaluates_and_saves_the_average_of_the_weights_it_trains(tiny_fashion, tmp_path):
    cfg = config(tiny_fashion, epochs=1, ema_decay=0.8)
    trainer = trainer_for(cfg, tmp_path / "run")
    trained = []  # the weights after each step: the average's oracle is their NumPy EMA
    trainer.callbacks.append(convnet.train.LambdaCallback(on_batch_end=lambda trainer, loss: trained.append(
        {name: p.data.copy() for name, p in trainer.model.named_parameters()})))
    trainer.fit(1)
    average = dict(trained[0])
    for step in trained[1:]:
        for name, value in step.items():
            average[name] = average[name] + np.float32(0.2) * (value - average[name])
    _, saved, meta = experiment.load_run(tmp_path / "run")
    assert meta["average_updates"] == len(trained) == 8
    for name, p in saved.named_parameters():
        np.testing.assert_allclose(p.data, average[name], rtol=1e-6, atol=1e-7, err_msg=name)
        assert not np.array_equal(p.data, trained[-1][name]), name
    # Batch norm's statistics are those of the averaged weights over the first 32 training batches,
    # not the trained model's running ones that each update copies.
    fresh = build_model(cfg)
    fresh.load_state_dict(saved.state_dict())
    optim.update_bn(list(trainer.train_loader.batches(0))[:convnet.train.AVERAGE_STATISTICS_BATCHES], fresh)
    running = [name for name in fresh.state_dict() if name.endswith(("running_mean", "running_var"))]
    assert running
    for name in running:
        np.testing.assert_array_equal(saved.state_dict()[name], fresh.state_dict()[name], err_msg=name)
        assert not np.allclose(saved.state_dict()[name], trainer.model.state_dict()[name]), name
    expected = evaluate(saved, trainer.test_loader, mirror=True)
    assert trainer.history[-1]["test_loss"] == expected["loss"] != evaluate(trainer.model, trainer.test_loader,
                                                                              mirror=True)["loss"]


def test_a_distributed_job_cannot_average_the_weights(tiny_fashion):
    class TwoRanks(convnet.distributed.Group):
        size = 2
    with pytest.raises(InvalidValue, match="expected one process to average the weights .* got a group of 2"):
        build_trainer(config(tiny_fashion, ema_decay=0.9), *load_datasets(config(tiny_fashion)), progress=False,
                      log=lambda line: None, group=TwoRanks())


@pytest.mark.slow
def test_the_command_line_starts_a_recipe_and_turns_its_methods_off(tiny_fashion, tmp_path):
    command = [sys.executable, "-m", "convnet", "train", "--data", str(tiny_fashion), "--epochs", "1",
               "--batch-size", "64", "--no-progress", "--recipe", "fast", "--no-test-mirror", "--augment", "crop"]
    done = subprocess.run([*command, "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("training reference_cnn with the fast recipe on fashion-mnist")
    config, _, _ = experiment.load_run(tmp_path / "run")
    expected = RunConfig.from_recipe("fast", data=str(tiny_fashion), epochs=1, batch_size=64, test_mirror=False,
                                     augment="crop")
    assert config == expected
    refused = subprocess.run([*command[:-6], "--test-translate", "7", "--out", str(tmp_path / "other")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--test-translate: invalid choice: 7" in refused.stderr


def test_a_time_budget_is_planned_by_a_probe_of_the_recipe_itself(tiny_fashion, monkeypatch):
    from test_train import FakeClock
    monkeypatch.setattr(experiment.run, "time", FakeClock())
    probes, build = [], experiment.run.build_trainer
    monkeypatch.setattr(experiment.run, "build_trainer", lambda *args, **options: probes.append(build(*args, **options))
                        or probes[-1])
    cfg = RunConfig.from_recipe("fast", data=str(tiny_fashion), model="lenet5", batch_size=16, time_budget=55.0,
                                whiten=True, lookahead=True)
    assert experiment.plan_epochs(cfg, *load_datasets(cfg), started=0.0) == 2
    probe, = probes
    assert probe.model.whiten.weight.shape == (8, 1, 2, 2) and isinstance(probe.optimizer, optim.Lookahead)
    assert probe.test_translate == cfg.test_translate and repr(probe.train_loader.transform) == repr(experiment.train_transform(cfg))


@pytest.mark.slow
def test_an_exported_run_with_shifted_test_views_scores_as_the_run(tiny_fashion, tmp_path):
    pytest.importorskip("onnx", reason="export writes ONNX files with the onnx package (the onnx extra)")
    trainer_for(config(tiny_fashion, epochs=1, augment="crop,altflip", test_translate=1), tmp_path / "run").fit(1)
    experiment.export_onnx(tmp_path / "run", tmp_path / "run.onnx")
    loaded = experiment.load_model(tmp_path / "run.onnx", data=str(tiny_fashion))
    assert (loaded.mirror, loaded.translate) == (True, 1)
    _, from_run, _ = experiment.evaluate_model(tmp_path / "run")
    _, from_file, _ = experiment.evaluate_model(tmp_path / "run.onnx", data=str(tiny_fashion))
    assert from_file["accuracy"] == from_run["accuracy"] and from_file["loss"] == pytest.approx(from_run["loss"], rel=1e-5)
    one_view = evaluate(loaded.model, experiment.evaluation_loader(loaded.config, load_datasets(loaded.config)[1]),
                        mirror=True)
    assert one_view["loss"] != pytest.approx(from_file["loss"], rel=1e-5)  # the shifted views were used
