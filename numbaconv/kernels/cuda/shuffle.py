"""CUDA channel shuffle: twin of ``kernels/cpu/shuffle.py``, one thread per element."""

from numba import cuda

from .._index import shuffled_channel, unravel4
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)
_source = cuda.jit(device=True)(shuffled_channel)


@cuda.jit
def _channel_shuffle(total, x, out, groups):
    ch, h, w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, j, ih, iw = unravel(i, ch, h, w)
        out[n, j, ih, iw] = x[n, _source(j, ch, groups), ih, iw]


def channel_shuffle(x, out, groups):
    launch_1d(_channel_shuffle, out.size, x, out, groups)
