"""Depthwise convolution (kernels/depthwise.py): the compiled forward, input gradient and weight
gradient against their NumPy references, their adjointness in float64, and PyTorch's conv2d with
groups=C (float32, through autograd); then through F.conv2d and F.conv_transpose2d against
im2col, finite differences and PyTorch, and the rule that picks it.

Results are compared relative to their scale (max error / max |expected|): within 1e-12 in float64
and 1e-5 in float32 (measured about 1e-7 against float64 at (N=64, C=64, 32x32, 3x3)).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import kernels
from convnet.kernels import depthwise

from conftest import assert_close_relative_to_scale, finite_difference_check, requires_torch, run_conv_kernels, torch, \
    torch_check, window_geometries

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def out_size(size, kernel, stride, dilation, before, after):
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


class Case:
    """A depthwise convolution's shapes and geometry; padding is (top, bottom, left, right). The
    output size is the natural one unless ``fewer`` (rows, columns) are dropped from its end."""

    def __init__(self, c, n, hw, kernel, stride, dilation, padding, fewer=(0, 0)):
        self.c, self.n, self.hw, self.kernel = c, n, hw, kernel
        self.stride, self.dilation, self.padding = stride, dilation, padding
        self.top_left = (padding[0], padding[2])
        self.out_hw = tuple(out_size(hw[a], kernel[a], stride[a], dilation[a], *padding[2 * a:2 * a + 2]) - fewer[a]
                            for a in range(2))

    def __repr__(self):
        return (f"Case(c={self.c}, n={self.n}, hw={self.hw}, kernel={self.kernel}, stride={self.stride}, "
                f"dilation={self.dilation}, padding={self.padding})")

    def geometry(self):
        return self.stride, self.dilation, self.top_left

    def arrays(self, dtype, seed=0):
        """image (C, N, H, W), weight (C, kH, kW), grad_out (C, N, H', W'), ~N(0, 1)."""
        rng = np.random.default_rng(seed)
        image = rng.standard_normal((self.c, self.n) + self.hw).astype(dtype)
        weight = rng.standard_normal((self.c,) + self.kernel).astype(dtype)
        grad_out = rng.standard_normal((self.c, self.n) + self.out_hw).astype(dtype)
        return image, weight, grad_out


@st.composite
def cases(draw):
    """Any geometry with at least one output position: sizes from 1, asymmetric padding."""
    kernel, stride, dilation, padding, hw = draw(window_geometries(max_padding=2))
    c, n = draw(st.sampled_from([1, 2, 3, 16, 33])), draw(st.integers(1, 3))
    return Case(c, n, hw, kernel, stride, dilation, padding)


COMPILED = (depthwise.forward, depthwise.input_grad, depthwise.weight_grad)
REFERENCES = (depthwise.forward_reference, depthwise.input_grad_reference, depthwise.weight_grad_reference)


def compiled(image, weight, grad_out, case, functions=COMPILED):
    """The three kernels, each into an array of NaN, so that an element left unwritten shows."""
    return run_conv_kernels(functions, image, weight, grad_out, case.geometry())


def references(image, weight, grad_out, case):
    """The three references, with the kernels' arguments."""
    return compiled(image, weight, grad_out, case, REFERENCES)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(cases())
@example(Case(3, 2, (9, 8), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)))
@example(Case(33, 3, (12, 11), (5, 4), (2, 1), (2, 1), (2, 0, 1, 2)))  # stride 1 across, 2 down
@example(Case(16, 1, (7, 12), (2, 3), (1, 3), (1, 2), (0, 2, 0, 1)))  # stride 3 across, 1 down
@example(Case(2, 2, (1, 1), (1, 1), (1, 1), (1, 1), (2, 2, 2, 2)))  # outputs that see only padding
@settings(max_examples=60)
def test_kernels_match_their_references(dtype, case):
    arrays = case.arrays(dtype)
    for name, ours, expected in zip(("out", "grad_image", "grad_weight"), compiled(*arrays, case),
                                    references(*arrays, case)):
        assert ours.dtype == dtype and ours.shape == expected.shape, name
        assert_close_relative_to_scale(ours, expected, TOLERANCE[dtype])


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (1, 2)])
def test_only_the_first_output_positions_when_asked(stride):
    """Fewer outputs than the natural size (a transposed convolution's geometry): the image reaches
    past the last window, bottom and right padding negative."""
    case = Case(3, 2, (11, 10), (3, 2), stride, (1, 2), (1, 0, 2, 1), fewer=(2, 1))
    arrays = case.arrays(np.float64)
    for ours, expected in zip(compiled(*arrays, case), references(*arrays, case)):
        assert_close_relative_to_scale(ours, expected, TOLERANCE[np.float64])


