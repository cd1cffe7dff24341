"""CUDA reductions: twins of ``kernels/cpu/reduce.py``.

A per-channel (or per-chunk) sum runs in one block: each thread adds a strided share in
a fixed order, then a tree in shared memory folds the block's partials.  The order
depends only on the block size, so results are bit-identical run after run: no float
atomics anywhere.  Block size: ``config.CUDA_REDUCE_THREADS`` rounded down to a power of
two, read at call time.  Accumulators have the arrays' dtype (one kernel built per
dtype): float32 kernels do float32 arithmetic only, and the fixed tree keeps the
rounding error of a block's sum to O(log n) additions.
"""

import numpy as np
from numba import cuda, types

from ... import config
from .._elementwise import build
from ._launch import MAX_BLOCKS, kernel_factory, launch, launch_1d

_el = build(cuda.jit(device=True))
_cross_entropy_row, _batch_norm_channel = _el.cross_entropy_row, _el.batch_norm_channel
_batch_norm_element = _el.batch_norm_element
_batch_norm_grad_element = _el.batch_norm_grad_element

_SHARED = config.REDUCE_MAX_THREADS


def _reduce_threads():
    threads = max(1, min(config.CUDA_REDUCE_THREADS, config.REDUCE_MAX_THREADS))
    return 1 << (threads.bit_length() - 1)


def _launch_blocks(kernel, blocks, *args):
    launch(kernel, max(1, min(MAX_BLOCKS, blocks)), _reduce_threads(), *args)


@cuda.jit(device=True)
def _block_sum(buf, value):
    """The sum of ``value`` over the block's threads, returned to every thread."""
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()  # every thread's partial is in buf before the tree reads it
    step = cuda.blockDim.x // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
        cuda.syncthreads()  # this level's sums are written before the next level reads
        step //= 2
    total = buf[0]
    cuda.syncthreads()  # every thread has read buf[0] before buf is written again
    return total


def _t(dtype):
    return types.float32 if np.dtype(dtype) == np.float32 else types.float64


