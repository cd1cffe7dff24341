"""Scratch buffers: per thread for the CPU kernels' Python-level drivers (im2col columns,
tiles, frames), reused across calls."""

import math
import threading

import numpy as np

from .simd import LINE_BYTES

_workspace = threading.local()


def scratch(key, shape, dtype):
    """An array carved from a per-thread workspace named ``key``, reused across calls
    (grown when too small): a fresh buffer per call would pay a page fault per 4 KiB
    on every call.  Contents are undefined; one buffer per key at a time.  It starts on
    a cache line, so per-thread rows of whole lines (a leading axis of threads) share
    no line between threads."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    spaces = getattr(_workspace, "spaces", None)
    if spaces is None:
        spaces = _workspace.spaces = {}
    space = spaces.get(key)
    if space is None or space.size < nbytes:
        raw = np.empty(nbytes + LINE_BYTES, np.uint8)
        space = spaces[key] = raw[-raw.ctypes.data % LINE_BYTES:][:nbytes]
    return space[:nbytes].view(dtype).reshape(shape)
