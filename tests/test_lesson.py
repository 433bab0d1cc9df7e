"""The lesson's configuration: 256x256 grayscale images, 100 kernels of 10x10, ReLU, 2x2 max pooling."""

import numpy as np

import convnet
from convnet import nn
from conftest import assert_close_relative_to_scale, requires_torch, torch


@requires_torch
def test_lesson_layer_stack_matches_torch_forward_and_backward(rng):
    convnet.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 100, kernel_size=10), nn.ReLU(), nn.MaxPool2d(2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 100, kernel_size=10), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    images = rng.random((2, 1, 256, 256), dtype=np.float32)

    x = convnet.Tensor(images, requires_grad=True)
    out = ours(x)
    tx = torch.tensor(images, requires_grad=True)
    expected = theirs(tx)
    assert out.shape == (2, 100, 123, 123)  # (256 - 10 + 1) // 2
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)

    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(grad)
    expected.backward(torch.from_numpy(grad))
    assert_close_relative_to_scale(x.grad.numpy(), tx.grad.numpy())
    assert_close_relative_to_scale(ours[0].weight.grad.numpy(), theirs[0].weight.grad.numpy())
    assert_close_relative_to_scale(ours[0].bias.grad.numpy(), theirs[0].bias.grad.numpy())
