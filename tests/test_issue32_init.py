"""Issue 32: Dirac initialisation (torch's dirac_ and airbench's partial variant) and the
patch-whitening first convolution (airbench's init_whitening_conv), against torch and NumPy."""

import numpy as np
import pytest

from convnet import Tensor, nn
from convnet.errors import InvalidType, InvalidValue
from convnet.kernels.convolution import nchw
from conftest import requires_torch, torch


def _random_weight(shape, seed=0):
    return nn.Parameter(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@requires_torch
@pytest.mark.parametrize("shape, groups", [
    ((4, 4, 3, 3), 1), ((6, 3, 3, 3), 1), ((3, 6, 3, 3), 1), ((8, 3, 2, 2), 1), ((4, 2, 3, 3), 2),
    ((6, 2, 5, 5), 3), ((6, 4, 1, 4), 2), ((4, 3, 3), 1), ((6, 2, 3, 3, 3), 3), ((5, 5, 3, 3), 5),
])
def test_dirac_matches_torch(shape, groups):
    weight = _random_weight(shape)
    expected = torch.from_numpy(weight.data.copy())
    torch.nn.init.dirac_(expected, groups=groups)
    assert nn.init.dirac_(weight, groups=groups) is weight
    np.testing.assert_array_equal(weight.data, expected.numpy())


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_dirac_convolution_is_the_identity(layout):
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 6)).astype(np.float32)
    if layout == "nhwc":
        x = nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    np.testing.assert_allclose(conv(Tensor(x)).data, x, rtol=0, atol=1e-6)


@requires_torch
@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (4, 4, 3, 3), (2, 4, 3, 3), (6, 2, 3), (5, 2, 3, 3, 3)])
def test_partial_dirac_matches_airbench(shape):
    weight = _random_weight(shape, seed=2)
    original = weight.data.copy()
    expected = torch.from_numpy(original.copy())
    torch.nn.init.dirac_(expected[:expected.size(1)])  # airbench94.py Conv.reset_parameters
    assert nn.init.partial_dirac_(weight) is weight
    np.testing.assert_array_equal(weight.data, expected.numpy())
    in_channels = shape[1]
    np.testing.assert_array_equal(weight.data[in_channels:], original[in_channels:])


