"""Matrix products through NumPy's BLAS, without BLAS's own thread pool.

Every BLAS product of the CPU kernels (the GEMM-path conv, ``nn.Linear``)
goes through :func:`matmul`.  It runs BLAS at one thread (``_threads.blas_on_caller``):
OpenBLAS's pool busy-waits after each product, on the cores numba's next parallel region
needs, and in a process that imported NumPy before numbaconv, or ran its own products,
it waits long (``docs/benchmarks/cpu.md``, "Thread pools").  Small products
(``config.BLAS_ONE_THREAD_MNK``), which pthreads OpenBLAS (NumPy's wheels) never hands
to its pool, skip the switch there, which costs more than they do.  A product large enough
to pay for a second thread (``config.BLAS_SPLIT_FLOPS``) is cut into blocks of its stack
of matrices where the stack is deep enough, else into column blocks (or row blocks,
when the rows are the longer side), one per ``BLAS_SPLIT_FLOPS`` of work
and at most as many as numba has threads for this caller (``numba.get_num_threads()``).
The blocks run on a small pool of plain threads that sleep on a queue, never spin; the
caller computes the first block itself.  Each output entry is one BLAS call over the
whole reduction, but BLAS's own blocking may round an entry differently in another
split: results are deterministic for a given thread count, like the tiled kernels'.
:func:`matmul_sum` sums a stack of products (a grad weight over images) the same way,
split along the sum.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from ... import config
from ..._threads import blas_on_caller
from .workspace import scratch

_pool = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _forget_pool():
    """After a fork the child has none of the pool's threads: start a new pool there."""
    global _pool, _pool_workers, _pool_lock
    _pool, _pool_workers, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers):
    """The shared pool of plain threads, grown to ``workers`` when needed (each thread
    holds per-thread BLAS pools at one thread for good)."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="numbaconv-blas",
                                       initializer=blas_on_caller.limit_this_thread)
            _pool_workers = workers
        return _pool


def _split(a, b, out, parts):
    """(a, b, out) triples: ``parts`` blocks of a stack of at least ``parts`` products
    (whole products run faster than slices of each), else of ``out``'s longer matrix
    axis."""
    if out.ndim > 2 and out.shape[0] >= parts:
        step = -(-out.shape[0] // parts)

        def part(m, start, stop):  # a stacked operand's share; a broadcast one whole
            return m[start:stop] if m.ndim == out.ndim and m.shape[0] == out.shape[0] else m

        return [(part(a, i, i + step), part(b, i, i + step), out[i:i + step])
                for i in range(0, out.shape[0], step)]
    rows, cols = out.shape[-2], out.shape[-1]
    axis_len = max(cols, rows)
    step = -(-axis_len // parts)
    blocks = []
    for start in range(0, axis_len, step):
        stop = min(axis_len, start + step)
        if cols >= rows:
            blocks.append((a, b[..., start:stop], out[..., start:stop]))
        else:
            blocks.append((a[..., start:stop, :], b, out[..., start:stop, :]))
    return blocks


def matmul(a, b, out):
    """``out[...] = a @ b`` for stacks of matrices (NumPy's broadcasting matmul, 2-D or
    more on both sides), on the caller's thread count, never BLAS's pool."""
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    stack = out.size // max(1, m * n)
    flops = 2 * stack * m * n * k
    if (m * n * k <= config.BLAS_ONE_THREAD_MNK and flops < config.BLAS_SPLIT_FLOPS
            and blas_on_caller.keeps_small_products()):
        np.matmul(a, b, out=out)  # one thread without asking: no pool to keep asleep
        return out
    threads = numba.get_num_threads()
    parts = min(threads, max(out.shape[-2], out.shape[-1]),
                int(flops // config.BLAS_SPLIT_FLOPS) + 1)
    with blas_on_caller:
        if parts <= 1:
            np.matmul(a, b, out=out)
            return out
        blocks = _split(a, b, out, parts)
        pool = _executor(len(blocks) - 1)
        futures = [pool.submit(np.matmul, *block_args[:2], out=block_args[2])
                   for block_args in blocks[1:]]
        try:
            np.matmul(blocks[0][0], blocks[0][1], out=blocks[0][2])
        finally:  # no block may still write to out once this returns
            wait(futures)
        for future in futures:
            future.result()
    return out


def _summed_shares(stack, k, parts):
    """Each thread's share of a sum of ``stack`` products of reduction length ``k``: a
    list of ``(first product, stop, first k, stop k)`` runs, contiguous products where
    the stack has at least ``parts`` of them, else pieces of each product's reduction."""
    if stack >= parts:
        step = -(-stack // parts)
        return [[(i, min(stack, i + step), 0, k)] for i in range(0, stack, step)]
    pieces = min(k, -(-parts // stack))
    step = -(-k // pieces)
    units = [(i, i + 1, k0, min(k, k0 + step)) for i in range(stack) for k0 in range(0, k, step)]
    shares = min(parts, len(units))
    return [units[j * len(units) // shares:(j + 1) * len(units) // shares]
            for j in range(shares)]


def matmul_sum(a, b, out):
    """``out[...] = (a @ b).sum(axis=0)``: the sum of a stack of products (``a`` of shape
    ``(S, ..., m, k)``, ``b`` ``(S, ..., k, n)``, ``out`` ``(..., m, n)``), such as a
    grad weight summed over images.

    Where a second thread pays (``config.BLAS_SPLIT_FLOPS``), the work is cut along the
    sum into ``parts`` shares (the threads, fewer for small sums): runs of the stack, or,
    when the stack has fewer products than shares, near-equal runs of the products'
    reduction pieces.  So a small output over a long reduction (few output channels by a
    1x1 kernel's input channels, over many pixels) is split where it is long.  A thread
    makes its products as a few stacked NumPy calls (``_SUM_BYTES`` of products each, in
    its workspace: one Python step per call, where a loop of small products would trade
    the GIL), sums them into its partial, and the partials are added in share order:
    deterministic for a given thread count.  An empty stack gives zeros."""
    stack, m, k, n = a.shape[0], a.shape[-2], a.shape[-1], b.shape[-1]
    if stack == 0 or k == 0:
        out[...] = 0
        return out
    flops = 2 * stack * out.size * k
    parts = max(1, min(numba.get_num_threads(), int(flops // config.BLAS_SPLIT_FLOPS) + 1))
    shares = _summed_shares(stack, k, parts)
    per_call = max(1, _SUM_BYTES // max(1, out.nbytes))

    def run(share, into):
        products = None
        first = True
        for i0, i1, k0, k1 in share:
            for j0 in range(i0, i1, per_call):
                j1 = min(i1, j0 + per_call)
                if products is None:
                    products = scratch("summed_products",
                                       (min(per_call, i1 - i0),) + out.shape, out.dtype)
                part = products[:j1 - j0]
                np.matmul(a[j0:j1, ..., k0:k1], b[j0:j1, ..., k0:k1, :], out=part)
                if first:
                    np.sum(part, axis=0, out=into)
                    first = False
                else:
                    into += part.sum(axis=0)
        return into

    if (len(shares) == 1 and m * n * k <= config.BLAS_ONE_THREAD_MNK
            and blas_on_caller.keeps_small_products()):
        return run(shares[0], out)  # small products: no thread-count switch (see matmul)
    with blas_on_caller:
        if len(shares) == 1:
            return run(shares[0], out)
        pool = _executor(len(shares) - 1)
        partials = [np.empty_like(out) for _ in shares[1:]]
        futures = [pool.submit(run, share, into) for share, into in zip(shares[1:], partials)]
        try:
            run(shares[0], out)
        finally:  # no share may still write once this returns
            wait(futures)
        for future in futures:
            future.result()
        for partial in partials:
            out += partial
    return out


_SUM_BYTES = 1 << 22  # products made per stacked call of matmul_sum: 4 MiB
