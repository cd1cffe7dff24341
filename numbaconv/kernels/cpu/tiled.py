"""Convolution as im2col tiles multiplied in cache, all in one parallel region (CPU only).

Same signatures as the direct kernels in ``conv.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``, algorithm ``'tiled'``) swaps one for the other.

Forward, per job (one image, one group, ``config.TILED_PIXELS`` output pixels)::

    tile[p, (r, s, c)] = x[n, g*C_g + c, oh*sh + r*dh - ph, ow*sw + s*dw - pw]  (0 outside)
    out[n, g*K_g + k, p] = sum over (r, s, c) of w[g, k, (r, s, c)] * tile[p, (r, s, c)]

The input is first copied channels-last, so each tap of a tile row is one contiguous
run of ``C_g`` values; the weights are packed ``(G, K_g, R*S*C_g)`` in the same
``(r, s, c)`` order.  The product runs :mod:`.gemm`'s dot-product blocks on the tile
while it sits in the thread's cache: no whole-chunk column buffer goes to memory and
back, and no BLAS call, so numba's thread pool never hands the cores to OpenBLAS's.
Each thread owns one tile buffer (``tiles[t]``) and a fixed share of the jobs; every
output entry is one dot product in a fixed order: deterministic.

Backward:

* grad input at stride 1 is this forward run on ``grad_out`` with the weights flipped
  and transposed (``w'[c, k, r', s'] = w[k, c, R-1-r', S-1-s']``) and leading pads
  ``d*(R-1) - p``; at other strides (or pads beyond the kernel's reach) it is the GEMM
  path's product + col2im.
* grad weight is the GEMM path's chunked columns with the product in
  :func:`.gemm.gemm_nt` (a long reduction over the chunk's pixels).
"""

import numba
import numpy as np
from numba import njit, prange

from ... import config
from ...config import CPU_FASTMATH
from .conv import copy, fill
from .gemm import BLOCK, _block_into, _dot, gemm_nt
from .gemm_conv import (_layout, _wide_columns, _wide_grad, chunks, conv2d_grad_input_gemm,
                        scratch)


@njit(parallel=True, cache=True)
def to_channels_last(x, xt):
    """``xt[n, h, w, c] = x[n, c, h, w]``."""
    batch, ch, height, width = x.shape
    for job in prange(batch * height):
        n, h = job // height, job % height
        for c in range(ch):
            src = x[n, c, h]
            for w in range(width):
                xt[n, h, w, c] = src[w]


