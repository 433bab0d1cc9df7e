"""conv2d is cross-correlation: it equals scipy's correlate2d and, with the kernel flipped,
scipy's convolve2d (signal processing's convolution)."""

import numpy as np
import pytest
from scipy import signal

import convnet.functional as F


@pytest.mark.parametrize("image_shape, kernel_shape", [((7, 9), (3, 3)), ((12, 10), (5, 2)), ((6, 6), (6, 6))])
def test_conv2d_is_correlate2d_and_convolve2d_with_a_flipped_kernel(image_shape, kernel_shape, rng):
    image, kernel = rng.standard_normal(image_shape), rng.standard_normal(kernel_shape)
    ours = F.conv2d(image[None, None], kernel[None, None]).numpy()[0, 0]
    np.testing.assert_allclose(ours, signal.correlate2d(image, kernel, mode="valid"), rtol=1e-12)
    np.testing.assert_allclose(ours, signal.convolve2d(image, kernel[::-1, ::-1], mode="valid"), rtol=1e-12)
    # The unflipped kernel gives signal processing's convolution, which is a different result.
    assert not np.allclose(ours, signal.convolve2d(image, kernel, mode="valid"))


def test_zero_padding_matches_correlate2d_full_and_same(rng):
    image, kernel = rng.standard_normal((8, 8)), rng.standard_normal((3, 3))
    full = F.conv2d(image[None, None], kernel[None, None], padding=2).numpy()[0, 0]
    np.testing.assert_allclose(full, signal.correlate2d(image, kernel, mode="full"), rtol=1e-12)
    same = F.conv2d(image[None, None], kernel[None, None], padding="same").numpy()[0, 0]
    np.testing.assert_allclose(same, signal.correlate2d(image, kernel, mode="same"), rtol=1e-12)


def test_a_hand_computed_case():
    image = np.arange(16.0).reshape(1, 1, 4, 4)
    kernel = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # top-left minus bottom-right
    np.testing.assert_array_equal(F.conv2d(image, kernel).numpy(), np.full((1, 1, 3, 3), -5.0))
