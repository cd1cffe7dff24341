"""CUDA im2col / col2im: twins of ``kernels/cpu/im2col.py``.  col2im gathers (one
thread per input pixel, over the window positions that read it): no atomics."""

from numba import cuda

from .._index import reading_output, unravel4
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)
reader = cuda.jit(device=True)(reading_output)


@cuda.jit
def _im2col(total, x, cols, geometry):
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    in_h, in_w = x.shape[2], x.shape[3]
    rows, length = cols.shape[1], cols.shape[2]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        pos = i % length
        row = (i // length) % rows
        n = i // (length * rows)
        s = row % kw
        r = (row // kw) % kh
        c = row // (kw * kh)
        ih = (pos // out_w) * sh - ph + r * dh
        iw = (pos % out_w) * sw - pw + s * dw
        if 0 <= ih < in_h and 0 <= iw < in_w:
            cols[n, row, pos] = x[n, c, ih, iw]
        else:
            cols[n, row, pos] = 0


@cuda.jit
def _col2im(total, cols, x, geometry):
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    ch, in_h, in_w = x.shape[1], x.shape[2], x.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, ih, iw = unravel(i, ch, in_h, in_w)
        acc = x.dtype.type(0)
        for r in range(kh):
            oh = reader(ih, ph, r * dh, sh, out_h)
            if oh < 0:
                continue
            for s in range(kw):
                ow = reader(iw, pw, s * dw, sw, out_w)
                if ow >= 0:
                    acc += cols[n, (c * kh + r) * kw + s, oh * out_w + ow]
        x[n, c, ih, iw] = acc


def im2col(x, cols, geometry):
    launch_1d(_im2col, cols.size, x, cols, geometry)


def col2im(cols, x, geometry):
    launch_1d(_col2im, x.size, cols, x, geometry)
