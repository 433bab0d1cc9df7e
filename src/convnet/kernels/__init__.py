"""Compiled kernels: the engine's hot loops as plain Python loops compiled by Numba.

Each kernel does one op's memory-bound pass (a window keeping its maximum, a kernel's taps
copied into GEMM-ready columns, an optimizer's update) as one loop instead of several NumPy
passes; matrix products stay in NumPy's BLAS, except Winograd's batched products with a small
inner dimension (`microkernel`: an LLVM vector block, measured faster there). Kernels take their
inputs and a preallocated output and return nothing (or a small tuple); shapes are in their docstrings. Each file holds
its kernels and, beside each, a plain NumPy reference with the same arguments, which the tests
compare it with (kernels/optim.py's references are the optimizers' own NumPy steps, in
`convnet.optim`). The ops call neither directly but the `Kernel` of the two (``kernels.im2col``,
``kernels.max_pool_forward``, ..., and Winograd's transforms in kernels/winograd.py), which runs
the one the active mode names; `use` selects it:

>>> import numpy as np
>>> from convnet import kernels
>>> kernels.active()
'compiled'
>>> x, out = np.array([-1.0, 2.0]), np.empty(2)
>>> with kernels.use("reference"):
...     kernels.active(), kernels.relu_forward(x, out), out.tolist()
('reference', None, [0.0, 2.0])
>>> kernels.relu_forward.reference is kernels.activation.relu_forward_reference
True

The environment variable ``CONVNET_KERNELS=reference`` selects the references for a whole
process (to compare a run's accuracy or speed with and without the compiled kernels).
Kernels are compiled on first use and cached on disk (``cache=True``), so only the first run on
a machine pays for compiling them. The big passes run on all cores (``parallel=True``), each
thread taking whole channels, planes or images, so results do not depend on the thread count;
`convnet.process` explains the idle-wait settings that keep their threads and BLAS's apart.

Convolution has five algorithms: im2col (kernels/columns.py: columns, then one GEMM; any
geometry; channel-major, or channels-last as 'im2col_last' in kernels/columns_channels_last.py
for groups 1), Winograd F(2x2, 3x3) and F(4x4, 3x3) (kernels/winograd.py, with the transforms in
winograd2.py and winograd4.py: transforms, then 16 or 36 smaller GEMMs; stride-1 3x3 kernels,
dilation 1, groups 1), direct (kernels/direct.py: the sum tap by tap, no columns; one input
channel, stride 1, groups 1) and depthwise (kernels/depthwise.py: the same per channel; groups =
input channels = output channels, any kernel, stride, dilation); kernels/convolution.py runs
them. ``conv_algorithm`` picks one per shape; ``use_algorithm`` overrides the choice,
orthogonally to the compiled/reference mode. Forcing 'winograd', 'winograd4' or 'direct' still
sends the shapes it cannot do to im2col:

>>> plain = dict(stride=(1, 1), dilation=(1, 1), groups=1)
>>> kernels.conv_algorithm((3, 3), **plain, in_channels=64, out_channels=64)
'winograd'
>>> kernels.conv_algorithm((3, 3), **plain, in_channels=1, out_channels=32)
'im2col'
>>> kernels.conv_algorithm((5, 5), **plain, in_channels=1, out_channels=6)
'direct'
>>> kernels.conv_algorithm((3, 3), (2, 2), (1, 1), groups=64, in_channels=64, out_channels=64)
'depthwise'
>>> kernels.conv_algorithm((7, 7), (2, 2), (1, 1), 1, in_channels=3, out_channels=64)
'im2col_last'
>>> kernels.conv_algorithm((7, 7), (2, 2), (1, 1), 1, 3, 64, input_layout="channel_major")
'im2col'
>>> with kernels.use_algorithm("winograd4"):
...     kernels.conv_algorithm((3, 3), **plain, in_channels=64, out_channels=64)
'winograd4'
>>> with kernels.use_algorithm("im2col"):
...     kernels.conv_algorithm((3, 3), **plain, in_channels=64, out_channels=64)
'im2col'
"""

import os
from contextlib import contextmanager

from . import activation, columns, columns_channels_last, depthwise, depthwise_channels_last, direct, normalization
from . import normalization_channels_last, pooling, pooling_channels_last, special
from ..errors import InvalidValue

