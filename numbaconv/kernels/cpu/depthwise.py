"""CPU depthwise convolution (``groups == C_in``, any channel multiplier ``m``: output
channel ``k`` reads input channel ``k // m``): forward, grad input and grad weight, the
fast path ``dispatch.choose_conv_algorithm`` picks.  Same signatures and contract as the
direct kernels in ``conv.py``.

Depthwise work is a few multiply-adds per pixel, so the enemy is loop overhead: a row of
56 outputs is too short for a vector loop to pay its set-up nine times over.  At stride 1
each plane is therefore handled *flat*: the input plane is copied once into a zero-padded
buffer of width ``Wp = out_w + (kW - 1) * dW``, and the output is computed on the
"extended" plane ``out_h x Wp`` (the last ``Wp - out_w`` columns of each row are junk,
dropped when copying out).  In that layout tap ``(r, s)`` is a single shift of the whole
flat plane, ``off = r * dH * Wp + s * dW``, so each tap is one long unit-stride ``axpy``
(or ``dot``) that vectorizes well:

    forward      ext[e]            += w[r, s] * padded[e + off]
    grad input   padded_grad[e+off] += w[r, s] * ext_grad[e]     (junk columns zeroed)
    grad weight  dw[r, s]           += dot(ext_grad, padded[off : off + len(ext)])

Other strides run row by row, with the same views-from-zero inner loops as ``conv.py``.
Each parallel job owns an output plane (forward), an input plane (grad input) or a
channel's weights (grad weight, summed over the batch in order): deterministic.
"""

import numpy as np
from numba import njit, prange

from ...config import CPU_FASTMATH
from .conv import axpy, copy, dot, fill, row_view, valid_range


@njit(inline="always")
def _extended(out_h, out_w, kh, kw, dh, dw):
    """(padded width, padded height, length of the extended plane, buffer length)."""
    wp = out_w + (kw - 1) * dw
    hp = out_h + (kh - 1) * dh
    return wp, hp, out_h * wp, hp * wp + (kw - 1) * dw


@njit(inline="always")
def _pad_into(buf, plane, ph, pw, wp):
    """Zero ``buf`` and copy ``plane`` into it at (ph, pw) with row pitch ``wp``; rows or
    columns that fall outside the padded plane (it is cropped by the output size) are
    skipped."""
    fill(buf, buf.dtype.type(0))
    in_h, in_w = plane.shape
    hp = (buf.shape[0]) // wp
    for ih in range(in_h):
        if ih + ph >= hp:
            break
        width = min(in_w, wp - pw)
        if width > 0:
            start = (ih + ph) * wp + pw
            copy(buf[start:start + width], plane[ih, :width])


