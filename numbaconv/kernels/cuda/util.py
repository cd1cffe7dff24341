"""Small CUDA helpers the backend needs to stay on the device: fill, and a spatial flip
of a 4-D weight (true convolution)."""

import numpy as np
from numba import cuda

from .._index import unravel4
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)


@cuda.jit
def _fill(total, a, value):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        a[i] = value


@cuda.jit
def _flip_spatial_2d(total, w, out):
    kh, kw = w.shape[2], w.shape[3]
    c_in = w.shape[1]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        k, c, r, s = unravel(i, c_in, kh, kw)
        out[k, c, r, s] = w[k, c, kh - 1 - r, kw - 1 - s]


def fill(a, value):
    """Set every element of the contiguous device array ``a`` to ``value``."""
    flat = a.reshape(a.size)
    launch_1d(_fill, a.size, flat, np.dtype(a.dtype).type(value))  # no float64 in float32


def flip_spatial_2d(w, out):
    launch_1d(_flip_spatial_2d, w.size, w, out)