MODES = ("compiled", "reference")
ALGORITHMS = ("auto", "im2col", "im2col_last", "winograd", "winograd4", "direct", "depthwise")
# Winograd's forward + backward beat im2col's from 8 input channels up (0.29-0.98x of its time on
# 8..128 channels at 7..28 px, with the parallel kernels; measured for issue 13); with 1 or 3
# input channels (a first layer) it lost (1.5-6.5x), its transforms then doing all the work.
# Re-measured for issue 30 on either input layout (benchmarks/conv_rule.py, 2026-12-06, 2-core AMD
# EPYC, 2 Numba threads, one process, interleaved, medians of 5 blocks, others <2% busy: rough),
# after the transformed weights went into staggered planes with parallel transforms (4x512x7x7
# ->512 and 1x256x14x14->256 took 0.50x their time, ResNet-18's step 0.77x). The rule stands for
# channels-last inputs too, their copy into channel-major memory included. Forward + backward,
# the time of 'im2col_last' over Winograd's on channels-last inputs: 1.57-1.94x at 28-56 px
# (1.05x on one 56 px image), 1.04-1.53x at 14 px, 1.04-1.13x at 7 px, and 0.79-0.93x on 128->128
# at 7 px, 32->64 at 14 px and one 256->256 image at 14 px; on channel-major inputs, the channel-
# major 'im2col' over Winograd's 0.71-1.78x (median 1.14). Training steps under other rules, time
# over this one's: ResNet-8 (batch 128, 28 px) / ResNet-18 (batch 4, 224 px): never Winograd 2.06
# / 1.37x, Winograd only on channel-major input 0.99 / 1.31x, only up to 128 channels 0.99 /
# 1.08x, only above 7 px (conv_algorithm is not told the size) 1.09 / 1.10x.
WINOGRAD_MIN_CHANNELS = 8
# F(4x4, 3x3) ('winograd4') is there to be chosen, not chosen by 'auto'. Where 4 divides the
# output (7, 28, 32 px) it needs 0.5625x F(2x2, 3x3)'s products and took 0.28-0.75x of im2col's
# time (F(2x2) 0.32-0.98x); at 14 px its ragged tiles leave 0.73x and its costlier transforms ate
# that (0.79-0.93x against F(2x2)'s 0.69-0.90x). In ResNet-8's training step (F(4x4) at 28 and
# 7 px) it saved 5%, but the gradients' float32 error grew from 1.2e-6 to 5-9e-6 of their scale
# (against float64; im2col and F(2x2) alike at 1.1-1.5e-6), and its kernels add about 15 s to
# the first compile. Measured for issue 13.
# Direct beat im2col on one input channel with few output channels (forward + weight gradient
# on 128 28x28 images: 1->6 5x5 0.35x, 1->6 3x3 0.77x of im2col's time) and lost from about a
# dozen up (1->12 5x5 1.2x, 1->32 3x3 1.8x, 1->100 5x5 2.1x, the lesson's 1->100 10x10 1.7-4x),
# where im2col's GEMM shares each column among many kernels; measured for issue 13.
DIRECT_MAX_OUT_CHANNELS = 8
# im2col runs channels-last ('im2col_last': (N*H'*W', kH*kW*C) columns, the GEMM's product the
# NHWC output itself) from 3 input channels up, unless the input is channel-major memory (a
# Winograd, direct or depthwise layer's output), which the channel-major im2col reads for free.
# Forward + backward, time over the channel-major im2col's on the same input, 1 thread, on a
# 2-core AMD EPYC 55-85% busy with other work, so rough (medians of the 4 quietest of 11
# interleaved rounds, two runs; issue 30). An (N, C, H, W)-contiguous input (the network's
# input, or a user's array): 3->16 7x7/2 at 64 px 0.82-0.83, 3->64 7x7/2 at 224 px 0.91-1.02,
# 16->32 5x5 at 24 px 0.80-0.92, 48->96 3x3/2 at 20 px 0.90-0.92, 64->128 3x3/2 at 16 px
# 0.94-1.00, ResNet's 3x3/2 and 1x1/2 at 28 and 14 px 0.62-1.58 (noise). A channels-last input,
# against the channel-major im2col converting it: 0.49-1.16, median 0.90. A channel-major input,
# against reading it for free: 0.87-1.15 on 3x3 and 5x5 layers, 1.66-2.01 on 1x1/2 (the
# transposing copy then costs more than the product). One input channel (the lesson's 1->100
# 10x10, 1->32 3x3 at 28 px): 1.16-1.48, the channel-major columns' long contiguous rows beating
# channels-last's runs of kW values. Winograd stays: 'im2col_last' took 1.1-2.6x its time on its
# 3x3 stride-1 shapes.
IM2COL_LAST_MIN_CHANNELS = 3


