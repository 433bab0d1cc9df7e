"""Batch normalisation over (M, C) rows, M = N*H*W, the channels contiguous: channels-last
activations ((N, H, W, C) memory) and (N, C) batches without a copy.

The twins of kernels/normalization.py's channel-row (C, M) kernels, with the same arguments but
rows transposed (C-contiguous). The innermost loops run along contiguous memory, a chunk of k
whole rows at a time (k*C about SUM_TILE or MAP_TILE values, so that 3 channels vectorise as
well as 64), against per-channel values tiled k times; no sum is reordered inside a vector
(each channel copy keeps its own accumulator), so no fastmath is needed.

Work is split into blocks of BLOCK_ROWS rows, run in parallel; each block's float64 sums go to
its own row of a partial-sum array, and these are added in block order. The blocks depend on M
alone, never on the number of threads, so every result is the same bit for bit at any thread
count. The statistics are those of the channel-row kernels: float64 sums of x - shift and
(x - shift)^2, the shift being each channel's first value (row 0), so a large mean does not
cancel. Outputs are computed in the rows' dtype with the same per-element formulas.

Each kernel's NumPy reference follows it: the channel-row kernel's reference on the transposed
views, which NumPy runs alike in either memory order.
"""

import numpy as np
from numba import njit, prange

from . import normalization as channel_rows

# Rows per block: enough that the float64 partial sums (16 bytes per channel copy per block)
# stay small next to the input, few enough that a 7x7 batch of 128 (6272 rows) makes 25 blocks.
BLOCK_ROWS = 256
# Values per chunk in the sums (each a float64 accumulator pair in the block's partial row;
# 128 and 256 measured slower than 64) and in the elementwise passes (256 measured 10-25% faster
# than 64).
SUM_TILE, MAP_TILE = 64, 256


