"""CPU kernels that reduce: batch-norm statistics and its forward / backward, softmax
cross-entropy per row, sums of squares, and the matrix product of ``Linear``.

Every reduction runs in a fixed order and accumulates in float64, so a result is the
same run after run (and the CUDA twins in ``kernels/cuda/reduce.py`` reduce in a fixed
order too).  Activations are ``(N, C, S)`` views (S = H * W).
"""

import math

import numpy as np
from numba import njit, prange

from .._elementwise import build

_cross_entropy_row = build(njit(inline="always")).cross_entropy_row


@njit(parallel=True, cache=True)
def channel_moments(x, mean, var):
    # mean[c], biased var[c] over (n, s) of x (N, C, S); two passes, float64 accumulators
    batch, ch, size = x.shape
    count = batch * size
    for c in prange(ch):
        total = 0.0
        for n in range(batch):
            for s in range(size):
                total += x[n, c, s]
        mu = total / count
        sq = 0.0
        for n in range(batch):
            for s in range(size):
                d = x[n, c, s] - mu
                sq += d * d
        mean[c] = mu
        var[c] = sq / count


@njit(parallel=True, cache=True)
def channel_dot_sums(a, b, sum_a, sum_ab):
    # sum_a[c] = sum over (n, s) of a; sum_ab[c] = the same of a * b
    batch, ch, size = a.shape
    for c in prange(ch):
        ta = 0.0
        tab = 0.0
        for n in range(batch):
            for s in range(size):
                ta += a[n, c, s]
                tab += a[n, c, s] * b[n, c, s]
        sum_a[c] = ta
        sum_ab[c] = tab


@njit(cache=True)
def batch_norm_finish(mean, var, eps, momentum, unbiased, update, running_mean, running_var,
                      inv_std):
    # inv_std = 1 / sqrt(var + eps); with ``update`` also the running statistics
    for c in range(mean.size):
        if update:
            running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (1 - momentum) * running_var[c] + momentum * var[c] * unbiased
        inv_std[c] = 1.0 / math.sqrt(var[c] + eps)


@njit(parallel=True, cache=True)
def batch_norm_forward(x, mean, inv_std, weight, bias, xhat, y):
    # xhat = (x - mean) * inv_std; y = xhat * weight + bias   (per channel)
    batch, ch, size = x.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        for s in range(size):
            v = (x[n, c, s] - mean[c]) * inv_std[c]
            xhat[n, c, s] = v
            y[n, c, s] = v * weight[c] + bias[c]


@njit(parallel=True, cache=True)
def batch_norm_backward(g, xhat, weight, inv_std, mean_g, mean_gx, gx):
    # gx = (g - mean_g - xhat * mean_gx) * weight * inv_std  (mean_* zero in eval mode)
    batch, ch, size = g.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        scale = weight[c] * inv_std[c]
        for s in range(size):
            gx[n, c, s] = (g[n, c, s] - mean_g[c] - xhat[n, c, s] * mean_gx[c]) * scale


@njit(parallel=True, cache=True)
def cross_entropy_rows(logits, target, scale, grad, stats):
    # per row: loss and hit in stats, gradient in grad (kernels/_elementwise.py)
    for i in prange(logits.shape[0]):
        _cross_entropy_row(logits, target, scale, grad, stats, i)


@njit(parallel=True, cache=True)
def sum_squares(x, partials):
    # partials[k] = sum of x[i]^2 over the k-th of len(partials) contiguous chunks
    parts = partials.size
    chunk = (x.size + parts - 1) // parts
    for k in prange(parts):
        total = 0.0
        for i in range(k * chunk, min(x.size, (k + 1) * chunk)):
            total += x[i] * x[i]
        partials[k] = total


def matmul(a, b, out, trans_a, trans_b, accumulate):
    """``out (+)= op(a) @ op(b)`` with ``op`` an optional transpose: BLAS, called from
    Python (never inside a parallel region)."""
    left = a.T if trans_a else a
    right = b.T if trans_b else b
    if accumulate:
        out += left @ right
    else:
        np.matmul(left, right, out=out)
