"""Channels-last depthwise convolution (kernels/depthwise_channels_last.py): the compiled forward,
input gradient and weight gradient against their NumPy references and against PyTorch's conv2d
with groups=C; then through F.conv2d and F.conv_transpose2d on inputs of each memory layout
(channels-last, (N, C, H, W)-contiguous and channel-major), which must give the same values,
channels-last output from a channels-last input, and the same bits at 1 and 2 threads.

Results are compared relative to their scale (max error / max |expected|): within 1e-12 in float64
and 1e-5 in float32, as in tests/test_kernels_depthwise.py.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
import convnet.functional as F
from convnet import Tensor, kernels
from convnet.kernels import depthwise_channels_last as nhwc
from convnet.kernels.convolution import ConvGeometry, conv2d_forward, is_channels_last, memory_layout, nchw

from conftest import assert_close_relative_to_scale, requires_torch, run_conv_kernels, torch, window_geometries

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def out_size(size, kernel, stride, dilation, before, after):
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


class Case:
    """Shapes and geometry of a depthwise convolution; padding is (top, bottom, left, right)."""

    def __init__(self, c, n, hw, kernel, stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)):
        self.c, self.n, self.hw, self.kernel = c, n, hw, kernel
        self.stride, self.dilation, self.padding = stride, dilation, padding
        self.out_hw = tuple(out_size(hw[a], kernel[a], stride[a], dilation[a], *padding[2 * a:2 * a + 2])
                            for a in range(2))

    def __repr__(self):
        return (f"Case(c={self.c}, n={self.n}, hw={self.hw}, kernel={self.kernel}, stride={self.stride}, "
                f"dilation={self.dilation}, padding={self.padding})")

    def geometry(self):
        return self.stride, self.dilation, (self.padding[0], self.padding[2])

    def arrays(self, dtype, seed=0):
        """image (N, H, W, C), weight (kH, kW, C), grad_out (N, H', W', C), ~N(0, 1), channels-last."""
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((self.n,) + self.hw + (self.c,)).astype(dtype),
                rng.standard_normal(self.kernel + (self.c,)).astype(dtype),
                rng.standard_normal((self.n,) + self.out_hw + (self.c,)).astype(dtype))


COMPILED = (nhwc.forward, nhwc.input_grad, nhwc.weight_grad)
REFERENCES = (nhwc.forward_reference, nhwc.input_grad_reference, nhwc.weight_grad_reference)


def run(functions, image, weight, grad_out, case):
    """The three kernels, each into an array of NaN, so that an element left unwritten shows."""
    return run_conv_kernels(functions, image, weight, grad_out, case.geometry())


@st.composite
def cases(draw):
    """Any geometry with at least one output position: sizes from 1, asymmetric padding."""
    kernel, stride, dilation, padding, hw = draw(window_geometries(max_dilation=3, max_size=11))
    return Case(draw(st.sampled_from([1, 2, 3, 17])), draw(st.integers(1, 3)), hw, kernel, stride, dilation, padding)


@given(cases())
def test_kernels_match_their_references_on_any_geometry(case):
    arrays = case.arrays(np.float64)
    for ours, expected in zip(run(COMPILED, *arrays, case), run(REFERENCES, *arrays, case)):
        assert_close_relative_to_scale(ours, expected, TOLERANCE[np.float64])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    Case(64, 3, (9, 10), (3, 3), padding=(1, 1, 1, 1)),
    Case(130, 2, (7, 9), (5, 5), (2, 2), (1, 1), (2, 2, 2, 2)),  # channels past two 64-wide vectors
    Case(3, 2, (13, 11), (7, 7), (2, 2), (1, 1), (3, 3, 3, 3)),
    Case(17, 2, (12, 12), (3, 3), (1, 2), (2, 2), (0, 2, 3, 1)),
], ids=repr)
def test_kernels_match_their_references(dtype, case):
    arrays = case.arrays(dtype)
    for ours, expected in zip(run(COMPILED, *arrays, case), run(REFERENCES, *arrays, case)):
        assert_close_relative_to_scale(ours, expected, TOLERANCE[dtype])


def test_a_hand_computed_case():
    """One 2x2 image of two channels, a 2x2 kernel, padding 1 on top only: each output the sum of
    the taps that land inside, per channel."""
    image = np.array([[[1.0, 10.0], [2.0, 20.0]], [[3.0, 30.0], [4.0, 40.0]]])[None]  # (1, 2, 2, 2)
    weight = np.array([[[1.0, -1.0], [2.0, -2.0]], [[3.0, -3.0], [4.0, -4.0]]])  # (2, 2, 2): w[i, j, c]
    out = np.full((1, 2, 1, 2), np.nan)
    nhwc.forward(image, weight, (1, 1), (1, 1), (1, 0), out)
    # y=0 reads rows -1 (padding) and 0: 3*1 + 4*2; y=1 reads rows 0 and 1: 1*1 + 2*2 + 3*3 + 4*4.
    np.testing.assert_array_equal(out[0, :, 0, 0], [11.0, 30.0])
    np.testing.assert_array_equal(out[0, :, 0, 1], [-110.0, -300.0])


@requires_torch
@pytest.mark.parametrize("case", [
    Case(c, n, hw, (k, k), (s, s), (d, d), (k // 2 * d,) * 4)
    for c, n, hw, k, s, d in [(1, 2, (9, 9), 3, 1, 1), (3, 3, (13, 11), 3, 2, 1), (17, 2, (15, 13), 5, 1, 1),
                              (64, 2, (11, 12), 7, 2, 1), (130, 1, (9, 7), 3, 1, 2), (64, 2, (14, 14), 5, 2, 2)]
] + [Case(16, 2, (10, 9), (3, 5), (2, 1), (1, 2), (0, 2, 1, 3))], ids=repr)
def test_kernels_match_torch(case):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((case.n, case.c) + case.hw).astype(np.float32)  # NCHW, as PyTorch takes it
    weight = rng.standard_normal((case.c, 1) + case.kernel).astype(np.float32)
    grad = rng.standard_normal((case.n, case.c) + case.out_hw).astype(np.float32)
    their_x, their_weight = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    top, bottom, left, right = case.padding
    padded = torch.nn.functional.pad(their_x, (left, right, top, bottom))  # conv2d pads symmetrically only
    expected = torch.nn.functional.conv2d(padded, their_weight, stride=case.stride, dilation=case.dilation,
                                          groups=case.c)
    expected.backward(torch.from_numpy(grad))

    def last(a):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))

    taps = np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))
    out, grad_image, grad_taps = run(COMPILED, last(x), taps, last(grad), case)
    np.testing.assert_allclose(nchw(out), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert_close_relative_to_scale(nchw(grad_image), their_x.grad.numpy())
    assert_close_relative_to_scale(grad_taps.transpose(2, 0, 1), their_weight.grad.numpy()[:, 0])


# ------------------------------------------------------------------ through F.conv2d, every input layout
def layouts(x):
    """x (N, C, H, W) as views of channels-last, NCHW-contiguous and channel-major memory."""
    return {"channels_last": nchw(np.ascontiguousarray(x.transpose(0, 2, 3, 1))), "nchw": np.ascontiguousarray(x),
            "channel_major": np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)}


@requires_torch
@pytest.mark.parametrize("mode", kernels.MODES)
@pytest.mark.parametrize("x_shape, kernel, arguments", [
    ((3, 17, 9, 8), (3, 3), dict(padding=1)),
    ((2, 64, 11, 7), (5, 3), dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2))),
    ((2, 3, 12, 13), (7, 7), dict(stride=2, padding=3)),
])
def test_conv2d_in_every_layout_matches_torch_and_hands_on_channels_last(mode, x_shape, kernel, arguments):
    rng = np.random.default_rng(9)
    c = x_shape[1]
    x = rng.standard_normal(x_shape).astype(np.float32)
    weight, bias = rng.standard_normal((c, 1) + kernel).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    their = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    expected = torch.nn.functional.conv2d(*their, groups=c, **arguments)
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    expected.backward(torch.from_numpy(grad))
    for layout, x_in in layouts(x).items():
        with kernels.use(mode):
            # Tensor keeps its array's memory (convnet.tensor would copy it into NCHW order).
            ours = [Tensor(x_in, requires_grad=True)] + [Tensor(a, requires_grad=True) for a in (weight, bias)]
            out = F.conv2d(*ours, groups=c, **arguments)
            out.backward(convnet.tensor(grad))
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=layout)
        for mine, theirs in zip(ours, their):
            assert_close_relative_to_scale(mine.grad.numpy(), theirs.grad.numpy())
        # Channels-last in, channels-last out; the others run the channel-major kernels.
        assert memory_layout(out.numpy()) == ("channels_last" if layout == "channels_last" else "channel_major")
        assert is_channels_last(ours[0].grad.numpy()) == (layout == "channels_last"), layout


@requires_torch
def test_conv_transpose2d_on_channels_last_input_matches_torch():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 16, 9, 8)).astype(np.float32)
    weight = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    their = [torch.tensor(a, requires_grad=True) for a in (x, weight)]
    expected = torch.nn.functional.conv_transpose2d(*their, stride=2, padding=1, output_padding=1, groups=16)
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    expected.backward(torch.from_numpy(grad))
    ours = [Tensor(layouts(x)["channels_last"], requires_grad=True), Tensor(weight, requires_grad=True)]
    out = F.conv_transpose2d(*ours, stride=2, padding=1, output_padding=1, groups=16)
    out.backward(convnet.tensor(layouts(grad)["channels_last"]))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert is_channels_last(out.numpy())
    for mine, theirs in zip(ours, their):
        assert_close_relative_to_scale(mine.grad.numpy(), theirs.grad.numpy())


def test_the_layout_picks_the_kernel():
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6))
    weight, geometry = np.ones((8, 1, 3, 3)), ConvGeometry.of_conv2d((6, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8)
    picked = {layout: conv2d_forward(x_in, weight, geometry) for layout, x_in in layouts(x).items()}
    assert {layout: saved.algorithm for layout, (_, saved) in picked.items()} == {
        "channels_last": "depthwise_last", "nchw": "depthwise", "channel_major": "depthwise"}
    assert {layout: memory_layout(out) for layout, (out, _) in picked.items()} == {
        "channels_last": "channels_last", "nchw": "channel_major", "channel_major": "channel_major"}
    # One channel is a plain convolution, not depthwise (groups 1): the rule never sends it here.
    assert kernels.conv_algorithm((3, 3), (1, 1), (1, 1), 1, 1, 1) != "depthwise"


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_the_same_bits_at_one_and_two_threads():
    case = Case(33, 5, (17, 15), (3, 3), (2, 1), (1, 1), (1, 1, 1, 1))
    arrays, threads, results = case.arrays(np.float32, seed=3), numba.get_num_threads(), []
    try:
        for count in (1, 2):
            numba.set_num_threads(count)
            results.append(run(COMPILED, *arrays, case))
    finally:
        numba.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