@njit(cache=True, nogil=True)
def _tiled(values, channels, tile):
    """values: (C,) -> (k*C,) = values repeated k = max(1, tile // C) times (a loop: slice assignment
    tripled the kernels' compile time)."""
    copies = max(1, tile // channels)
    tiled = np.empty(copies * channels, values.dtype)
    for j in range(copies * channels):
        tiled[j] = values[j % channels]
    return tiled


@njit(cache=True, nogil=True)
def _block(b, count, channels):
    """The flat range [start, stop) of block b's values in (count, channels) rows."""
    return b * BLOCK_ROWS * channels, min(count, (b + 1) * BLOCK_ROWS) * channels


@njit(cache=True, nogil=True)
def _fold(partials, channels, totals):
    """partials: (B, k*C) -> totals: (C,): each block's k channel copies in turn, blocks in order."""
    totals[:] = 0.0
    for b in range(partials.shape[0]):
        block = partials[b]
        for j in range(block.shape[0]):
            totals[j % channels] += block[j]


@njit(cache=True, nogil=True)
def _add_sums_about(flat, start, stop, shift, sums, squares):
    """flat[start:stop], whole rows; shift: (L,) float64 tiled -> sums, squares: (L,) float64 += the sums
    of x - shift and (x - shift)^2, chunk of L values by chunk."""
    width = shift.shape[0]
    for p in range(start, stop, width):
        x = flat[p:min(stop, p + width)]
        for j in range(x.shape[0]):
            d = x[j] - shift[j]
            sums[j] += d
            squares[j] += d * d


@njit(cache=True, nogil=True)
def _add_grad_sums(flat_grad, flat, start, stop, mean, sums, projections):
    """flat_grad, flat: [start:stop], whole rows; mean: (L,) float64 tiled -> sums, projections: (L,)
    float64 += the sums of grad and grad * (x - mean), chunk of L values by chunk."""
    width = mean.shape[0]
    for p in range(start, stop, width):
        g, x = flat_grad[p:min(stop, p + width)], flat[p:min(stop, p + width)]
        for j in range(x.shape[0]):
            a = np.float64(g[j])
            sums[j] += a
            projections[j] += a * (x[j] - mean[j])


# error_model="numpy" here and in the backward: 1 / sqrt(0) is inf, as in the NumPy reference
# (a constant channel with eps=0), not Python's ZeroDivisionError.
@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def batch_norm_train_forward(rows, weight, bias, eps, out, mean, var):
    """rows: (M, C) C-contiguous, M >= 2; weight, bias: (C,) in rows' dtype -> out: (M, C) C-contiguous,
    mean, var: (C,) float64.

    mean and the biased var are the batch's, per channel (column); out = (rows - mean) /
    sqrt(var + eps) * weight + bias, computed in rows' dtype like the reference.
    """
    count, channels = rows.shape
    blocks = (count + BLOCK_ROWS - 1) // BLOCK_ROWS
    shift = rows[0].astype(np.float64)
    tiled_shift = _tiled(shift, channels, SUM_TILE)
    sums, squares = np.zeros((blocks, tiled_shift.shape[0])), np.zeros((blocks, tiled_shift.shape[0]))
    flat = rows.reshape(-1)
    for b in prange(blocks):
        start, stop = _block(b, count, channels)
        _add_sums_about(flat, start, stop, tiled_shift, sums[b], squares[b])
    total, total_squares = np.empty(channels), np.empty(channels)
    _fold(sums, channels, total)
    _fold(squares, channels, total_squares)
    mu, scale = np.empty_like(weight), np.empty_like(weight)
    for c in range(channels):
        offset = total[c] / count
        mean[c] = shift[c] + offset
        var[c] = max(total_squares[c] / count - offset * offset, 0.0)
        mu[c] = mean[c]
        scale[c] = 1.0 / np.sqrt(var[c] + eps) * weight[c]
    batch_norm_eval_forward(rows, mu, scale, bias, out)


def batch_norm_train_forward_reference(rows, weight, bias, eps, out, mean, var):
    """`batch_norm_train_forward` in NumPy."""
    channel_rows.batch_norm_train_forward_reference(rows.T, weight, bias, eps, out.T, mean, var)


@njit(cache=True, nogil=True, parallel=True)
def batch_norm_eval_forward(rows, mean, scale, bias, out):
    """rows: (M, C) C-contiguous; mean, scale, bias: (C,) in rows' dtype -> out: (M, C) C-contiguous =
    (rows - mean) * scale + bias.

    With the running statistics, scale = weight / sqrt(running_var + eps).
    """
    count, channels = rows.shape
    mu, s, b = _tiled(mean, channels, MAP_TILE), _tiled(scale, channels, MAP_TILE), _tiled(bias, channels, MAP_TILE)
    width, flat, flat_out = mu.shape[0], rows.reshape(-1), out.reshape(-1)
    for block in prange((count + BLOCK_ROWS - 1) // BLOCK_ROWS):
        start, stop = _block(block, count, channels)
        for p in range(start, stop, width):
            x, y = flat[p:min(stop, p + width)], flat_out[p:min(stop, p + width)]
            for j in range(x.shape[0]):
                y[j] = (x[j] - mu[j]) * s[j] + b[j]


def batch_norm_eval_forward_reference(rows, mean, scale, bias, out):
    """`batch_norm_eval_forward` in NumPy."""
    channel_rows.batch_norm_eval_forward_reference(rows.T, mean, scale, bias, out.T)


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def batch_norm_backward(grad_rows, rows, mean, inv_std, weight, training, grad_input, grad_sum, projection):
    """grad_rows, rows: (M, C) C-contiguous; mean, inv_std: (C,) float64; weight: (C,) in rows' dtype ->
    grad_input: (M, C) C-contiguous, grad_sum, projection: (C,) float64.

    grad_sum = sum of grad (the bias's gradient) and projection = sum of grad * (x - mean) (times
    inv_std, the weight's gradient), per channel. grad_input = grad * scale, scale = inv_std *
    weight; when ``training`` the batch statistics depend on x too, so the gradient's mean and
    its projection on x_hat = (x - mean) * inv_std are removed first.
    """
    count, channels = rows.shape
    blocks = (count + BLOCK_ROWS - 1) // BLOCK_ROWS
    tiled_mean = _tiled(mean, channels, SUM_TILE)
    sums, projections = np.zeros((blocks, tiled_mean.shape[0])), np.zeros((blocks, tiled_mean.shape[0]))
    flat_grad, flat, flat_out = grad_rows.reshape(-1), rows.reshape(-1), grad_input.reshape(-1)
    for b in prange(blocks):
        start, stop = _block(b, count, channels)
        _add_grad_sums(flat_grad, flat, start, stop, tiled_mean, sums[b], projections[b])
    _fold(sums, channels, grad_sum)
    _fold(projections, channels, projection)
    scale, shift, slope, mu = np.empty_like(weight), np.zeros_like(weight), np.zeros_like(weight), np.empty_like(weight)
    for c in range(channels):
        scale[c] = inv_std[c] * weight[c]
        mu[c] = mean[c]
        if training:
            shift[c] = -(inv_std[c] * weight[c]) * grad_sum[c] / count
            slope[c] = inv_std[c] * weight[c] * projection[c] * inv_std[c] * inv_std[c] / count
    s, sh, sl, m = (_tiled(scale, channels, MAP_TILE), _tiled(shift, channels, MAP_TILE),
                    _tiled(slope, channels, MAP_TILE), _tiled(mu, channels, MAP_TILE))
    width = s.shape[0]
    for b in prange(blocks):
        start, stop = _block(b, count, channels)
        for p in range(start, stop, width):
            g, x, y = flat_grad[p:min(stop, p + width)], flat[p:min(stop, p + width)], flat_out[p:min(stop, p + width)]
            if training:
                for j in range(x.shape[0]):
                    y[j] = g[j] * s[j] + sh[j] - (x[j] - m[j]) * sl[j]
            else:
                for j in range(x.shape[0]):
                    y[j] = g[j] * s[j]


def batch_norm_backward_reference(grad_rows, rows, mean, inv_std, weight, training, grad_input, grad_sum, projection):
    """`batch_norm_backward` in NumPy."""
    channel_rows.batch_norm_backward_reference(grad_rows.T, rows.T, mean, inv_std, weight, training, grad_input.T,
                                               grad_sum, projection)
