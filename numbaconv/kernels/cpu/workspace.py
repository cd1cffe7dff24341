"""Scratch buffers: per thread for the CPU kernels' Python-level drivers (im2col columns,
tiles, frames), reused across calls."""

import math
import threading

import numpy as np

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