@njit(inline="always")
def _fill_tile(xt, n, g, p0, count, tile, geometry, kh, kw, out_w):
    """Rows ``0 .. count-1`` of ``tile``: the receptive fields of pixels ``p0 ..``."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    in_h, in_w, ch = xt.shape[1], xt.shape[2], xt.shape[3]
    c_g = ch // groups
    c0 = g * c_g
    zero = tile.dtype.type(0)
    for i in range(count):
        oh, ow = (p0 + i) // out_w, (p0 + i) % out_w
        row = tile[i]
        for r in range(kh):
            ih = oh * sh + r * dh - ph
            for s in range(kw):
                iw = ow * sw + s * dw - pw
                at = (r * kw + s) * c_g
                if 0 <= ih < in_h and 0 <= iw < in_w:
                    copy(row[at:at + c_g], xt[n, ih, iw, c0:c0 + c_g])
                else:
                    fill(row[at:at + c_g], zero)


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def _forward_tiles(xt, wp, bias, out, tiles, geometry, kh, kw):
    # xt (N, H, W, C) channels-last; wp (G, K_g, kh*kw*C_g); out (N, K, OH, OW)
    groups, k_g = wp.shape[0], wp.shape[1]
    batch, out_h, out_w = out.shape[0], out.shape[2], out.shape[3]
    length = out_h * out_w
    threads, tile_pixels = tiles.shape[0], tiles.shape[1]
    per_image = (length + tile_pixels - 1) // tile_pixels
    jobs = batch * groups * per_image
    for t in prange(threads):
        tile = tiles[t]
        for job in range(t, jobs, threads):
            n, g = job // (groups * per_image), (job // per_image) % groups
            p0 = (job % per_image) * tile_pixels
            count = min(tile_pixels, length - p0)
            _fill_tile(xt, n, g, p0, count, tile, geometry, kh, kw, out_w)
            w = wp[g]
            c = out[n].reshape(out.shape[1], length)[g * k_g:(g + 1) * k_g, p0:p0 + count]
            for i0 in range(0, count, BLOCK):
                for m0 in range(0, k_g, BLOCK):
                    if m0 + BLOCK <= k_g and i0 + BLOCK <= count:
                        _block_into(w, m0, tile, i0, c, m0, i0)
                    else:
                        for m in range(m0, min(m0 + BLOCK, k_g)):
                            for i in range(i0, min(i0 + BLOCK, count)):
                                c[m, i] = _dot(w[m], tile[i])
            for m in range(k_g):
                b = bias[g * k_g + m]
                for i in range(count):
                    c[m, i] += b


def _pack(weight, groups):
    """``(K, C_g, R, S)`` -> ``(G, K_g, R*S*C_g)`` in ``(r, s, c)`` order."""
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    packed = weight.reshape(groups, k_g, c_g, kh, kw).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(packed).reshape(groups, k_g, kh * kw * c_g)


def _run(x, packed, bias, out, geometry, kh, kw):
    xt = scratch("channels_last", (x.shape[0], x.shape[2], x.shape[3], x.shape[1]), x.dtype)
    to_channels_last(x, xt)
    tiles = scratch("tiles", (numba.get_num_threads(), config.TILED_PIXELS, packed.shape[2]),
                    x.dtype)
    _forward_tiles(xt, packed, bias, out, tiles, geometry, kh, kw)


def conv2d_forward_tiled(x, weight, bias, out, geometry):
    groups = geometry[6]
    _run(x, _pack(weight, groups), bias, out, geometry, weight.shape[2], weight.shape[3])


def _flipped_geometry(weight, geometry):
    """The stride-1 grad input as a forward conv: its geometry, or None when the
    leading pads would be negative (or the stride is not 1)."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    pad_h, pad_w = dh * (weight.shape[2] - 1) - ph, dw * (weight.shape[3] - 1) - pw
    if sh != 1 or sw != 1 or pad_h < 0 or pad_w < 0:
        return None
    return (1, 1, pad_h, pad_w, dh, dw, groups)


def conv2d_grad_input_tiled(grad_out, weight, grad_in, geometry):
    flipped = _flipped_geometry(weight, geometry)
    if flipped is None:
        conv2d_grad_input_gemm(grad_out, weight, grad_in, geometry)
        return
    groups = geometry[6]
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    # w'[g, c, (r', s', k)] = w[g*K_g + k, c, R-1-r', S-1-s']
    w = weight.reshape(groups, k_g, c_g, kh, kw)[:, :, :, ::-1, ::-1]
    packed = np.ascontiguousarray(w.transpose(0, 2, 3, 4, 1)).reshape(groups, c_g,
                                                                      kh * kw * k_g)
    bias = np.zeros(grad_in.shape[1], grad_in.dtype)
    _run(grad_out, packed, bias, grad_in, flipped, kh, kw)


def conv2d_grad_weight_tiled(x, grad_out, grad_weight, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        x.shape, grad_weight.shape, grad_out.shape, geometry, x.itemsize)
    gw = grad_weight.reshape(groups, k_g, rows)
    gw[...] = 0
    partial = np.empty_like(gw)
    for n0, nb in chunks(x.shape[0], chunk):  # summed in chunk order: deterministic
        cols = _wide_columns(x, n0, nb, groups, rows, out_len, cols_geometry)
        dy = _wide_grad(grad_out, n0, nb, groups, k_g, out_len)
        gemm_nt(dy, cols, partial)
        gw += partial
