"""Weight initialisation in place, with PyTorch's formulas (``torch.nn.init``).

Each function draws from ``generator`` or, without one, the default generator that
``convnet.manual_seed`` resets.
"""

import math

import numpy as np

from .. import random as _random
from ..errors import InvalidType, InvalidValue


def fan_in_and_fan_out(tensor):
    """For weights (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out * prod(kernel)."""
    if tensor.ndim < 2:
        raise InvalidValue(f"fan_in_and_fan_out: expected a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive_field = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise InvalidValue(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    tensor.data[...] = _random.resolve(generator).uniform(a, b, tensor.shape)
    return tensor


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    tensor.data[...] = _random.resolve(generator).normal(mean, std, tensor.shape)
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise InvalidValue(f"init: expected mode 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan). PyTorch's layers use a=sqrt(5)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)), generator)


def default_init_(weight, bias):
    """PyTorch's default for Conv2d, ConvTranspose2d and Linear: kaiming_uniform_(a=sqrt(5)) for the
    weight, which is U(+-1/sqrt(fan_in)), and U(+-1/sqrt(fan_in)) for the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(fan_in_and_fan_out(weight)[0])
        uniform_(bias, -bound, bound)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def dirac_(tensor, groups=1):
    """Dirac (identity) kernels, like ``torch.nn.init.dirac_``: a convolution with them passes its
    input through unchanged (for 'same' padding).

    tensor: (out, in, *kernel) with 1 to 3 kernel dimensions. All values are zeroed; then in each of
    the ``groups`` blocks of out/groups filters, filter d of the block gets a single 1 at input
    channel d and the kernel's centre (index size // 2 along each kernel axis), for
    d < min(out/groups, in). Filters beyond ``in`` in a block stay zero.
    """
    if tensor.ndim not in (3, 4, 5):
        raise InvalidValue(f"dirac_: expected a tensor with 3, 4 or 5 dimensions (out, in, *kernel), got shape {tensor.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InvalidValue(f"dirac_: expected groups to be a positive int, got {groups!r}")
    if tensor.shape[0] % groups != 0:
        raise InvalidValue(f"dirac_: expected out channels (dim 0, {tensor.shape[0]}) divisible by groups={groups}")
    _dirac_array(tensor.data, groups)
    return tensor


def _dirac_array(weights, groups):
    """Writes dirac_'s kernels into the array ``weights`` (out, in, *kernel) in place."""
    weights[...] = 0
    filters_per_group = weights.shape[0] // groups
    centre = tuple(size // 2 for size in weights.shape[2:])
    for group in range(groups):
        for channel in range(min(filters_per_group, weights.shape[1])):
            weights[(group * filters_per_group + channel, channel) + centre] = 1


def partial_dirac_(tensor):
    """airbench's identity initialisation: the first ``in`` filters become dirac_'s identity kernels
    and the remaining out - in filters keep the values they had (their random initialisation), so
    a convolution with in <= out starts as an implicit residual plus random features.

    tensor: (out, in, *kernel) with 1 to 3 kernel dimensions. Where out < in this is dirac_ itself
    (every filter is overwritten), as airbench's slice ``w[:in]`` is then the whole weight.
    airbench also zeros such a convolution's bias; that is left to the caller (``zeros_(bias)``).

    Source: KellerJordan/cifar10-airbench, airbench94.py, class ``Conv``, ``reset_parameters``:
    ``torch.nn.init.dirac_(w[:w.size(1)])``.
    """
    if tensor.ndim not in (3, 4, 5):
        raise InvalidValue(f"partial_dirac_: expected a tensor with 3, 4 or 5 dimensions (out, in, *kernel), "
                           f"got shape {tensor.shape}")
    _dirac_array(tensor.data[:tensor.shape[1]], 1)
    return tensor


def patch_whitening_(conv, images, eps=5e-4):
    """Sets a convolution's filters to whiten the images' kH x kW patches (airbench, hlb-CIFAR10).

    conv: a layer with weight (2 * C * kH * kW, C, kH, kW), groups=1 and dilation 1 (airbench:
        kernel 2, so 24 filters for C=3).
    images: NumPy array (N, C, H, W), H >= kH, W >= kW: a sample of the (normalised) training
        images; airbench uses the first 5000.
    eps: added to each eigenvalue before the square root (airbench's 5e-4; a large eps, so the
        directions of least variance are damped rather than blown up).

    Every kH x kW patch at stride 1 is flattened in (c, i, j) order to p (length D = C*kH*kW);
    S = mean(p p^T) is their second moment (not centred: airbench's "covariance"), with
    eigenvalues l_1 >= ... >= l_D and unit eigenvectors v_k. Filter k (k < D) is
    v_k / sqrt(l_k + eps) and filter D + k is its negative, so the first D outputs have second
    moment diag(l / (l + eps)), close to the identity. The bias is left alone (airbench zeros it
    and trains it for a few epochs; freezing the weight is the caller's job). Accumulated in
    float64 (airbench: float32), stored as float32.

    Source: KellerJordan/cifar10-airbench, airbench94.py, ``get_patches``,
    ``get_whitening_parameters`` and ``init_whitening_conv`` (airbench94_muon.py's ``init_whiten``
    is the same up to the filters' order, ascending there).
    """
    weight = getattr(conv, "weight", None)
    if weight is None or weight.ndim != 4:
        raise InvalidType(f"patch_whitening_: expected a 2-D convolution layer with weight (out, C, kH, kW), "
                          f"got {type(conv).__name__}")
    if getattr(conv, "groups", 1) != 1 or tuple(getattr(conv, "dilation", (1, 1))) != (1, 1):
        raise InvalidValue(f"patch_whitening_: expected a convolution with groups=1 and dilation 1, "
                           f"got groups={conv.groups}, dilation={conv.dilation}")
    _, channels, kernel_h, kernel_w = weight.shape
    patch_size = channels * kernel_h * kernel_w
    if weight.shape[0] != 2 * patch_size:
        raise InvalidValue(f"patch_whitening_: expected out_channels = 2 * {channels} * {kernel_h} * {kernel_w} "
                           f"= {2 * patch_size}, got {weight.shape[0]}")
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1] != channels:
        shape = images.shape if isinstance(images, np.ndarray) else type(images).__name__
        raise InvalidValue(f"patch_whitening_: expected images as a NumPy array (N, {channels}, H, W), got {shape}")
    if not np.issubdtype(images.dtype, np.number):
        raise InvalidValue(f"patch_whitening_: expected numeric images, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise InvalidValue(f"patch_whitening_: expected finite images, got {np.size(images) - np.isfinite(images).sum()} "
                           f"NaN or infinite values")
    if images.shape[0] < 1 or images.shape[2] < kernel_h or images.shape[3] < kernel_w:
        raise InvalidValue(f"patch_whitening_: expected at least one image of at least {kernel_h}x{kernel_w}, "
                           f"got shape {images.shape}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not 0 <= eps < math.inf:
        raise InvalidValue(f"patch_whitening_: expected eps to be a finite number >= 0, got {eps!r}")
    eigenvalues, eigenvectors = patch_eigendecomposition(images, (kernel_h, kernel_w))
    if eigenvalues[-1] + eps <= 0:
        raise InvalidValue(f"patch_whitening_: the patches' second moment is singular (smallest eigenvalue "
                           f"{eigenvalues[-1]:.3g}); expected eps > 0")
    filters = (eigenvectors / np.sqrt(eigenvalues + eps)[:, None]).reshape(patch_size, channels, kernel_h, kernel_w)
    weight.data[...] = np.concatenate([filters, -filters]).astype(np.float32)
    return conv


def patch_eigendecomposition(images, kernel_size, chunk=256):
    """Eigenvalues (D,), descending, and unit eigenvectors (D, D), one per row, of the second
    moment of all kH x kW patches (stride 1) of images (N, C, H, W), D = C * kH * kW, each patch
    flattened in (c, i, j) order. Accumulated in float64, ``chunk`` images at a time to bound memory."""
    kernel_h, kernel_w = kernel_size
    windows = np.lib.stride_tricks.sliding_window_view(images, (kernel_h, kernel_w), axis=(2, 3))
    patch_size = images.shape[1] * kernel_h * kernel_w
    second_moment = np.zeros((patch_size, patch_size))
    count = 0
    for start in range(0, images.shape[0], chunk):
        # (n, C, H', W', kH, kW) -> (n, H', W', C, kH, kW): one row per patch, in (c, i, j) order
        patches = windows[start:start + chunk].transpose(0, 2, 3, 1, 4, 5).reshape(-1, patch_size)
        patches = patches.astype(np.float64)
        second_moment += patches.T @ patches
        count += patches.shape[0]
    # airbench's eigh(..., UPLO='U'), ascending, then flipped to put the largest variance first
    eigenvalues, eigenvectors = np.linalg.eigh(second_moment / count, UPLO="U")
    return eigenvalues[::-1].copy(), eigenvectors.T[::-1].copy()
