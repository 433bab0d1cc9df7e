"""The lesson's configuration: 256x256 grayscale images, 100 kernels of 10x10, ReLU, 2x2 max pooling."""

import numpy as np
import pytest

import convnet
from convnet import nn
from conftest import assert_close_relative_to_scale, requires_torch, torch


@pytest.mark.slow
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


def test_the_feature_map_grid_scales_each_map_to_its_own_range_or_all_to_one():
    from convnet.viz import lesson
    maps = np.stack([np.arange(16.0).reshape(4, 4), 100 + np.arange(16.0).reshape(4, 4) / 100])
    each = lesson.maps_grid_figure(maps, "each", each_scaled=True).axes[0].images[0].get_array()
    shared = lesson.maps_grid_figure(maps, "shared").axes[0].images[0].get_array()
    tiles = [each[:4, :4], each[:4, 5:9]]  # a gap of 1 between the tiles
    for tile in tiles:  # the weak second map spans the whole scale too
        assert tile.min() == 0.0 and tile.max() == 1.0
    np.testing.assert_allclose(tiles[1], tiles[0])
    assert shared[:4, 5:9].min() == 100.0  # one scale: the raw values