def test_partial_dirac_keeps_the_extra_filters_and_passes_input_through():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)
    conv = nn.Conv2d(3, 7, 3, padding=1, bias=False)
    extra = conv.weight.data[3:].copy()
    nn.init.partial_dirac_(conv.weight)
    out = conv(Tensor(x)).data
    np.testing.assert_allclose(out[:, :3], x, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(conv.weight.data[3:], extra)
    assert np.abs(extra).sum() > 0


@pytest.mark.parametrize("call, message", [
    (lambda: nn.init.dirac_(_random_weight((4, 4))), "3, 4 or 5 dimensions"),
    (lambda: nn.init.dirac_(_random_weight((4, 4, 1, 1, 1, 1))), "3, 4 or 5 dimensions"),
    (lambda: nn.init.dirac_(_random_weight((4, 4, 3, 3)), groups=0), "positive int"),
    (lambda: nn.init.dirac_(_random_weight((4, 4, 3, 3)), groups=3), "divisible by groups=3"),
    (lambda: nn.init.partial_dirac_(_random_weight((4, 4))), "3, 4 or 5 dimensions"),
])
def test_dirac_refuses_bad_arguments(call, message):
    with pytest.raises(InvalidValue, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def _correlated_images(n, channels, size, seed=4):
    """Images whose channels and neighbouring pixels are correlated, with an offset (not centred)."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((n, channels, size + 1, size + 1))
    smooth = raw[:, :, 1:, 1:] + 0.7 * raw[:, :, :-1, 1:] + 0.4 * raw[:, :, 1:, :-1]
    mixing = np.eye(channels) + 0.5 * rng.standard_normal((channels, channels))
    return (np.einsum("dc,nchw->ndhw", mixing, smooth) + 0.3).astype(np.float32)


def _patch_second_moment(images, k):
    """Independent oracle: explicit loop over patch positions, flattened in (c, i, j) order."""
    n, c, h, w = images.shape
    rows = [images[:, :, i:i + k, j:j + k].reshape(n, c * k * k) for i in range(h - k + 1) for j in range(w - k + 1)]
    patches = np.concatenate(rows).astype(np.float64)
    return patches.T @ patches / len(patches)


@pytest.mark.parametrize("channels, k", [(3, 2), (1, 3), (2, 2)])
def test_patch_whitening_whitens_the_patches(channels, k):
    images = _correlated_images(40, channels, 9)
    eps = 5e-4
    conv = nn.Conv2d(channels, 2 * channels * k * k, k, bias=False)
    assert nn.init.patch_whitening_(conv, images, eps=eps) is conv
    dims = channels * k * k
    outputs = conv(Tensor(images)).data.transpose(0, 2, 3, 1).reshape(-1, 2 * dims).astype(np.float64)
    positive = outputs[:, :dims]
    eigenvalues = np.linalg.eigvalsh(_patch_second_moment(images, k))[::-1]
    np.testing.assert_allclose(positive.T @ positive / len(positive), np.diag(eigenvalues / (eigenvalues + eps)),
                               rtol=0, atol=2e-4)
    # close to I: decorrelated, and eps = 5e-4 damps only the weakest directions (here by < 5 %)
    moment = positive.T @ positive / len(positive)
    np.testing.assert_allclose(moment - np.diag(np.diag(moment)), 0, atol=2e-4)
    assert np.all((np.diag(moment) > 0.95) & (np.diag(moment) < 1))
    np.testing.assert_array_equal(conv.weight.data[dims:], -conv.weight.data[:dims])


def test_patch_whitening_with_tiny_eps_is_the_identity_and_filters_are_w_of_cov():
    images = _correlated_images(30, 3, 8, seed=5)
    conv = nn.Conv2d(3, 24, 2, bias=False)
    nn.init.patch_whitening_(conv, images, eps=1e-12)
    filters = conv.weight.data[:12].reshape(12, 12).astype(np.float64)
    # hand check: W S W^T = I for the second moment S of the same patches
    np.testing.assert_allclose(filters @ _patch_second_moment(images, 2) @ filters.T, np.eye(12), rtol=0, atol=1e-4)


@requires_torch
def test_patch_whitening_matches_airbench_up_to_each_filters_sign():
    images = _correlated_images(20, 3, 8, seed=6)
    conv = nn.Conv2d(3, 24, 2)
    bias = conv.bias.data.copy()
    nn.init.patch_whitening_(conv, images)
    # airbench94.py: get_patches, get_whitening_parameters, init_whitening_conv (in float64 here)
    x = torch.from_numpy(images).double()
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2)
    flat = patches.reshape(len(patches), -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    eigenvalues, eigenvectors = eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(12, 3, 2, 2).flip(0)
    scaled = eigenvectors / torch.sqrt(eigenvalues + 5e-4)
    expected = torch.cat((scaled, -scaled)).numpy()
    ours = conv.weight.data.astype(np.float64)
    signs = np.sign(np.sum(ours * expected, axis=(1, 2, 3)))[:, None, None, None]
    assert np.all(signs != 0)
    np.testing.assert_allclose(ours * signs, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(conv.bias.data, bias)


def test_patch_whitening_is_deterministic_and_layout_independent():
    images = _correlated_images(25, 3, 7, seed=7)
    first, second, channels_last = (nn.Conv2d(3, 24, 2) for _ in range(3))
    nn.init.patch_whitening_(first, images)
    nn.init.patch_whitening_(second, images.copy())
    nn.init.patch_whitening_(channels_last, nchw(np.ascontiguousarray(images.transpose(0, 2, 3, 1))))
    np.testing.assert_array_equal(first.weight.data, second.weight.data)
    np.testing.assert_array_equal(first.weight.data, channels_last.weight.data)
    assert first.weight.data.dtype == np.float32


def test_patch_whitening_accumulates_across_chunks():
    images = _correlated_images(9, 2, 6, seed=8)
    whole = nn.init.patch_eigendecomposition(images, (2, 2), chunk=100)
    chunked = nn.init.patch_eigendecomposition(images, (2, 2), chunk=4)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12)
    np.testing.assert_allclose(np.abs(chunked[1] @ whole[1].T), np.eye(8), atol=1e-9)


class _NotAConv:
    weight = nn.Parameter(np.zeros((24, 12), dtype=np.float32))


_IMAGES = _correlated_images(4, 3, 6, seed=9)


@pytest.mark.parametrize("make_conv, images, eps, error, message", [
    (lambda: nn.Conv2d(3, 12, 2), _IMAGES, 5e-4, InvalidValue, r"out_channels = 2 \* 3 \* 2 \* 2 = 24, got 12"),
    (lambda: nn.Conv2d(3, 24, 3), _IMAGES, 5e-4, InvalidValue, r"= 54, got 24"),
    (lambda: nn.Conv2d(3, 24, 2, groups=3), _IMAGES, 5e-4, InvalidValue, "groups=1 and dilation 1"),
    (lambda: nn.Conv2d(3, 24, 2, dilation=2), _IMAGES, 5e-4, InvalidValue, "groups=1 and dilation 1"),
    (lambda: _NotAConv(), _IMAGES, 5e-4, InvalidType, "2-D convolution layer"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES[0], 5e-4, InvalidValue, r"\(N, 3, H, W\), got \(3, 6, 6\)"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES[:, :1], 5e-4, InvalidValue, r"\(N, 3, H, W\), got \(4, 1, 6, 6\)"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES.tolist(), 5e-4, InvalidValue, r"got list"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES[:, :, :1], 5e-4, InvalidValue, "at least 2x2"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES[:0], 5e-4, InvalidValue, "at least one image"),
    (lambda: nn.Conv2d(3, 24, 2), np.where(_IMAGES > 1, np.nan, _IMAGES), 5e-4, InvalidValue, "NaN or infinite"),
    (lambda: nn.Conv2d(3, 24, 2), _IMAGES, -1e-3, InvalidValue, "eps to be a finite number >= 0"),
    (lambda: nn.Conv2d(3, 24, 2), np.zeros((2, 3, 4, 4)), 0.0, InvalidValue, "singular"),
])
def test_patch_whitening_refuses_bad_arguments(make_conv, images, eps, error, message):
    with pytest.raises(error, match=message) as raised:
        nn.init.patch_whitening_(make_conv(), images, eps=eps)
    assert "\n" not in str(raised.value)