@given(cases())
@settings(max_examples=30)
def test_gradients_are_the_adjoints_of_forward(case):
    """<forward(x; w), g> == <x, input_grad(g; w)> == <w, weight_grad(g; x)>, all three sums of the
    same products w*x*g, within 1e-12 of the sum of their magnitudes."""
    image, weight, grad_out = case.arrays(np.float64)
    out, grad_image, grad_weight = compiled(image, weight, grad_out, case)
    magnitudes = references(np.abs(image), np.abs(weight), grad_out, case)[0]
    bound = 1e-12 * np.sum(magnitudes * np.abs(grad_out))
    forward_inner = np.sum(out * grad_out)
    assert abs(forward_inner - np.sum(image * grad_image)) <= bound
    assert abs(forward_inner - np.sum(weight * grad_weight)) <= bound


@requires_torch
@pytest.mark.parametrize("case", [
    Case(64, 64, (32, 32), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    Case(16, 4, (15, 13), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    Case(8, 2, (14, 14), (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
    Case(5, 11, (11, 9), (5, 3), (2, 1), (1, 2), (2, 0, 1, 2)),  # few channels: images split in uneven runs
    Case(32, 2, (7, 7), (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
], ids=repr)
def test_matches_torch(case):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((case.n, case.c) + case.hw).astype(np.float32)  # NCHW, as PyTorch takes it
    weight = rng.standard_normal((case.c,) + case.kernel).astype(np.float32)
    grad = rng.standard_normal((case.n, case.c) + case.out_hw).astype(np.float32)

    their_x, their_weight = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    top, bottom, left, right = case.padding
    padded = torch.nn.functional.pad(their_x, (left, right, top, bottom))  # conv2d pads symmetrically only
    expected = torch.nn.functional.conv2d(padded, their_weight[:, None], stride=case.stride,
                                          dilation=case.dilation, groups=case.c)
    expected.backward(torch.from_numpy(grad))

    def channel_major(a):
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3))

    out, grad_image, grad_weight = compiled(channel_major(x), weight, channel_major(grad), case)
    np.testing.assert_allclose(channel_major(out), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert_close_relative_to_scale(channel_major(grad_image), their_x.grad.numpy())
    assert_close_relative_to_scale(grad_weight, their_weight.grad.numpy())


# ------------------------------------------------------------------ through F.conv2d and the rule
@pytest.mark.parametrize("mode", kernels.MODES)
@pytest.mark.parametrize("x_shape, kernel, arguments", [
    ((3, 6, 9, 8), (3, 3), dict(padding=1)),
    ((2, 5, 11, 7), (5, 3), dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2))),
    ((1, 4, 6, 6), (2, 2), dict(stride=2)),
])
def test_conv2d_with_groups_equal_to_channels_runs_depthwise_and_matches_im2col(mode, x_shape, kernel, arguments):
    rng = np.random.default_rng(9)
    channels = x_shape[1]
    x = rng.standard_normal(x_shape)
    weight, bias = rng.standard_normal((channels, 1) + kernel), rng.standard_normal(channels)
    results = []
    for algorithm in ("auto", "im2col"):
        with kernels.use(mode), kernels.use_algorithm(algorithm):
            tensors = [convnet.tensor(a, requires_grad=True) for a in (x, weight, bias)]
            out = F.conv2d(*tensors, groups=channels, **arguments)
            (out * out).sum().backward()
            results.append([out.numpy()] + [t.grad.numpy() for t in tensors])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    with kernels.use(mode):
        finite_difference_check(lambda a, b: F.conv2d(a, b, groups=channels, **arguments), [x, weight])


@requires_torch
def test_conv2d_and_conv_transpose2d_depthwise_match_torch():
    rng = np.random.default_rng(10)
    x, weight = rng.standard_normal((4, 16, 15, 13)), rng.standard_normal((16, 1, 3, 3))
    torch_check(lambda a, b: F.conv2d(a, b, stride=2, padding=1, groups=16),
                lambda a, b: torch.nn.functional.conv2d(a, b, stride=2, padding=1, groups=16), [x, weight])
    torch_check(lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1, groups=16),
                lambda a, b: torch.nn.functional.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1,
                                                                  groups=16), [x, weight])


def test_rule_sends_one_kernel_per_channel_to_depthwise():
    plain = dict(kernel=(3, 3), stride=(2, 2), dilation=(1, 1))
    assert kernels.conv_algorithm(**plain, groups=32, in_channels=32, out_channels=32) == "depthwise"
    assert kernels.conv_algorithm(**plain, groups=32, in_channels=32, out_channels=64) == "im2col"  # 2 per channel
    assert kernels.conv_algorithm(**plain, groups=4, in_channels=32, out_channels=32) == "im2col"
    with kernels.use_algorithm("im2col"):
        assert kernels.conv_algorithm(**plain, groups=32, in_channels=32, out_channels=32) == "im2col"
    with kernels.use_algorithm("depthwise"):
        assert kernels.conv_algorithm(**plain, groups=1, in_channels=1, out_channels=4) == "im2col"
