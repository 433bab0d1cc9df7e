"""Floating-point operations of the bench's cases, counted from the layers themselves: the
multiply-adds (x2) of every convolution and linear layer, the work BLAS-shaped kernels do. Batch
norm, ReLU, pooling, the loss and the optimizer's update are element-wise passes, not counted
(a few percent of a step), so GFLOP/s set against the matrix-multiply peak is an honest bound."""

import numpy as np

from ..tensor import Tensor, no_grad


def conv_flops(batch, channels, height, width, out_channels, kernel, stride=1, padding=0, groups=1):
    """FLOPs of one convolution's forward: 2 x N x O x H' x W' x (C / groups) x kH x kW, with
    H' = (H + 2 padding - k) // stride + 1 (square kernel, same padding on every side)."""
    out_height = (height + 2 * padding - kernel) // stride + 1
    out_width = (width + 2 * padding - kernel) // stride + 1
    return 2 * batch * out_channels * out_height * out_width * (channels // groups) * kernel * kernel


def op_flops(forward, backward, input_grad):
    """FLOPs of an op case: its forward alone, or forward + weight gradient (+ input gradient, a
    product the same size as the forward's, when the input needs one)."""
    return forward * ((2 + input_grad) if backward else 1)


def layer_flops(module, output_shape):
    """FLOPs of one forward of a Conv2d or Linear ``module`` (convnet's or torch.nn's) that gave an
    output of ``output_shape``: 2 x weight.size per output position ((N, O, H', W') for a
    convolution: N x H' x W' positions; (..., O) for a linear layer); 0 for any other layer."""
    kind = type(module).__name__
    if kind not in ("Conv2d", "Linear"):
        return 0
    positions = int(np.prod(output_shape)) // output_shape[1 if kind == "Conv2d" else -1]
    return 2 * positions * int(np.prod(module.weight.shape))


def weighted_layer_flops(model, input_shape):
    """Forward FLOPs of each Conv2d and Linear of convnet's ``model``, in the order they run, for a
    batch of ``input_shape`` (N, C, H, W). The model runs once on one zero image, in eval mode
    (batch norm uses its running statistics, so a batch of one is fine), and is left in the mode it
    was in; the counts are that image's times N (every layer's work grows with the batch)."""
    counts, handles = [], []
    for module in model.modules():
        if type(module).__name__ in ("Conv2d", "Linear"):
            handles.append(module.register_forward_hook(
                lambda layer, inputs, output: counts.append(layer_flops(layer, output.shape))))
    training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros((1, *input_shape[1:]), dtype=np.float32)))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return [count * input_shape[0] for count in counts]


def training_step_flops(layer_flops_in_order):
    """FLOPs of one training step from its weighted layers' forward FLOPs (`weighted_layer_flops`):
    every layer's forward, its weight gradient (the same products over the same positions) and its
    input gradient (again the same), except the first layer's input gradient: its input is the
    images, which need none."""
    counts = list(layer_flops_in_order)
    return 3 * sum(counts) - (counts[0] if counts else 0)
