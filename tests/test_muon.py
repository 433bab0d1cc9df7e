"""Muon (issue 32): the Newton-Schulz orthogonalisation against the SVD (each singular value through
the iteration's polynomial), the optimizer against torch.optim.Muon and torch.optim.AdamW, and the
split of a model's parameters into hidden weights and the rest."""

import numpy as np
import pytest

from convnet import Tensor, models, nn, optim
from convnet.errors import InvalidType, InvalidValue
from convnet.optim.muon import NEWTON_SCHULZ, orthogonalise
from conftest import requires_torch, torch


def through_the_polynomial(matrix):
    """x = U S V^T gives x x^T x = U S^3 V^T: the iteration acts on each singular value alone."""
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    a, b, c = NEWTON_SCHULZ
    values = s / np.linalg.norm(matrix)
    for _ in range(5):
        values = a * values + b * values ** 3 + c * values ** 5
    return u @ np.diag(values) @ vt, values


@pytest.mark.parametrize("shape", [(6, 20), (20, 6), (9, 9)], ids=["wide", "tall", "square"])
def test_orthogonalise_keeps_the_singular_vectors_and_maps_each_singular_value_by_the_polynomial(shape):
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal(shape) * np.logspace(0, -2, shape[1])  # singular values spread out
    expected, values = through_the_polynomial(matrix)
    np.testing.assert_allclose(orthogonalise(matrix), expected, atol=1e-12)
    assert 0.5 < values.min() and values.max() < 1.25  # near one, though the inputs spread 100x
    single = matrix.astype(np.float32)  # as training runs it
    assert orthogonalise(single).dtype == np.float32
    np.testing.assert_allclose(orthogonalise(single), through_the_polynomial(single.astype(np.float64))[0], atol=1e-7)
    np.testing.assert_allclose(orthogonalise(np.zeros(shape)), 0.0)  # no division by zero


def hidden_and_output(seed=0):
    """A convolution kernel, a matrix, an output layer and a bias, in convnet and in torch."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in ((4, 3, 3, 3), (5, 7), (3, 5), (3,))]
    return [Tensor(a.copy(), requires_grad=True) for a in arrays], [torch.tensor(a) for a in arrays]


@requires_torch
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_steps_like_torch_muon_on_hidden_weights_and_torch_adamw_on_the_rest(monkeypatch, nesterov):
    # torch's Newton-Schulz runs in bfloat16; in float64 both compute the same numbers
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    ours, theirs = hidden_and_output()
    for p in theirs:
        p.requires_grad_(True)
    optimizer = optim.Muon([{"params": ours[:2], "muon": True}, {"params": ours[2:], "lr": 0.003}], lr=0.02,
                           momentum=0.9, nesterov=nesterov, weight_decay=0.1)
    # torch's Muon takes matrices: the kernel as its out x (in * kh * kw) view, updated in place
    kernel = theirs[0].detach().view(4, 27).requires_grad_(True)
    their_muon = torch.optim.Muon([kernel, theirs[1]], lr=0.02, momentum=0.9, nesterov=nesterov,
                                  weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    their_adamw = torch.optim.AdamW(theirs[2:], lr=0.003, weight_decay=0.1)
    rng = np.random.default_rng(2)
    for _ in range(4):
        gradients = [rng.standard_normal(p.shape) for p in ours]
        for p, q, g in zip(ours, [kernel, *theirs[1:]], gradients):
            p.grad = Tensor(g)
            q.grad = torch.tensor(g.reshape(q.shape))
        optimizer.step()
        their_muon.step()
        their_adamw.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_muon_groups_split_off_the_hidden_weights_and_keep_each_groups_settings():
    model = models.reference_cnn()
    names = {id(p): name for name, p in model.named_parameters()}
    groups = optim.muon_groups(model, optim.batch_norm_groups(model, 0.002, bn_lr_scale=4, weight_decay=0.05))
    summary = [(g["muon"], g["lr"], g["weight_decay"], [names[id(p)] for p in g["params"]]) for g in groups]
    matrices = [name for name, p in model.named_parameters() if p.ndim >= 2]
    assert matrices == ["0.weight", "4.weight", "9.weight", "11.weight"]
    assert summary == [(False, 0.002, 0.05, ["9.bias", "11.weight", "11.bias"]),  # the output layer to AdamW
                       (True, 0.002, 0.05, ["0.weight", "4.weight", "9.weight"]),
                       (False, 0.008, 0.0, ["1.weight", "1.bias", "5.weight", "5.bias"])]  # batch norm's
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = optim.muon_groups(model, list(model.parameters()))
    assert [g["muon"] for g in plain] == [False, True] and "lr" not in plain[0]


def test_muon_refuses_what_it_cannot_train_naming_what_it_expected():
    params = [Tensor(np.ones((2, 2)), requires_grad=True), Tensor(np.ones(3), requires_grad=True)]
    with pytest.raises(InvalidValue, match=r"Muon: group 0 is marked muon, so expected matrices or kernels, "
                                           r"got a parameter of shape \(3,\)"):
        optim.Muon([{"params": params[-1:], "muon": True}])
    with pytest.raises(InvalidValue, match=r"Muon: expected momentum in \[0.0, 1.0\), got 1.0"):
        optim.Muon(params, momentum=1.0)
    with pytest.raises(InvalidValue, match="Muon: expected ns_steps a whole number from 1 to 20, got 0"):
        optim.Muon(params, ns_steps=0)
    with pytest.raises(InvalidValue, match="muon_groups: Sequential has no hidden layer weights for Muon: "
                                           "expected two or more layers with weight matrices or kernels, got 1"):
        optim.muon_groups(nn.Sequential(nn.Linear(3, 2)), [])
    with pytest.raises(InvalidType, match="muon_groups: expected a Module, got a list"):
        optim.muon_groups(params, params)
