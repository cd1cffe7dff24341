"""CPU im2col / col2im (unfold / fold) kernels.

``im2col`` lays every receptive field out as a column, so that a convolution becomes a
matrix product ``W (C_out, C*kH*kW) @ cols (C*kH*kW, OH*OW)``; ``col2im`` is its adjoint:
it sums every column entry back onto the input pixel it was read from (overlapping
windows add).  ``geometry = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)``,
pads are the leading ones.  Jobs own one (n, c) input plane: no races.  Row copies run
through ``conv.py``'s view helpers (indexed from 0, so they vectorize).
"""

from numba import njit, prange

from .conv import axpy_into, copy_from, fill, valid_range


@njit(parallel=True, cache=True)
def im2col(x, cols, geometry):
    # n c h w -> n (c r s) (oh ow);  cols must be (N, C*kh*kw, OH*OW) with OH*OW given by out_hw
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    batch, ch, in_h, in_w = x.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        for r in range(kh):
            oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
            for s in range(kw):
                row = (c * kh + r) * kw + s
                offset = s * dw - pw
                ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
                col = cols[n, row]
                count = ow_hi - ow_lo
                if count < out_w or oh_hi - oh_lo < out_h:  # some taps fall in the padding
                    fill(col, cols.dtype.type(0))
                if count <= 0:
                    continue
                for oh in range(oh_lo, oh_hi):
                    base = oh * out_w
                    copy_from(col[base + ow_lo:base + ow_hi], x[n, c, oh * sh + r * dh - ph],
                              ow_lo * sw + offset, sw)


@njit(parallel=True, cache=True)
def col2im(cols, x, geometry):
    # n (c r s) (oh ow) -> n c h w, overlapping windows summed
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    batch, ch, in_h, in_w = x.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        plane[:, :] = 0
        for r in range(kh):
            oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
            for s in range(kw):
                col = cols[n, (c * kh + r) * kw + s]
                offset = s * dw - pw
                ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
                count = ow_hi - ow_lo
                if count <= 0:
                    continue
                for oh in range(oh_lo, oh_hi):
                    base = oh * out_w
                    axpy_into(plane[oh * sh + r * dh - ph], ow_lo * sw + offset, sw,
                              col[base + ow_lo:base + ow_hi], cols.dtype.type(1))
