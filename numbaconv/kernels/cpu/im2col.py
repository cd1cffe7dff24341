"""CPU im2col / col2im (unfold / fold) kernels.

``im2col`` lays every receptive field out as a column, so that a convolution becomes a
matrix product ``W (C_out, C*kH*kW) @ cols (C*kH*kW, OH*OW)``; ``col2im`` is its adjoint:
it sums every column entry back onto the input pixel it was read from (overlapping
windows add).  ``geometry = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
out_h, out_w)``, pads are the leading ones.  Jobs own one (n, c) input plane: no races;
the kernels are per-thread shares (:mod:`.shares`).  Row copies run through the view
helpers of ``rows.py`` (indexed from 0, so they vectorize).
"""

import numba
from numba import njit

from .rows import axpy_into, copy_from, fill, valid_range
from .shares import run_shares, share, share_of


@njit(inline="always")
def plane_to_columns(plane, c, flat, row_stride, start, geometry):
    """Input plane of channel ``c`` -> its ``kh * kw`` column rows: row
    ``(c * kh + r) * kw + s`` is ``flat[row * row_stride + start :][: out_h * out_w]``."""
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    in_h, in_w = plane.shape
    length = out_h * out_w
    for r in range(kh):
        oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
        for s in range(kw):
            offset = s * dw - pw
            ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
            at = ((c * kh + r) * kw + s) * row_stride + start
            col = flat[at:at + length]
            count = ow_hi - ow_lo
            if count < out_w or oh_hi - oh_lo < out_h:  # some taps fall in the padding
                fill(col, flat.dtype.type(0))
            if count <= 0:
                continue
            for oh in range(oh_lo, oh_hi):
                base = oh * out_w
                copy_from(col[base + ow_lo:base + ow_hi], plane[oh * sh + r * dh - ph],
                          ow_lo * sw + offset, sw)


@njit(inline="always")
def _columns_to_plane(flat, row_stride, start, c, plane, geometry):
    """The adjoint of :func:`plane_to_columns`: sums the column rows of channel ``c``
    back onto its plane (overwritten)."""
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    in_h, in_w = plane.shape
    plane[:, :] = 0
    for r in range(kh):
        oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
        for s in range(kw):
            offset = s * dw - pw
            ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
            if ow_hi <= ow_lo:
                continue
            at = ((c * kh + r) * kw + s) * row_stride + start
            for oh in range(oh_lo, oh_hi):
                base = at + oh * out_w
                axpy_into(plane[oh * sh + r * dh - ph], ow_lo * sw + offset, sw,
                          flat[base + ow_lo:base + ow_hi], flat.dtype.type(1))


@share()
def _to_columns(t, threads, args):
    x, n0, nb, flat, row_stride, image_stride, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = args
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    # x[n0:n0+nb] -> columns: image i's row (c, r, s) at flat[row * row_stride + i *
    # image_stride :][: OH*OW]; jobs own one (image, channel) plane
    ch = x.shape[1]
    lo, hi = share_of(t, threads, nb * ch)
    for job in range(lo, hi):
        i, c = job // ch, job % ch
        plane_to_columns(x[n0 + i, c], c, flat, row_stride, i * image_stride, geometry)


@share()
def _from_columns(t, threads, args):
    flat, row_stride, image_stride, n0, nb, x, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = args
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    # the adjoint of _to_columns: overlapping windows summed onto x[n0:n0+nb]
    ch = x.shape[1]
    lo, hi = share_of(t, threads, nb * ch)
    for job in range(lo, hi):
        i, c = job // ch, job % ch
        _columns_to_plane(flat, row_stride, i * image_stride, c, x[n0 + i, c], geometry)


def im2col_at(x, n0, nb, flat, row_stride, image_stride, geometry):
    """x[n0:n0+nb] -> image ``i``'s column row ``(c r s)`` at ``flat[row * row_stride + i
    * image_stride :][: OH*OW]``."""
    run_shares(_to_columns, numba.get_num_threads(),
               (x, n0, nb, flat, row_stride, image_stride, *geometry))


def col2im_at(flat, row_stride, image_stride, n0, nb, x, geometry):
    """The adjoint of :func:`im2col_at`: x[n0:n0+nb] from the columns, overlapping windows
    summed."""
    run_shares(_from_columns, numba.get_num_threads(),
               (flat, row_stride, image_stride, n0, nb, x, *geometry))


def im2col(x, cols, geometry):
    """n c h w -> n (c r s) (oh ow): ``cols`` is ``(N, C*kh*kw, OH*OW)``."""
    length = cols.shape[2]
    im2col_at(x, 0, x.shape[0], cols.reshape(cols.size), length, cols.shape[1] * length,
              geometry)


def col2im(cols, x, geometry):
    """n (c r s) (oh ow) -> n c h w, overlapping windows summed (``x`` overwritten)."""
    length = cols.shape[2]
    col2im_at(cols.reshape(cols.size), length, cols.shape[1] * length, 0, x.shape[0], x,
              geometry)


# The GEMM convolution's wide layout (CPU only): the columns of images n0 .. n0+nb side
# by side, ``(C*kh*kw, nb * OH*OW)``, so one matrix product covers the whole chunk.
def im2col_wide(x, n0, nb, flat, geometry):
    """x[n0:n0+nb]: n c h w -> (c r s) (n oh ow), into the 1-D ``flat``."""
    length = geometry[8] * geometry[9]
    im2col_at(x, n0, nb, flat, nb * length, length, geometry)


def col2im_wide(flat, n0, nb, x, geometry):
    """(c r s) (n oh ow) -> x[n0:n0+nb]: n c h w, overlapping windows summed."""
    length = geometry[8] * geometry[9]
    col2im_at(flat, nb * length, length, n0, nb, x, geometry)
