"""CUDA padding kernels: twins of ``kernels/cpu/pad.py``.  ``pad2d_forward`` has one
thread per padded element; ``pad2d_backward`` one thread per input element, gathering
every padded position that copied it (no atomics)."""

import numpy as np
from numba import cuda

from .._index import pad_source_index, unravel4
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)


source_index = cuda.jit(device=True)(pad_source_index)


@cuda.jit
def _pad2d_forward(total, x, out, pads, mode, value):
    top, left = pads
    in_h, in_w = x.shape[2], x.shape[3]
    ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, oh, ow = unravel(i, ch, out_h, out_w)
        ih = source_index(oh - top, in_h, mode)
        iw = source_index(ow - left, in_w, mode)
        if ih < 0 or iw < 0:
            out[n, c, oh, ow] = value
        else:
            out[n, c, oh, ow] = x[n, c, ih, iw]


@cuda.jit
def _pad2d_backward(total, grad_out, grad_in, pads, mode):
    top, left = pads
    ch, in_h, in_w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, ih, iw = unravel(i, ch, in_h, in_w)
        acc = grad_in.dtype.type(0)
        for oh in range(out_h):
            if source_index(oh - top, in_h, mode) != ih:
                continue
            for ow in range(out_w):
                if source_index(ow - left, in_w, mode) == iw:
                    acc += grad_out[n, c, oh, ow]
        grad_in[n, c, ih, iw] = acc


def pad2d_forward(x, out, pads, mode, value):
    launch_1d(_pad2d_forward, out.size, x, out, pads, mode,
              np.dtype(out.dtype).type(value))  # no float64 in a float32 kernel


def pad2d_backward(grad_out, grad_in, pads, mode):
    launch_1d(_pad2d_backward, grad_in.size, grad_out, grad_in, pads, mode)