class _Setting:
    """A process-wide choice among ``choices``, set for good or for a ``with`` block. The value is
    checked when it is read, so a bad environment variable is reported by the first op that
    needs it (as a one-line error from the command line) rather than as an import failure."""

    def __init__(self, setter, choices, value):
        self.setter, self.choices, self._value = setter, choices, value

    @property
    def value(self):
        self._check(self._value)
        return self._value

    def set(self, value):
        self._check(value)
        self._value = value

    @contextmanager
    def use(self, value):
        previous = self._value
        self.set(value)
        try:
            yield
        finally:
            self._value = previous

    def _check(self, value):
        if value not in self.choices:
            raise InvalidValue(f"{self.setter}: expected one of {', '.join(self.choices)}, got {value!r}")


_mode = _Setting("kernels.set_mode (or CONVNET_KERNELS)", MODES, os.environ.get("CONVNET_KERNELS", "compiled"))
_algorithm = _Setting("kernels.set_algorithm", ALGORITHMS, "auto")


def active():
    """Which implementation the ops call: 'compiled' (the default) or 'reference'."""
    return _mode.value


def compiled():
    """True when the compiled kernels run (`Kernel` chooses by it; convnet.optim asks it too)."""
    return _mode.value == "compiled"


class Kernel:
    """A compiled kernel and its NumPy reference, which take the same arguments: calling it runs
    the one the active mode names. This is the one place that chooses between them."""

    def __init__(self, compiled, reference):
        self.compiled, self.reference = compiled, reference
        self.__doc__ = compiled.__doc__

    def __call__(self, *args, **kwargs):
        return (self.compiled if compiled() else self.reference)(*args, **kwargs)

    def __repr__(self):
        return f"Kernel({self.compiled.__name__})"


def set_mode(mode):
    """Select the compiled kernels or their NumPy references for every op from now on."""
    _mode.set(mode)


def use(mode):
    """Within the block, the ops call ``mode``'s implementation ('compiled' or 'reference')."""
    return _mode.use(mode)


def set_algorithm(algorithm):
    """Convolution's algorithm from now on: 'auto' (the default: `conv_algorithm`'s per-shape
    rule), 'im2col' everywhere, 'im2col_last' everywhere but groups > 1 (which stay on 'im2col'),
    or 'winograd', 'winograd4', 'direct' or 'depthwise' wherever it applies."""
    _algorithm.set(algorithm)


def use_algorithm(algorithm):
    """Within the block, convolutions use ``algorithm`` ('auto', 'im2col', 'im2col_last', 'winograd',
    'winograd4', 'direct' or 'depthwise'): see `set_algorithm`."""
    return _algorithm.use(algorithm)


def conv_algorithm(kernel, stride, dilation, groups, in_channels, out_channels, input_layout=None):
    """'winograd', 'winograd4', 'direct', 'depthwise', 'im2col' or 'im2col_last' for a convolution
    of this geometry and channel counts, on an input whose memory is ``input_layout``.

    Depthwise applies to, and under 'auto' is chosen for, groups = input channels = output
    channels (more than one): each channel filtered by its own kernel, where im2col runs one
    GEMM of a single row per channel.

    Winograd, F(2x2, 3x3) ('winograd') or F(4x4, 3x3) ('winograd4'), applies to 3x3 kernels with
    stride 1, dilation 1 and groups 1 (any padding); under 'auto' F(2x2, 3x3) is chosen from
    WINOGRAD_MIN_CHANNELS input channels up, whatever the input's layout, where its transforms
    cost less than the multiplies they save (F(4x4, 3x3) only when asked for: see the comment
    above). Direct applies to one input channel with stride 1 and groups 1 (any kernel, dilation,
    padding); under 'auto' it is chosen, undilated, for at most DIRECT_MAX_OUT_CHANNELS output
    channels, where it was measured faster.

    Wherever im2col runs under 'auto' (not where a forced algorithm does not apply), it runs
    channels-last ('im2col_last', groups 1) from IM2COL_LAST_MIN_CHANNELS input channels up unless
    ``input_layout`` is 'channel_major' (the memory of the input, as
    `convolution.memory_layout` names it: 'channels_last', 'channel_major' or None for another),
    where the channel-major 'im2col' reads the input without a copy.
    """
    chosen = _algorithm.value
    stride_1, undilated = tuple(stride) == (1, 1), tuple(dilation) == (1, 1)
    if chosen in ("im2col", "im2col_last"):
        return chosen if groups == 1 else "im2col"
    if groups > 1 and groups == in_channels == out_channels and chosen in ("auto", "depthwise"):
        return "depthwise"
    im2col = _im2col_layout(groups, in_channels, input_layout) if chosen == "auto" else "im2col"
    if groups != 1 or not stride_1:
        return im2col
    if in_channels == 1 and chosen in ("auto", "direct"):
        if chosen == "direct" or (undilated and out_channels <= DIRECT_MAX_OUT_CHANNELS):
            return "direct"
    if tuple(kernel) != (3, 3) or not undilated or chosen in ("direct", "depthwise"):
        return im2col
    if chosen in ("winograd", "winograd4"):
        return chosen
    return "winograd" if in_channels >= WINOGRAD_MIN_CHANNELS else im2col


