"""Inference-time fusion: a trained network's convolutions with what follows them, in one pass.

At inference a batch norm is a fixed affine map per channel, so it folds into the convolution
before it: with s = gamma / sqrt(running_var + eps),

    w' = w * s (per output channel),    b' = beta + (b - running_mean) * s

and the ReLU and the 2x2 max pooling after it join the pass that writes the convolution's output
(Winograd's output transform, or one pass over im2col's product), which then adds b', rectifies
and keeps each window's maximum: the full-size output of the convolution is read once and the
batch norm's, ReLU's and pooling's passes are gone. `fuse_for_inference` makes such a copy of a
model; the copy gives the model's outputs within float32 rounding (the folded weights round
differently) and runs inference only.

>>> import numpy as np, convnet
>>> from convnet import nn
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)).eval()
>>> fused = nn.fuse_for_inference(model)
>>> fused
Sequential(
  (0): FusedConv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), batch_norm=True, relu=True, max_pool=True)
  (1): Identity()
  (2): Identity()
  (3): Identity()
)
>>> x = convnet.randn(2, 1, 8, 8)
>>> with convnet.no_grad():
...     bool(np.allclose(fused(x).numpy(), model(x).numpy(), atol=1e-6))
True
"""

import copy

import numpy as np

from ..errors import ConvnetError, InvalidType, InvalidValue
from ..kernels import Kernel, activation, conv_algorithm, winograd2
from ..kernels.convolution import WINOGRAD, ConvGeometry, channel_major, channels_last, conv2d_forward, \
    is_channels_last, memory_layout, nchw
from ..tensor import Tensor, is_grad_enabled
from .activation import ReLU
from .conv import Conv2d
from .linear import Identity
from .module import Module
from .normalization import BatchNorm2d
from .pooling import MaxPool2d
from .residual import BasicBlock
from .sequential import Sequential

# The epilogue kernels, each with its reference (the mode picks, as for the registry's kernels).
epilogue = Kernel(activation.bias_relu_max_pool, activation.bias_relu_max_pool_reference)
epilogue_last = Kernel(activation.bias_relu_max_pool_last, activation.bias_relu_max_pool_last_reference)
winograd_epilogue = Kernel(winograd2.output_transform_fused, winograd2.output_transform_fused_reference)
add_relu = Kernel(activation.add_relu, activation.add_relu_reference)


class InferenceOnly(ConvnetError, RuntimeError):
    """A layer of `fuse_for_inference`'s copy was asked to train or to carry gradients."""


def fold_batch_norm(weight, bias, norm):
    """weight: (O, C/G, kH, kW), bias: (O,) or None, norm: a BatchNorm2d with running statistics
    -> (weight', bias'), (O, C/G, kH, kW) and (O,) in weight's dtype: the convolution followed by
    the batch norm in eval mode as one convolution (computed in float64, rounded once)."""
    o = weight.shape[0]
    mean, var = (np.asarray(t.data, dtype=np.float64) for t in (norm.running_mean, norm.running_var))
    gamma = np.ones(o) if norm.weight is None else np.asarray(norm.weight.data, dtype=np.float64)
    beta = np.zeros(o) if norm.bias is None else np.asarray(norm.bias.data, dtype=np.float64)
    scale = gamma / np.sqrt(var + norm.eps)
    b = np.zeros(o) if bias is None else np.asarray(bias, dtype=np.float64)
    folded = weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    return folded.astype(weight.dtype), (beta + (b - mean) * scale).astype(weight.dtype)


