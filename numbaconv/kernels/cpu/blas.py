"""Matrix products through NumPy's BLAS, without BLAS's own thread pool.

Every BLAS product of the CPU kernels (the GEMM-path conv, ``nn.Linear``)
goes through :func:`matmul`.  It runs BLAS at one thread (``_threads.blas_on_caller``):
OpenBLAS's pool busy-waits after each product, on the cores numba's next parallel region
needs, and in a process that imported NumPy before numbaconv, or ran its own products,
it waits long (a GEMM-path backward: 8 ms where it needs 0.3).  A product large enough
to pay for a second thread (``config.BLAS_SPLIT_FLOPS``) is cut into as many column
blocks (or row blocks, when the rows are the longer side) as numba has threads for this
caller (``numba.get_num_threads()``), and the blocks run on a small pool of plain threads
that sleep on a queue, never spin; the caller computes the first block itself.  Each
output entry is computed by one BLAS call over the whole reduction: the result does not
depend on the split.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ... import config
from ..._threads import blas_on_caller

_pool = None
_pool_lock = threading.Lock()


def _executor(workers):
    """The shared pool of plain threads, grown to ``workers`` when needed."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="numbaconv-blas")
        return _pool


def _split(a, b, out, parts):
    """(a, b, out) triples, ``parts`` blocks of ``out``'s longer matrix axis."""
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
    """``out[...] = a @ b`` (NumPy's broadcasting matmul), on the caller's thread count,
    never BLAS's pool."""
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    stack = out.size // max(1, m * n)
    flops = 2 * stack * m * n * k
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
        np.matmul(blocks[0][0], blocks[0][1], out=blocks[0][2])
        for future in futures:
            future.result()
    return out
