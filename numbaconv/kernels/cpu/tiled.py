"""Convolution as im2col tiles multiplied in cache, all in one parallel region (CPU only).

Same signatures as the direct kernels in ``conv.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``, algorithm ``'tiled'``) swaps one for the other.

Forward, per job (one image, one group, ``config.TILED_PIXELS`` output pixels)::

    tile[p, (r, s, c)] = x[n, g*C_g + c, oh*sh + r*dh - ph, ow*sw + s*dw - pw]  (0 outside)
    out[n, g*K_g + k, p] = sum over (r, s, c) of w[g, k, (r, s, c)] * tile[p, (r, s, c)]

The input is first copied into a frame (:func:`to_padded_groups`): channels last within
each group, zero-padded (or cropped) to exactly the positions the conv reads.  A tile
row is then built without bounds checks, each kernel row one contiguous run of
``kW * C_g`` values (``C_g`` per tap when dilated along W); the weights are packed ``(G, K_g, R*S*C_g)`` in the same
``(r, s, c)`` order.  The product runs :mod:`.gemm`'s dot-product blocks on the tile
while it sits in the thread's cache: no whole-chunk column buffer goes to memory and
back, and no BLAS call, so numba's thread pool never hands the cores to OpenBLAS's.
Each thread owns one tile buffer (``tiles[t]``) and a fixed share of the jobs; every
output entry is one dot product in a fixed order: deterministic.

Backward:

* grad input (which is also the transposed convolution's forward) is this forward run
  on ``grad_out`` with the weights flipped and transposed, once per stride phase of the
  input (:func:`conv2d_grad_input_tiled`), all phases reading one frame of
  ``grad_out`` (their leading pads may be negative: the frame then crops).
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
def to_padded_groups(x, xg, lo_h, lo_w):
    """``xg[n, g, i, j*C_g + c] = x[n, g*C_g + c, i + lo_h, j + lo_w]``, 0 outside ``x``:
    each group's channels last, in a frame that holds every position a conv reads
    (``lo`` < 0 pads, ``lo`` > 0 crops), so a tile row is built without bounds checks."""
    batch, ch, in_h, in_w = x.shape
    groups, height = xg.shape[1], xg.shape[2]
    c_g = ch // groups
    width = xg.shape[3] // c_g
    zero = xg.dtype.type(0)
    j0 = min(max(-lo_w, 0), width)  # buffer columns j0 .. j1-1 hold input columns
    j1 = max(min(in_w - lo_w, width), j0)
    for job in prange(batch * groups * height):
        n, g, i = job // (groups * height), (job // height) % groups, job % height
        dst = xg[n, g, i]
        ih = i + lo_h
        if ih < 0 or ih >= in_h:
            fill(dst, zero)
        else:
            fill(dst[:j0 * c_g], zero)
            fill(dst[j1 * c_g:], zero)
            src = x[n, g * c_g:(g + 1) * c_g, ih]
            # gather a column's channels, write contiguously (2-3x faster than the
            # reverse on this machine: the writes are what the cache has to keep)
            for j in range(j0, j1):
                run = dst[j * c_g:(j + 1) * c_g]
                for c in range(c_g):
                    run[c] = src[c, j + lo_w]


@njit(inline="always")
def _fill_tile(xg, n, g, p0, count, tile, geometry, kh, kw, out_w):
    """Rows ``0 .. count-1`` of ``tile``: the receptive fields of pixels ``p0 ..``, in
    ``(r, s, c)`` order.  ``geometry``'s pads are minus the frame's offsets (``<= 0``), so
    every tap lies inside ``xg``; at dilation 1 along W a tap row is one run of
    ``kW * C_g`` values."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    c_g = tile.shape[1] // (kh * kw)
    run = kw * c_g
    for i in range(count):
        oh, ow = (p0 + i) // out_w, (p0 + i) % out_w
        row = tile[i]
        left = (ow * sw - pw) * c_g
        for r in range(kh):
            src = xg[n, g, oh * sh + r * dh - ph]
            if dw == 1:
                copy(row[r * run:(r + 1) * run], src[left:left + run])
            else:
                for s in range(kw):
                    at = left + s * dw * c_g
                    copy(row[r * run + s * c_g:r * run + (s + 1) * c_g], src[at:at + c_g])


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def _forward_tiles(xg, wp, bias, out, tiles, geometry, kh, kw):
    # xg (N, G, H', W'*C_g) framed channels-last; wp (G, K_g, kh*kw*C_g); out (N, K, OH, OW)
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
            _fill_tile(xg, n, g, p0, count, tile, geometry, kh, kw, out_w)
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


