"""Issue 32's optimizer pieces: weight EMA with batch norm statistics recomputed (oracle: torch's
AveragedModel / update_bn), Lookahead (oracle: a hand-written NumPy sequence) and batch norm param
groups (oracle: torch.optim.SGD with the same groups)."""

import numpy as np
import pytest

from convnet import Tensor, checkpoint, nn, optim
from convnet.errors import InvalidType, InvalidValue
from conftest import requires_torch, torch


def small_pair(seed=0):
    """The same conv -> batch norm -> ReLU -> conv network in convnet and in torch, equal weights."""
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    rng = np.random.default_rng(seed)
    for p in ours.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.5
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 2, 3))
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    return ours, theirs


def randomise(ours, theirs, rng, images):
    """New random weights in both (as if an optimizer step) and one training forward (new BN stats)."""
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        p.data[...] = p.data + rng.standard_normal(p.shape).astype(np.float32) * 0.1
        with torch.no_grad():
            q.copy_(torch.from_numpy(p.data.copy()))
    ours.train(), theirs.train()
    ours(images)
    theirs(torch.from_numpy(images))


def assert_same_state(ours, theirs, rtol=1e-5, atol=1e-6):
    their_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value, their_state[key].numpy(), rtol=rtol, atol=atol, err_msg=key)


@requires_torch
@pytest.mark.parametrize("use_buffers", [False, True])
def test_ema_follows_torch_averaged_model(use_buffers):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    ours, theirs = small_pair()
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 3, 7, 7)).astype(np.float32)
    ema = optim.ExponentialMovingAverage(ours, decay=0.8, use_buffers=use_buffers)
    averaged = AveragedModel(theirs, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=use_buffers)
    for _ in range(4):
        randomise(ours, theirs, rng, images)
        ema.update(ours)
        averaged.update_parameters(theirs)
    assert ema.n_averaged == int(averaged.n_averaged) == 4
    assert_same_state(ema.module, averaged.module)
    # the average is not the current model: it really lags behind
    assert not np.allclose(ema.module[0].weight.data, ours[0].weight.data)


