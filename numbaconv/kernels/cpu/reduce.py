"""CPU kernels that reduce: batch-norm statistics and its forward / backward, softmax
cross-entropy per row, sums of squares, and the matrix product of ``Linear``.

Every reduction runs in a fixed order and accumulates in float64, so a result is the
same run after run (and the CUDA twins in ``kernels/cuda/reduce.py`` reduce in a fixed
order too).  Activations are ``(N, C, S)`` views (S = H * W).
"""

import numba
import numpy as np
from numba import njit, prange

from .._elementwise import build
from . import blas
from .shares import run_shares, share, share_of

_el = build(njit(inline="always"))
_cross_entropy_row, _batch_norm_channel = _el.cross_entropy_row, _el.batch_norm_channel
_batch_norm_element = _el.batch_norm_element
_batch_norm_grad_element = _el.batch_norm_grad_element


@share()
def _channel_moments(t, threads, args):
    # mean[c], biased var[c] over (n, s) of x (N, C, S); two passes, float64 accumulators
    x, mean, var = args
    batch, ch, size = x.shape
    count = batch * size
    lo, hi = share_of(t, threads, ch)
    for c in range(lo, hi):
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


def channel_moments(x, mean, var):
    run_shares(_channel_moments, numba.get_num_threads(), (x, mean, var))


@share()
def _channel_dot_sums(t, threads, args):
    # sum_a[c] = sum over (n, s) of a; sum_ab[c] = the same of a * b
    a, b, sum_a, sum_ab = args
    batch, ch, size = a.shape
    lo, hi = share_of(t, threads, ch)
    for c in range(lo, hi):
        ta = 0.0
        tab = 0.0
        for n in range(batch):
            for s in range(size):
                ta += a[n, c, s]
                tab += a[n, c, s] * b[n, c, s]
        sum_a[c] = ta
        sum_ab[c] = tab


def channel_dot_sums(a, b, sum_a, sum_ab):
    run_shares(_channel_dot_sums, numba.get_num_threads(), (a, b, sum_a, sum_ab))


@njit(cache=True, nogil=True)
def batch_norm_finish(mean, var, eps, momentum, unbiased, update, running_mean, running_var,
                      inv_std):
    # inv_std = 1 / sqrt(var + eps); with ``update`` also the running statistics
    for c in range(mean.size):
        _batch_norm_channel(c, mean, var, eps, momentum, unbiased, update, running_mean,
                            running_var, inv_std)


@share()
def _batch_norm_forward(t, threads, args):
    # xhat = (x - mean) * inv_std; y = xhat * weight + bias   (per channel)
    x, mean, inv_std, weight, bias, xhat, y = args
    batch, ch, size = x.shape
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        for s in range(size):
            _batch_norm_element(x, mean, inv_std, weight, bias, xhat, y, job // ch,
                                job % ch, s)


def batch_norm_forward(x, mean, inv_std, weight, bias, xhat, y):
    run_shares(_batch_norm_forward, numba.get_num_threads(),
               (x, mean, inv_std, weight, bias, xhat, y))


@share()
def _batch_norm_backward(t, threads, args):
    # gx = (g - mean_g - xhat * mean_gx) * weight * inv_std  (mean_* zero in eval mode)
    g, xhat, weight, inv_std, mean_g, mean_gx, gx = args
    batch, ch, size = g.shape
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        for s in range(size):
            _batch_norm_grad_element(g, xhat, weight, inv_std, mean_g, mean_gx, gx,
                                     job // ch, job % ch, s)


def batch_norm_backward(g, xhat, weight, inv_std, mean_g, mean_gx, gx):
    run_shares(_batch_norm_backward, numba.get_num_threads(),
               (g, xhat, weight, inv_std, mean_g, mean_gx, gx))


@njit(cache=True, nogil=True)
def cross_entropy_rows(logits, target, scale, grad, stats):
    # per row: loss and hit in stats, gradient in grad (kernels/_elementwise.py).  On the
    # calling thread: the logits are tiny next to the network that made them, and a
    # serial kernel compiles faster (docs/benchmarks/cpu.md, "Compile time")
    for i in range(logits.shape[0]):
        _cross_entropy_row(logits, target, scale, grad, stats, i)


@njit(parallel=True, cache=True, nogil=True)
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
        out += blas.matmul(left, right, np.empty_like(out))
    else:
        blas.matmul(left, right, out)