def _reach(out_size, stride, dilation, taps, pad):
    """First and one-past-last input index a conv reads along one axis (either may lie
    outside the input: the frame pads or crops)."""
    return -pad, (out_size - 1) * stride + (taps - 1) * dilation - pad + 1


def _framed(x, groups, rows, cols):
    """``x`` copied into the frame ``rows = (lo, hi)``, ``cols = (lo, hi)`` of input
    positions, channels last per group (:func:`to_padded_groups`)."""
    batch, ch = x.shape[0], x.shape[1]
    xg = scratch("framed", (batch, groups, rows[1] - rows[0], (cols[1] - cols[0]) * (ch // groups)),
                 x.dtype)
    to_padded_groups(x, xg, rows[0], cols[0])
    return xg


def _run(xg, origin, packed, bias, out, geometry, kh, kw):
    """The tiled forward of ``geometry`` on ``xg``, a frame whose first row and column
    are input position ``origin``."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    tiles = scratch("tiles", (numba.get_num_threads(), config.TILED_PIXELS, packed.shape[2]),
                    xg.dtype)
    _forward_tiles(xg, packed, bias, out, tiles,
                   (sh, sw, ph + origin[0], pw + origin[1], dh, dw, groups), kh, kw)


def conv2d_forward_tiled(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    kh, kw = weight.shape[2], weight.shape[3]
    if out.size == 0:
        return
    rows = _reach(out.shape[2], sh, dh, kh, ph)
    cols = _reach(out.shape[3], sw, dw, kw, pw)
    _run(_framed(x, groups, rows, cols), (rows[0], cols[0]), _pack(weight, groups), bias,
         out, geometry, kh, kw)


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
    phases = []  # (target, taps_r, taps_s, the phase conv's geometry)
    for a in range(sh):
        taps_r, pad_h, dil_h = _phase_taps(a, sh, ph, dh, kh)
        for b in range(sw):
            taps_s, pad_w, dil_w = _phase_taps(b, sw, pw, dw, kw)
            target = grad_in[:, :, a::sh, b::sw]
            if not taps_r or not taps_s or target.size == 0:
                target[...] = 0
            else:
                phases.append((target, taps_r, taps_s, (1, 1, pad_h, pad_w, dil_h, dil_w, groups)))
    if not phases:
        return
    # one frame of grad_out that covers what every phase reads
    reach_r = [_reach(t.shape[2], 1, geo[4], len(tr), geo[2]) for t, tr, _, geo in phases]
    reach_s = [_reach(t.shape[3], 1, geo[5], len(ts), geo[3]) for t, _, ts, geo in phases]
    rows = (min(r[0] for r in reach_r), max(r[1] for r in reach_r))
    cols = (min(r[0] for r in reach_s), max(r[1] for r in reach_s))
    framed = _framed(grad_out, groups, rows, cols)
    for target, taps_r, taps_s, phase_geometry in phases:
        sub = w[:, :, :, taps_r][:, :, :, :, taps_s]  # (G, K_g, C_g, R', S')
        packed = np.ascontiguousarray(sub.transpose(0, 2, 3, 4, 1)).reshape(
            groups, c_g, len(taps_r) * len(taps_s) * k_g)
        out = grad_in if sh == sw == 1 else scratch("phase", target.shape, grad_in.dtype)
        _run(framed, (rows[0], cols[0]), packed, zero_bias, out, phase_geometry, len(taps_r),
             len(taps_s))
        if out is not grad_in:
            target[...] = out


def conv2d_grad_weight_tiled(x, grad_out, grad_weight, geometry):
    grad_weight_chunks(x, grad_out, grad_weight, geometry, gemm_nt)
