"""CPU im2col / col2im (unfold / fold) kernels.

``im2col`` lays every receptive field out as a column, so that a convolution becomes a
matrix product ``W (C_out, C*kH*kW) @ cols (C*kH*kW, OH*OW)``; ``col2im`` is its adjoint:
it sums every column entry back onto the input pixel it was read from (overlapping
windows add).  ``geometry = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)``,
pads are the leading ones.  Jobs own one (n, c) input plane: no races.
"""

from numba import njit, prange

from .conv import valid_range


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
                col[:] = 0
                for oh in range(oh_lo, oh_hi):
                    x_row = x[n, c, oh * sh + r * dh - ph]
                    base = oh * out_w
                    for ow in range(ow_lo, ow_hi):
                        col[base + ow] = x_row[ow * sw + offset]


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
                for oh in range(oh_lo, oh_hi):
                    x_row = plane[oh * sh + r * dh - ph]
                    base = oh * out_w
                    for ow in range(ow_lo, ow_hi):
                        x_row[ow * sw + offset] += col[base + ow]
