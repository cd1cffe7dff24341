"""CPU padding kernels: constant / reflect / replicate / circular, and their adjoint.

``mode`` is an int code (``config.PAD_MODES``); ``pads = (top, left)`` are the leading
pads, the output shape carries the trailing ones.  Each job owns one (n, c) plane.
"""

from numba import njit, prange


@njit(inline="always")
def source_index(i, size, mode):
    """Input index that padded position ``i`` (already shifted by the leading pad) reads;
    -1 for a constant-filled position."""
    if 0 <= i < size:
        return i
    if mode == 1:  # reflect: mirror without repeating the edge
        period = 2 * (size - 1)
        if period == 0:
            return 0
        i = i % period
        return i if i < size else period - i
    if mode == 2:  # replicate: clamp to the edge
        return 0 if i < 0 else size - 1
    if mode == 3:  # circular: wrap around
        return i % size
    return -1


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
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