@requires_torch
def test_update_bn_matches_torch_on_the_averaged_weights():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
    ours, theirs = small_pair(seed=2)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((4, 3, 7, 7)).astype(np.float32)
    ema = optim.ExponentialMovingAverage(ours, decay=0.5)
    averaged = AveragedModel(theirs, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    for _ in range(3):
        randomise(ours, theirs, rng, images)
        ema.update(ours)
        averaged.update_parameters(theirs)
    batches = [(rng.standard_normal((n, 3, 7, 7)).astype(np.float32) * 2 + 1, np.zeros(n)) for n in (5, 3, 6)]
    ema.module.eval()
    optim.update_bn(batches, ema.module)
    update_bn([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches], averaged.module)
    assert_same_state(ema.module, averaged.module)
    norm = ema.module[1]
    assert norm.momentum == 0.1 and not ema.module.training and int(norm.num_batches_tracked.data) == 3
    averaged.module.eval()
    np.testing.assert_allclose(ema(images).data, averaged(torch.from_numpy(images)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_update_bn_takes_bare_arrays_and_leaves_a_model_without_batch_norm_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, momentum=0.3))
    batches = [np.full((2, 1, 2, 2), value, np.float32) for value in (1.0, 3.0)]
    model[0].weight.data[...] = 1
    model[0].bias.data[...] = 0
    optim.update_bn(batches, model)
    # the cumulative average of the two batch means 1 and 3, and of their (zero) variances
    np.testing.assert_allclose(model[1].running_mean.data, [2.0, 2.0])
    np.testing.assert_allclose(model[1].running_var.data, [0.0, 0.0])
    assert model[1].momentum == 0.3
    optim.update_bn([], model)  # no batches: the statistics are only reset, as in torch
    np.testing.assert_array_equal(model[1].running_mean.data, [0.0, 0.0])
    np.testing.assert_array_equal(model[1].running_var.data, [1.0, 1.0])
    assert int(model[1].num_batches_tracked.data) == 0
    plain = nn.Sequential(nn.Conv2d(1, 2, 1))
    before = plain.state_dict()
    optim.update_bn(batches, plain)
    assert all(np.array_equal(before[k], v) for k, v in plain.state_dict().items())


def test_with_statistics_recomputes_batch_norm_once_per_update():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    model[0].weight.data[...] = 1
    model[0].bias.data[...] = 0
    ema = optim.ExponentialMovingAverage(model, decay=0.5)
    ema.update(model)
    calls = []

    def batches():
        calls.append(1)
        return [np.full((2, 1, 2, 2), value, np.float32) for value in (1.0, 3.0)]

    assert ema.with_statistics(batches) is ema.module and ema.with_statistics(batches) is ema.module
    assert len(calls) == 1  # the weights did not move: the statistics still hold
    np.testing.assert_allclose(ema.module[1].running_mean.data, [2.0, 2.0])  # the batch means 1 and 3
    model[0].weight.data[...] = 3  # the average becomes 1 + 0.5 (3 - 1) = 2: batch means 2 and 6
    ema.update(model)
    np.testing.assert_allclose(ema.module[1].running_mean.data, [0.0, 0.0])  # copied from the model
    ema.with_statistics(batches)
    assert len(calls) == 2
    np.testing.assert_allclose(ema.module[1].running_mean.data, [4.0, 4.0])
    ema.load_state_dict(ema.state_dict())  # loaded statistics may be any: recomputed at the next call
    ema.with_statistics(batches)
    assert len(calls) == 3


def test_ema_resumes_exactly_and_rejects_bad_arguments():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    rng = np.random.default_rng(4)
    steps = [rng.standard_normal(model[0].weight.shape).astype(np.float32) for _ in range(6)]
    whole, first = (optim.ExponentialMovingAverage(model, decay=0.9) for _ in range(2))
    for index, step in enumerate(steps):
        model[0].weight.data[...] = step
        whole.update(model)
        if index < 3:
            first.update(model)
        if index == 2:
            resumed = optim.ExponentialMovingAverage(model, decay=0.9)
            resumed.load_state_dict(first.state_dict())
        elif index > 2:
            resumed.update(model)
    assert resumed.n_averaged == 6
    for key, value in whole.module.state_dict().items():
        np.testing.assert_array_equal(resumed.module.state_dict()[key], value)
    with pytest.raises(InvalidValue, match="expected decay in \\[0, 1\\], got 1.5"):
        optim.ExponentialMovingAverage(model, decay=1.5)
    with pytest.raises(InvalidType, match="expected a Module, got a list"):
        optim.ExponentialMovingAverage([], decay=0.9)
    with pytest.raises(InvalidValue, match="expected decay=0.9, got 0.5"):
        resumed.load_state_dict({**whole.state_dict(), "decay": 0.5})
    with pytest.raises(InvalidValue, match="expected a model with parameters"):
        whole.update(nn.Sequential(nn.Conv2d(1, 2, 1)))


def lookahead_problem():
    scales = np.array([0.5, 1.0, 2.0], np.float32)
    param = Tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
    return scales, param


def run_lookahead(opt, param, scales, steps):
    for _ in range(steps):
        opt.zero_grad()
        param.grad = Tensor(scales * param.data)  # the gradient of 0.5 * sum(scales * p ** 2)
        opt.step()


def test_lookahead_follows_the_hand_computed_sequence():
    scales, param = lookahead_problem()
    opt = optim.Lookahead(optim.SGD([param], lr=0.1), k=3, alpha=0.5)
    run_lookahead(opt, param, scales, 8)
    fast = np.array([1.0, -2.0, 3.0])
    slow = fast.copy()
    for step in range(1, 9):
        fast = fast - 0.1 * scales * fast
        if step % 3 == 0:
            slow = slow + 0.5 * (fast - slow)
            fast = slow.copy()
    np.testing.assert_allclose(param.data, fast, rtol=1e-6)
    np.testing.assert_allclose(opt.slow[0], slow, rtol=1e-6)
    assert not np.allclose(fast, slow)  # 8 is not a multiple of 3: the fast weights have moved on


def test_lookahead_resumes_exactly_and_passes_param_groups_to_schedulers(tmp_path):
    scales, param = lookahead_problem()
    whole = optim.Lookahead(optim.SGD([param], lr=0.1, momentum=0.9), k=4, alpha=0.6)
    run_lookahead(whole, param, scales, 13)
    scales, param = lookahead_problem()
    first = optim.Lookahead(optim.SGD([param], lr=0.1, momentum=0.9), k=4, alpha=0.6)
    run_lookahead(first, param, scales, 6)
    # through a checkpoint file, as a resumed run reads it
    model = nn.Sequential()
    model.weight = nn.Parameter(param.data.copy())
    checkpoint.save(tmp_path, model, first)
    weights, saved, _ = checkpoint.load(tmp_path)
    again = Tensor(weights["weight"], requires_grad=True)
    resumed = optim.Lookahead(optim.SGD([again], lr=0.1, momentum=0.9), k=4, alpha=0.6)
    resumed.load_state_dict(saved)
    assert set(resumed.optimizer.state[again]) == {"momentum_buffer"}
    run_lookahead(resumed, again, scales, 7)
    np.testing.assert_array_equal(again.data, whole.optimizer.param_groups[0]["params"][0].data)
    scheduler = optim.lr_scheduler.StepLR(resumed, step_size=1, gamma=0.5)
    scheduler.step()
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(InvalidValue, match="expected k an integer >= 1, got 0"):
        optim.Lookahead(optim.SGD([again]), k=0)
    with pytest.raises(InvalidValue, match="expected alpha in \\(0, 1\\], got 2"):
        optim.Lookahead(optim.SGD([again]), alpha=2)
    with pytest.raises(InvalidType, match="expected a convnet optimizer, got a list"):
        optim.Lookahead([again])
    wrong = {**saved, "param_groups": [{**saved["param_groups"][0], "lookahead_k": 5}]}
    with pytest.raises(InvalidValue, match="expected lookahead_k=4 in every group, got \\[5\\]"):
        resumed.load_state_dict(wrong)
    with pytest.raises(InvalidValue, match="unexpected setting 'lookahead_k'"):
        optim.SGD([again], lr=0.1, momentum=0.9).load_state_dict(saved)  # not silently without its slow weights


@requires_torch
def test_batch_norm_groups_step_like_torch_sgd_with_the_same_groups():
    ours, theirs = small_pair(seed=5)
    ours[3].bias.requires_grad = False  # frozen parameters are left out of the groups
    groups = optim.batch_norm_groups(ours, 0.1, bn_lr_scale=64, weight_decay=5e-4, bn_weight_decay=0.0)
    assert [len(g["params"]) for g in groups] == [3, 2]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.1, 5e-4), (6.4, 0.0)]
    assert groups[1]["params"] == [ours[1].weight, ours[1].bias]
    their_params = dict(theirs.named_parameters())
    our_names = {id(p): name for name, p in ours.named_parameters()}
    their_groups = [{**g, "params": [their_params[our_names[id(p)]] for p in g["params"]]} for g in groups]
    our_opt = optim.SGD(groups, momentum=0.9, nesterov=True)
    their_opt = torch.optim.SGD(their_groups, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(6)
    for _ in range(3):
        for name, p in ours.named_parameters():
            grad = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = Tensor(grad)
            their_params[name].grad = torch.from_numpy(grad.copy())
        our_opt.step()
        their_opt.step()
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.data, their_params[name].detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(ours[1].bias.data, small_pair(seed=5)[0][1].bias.data)


def test_batch_norm_groups_reject_bad_arguments():
    model = nn.Sequential(nn.Conv2d(1, 2, 1))
    assert [len(g["params"]) for g in optim.batch_norm_groups(model, 0.1, bn_lr_scale=64)] == [2]
    with pytest.raises(InvalidValue, match="expected bn_lr_scale >= 0, got -1"):
        optim.batch_norm_groups(model, 0.1, bn_lr_scale=-1)
    with pytest.raises(InvalidType, match="expected a Module, got a str"):
        optim.batch_norm_groups("model", 0.1)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(InvalidValue, match="has no parameters that require grad"):
        optim.batch_norm_groups(model, 0.1)
