"""Scratch buffers: per thread for the CPU kernels' Python-level drivers (im2col columns,
tiles, frames), reused across calls; and inside a parallel kernel, runs of consecutive
planes whose buffers are allocated once per run (:func:`run_of`)."""

import math
import threading

import numpy as np
from numba import njit

# a parallel kernel that needs buffers per plane hands its planes out in at most this
# many runs, each allocating them once: per plane, the allocations cost as much as a
# small plane's work.  Enough runs to balance up to 128 threads (a kernel that asked
# numba for its thread count could not be cached)
RUNS = 128


@njit(inline="always")
def run_of(jobs, runs, t):
    """Run ``t`` of ``runs`` near-equal runs of ``jobs`` jobs: ``[lo, hi)``."""
    return t * jobs // runs, (t + 1) * jobs // runs

_workspace = threading.local()


def scratch(key, shape, dtype):
    """An array carved from a per-thread workspace named ``key``, reused across calls
    (grown when too small): a fresh buffer per call would pay a page fault per 4 KiB
    on every call.  Contents are undefined; one buffer per key at a time."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    spaces = getattr(_workspace, "spaces", None)
    if spaces is None:
        spaces = _workspace.spaces = {}
    space = spaces.get(key)
    if space is None or space.size < nbytes:
        space = spaces[key] = np.empty(nbytes, np.uint8)
    return space[:nbytes].view(dtype).reshape(shape)
