"""CPU padding kernels: constant / reflect / replicate / circular, and their adjoint.

``mode`` is an int code (``config.PAD_MODES``); ``pads = (top, left)`` are the leading
pads, the output shape carries the trailing ones.  Each job owns one (n, c) plane.
"""

from numba import njit, prange

from .._index import pad_source_index


source_index = njit(inline="always")(pad_source_index)


@njit(parallel=True, cache=True, nogil=True)
def pad2d_forward(x, out, pads, mode, value):
    # n c h w -> n c (pt + h + pb) (pl + w + pr)
    top, left = pads
    batch, ch, in_h, in_w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    for job in prange(batch * ch):
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


@njit(parallel=True, cache=True, nogil=True)
def pad2d_backward(grad_out, grad_in, pads, mode):
    # n c oh ow -> n c h w : each padded position sends its gradient to the element it copied
    top, left = pads
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    for job in prange(batch * ch):
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