class FusedConv2d(Module):
    """A Conv2d with the batch norm after it folded in (``norm``), then ReLU (``relu``) and 2x2 max
    pooling with stride 2 (``pool``), as one op; inference only (no gradients, no training).

    Input (N, C, H, W) of either memory layout -> (N, O, H'', W''): H'' = H' (the convolution's
    output) or H' // 2 with ``pool``. Buffers: weight (O, C/G, kH, kW) and bias (O,), folded.
    Winograd F(2x2, 3x3) layers fuse all three into their output transform (a 2x2 pooling window
    is one output tile); the other algorithms run as `conv2d_forward` does, then one pass of the
    epilogue over their output in its layout (`kernels.activation.bias_relu_max_pool`).
    """

    def __init__(self, conv, norm=None, relu=False, pool=False):
        super().__init__()
        weight, bias = conv.weight.data, None if conv.bias is None else conv.bias.data
        if norm is not None:
            weight, bias = fold_batch_norm(weight, bias, norm)
        self.register_buffer("weight", np.ascontiguousarray(weight))
        self.register_buffer("bias", np.zeros(weight.shape[0], weight.dtype) if bias is None else bias.copy())
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size
        self.stride, self.resolved_padding, self.dilation, self.groups = (conv.stride, conv.resolved_padding,
                                                                          conv.dilation, conv.groups)
        self.batch_norm, self.relu, self.pool = norm is not None, bool(relu), bool(pool)
        self.training = False

    def forward(self, x):
        refuse_gradients(self, x)
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        if data.ndim != 4 or data.shape[1] != self.in_channels:
            raise InvalidValue(f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(data.shape)}")
        if data.dtype != self.weight.dtype:
            raise InvalidType(f"expected input of dtype {self.weight.dtype} (the weights'), got {data.dtype}")
        geometry = ConvGeometry.of_conv2d(data.shape[2:], self.kernel_size, self.stride, self.resolved_padding,
                                          self.dilation, self.groups)
        out_hw = tuple(side // 2 for side in geometry.output_hw) if self.pool else geometry.output_hw
        if min(geometry.output_hw) < 1 or min(out_hw) < 1:
            raise InvalidValue(f"input {data.shape[2]}x{data.shape[3]} is too small: the output would be "
                               f"{out_hw[0]}x{out_hw[1]}")
        weight, bias, n = self.weight.data, self.bias.data, data.shape[0]
        algorithm = conv_algorithm(self.kernel_size, self.stride, self.dilation, self.groups, self.in_channels,
                                   self.out_channels, input_layout=memory_layout(data))
        if algorithm == "winograd":
            return Tensor(self._winograd(data, weight, bias, geometry, out_hw))
        out = conv2d_forward(data, weight, geometry)[0]
        if is_channels_last(out):
            fused = np.empty((n,) + out_hw + (self.out_channels,), dtype=out.dtype)
            epilogue_last(channels_last(out), bias, self.relu, self.pool, fused)
            return Tensor(nchw(fused))
        fused = np.empty((self.out_channels, n) + out_hw, dtype=out.dtype)
        epilogue(channel_major(out), bias, self.relu, self.pool, fused)
        return Tensor(fused.transpose(1, 0, 2, 3))

    def _winograd(self, data, weight, bias, geometry, out_hw):
        """F(2x2, 3x3) with the epilogue in its output transform -> (N, O, H'', W''), channel-major memory."""
        winograd = WINOGRAD["winograd"]
        last = winograd.reads_channels_last and is_channels_last(data)
        out = np.empty((self.out_channels, data.shape[0]) + out_hw, dtype=data.dtype)

        def finish(products):
            winograd_epilogue(products, bias, self.relu, self.pool, out)
            return out
        winograd.forward(channels_last(data) if last else channel_major(data), weight, geometry, last, finish=finish)
        return out.transpose(1, 0, 2, 3)

    def describe(self):
        return f"FusedConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"batch_norm={self.batch_norm}, relu={self.relu}, max_pool={self.pool}")


class FusedBasicBlock(Module):
    """A `BasicBlock` with each convolution's batch norm folded in and its first ReLU fused:
    relu(conv2'(conv1'(x)) + shortcut'(x)), the sum and the last ReLU one pass over conv2's output
    (`kernels.activation.add_relu`); inference only. Shapes as the block's."""

    def __init__(self, block):
        super().__init__()
        self.conv1 = FusedConv2d(block.conv1, block.bn1, relu=True)
        self.conv2 = FusedConv2d(block.conv2, block.bn2)
        self.downsample = None if block.downsample is None else _fused(block.downsample)
        self.training = False

    def forward(self, x):
        refuse_gradients(self, x)
        out = self.conv2(self.conv1(x)).data
        shortcut = x if self.downsample is None else self.downsample(x)
        shortcut = shortcut.data if isinstance(shortcut, Tensor) else np.asarray(shortcut)
        # Both in the memory layout of conv2's output (its producer's; free for it, and for a shortcut
        # already so), summed into that fresh array in place.
        order = (0, 2, 3, 1) if is_channels_last(out) else (1, 0, 2, 3)
        memory = np.ascontiguousarray(out.transpose(order))
        add_relu(memory.reshape(-1), np.ascontiguousarray(shortcut.transpose(order)).reshape(-1), memory.reshape(-1))
        return Tensor(memory.transpose(np.argsort(order)))


def refuse_gradients(layer, x):
    """Raise `InferenceOnly` when ``layer`` is in training mode or x would need a gradient through it."""
    if layer.training:
        raise InferenceOnly(f"{layer.describe()}: a layer of fuse_for_inference's inference-only copy cannot "
                            f"train; call .eval() on the copy, or train the original model")
    if is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad:
        raise InferenceOnly(f"{layer.describe()}: a layer of fuse_for_inference's inference-only copy has no "
                            f"gradients; run it under convnet.no_grad(), or differentiate the original model")


def fuse_for_inference(model):
    """An inference-only copy of ``model`` (a Module) with each Conv2d -> BatchNorm2d -> ReLU ->
    MaxPool2d(2) run inside a Sequential (the batch norm, the ReLU and the pooling each optional,
    at least one of them present) made one `FusedConv2d`, at the convolution's key (the others'
    keys hold `Identity`, so indices and the other keys stay), and each plain `BasicBlock` a
    `FusedBasicBlock`. The pooling fuses when it is 2x2 with stride 2 and no padding; a layer
    with a forward hook, and everything else, stays as it is.

    The original is untouched. The copy is in eval mode and its parameters need no gradients;
    its fused layers refuse training mode and inputs that need gradients (`InferenceOnly`).
    Its outputs are the model's in eval mode within float32 rounding.
    """
    if not isinstance(model, Module):
        raise InvalidType(f"fuse_for_inference: expected a convnet.nn.Module, got {type(model).__name__}")
    fused = copy.deepcopy(model).eval()
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    return _fused(fused)


def _fused(module):
    """``module`` (a copy, changed in place) or its fused replacement."""
    if type(module) is BasicBlock and _plain_block(module):
        return FusedBasicBlock(module)
    if type(module) is Sequential:
        _fuse_runs(module)
    else:
        for name, child in list(module.named_children()):
            module._modules[name] = _fused(child)  # in place, keeping the children's order
    return module


def _fuse_runs(sequential):
    """Replace each Conv2d [BatchNorm2d] [ReLU] [MaxPool2d] run of ``sequential``'s layers in place."""
    names = list(sequential._modules)
    index = 0
    while index < len(names):
        layers = [sequential._modules[name] for name in names[index:]]
        run = _conv_run(layers)
        if run is None:
            sequential._modules[names[index]] = _fused(layers[0])
            index += 1
            continue
        norm, relu, pool, length = run
        sequential._modules[names[index]] = FusedConv2d(layers[0], norm, relu, pool)
        for name in names[index + 1:index + length]:
            sequential._modules[name] = Identity()
        index += length


def _conv_run(layers):
    """(norm or None, relu, pool, how many layers) for the fusable run at the start of ``layers``,
    or None when there is none (no Conv2d first, or nothing after it to fuse)."""
    if not layers or not _plain(layers[0], Conv2d):
        return None
    conv, taken, norm = layers[0], 1, None
    if len(layers) > taken and _plain(layers[taken], BatchNorm2d) and _foldable(layers[taken], conv):
        norm, taken = layers[taken], taken + 1
    relu = len(layers) > taken and _plain(layers[taken], ReLU)
    taken += relu
    pool = len(layers) > taken and _plain(layers[taken], MaxPool2d) and _halves(layers[taken])
    taken += pool
    return (norm, relu, pool, taken) if taken > 1 else None


def _plain(layer, kind):
    """Exactly a ``kind`` (a subclass may compute something else) with no forward hook."""
    return type(layer) is kind and not layer._forward_hooks


def _foldable(norm, conv):
    return (norm.track_running_stats and norm.running_mean is not None and norm.num_features == conv.out_channels
            and norm.running_mean.dtype == conv.weight.dtype)


def _halves(pool):
    """2x2 windows, stride 2, no padding (nor dilation or ceil mode, where a pooling layer has them)."""
    return (tuple(pool.kernel_size) == (2, 2) and tuple(pool.stride) == (2, 2) and not any(pool.resolved_padding)
            and tuple(getattr(pool, "dilation", (1, 1))) == (1, 1) and not getattr(pool, "ceil_mode", False))


def _plain_block(block):
    """A BasicBlock whose layers are all plain (no hooks, batch norms with running statistics)."""
    layers = [block.conv1, block.bn1, block.conv2, block.bn2]
    downsample = [] if block.downsample is None else list(block.downsample.modules())
    return (all(not layer._forward_hooks for layer in layers + downsample + [block])
            and _foldable(block.bn1, block.conv1) and _foldable(block.bn2, block.conv2))