@kernel_factory
def _channel_moments(dtype):
    T = _t(dtype)

    @cuda.jit
    def kernel(x, mean, var):
        buf = cuda.shared.array(_SHARED, T)
        batch, ch, size = x.shape
        count = batch * size
        t, step = cuda.threadIdx.x, cuda.blockDim.x
        for c in range(cuda.blockIdx.x, ch, cuda.gridDim.x):
            part = T(0)
            for j in range(t, count, step):
                part += x[j // size, c, j % size]
            mu = _block_sum(buf, part) / T(count)
            part = T(0)
            for j in range(t, count, step):
                d = x[j // size, c, j % size] - mu
                part += d * d
            sq = _block_sum(buf, part)
            if t == 0:
                mean[c] = mu
                var[c] = sq / T(count)

    return kernel


@kernel_factory
def _channel_dot_sums(dtype):
    T = _t(dtype)

    @cuda.jit
    def kernel(a, b, sum_a, sum_ab):
        buf = cuda.shared.array(_SHARED, T)
        batch, ch, size = a.shape
        count = batch * size
        t, step = cuda.threadIdx.x, cuda.blockDim.x
        for c in range(cuda.blockIdx.x, ch, cuda.gridDim.x):
            pa = T(0)
            pab = T(0)
            for j in range(t, count, step):
                v = a[j // size, c, j % size]
                pa += v
                pab += v * b[j // size, c, j % size]
            ta = _block_sum(buf, pa)
            tab = _block_sum(buf, pab)
            if t == 0:
                sum_a[c] = ta
                sum_ab[c] = tab

    return kernel


@kernel_factory
def _sum_squares(dtype):
    T = _t(dtype)

    @cuda.jit
    def kernel(x, partials):
        buf = cuda.shared.array(_SHARED, T)
        parts = partials.size
        chunk = (x.size + parts - 1) // parts
        t, step = cuda.threadIdx.x, cuda.blockDim.x
        for k in range(cuda.blockIdx.x, parts, cuda.gridDim.x):
            part = T(0)
            for i in range(k * chunk + t, min(x.size, (k + 1) * chunk), step):
                part += x[i] * x[i]
            total = _block_sum(buf, part)
            if t == 0:
                partials[k] = total

    return kernel


@cuda.jit
def _batch_norm_finish(total, mean, var, eps, momentum, unbiased, update, running_mean,
                       running_var, inv_std):
    for c in range(cuda.grid(1), total, cuda.gridsize(1)):
        _batch_norm_channel(c, mean, var, eps, momentum, unbiased, update, running_mean,
                            running_var, inv_std)


@cuda.jit
def _batch_norm_forward(total, x, mean, inv_std, weight, bias, xhat, y):
    ch, size = x.shape[1], x.shape[2]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        _batch_norm_element(x, mean, inv_std, weight, bias, xhat, y, i // (size * ch),
                            (i // size) % ch, i % size)


@cuda.jit
def _batch_norm_backward(total, g, xhat, weight, inv_std, mean_g, mean_gx, gx):
    ch, size = g.shape[1], g.shape[2]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        _batch_norm_grad_element(g, xhat, weight, inv_std, mean_g, mean_gx, gx,
                                 i // (size * ch), (i // size) % ch, i % size)


@cuda.jit
def _cross_entropy_rows(total, logits, target, scale, grad, stats):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        _cross_entropy_row(logits, target, scale, grad, stats, i)


def channel_moments(x, mean, var):
    _launch_blocks(_channel_moments(np.dtype(x.dtype).name), x.shape[1], x, mean, var)


def channel_dot_sums(a, b, sum_a, sum_ab):
    _launch_blocks(_channel_dot_sums(np.dtype(a.dtype).name), a.shape[1], a, b, sum_a, sum_ab)


def sum_squares(x, partials):
    _launch_blocks(_sum_squares(np.dtype(x.dtype).name), partials.size, x, partials)


def batch_norm_finish(mean, var, eps, momentum, unbiased, update, running_mean, running_var,
                      inv_std):
    launch_1d(_batch_norm_finish, mean.size, mean, var, eps, momentum, unbiased, update,
              running_mean, running_var, inv_std)


def batch_norm_forward(x, mean, inv_std, weight, bias, xhat, y):
    launch_1d(_batch_norm_forward, x.size, x, mean, inv_std, weight, bias, xhat, y)


def batch_norm_backward(g, xhat, weight, inv_std, mean_g, mean_gx, gx):
    launch_1d(_batch_norm_backward, g.size, g, xhat, weight, inv_std, mean_g, mean_gx, gx)


def cross_entropy_rows(logits, target, scale, grad, stats):
    launch_1d(_cross_entropy_rows, logits.shape[0], logits, target, scale, grad, stats)


# --------------------------------------------------------------------------- matmul


@kernel_factory
def _matmul_kernel(tile, dtype):
    """The tiled product kernel for ``tile`` (shared arrays need a compile-time size)."""
    T = _t(dtype)

    @cuda.jit
    def kernel(a, b, out, trans_a, trans_b, accumulate):
        # out[i, j] (+)= sum_k A[i, k] B[k, j], A = a or a.T, B = b or b.T; one thread per
        # output, the K axis walked in tile-wide strips staged in shared memory
        sa = cuda.shared.array((tile, tile), T)
        sb = cuda.shared.array((tile, tile), T)
        rows, cols = out.shape
        inner = a.shape[0] if trans_a else a.shape[1]
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        for rb in range(cuda.blockIdx.y, (rows + tile - 1) // tile, cuda.gridDim.y):
            for cb in range(cuda.blockIdx.x, (cols + tile - 1) // tile, cuda.gridDim.x):
                i = rb * tile + ty
                j = cb * tile + tx
                acc = T(0)
                for k0 in range(0, inner, tile):
                    ka = k0 + tx  # A[i, ka] into sa[ty, tx]
                    kb = k0 + ty  # B[kb, j] into sb[ty, tx]
                    va = T(0)
                    if i < rows and ka < inner:
                        va = a[ka, i] if trans_a else a[i, ka]
                    vb = T(0)
                    if kb < inner and j < cols:
                        vb = b[j, kb] if trans_b else b[kb, j]
                    sa[ty, tx] = va
                    sb[ty, tx] = vb
                    cuda.syncthreads()  # both strips are staged before any thread reads them
                    for k in range(tile):
                        acc += sa[ty, k] * sb[k, tx]
                    cuda.syncthreads()  # all reads are done before the next strip overwrites
                if i < rows and j < cols:
                    out[i, j] = out[i, j] + acc if accumulate else acc

    return kernel


def matmul(a, b, out, trans_a, trans_b, accumulate):
    """``out (+)= op(a) @ op(b)``; tile edge ``config.CUDA_MATMUL_TILE``."""
    tile = config.CUDA_MATMUL_TILE
    rows, cols = out.shape
    grid = (max(1, min(MAX_BLOCKS, -(-cols // tile))), max(1, min(MAX_BLOCKS, -(-rows // tile))))
    launch(_matmul_kernel(tile, np.dtype(out.dtype).name), grid, (tile, tile),
           a, b, out, bool(trans_a), bool(trans_b), bool(accumulate))

