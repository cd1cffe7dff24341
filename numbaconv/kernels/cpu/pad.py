"""CPU padding kernels: constant / reflect / replicate / circular, and their adjoint.

``mode`` is an int code (``config.PAD_MODES``); ``pads = (top, left)`` are the leading
pads, the output shape carries the trailing ones.  Each job owns one (n, c) plane.
"""

import numba
from numba import njit

from .._index import pad_source_index
from .shares import run_shares, share, share_of


source_index = njit(inline="always")(pad_source_index)


@share()
def _pad2d_forward(t, threads, args):
    # n c h w -> n c (pt + h + pb) (pl + w + pr)
    x, out, top, left, mode, value = args
    batch, ch, in_h, in_w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        for oh in range(out_h):
            ih = source_index(oh - top, in_h, mode)
            for ow in range(out_w):
                iw = source_index(ow - left, in_w, mode)
                if ih < 0 or iw < 0:
                    out[n, c, oh, ow] = value
                else:
                    out[n, c, oh, ow] = x[n, c, ih, iw]


def pad2d_forward(x, out, pads, mode, value):
    run_shares(_pad2d_forward, numba.get_num_threads(), (x, out, *pads, mode, value))


@share()
def _pad2d_backward(t, threads, args):
    # n c oh ow -> n c h w : each padded position sends its gradient to the element it copied
    grad_out, grad_in, top, left, mode = args
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        grad_in[n, c, :, :] = 0
        for oh in range(out_h):
            ih = source_index(oh - top, in_h, mode)
            if ih < 0:
                continue
            for ow in range(out_w):
                iw = source_index(ow - left, in_w, mode)
                if iw >= 0:
                    grad_in[n, c, ih, iw] += grad_out[n, c, oh, ow]


def pad2d_backward(grad_out, grad_in, pads, mode):
    run_shares(_pad2d_backward, numba.get_num_threads(), (grad_out, grad_in, *pads, mode))
