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

* grad input (which is also the transposed convolution's forward) is this forward run
  on ``grad_out`` with the weights flipped and transposed, once per stride phase of the
  input (:func:`conv2d_grad_input_tiled`); leading pads may be negative (the tile
  builder bounds-checks every tap).
* grad weight is the GEMM path's chunked columns with the product in
  :func:`.gemm.gemm_nt` (a long reduction over the chunk's pixels).
"""

import math

import numba
import numpy as np
from numba import njit, prange

from ... import config
from ...config import CPU_FASTMATH
from .conv import copy, fill
from .gemm import BLOCK, block, gemm_nt
from .gemm_conv import grad_weight_chunks, scratch


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
            # 4 weight rows stay in L1 while the tile (in L2) streams past them
            for m0 in range(0, k_g, BLOCK):
                for i0 in range(0, count, BLOCK):
                    block(w, m0, tile, i0, c, m0, i0, k_g, count)
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


def _channels_last(x):
    xt = scratch("channels_last", (x.shape[0], x.shape[2], x.shape[3], x.shape[1]), x.dtype)
    to_channels_last(x, xt)
    return xt


def _run(xt, packed, bias, out, geometry, kh, kw):
    tiles = scratch("tiles", (numba.get_num_threads(), config.TILED_PIXELS, packed.shape[2]),
                    xt.dtype)
    _forward_tiles(xt, packed, bias, out, tiles, geometry, kh, kw)


def conv2d_forward_tiled(x, weight, bias, out, geometry):
    groups = geometry[6]
    _run(_channels_last(x), _pack(weight, groups), bias, out, geometry, weight.shape[2],
         weight.shape[3])


def _phase_taps(phase, stride, pad, dilation, size):
    """The taps that reach the input positions ``i * stride + phase`` (a stride phase),
    in the order a stride-1 forward conv over ``grad_out`` meets them (descending), and
    that conv's leading pad and dilation: tap ``t`` reads ``grad_out[i + q_t]`` with
    ``q_t = (phase + pad - t * dilation) / stride``, an integer for these taps only."""
    taps = [t for t in range(size - 1, -1, -1) if (phase + pad - t * dilation) % stride == 0]
    if not taps:
        return taps, 0, 1
    step = stride // math.gcd(stride, dilation)
    return taps, -((phase + pad - taps[0] * dilation) // stride), dilation * step // stride


def conv2d_grad_input_tiled(grad_out, weight, grad_in, geometry):
    """The adjoint of the forward as forward convs over ``grad_out``, one per stride
    phase ``(a, b)`` of the input: input rows ``i * sh + a`` get exactly the taps
    ``r`` with ``(a + ph - r * dh) % sh == 0``, a stride-1 conv with the flipped,
    transposed sub-kernel ``w'[c, k, r', s'] = w[k, c, taps_r[r'], taps_s[s']]``.  No
    zero-inserted input, no scatter: each phase's pixels are computed once, then copied
    into place (at stride 1 the one phase is ``grad_in`` itself)."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    batch, in_ch, in_h, in_w = grad_in.shape
    w = weight.reshape(groups, k_g, c_g, kh, kw)
    zero_bias = np.zeros(in_ch, grad_in.dtype)
    gt = _channels_last(grad_out)
    for a in range(sh):
        taps_r, pad_h, dil_h = _phase_taps(a, sh, ph, dh, kh)
        for b in range(sw):
            taps_s, pad_w, dil_w = _phase_taps(b, sw, pw, dw, kw)
            target = grad_in[:, :, a::sh, b::sw]
            if not taps_r or not taps_s or target.size == 0:
                target[...] = 0
                continue
            sub = w[:, :, :, taps_r][:, :, :, :, taps_s]  # (G, K_g, C_g, R', S')
            packed = np.ascontiguousarray(sub.transpose(0, 2, 3, 4, 1)).reshape(
                groups, c_g, len(taps_r) * len(taps_s) * k_g)
            out = grad_in if sh == sw == 1 else scratch("phase", target.shape, grad_in.dtype)
            _run(gt, packed, zero_bias, out, (1, 1, pad_h, pad_w, dil_h, dil_w, groups),
                 len(taps_r), len(taps_s))
            if out is not grad_in:
                target[...] = out


def conv2d_grad_weight_tiled(x, grad_out, grad_weight, geometry):
    grad_weight_chunks(x, grad_out, grad_weight, geometry, gemm_nt)