def _im2col_layout(groups, in_channels, input_layout):
    """'im2col_last' or 'im2col' where im2col runs: see IM2COL_LAST_MIN_CHANNELS's comment."""
    if groups != 1 or in_channels < IM2COL_LAST_MIN_CHANNELS or input_layout == "channel_major":
        return "im2col"
    return "im2col_last"


# ------------------------------------------------------------------ the kernels, each with its reference
relu_forward = Kernel(activation.relu_forward, activation.relu_forward_reference)
relu_backward = Kernel(activation.relu_backward, activation.relu_backward_reference)
erf = Kernel(special.erf, special.erf_reference)
normal_cdf = Kernel(special.normal_cdf, special.normal_cdf_reference)
max_pool_forward = Kernel(pooling.max_pool_forward, pooling.max_pool_forward_reference)
max_pool_backward = Kernel(pooling.max_pool_backward, pooling.max_pool_backward_reference)
max_pool_2x2_forward = Kernel(pooling.max_pool_2x2_forward, pooling.max_pool_2x2_forward_reference)
max_pool_2x2_backward = Kernel(pooling.max_pool_2x2_backward, pooling.max_pool_2x2_backward_reference)
max_pool_nhwc_forward = Kernel(pooling_channels_last.max_pool_forward, pooling_channels_last.max_pool_forward_reference)
max_pool_nhwc_backward = Kernel(pooling_channels_last.max_pool_backward,
                                pooling_channels_last.max_pool_backward_reference)
max_pool_2x2_nhwc_forward = Kernel(pooling_channels_last.max_pool_2x2_forward,
                                   pooling_channels_last.max_pool_2x2_forward_reference)
max_pool_2x2_nhwc_backward = Kernel(pooling_channels_last.max_pool_2x2_backward,
                                    pooling_channels_last.max_pool_2x2_backward_reference)
window_sum = Kernel(pooling_channels_last.window_sum, pooling_channels_last.window_sum_reference)
window_sum_backward = Kernel(pooling_channels_last.window_sum_backward,
                             pooling_channels_last.window_sum_backward_reference)
im2col = Kernel(columns.im2col, columns.im2col_reference)
col2im = Kernel(columns.col2im, columns.col2im_reference)
im2col_last = Kernel(columns_channels_last.im2col, columns_channels_last.im2col_reference)
col2im_last = Kernel(columns_channels_last.col2im, columns_channels_last.col2im_reference)
direct_forward = Kernel(direct.forward, direct.forward_reference)
direct_weight_grad = Kernel(direct.weight_grad, direct.weight_grad_reference)
depthwise_forward = Kernel(depthwise.forward, depthwise.forward_reference)
depthwise_input_grad = Kernel(depthwise.input_grad, depthwise.input_grad_reference)
depthwise_weight_grad = Kernel(depthwise.weight_grad, depthwise.weight_grad_reference)
depthwise_nhwc_forward = Kernel(depthwise_channels_last.forward, depthwise_channels_last.forward_reference)
depthwise_nhwc_input_grad = Kernel(depthwise_channels_last.input_grad, depthwise_channels_last.input_grad_reference)
depthwise_nhwc_weight_grad = Kernel(depthwise_channels_last.weight_grad, depthwise_channels_last.weight_grad_reference)
batch_norm_train_forward = Kernel(normalization.batch_norm_train_forward,
                                  normalization.batch_norm_train_forward_reference)
batch_norm_eval_forward = Kernel(normalization.batch_norm_eval_forward, normalization.batch_norm_eval_forward_reference)
batch_norm_backward = Kernel(normalization.batch_norm_backward, normalization.batch_norm_backward_reference)
batch_norm_train_forward_channels_last = Kernel(normalization_channels_last.batch_norm_train_forward,
                                                normalization_channels_last.batch_norm_train_forward_reference)
batch_norm_eval_forward_channels_last = Kernel(normalization_channels_last.batch_norm_eval_forward,
                                               normalization_channels_last.batch_norm_eval_forward_reference)
batch_norm_backward_channels_last = Kernel(normalization_channels_last.batch_norm_backward,
                                           normalization_channels_last.batch_norm_backward_reference)