@njit(inline="always")
def _axpy3(dst, a, b, c, wa, wb, wc):
    """``dst += wa * a + wb * b + wc * c`` (views of one length, from 0: vectorizes)."""
    for i in range(dst.shape[0]):
        dst[i] += wa * a[i] + wb * b[i] + wc * c[i]


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def conv2d_forward_depthwise(x, weight, bias, out, geometry):
    # n c h w , (c m) 1 r s -> n (c m) oh ow
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    multiplier = out_ch // in_ch
    wp, hp, length, size = _extended(out_h, out_w, kh, kw, dh, dw)
    for job in prange(batch * out_ch):
        n = job // out_ch
        k = job % out_ch
        x_plane = x[n, k // multiplier]
        w = weight[k, 0]
        if sh == 1 and sw == 1:
            padded = np.empty(size, x.dtype)
            _pad_into(padded[:hp * wp], x_plane, ph, pw, wp)
            fill(padded[hp * wp:], x.dtype.type(0))
            ext = np.empty(length, x.dtype)
            fill(ext, bias[k])
            for r in range(kh):
                s = 0
                while s + 3 <= kw:  # three taps per pass over ext: a third of the traffic
                    off = r * dh * wp + s * dw
                    _axpy3(ext, padded[off:off + length], padded[off + dw:off + dw + length],
                           padded[off + 2 * dw:off + 2 * dw + length], w[r, s], w[r, s + 1],
                           w[r, s + 2])
                    s += 3
                for s in range(s, kw):
                    off = r * dh * wp + s * dw
                    axpy(ext, padded[off:off + length], w[r, s])
            for oh in range(out_h):
                copy(out[n, k, oh], ext[oh * wp:oh * wp + out_w])
            continue
        for oh in range(out_h):
            row = out[n, k, oh]
            row[:] = bias[k]
            for r in range(kh):
                ih = oh * sh + r * dh - ph
                if ih < 0 or ih >= in_h:
                    continue
                for s in range(kw):
                    offset = s * dw - pw
                    lo, hi = valid_range(offset, sw, in_w, out_w)
                    if hi > lo:
                        axpy(row[lo:hi], row_view(x_plane[ih], lo * sw + offset, sw, hi - lo),
                             w[r, s])


@njit(inline="always")
def _extend_grad(ext, go_plane, wp):
    """``go_plane`` (out_h, out_w) into the extended layout, junk columns zero."""
    fill(ext, ext.dtype.type(0))
    out_h, out_w = go_plane.shape
    for oh in range(out_h):
        copy(ext[oh * wp:oh * wp + out_w], go_plane[oh])


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def conv2d_grad_input_depthwise(grad_out, weight, grad_in, geometry):
    # n (c m) oh ow , (c m) 1 r s -> n c h w
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = grad_in.shape
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    multiplier = out_ch // in_ch
    wp, hp, length, size = _extended(out_h, out_w, kh, kw, dh, dw)
    for job in prange(batch * in_ch):
        n = job // in_ch
        c = job % in_ch
        plane = grad_in[n, c]
        if sh == 1 and sw == 1:
            padded = np.zeros(size, grad_in.dtype)
            ext = np.empty(length, grad_in.dtype)
            for j in range(multiplier):
                k = c * multiplier + j
                _extend_grad(ext, grad_out[n, k], wp)
                for r in range(kh):
                    for s in range(kw):
                        off = r * dh * wp + s * dw
                        axpy(padded[off:off + length], ext, weight[k, 0, r, s])
            for ih in range(in_h):  # rows / columns of the input the output never read: 0
                row = plane[ih]
                fill(row, grad_in.dtype.type(0))
                if ih + ph < hp:
                    lo = min(in_w, wp - pw)
                    if lo > 0:
                        start = (ih + ph) * wp + pw
                        copy(row[:lo], padded[start:start + lo])
            continue
        plane[:, :] = 0
        for j in range(multiplier):
            k = c * multiplier + j
            for oh in range(out_h):
                go_row = grad_out[n, k, oh]
                for r in range(kh):
                    ih = oh * sh + r * dh - ph
                    if ih < 0 or ih >= in_h:
                        continue
                    for s in range(kw):
                        offset = s * dw - pw
                        lo, hi = valid_range(offset, sw, in_w, out_w)
                        if hi > lo:
                            axpy(row_view(plane[ih], lo * sw + offset, sw, hi - lo),
                                 go_row[lo:hi], weight[k, 0, r, s])


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def conv2d_grad_weight_depthwise(x, grad_out, grad_weight, geometry):
    # n c h w , n (c m) oh ow -> (c m) 1 r s   (one job per output channel; batch in order)
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, _, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    multiplier = out_ch // in_ch
    wp, hp, length, size = _extended(out_h, out_w, kh, kw, dh, dw)
    for k in prange(out_ch):
        acc = np.zeros((kh, kw), np.float64)
        if sh == 1 and sw == 1:
            padded = np.empty(size, x.dtype)
            ext = np.empty(length, x.dtype)
            for n in range(batch):
                _pad_into(padded[:hp * wp], x[n, k // multiplier], ph, pw, wp)
                fill(padded[hp * wp:], x.dtype.type(0))
                _extend_grad(ext, grad_out[n, k], wp)
                for r in range(kh):
                    for s in range(kw):
                        off = r * dh * wp + s * dw
                        acc[r, s] += dot(ext, padded[off:off + length], x.dtype.type(0))
        else:
            for n in range(batch):
                x_plane = x[n, k // multiplier]
                for r in range(kh):
                    for s in range(kw):
                        offset = s * dw - pw
                        lo, hi = valid_range(offset, sw, in_w, out_w)
                        oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
                        if hi <= lo:
                            continue
                        part = x.dtype.type(0)
                        for oh in range(oh_lo, oh_hi):
                            part = dot(grad_out[n, k, oh, lo:hi],
                                       row_view(x_plane[oh * sh + r * dh - ph],
                                                lo * sw + offset, sw, hi - lo), part)
                        acc[r, s] += part
        for r in range(kh):
            for s in range(kw):
                grad_weight[k, 0, r, s] = acc[r, s]
