"""Dense convolution on the GPU as implicit GEMM: the twins of ``kernels/cpu/conv/tiled.py``.

Each kernel is a matrix product whose operands are gathered from the conv's arrays as
the tiles are loaded (no im2col buffer):

* ``conv2d_forward_tiled``      M = N*OH*OW pixels, N = K_g channels, K = C_g*kH*kW
* ``conv2d_grad_input_tiled``   M = N*H*W pixels, N = C_g, K = K_g * (taps of the
  pixel's stride phase): one launch over all stride phases (grid z = group x phase),
  each phase a dense product over only the taps that reach it, so there is no modulo in
  the main loop and a pixel no tap reaches gets an exact zero.  It is also the
  transposed conv's forward.
* ``conv2d_grad_weight_tiled``  M = K_g, N = C_g*kH*kW, K = N*OH*OW, split-K: each grid
  slice y sums one contiguous run of pixels into a partial buffer; ``_sum_splits`` then
  adds the slices in a fixed order.  No atomics: bit-identical run after run.  The bias
  gradient rides along as one more column of the partials (a row sum of grad_output
  tiles the first column block already holds in shared memory).

How: a block computes a ``BM x BN`` output tile with ``THREADS = (BM/TM)*(BN/TN)``
threads, each a ``TM x TN`` register tile (``cuda.local.array`` with constant indices:
registers, no local memory).  Operand tiles ``BK`` deep sit in shared memory, padded by
one column against bank conflicts; the next tile is fetched into registers while the
current one is multiplied (one shared buffer, two barriers per step).  Loads run along
the operand's contiguous axis (output pixels, or grad_output's pixels in the grad
weight), every load bounds-guarded, zeros outside, so any shape works with any tile.
Arrays are passed flat (fewer kernel parameters per launch), sizes as an int32 tuple;
offsets are numba's 64-bit integers, indexed as unsigned (no negative-index fix-up) and
advanced by compares rather than divided (64-bit divisions cost registers).  A kernel is
built per (tile, dtype, variant), compiled with an explicit signature and a register cap
for two blocks per SM; float32 kernels do float32 arithmetic only.

The rule: the tile and whether to use this family at all (vs ``kernels/cuda/conv.py``'s
direct kernels for tiny layers) are the tuner's (``kernels/cuda/tuner.py``); the
kernels themselves take what they are given.  The static report of each kernel
(registers, spills, occupancy, roofline) is ``docs/benchmarks/gpu-static.md``.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np
from numba import cuda, int32, types, uint64

from ... import config
from . import conv
from ._launch import MAX_GRID_YZ, kernel_factory, launch, launch_1d

Tile = namedtuple("Tile", "bm bn bk tm tn")
Tile.threads = property(lambda t: (t.bm // t.tm) * (t.bn // t.tn))

# CUTLASS's SIMT default: 256 threads, 8x8 outputs each (64 accumulators in registers).
TILE_LARGE = Tile(128, 128, 8, 8, 8)
# Small layers (few output channels or pixels): 4x4 outputs per thread, 4x the blocks.
TILE_SMALL = Tile(64, 64, 8, 4, 4)
TILES = (TILE_LARGE, TILE_SMALL)

PAD = 1            # shared-memory row padding against bank conflicts


def check_tile(tile: Tile):
    """The divisibility the kernels' load loops assume."""
    t = tile.threads
    pow2 = all(v & (v - 1) == 0 for v in (tile.bm, tile.bk, tile.bm // tile.tm, t))
    ok = (pow2 and tile.bm % tile.tm == 0 and tile.bn % tile.tn == 0 and t % tile.bm == 0
          and t % tile.bk == 0 and (tile.bm * tile.bk) % t == 0 and (tile.bk * tile.bn) % t == 0
          and t <= 1024)
    if not ok:
        raise ValueError(f"tile {tile}: bm, bk and bm/tm must be powers of two, and its "
                         f"loads must divide evenly among its {t} threads")
    return tile


def register_budget(tile: Tile, dtype: str, blocks: int = 2) -> int:
    """Registers per thread that let ``blocks`` blocks share an SM (65,536 registers on
    sm_90).  Two blocks fit every float32 tiled kernel without spilling but the grad
    input at 8x8 outputs per thread, whose phase bookkeeping needs ~166 (numba's integers
    are 64-bit): it gets one block per SM rather than spills.  float64 accumulators take
    two registers each: those kernels get one block per SM (docs/benchmarks/gpu-static.md)."""
    if np.dtype(dtype) == np.float64:
        blocks = 1
    return min(255, 65536 // (blocks * tile.threads) // 8 * 8)


def _jit(sig, max_registers):
    """``cuda.jit`` with an explicit signature and a register cap (the simulator, which
    has no registers, takes no cap)."""
    from numba import config as numba_config

    if numba_config.ENABLE_CUDASIM:
        return cuda.jit(sig)
    return cuda.jit(sig, max_registers=max_registers)


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _nb(dtype):
    return types.float32 if np.dtype(dtype) == np.float32 else types.float64


def _flat(a):
    return a.reshape(a.size)


def _geometry(*values):
    return tuple(np.int32(v) for v in values)


@cuda.jit(device=True)
def _advance(outer, mid, inner, step, mid_len, inner_len):
    """(outer, mid, inner), the digits of a K index in the mixed radix (.., mid_len,
    inner_len), moved on by ``step``: a few compares instead of two integer divisions
    per operand load (64-bit divisions cost dozens of instructions and registers)."""
    inner += step
    while inner >= inner_len:
        inner -= inner_len
        mid += 1
    while mid >= mid_len:
        mid -= mid_len
        outer += 1
    return outer, mid, inner


@functools.lru_cache(maxsize=None)
def _tile_product(tile: Tile, dtype: str):
    """The register-tile step every tiled kernel shares: ``acc[i, j] += A[k, a_col +
    i*ROWS] * B[k, b_col + j*COLS]`` over the ``BK`` rows of the shared tiles (flat,
    padded rows; uint64 offsets: one base register + a constant each once unrolled).
    Inlined into the kernel, so ``acc`` and the fragments stay in registers."""
    BM, BN, BK, TM, TN = tile
    ROWS, COLS = BM // TM, BN // TN
    A_WIDTH, B_WIDTH = BM + PAD, BN + PAD

    @cuda.jit(device=True, inline="always")
    def multiply(a_tile, b_tile, a_frag, b_frag, acc, a_col, b_col):
        for kk in range(BK):
            for i in range(TM):
                a_frag[i] = a_tile[uint64(kk * A_WIDTH + i * ROWS + a_col)]
            for j in range(TN):
                b_frag[j] = b_tile[uint64(kk * B_WIDTH + j * COLS + b_col)]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a_frag[i] * b_frag[j]

    return multiply


# --------------------------------------------------------------------------- forward
@kernel_factory
def forward_kernel(tile: Tile, dtype: str, pointwise: bool):
    """out[n, k, oh, ow] = bias[k] + sum_{c, r, s} x[n, c, ih, iw] * w[k, c, r, s]
    for one group (grid z), tile of pixels (grid x) x tile of channels (grid y)."""
    BM, BN, BK, TM, TN = check_tile(tile)
    THREADS = tile.threads
    A_WIDTH, B_WIDTH = BM + PAD, BN + PAD    # shared tile rows, padded
    A_SIZE, B_SIZE = BK * A_WIDTH, BK * B_WIDTH
    ROWS_SHIFT, BM_SHIFT, BK_SHIFT = _log2(BM // TM), _log2(BM), _log2(BK)
    ROWS, COLS = BM // TM, BN // TN          # threads along pixels / along channels
    A_LOADS, A_STEP = BM * BK // THREADS, THREADS // BM
    B_LOADS, B_STEP = BK * BN // THREADS, THREADS // BK
    T = _nb(dtype)
    multiply = _tile_product(tile, dtype)
    arr = T[::1]
    sig = types.void(arr, arr, arr, arr, types.UniTuple(int32, 16))

    @_jit(sig, register_budget(tile, dtype))
    def kernel(x, w, bias, out, geo):
        (batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
         sh, sw, ph, pw, dh, dw, groups) = geo
        a_tile = cuda.shared.array(A_SIZE, T)
        b_tile = cuda.shared.array(B_SIZE, T)
        acc = cuda.local.array((TM, TN), T)
        a_next = cuda.local.array(A_LOADS, T)
        b_next = cuda.local.array(B_LOADS, T)
        a_frag = cuda.local.array(TM, T)
        b_frag = cuda.local.array(TN, T)
        zero = T(0)
        tid = cuda.threadIdx.x & (THREADS - 1)  # a no-op that tells LLVM 0 <= tid
        # Shared loads index with uint64: numba adds no negative-index fix-up, so each
        # is one base register + a constant offset (the fix-ups cost ~60 registers).
        a_col = tid & (ROWS - 1)      # this thread's outputs: rows a_col + i*ROWS
        b_col = tid >> ROWS_SHIFT     # ... and columns b_col + j*COLS
        g = cuda.blockIdx.z
        c_g = in_ch // groups
        k_g = out_ch // groups
        taps = kh * kw
        k_dim = c_g * taps
        hw_out = out_h * out_w
        hw_in = in_h * in_w
        m0 = cuda.blockIdx.x * BM
        n0 = cuda.blockIdx.y * BN
        # The pixel this thread loads for A: fixed for the whole loop.
        a_row = tid & (BM - 1)
        a_k = tid >> BM_SHIFT
        m = m0 + a_row
        m_ok = m < batch * hw_out
        img = m // hw_out
        pix = m - img * hw_out
        oh = pix // out_w
        ow = pix - oh * out_w
        ih0 = oh * sh - ph
        iw0 = ow * sw - pw
        x_base = (img * in_ch + g * c_g) * hw_in
        x_pixel = x_base + pix    # 1x1 at stride 1: the pixel itself, channel by channel
        b_k = tid & (BK - 1)
        b_n = tid >> BK_SHIFT
        w_base = g * k_g * k_dim
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        # (c, r, s) of this thread's first A column, k = a_k + t*BK, kept up to date
        a_c = a_k // taps
        a_r = (a_k - a_c * taps) // kw
        a_s = a_k - a_c * taps - a_r * kw
        n_tiles = (k_dim + BK - 1) // BK
        for t in range(n_tiles + 1):
            if t < n_tiles:  # fetch tile t into registers (in flight during the product)
                k0 = t * BK
                for e in range(A_LOADS):
                    kk = k0 + a_k + e * A_STEP
                    v = zero
                    if m_ok and kk < k_dim:
                        if pointwise:
                            v = x[uint64(x_pixel + kk * hw_in)]
                        else:
                            c, r, s = _advance(a_c, a_r, a_s, e * A_STEP, kh, kw)
                            ih = ih0 + r * dh
                            iw = iw0 + s * dw
                            if 0 <= ih < in_h and 0 <= iw < in_w:
                                v = x[uint64(x_base + c * hw_in + ih * in_w + iw)]
                    a_next[e] = v
                if not pointwise:
                    a_c, a_r, a_s = _advance(a_c, a_r, a_s, BK, kh, kw)
                for e in range(B_LOADS):
                    col = n0 + b_n + e * B_STEP
                    kk = k0 + b_k
                    v = zero
                    if col < k_g and kk < k_dim:
                        v = w[uint64(w_base + col * k_dim + kk)]
                    b_next[e] = v
            if t > 0:  # multiply tile t - 1
                multiply(a_tile, b_tile, a_frag, b_frag, acc, a_col, b_col)
            cuda.syncthreads()  # every thread is done reading tile t - 1
            if t < n_tiles:
                for e in range(A_LOADS):
                    a_tile[(a_k + e * A_STEP) * A_WIDTH + a_row] = a_next[e]
                for e in range(B_LOADS):
                    b_tile[b_k * B_WIDTH + b_n + e * B_STEP] = b_next[e]
            cuda.syncthreads()  # tile t is in shared memory
        k_first = g * k_g + n0 + b_col     # this thread's first output channel
        for j in range(TN):  # its biases, read once (out may alias bias for all LLVM knows)
            b_frag[j] = bias[uint64(k_first + j * COLS)] if n0 + b_col + j * COLS < k_g else zero
        m = m0 + a_col
        img = m // hw_out
        pix = m - img * hw_out
        for i in range(TM):
            if m < batch * hw_out:
                at = (img * out_ch + k_first) * hw_out + pix
                for j in range(TN):
                    if n0 + b_col + j * COLS < k_g:
                        out[uint64(at)] = acc[i, j] + b_frag[j]
                    at += COLS * hw_out
            m += ROWS  # the next output row of this thread's tile, without a division
            img, _, pix = _advance(img, 0, pix, ROWS, 1, hw_out)

    return kernel


def conv2d_forward_tiled(x, weight, bias, out, geometry, tile=None):
    """``out = conv(x, weight) + bias`` as one implicit-GEMM launch (``tile``: a
    :class:`Tile`; None asks the tuner)."""
    if tile is None:
        from .tuner import run_conv

        return run_conv("conv2d_forward", (x, weight, bias, out, geometry))
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, c_g, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    pointwise = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
    kernel = forward_kernel(tile, np.dtype(out.dtype).name, pointwise)
    grid = (-(-batch * out_h * out_w // tile.bm), -(-(out_ch // groups) // tile.bn), groups)
    if grid[2] > MAX_GRID_YZ:  # more groups than a grid's z extent: the direct kernel
        return conv.conv2d_forward(x, weight, bias, out, geometry)
    launch(kernel, grid, tile.threads, _flat(x), _flat(weight), bias, _flat(out),
           _geometry(batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
                     sh, sw, ph, pw, dh, dw, groups))


# --------------------------------------------------------------------------- grad input
@kernel_factory
def grad_input_kernel(tile: Tile, dtype: str):
    """grad_in[n, c, ih, iw] = sum_{k, r, s} grad_out[n, k, oh, ow] * w[k, c, r, s] over
    the taps with ih = oh*sh - ph + r*dh (and likewise w); grid z = group x stride phase
    (qh, qw): the pixels ih = qh + jh*sh, iw = qw + jw*sw, whose taps are
    r = r0 + t*rsh with oh = jh + bh - t*eh (bh from r0; rsh, eh from the host)."""
    BM, BN, BK, TM, TN = check_tile(tile)
    THREADS = tile.threads
    A_WIDTH, B_WIDTH = BM + PAD, BN + PAD    # shared tile rows, padded
    A_SIZE, B_SIZE = BK * A_WIDTH, BK * B_WIDTH
    ROWS_SHIFT, BM_SHIFT, BK_SHIFT = _log2(BM // TM), _log2(BM), _log2(BK)
    ROWS, COLS = BM // TM, BN // TN
    A_LOADS, A_STEP = BM * BK // THREADS, THREADS // BM
    B_LOADS, B_STEP = BK * BN // THREADS, THREADS // BK
    T = _nb(dtype)
    multiply = _tile_product(tile, dtype)
    arr = T[::1]
    sig = types.void(arr, arr, arr, types.UniTuple(int32, 20))

    @_jit(sig, register_budget(tile, dtype, 1 if TM * TN >= 64 else 2))
    def kernel(grad_out, w, grad_in, geo):
        (batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
         sh, sw, ph, pw, dh, dw, groups, rsh, rsw, eh, ew) = geo
        a_tile = cuda.shared.array(A_SIZE, T)
        b_tile = cuda.shared.array(B_SIZE, T)
        acc = cuda.local.array((TM, TN), T)
        a_next = cuda.local.array(A_LOADS, T)
        b_next = cuda.local.array(B_LOADS, T)
        a_frag = cuda.local.array(TM, T)
        b_frag = cuda.local.array(TN, T)
        zero = T(0)
        tid = cuda.threadIdx.x & (THREADS - 1)  # a no-op that tells LLVM 0 <= tid
        # Shared loads index with uint64: numba adds no negative-index fix-up, so each
        # is one base register + a constant offset (the fix-ups cost ~60 registers).
        a_col = tid & (ROWS - 1)      # this thread's outputs: rows a_col + i*ROWS
        b_col = tid >> ROWS_SHIFT     # ... and columns b_col + j*COLS
        phases = sh * sw
        g = cuda.blockIdx.z // phases
        phase = cuda.blockIdx.z - g * phases
        qh = phase // sw
        qw = phase - qh * sw
        # This phase's pixels: rows qh, qh + sh, ... below in_h (likewise columns).
        rows_q = (in_h - qh + sh - 1) // sh
        cols_q = (in_w - qw + sw - 1) // sw
        m_total = batch * rows_q * cols_q
        m0 = cuda.blockIdx.x * BM
        if m0 >= m_total:
            return  # the whole block: this phase has fewer pixels than the largest
        # Its taps: the first r with (qh + ph - r*dh) divisible by sh, then every rsh-th.
        r0 = -1
        for r in range(kh):
            if r0 < 0 and (qh + ph - r * dh) % sh == 0:
                r0 = r
        s0 = -1
        for s in range(kw):
            if s0 < 0 and (qw + pw - s * dw) % sw == 0:
                s0 = s
        taps_h = 0 if r0 < 0 else (kh - 1 - r0) // rsh + 1
        taps_w = 0 if s0 < 0 else (kw - 1 - s0) // rsw + 1
        bh = (qh + ph - r0 * dh) // sh
        bw = (qw + pw - s0 * dw) // sw
        taps = taps_h * taps_w
        c_g = in_ch // groups
        k_g = out_ch // groups
        k_dim = k_g * taps
        hw_out = out_h * out_w
        plane_q = rows_q * cols_q
        n0 = cuda.blockIdx.y * BN
        a_row = tid & (BM - 1)
        a_k = tid >> BM_SHIFT
        m = m0 + a_row
        m_ok = m < m_total
        img = m // plane_q
        pix = m - img * plane_q
        jh = pix // cols_q
        jw = pix - jh * cols_q
        oh_first = jh + bh        # output row / column that tap (0, 0) of this pixel reads
        ow_first = jw + bw
        go_first = (img * out_ch + g * k_g) * hw_out + oh_first * out_w + ow_first
        step_h = eh * out_w
        # weight offset of channel c for (k, th, tw): w_first + k*w_k + th*w_th + tw*rsw + c*kh*kw
        w_k = c_g * kh * kw
        w_th = rsh * kw
        w_first = g * k_g * w_k + r0 * kw + s0
        b_k = tid & (BK - 1)
        b_n = tid >> BK_SHIFT
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        # (k, th, tw) of this thread's first A column and of its B row, kept up to date
        a_kq, a_th, a_tw = 0, 0, 0
        b_kq, b_th, b_tw = 0, 0, 0
        if taps > 0:
            a_kq, a_th, a_tw = _advance(0, 0, 0, a_k, taps_h, taps_w)
            b_kq, b_th, b_tw = _advance(0, 0, 0, b_k, taps_h, taps_w)
        n_tiles = (k_dim + BK - 1) // BK
        for t in range(n_tiles + 1):
            if t < n_tiles:
                k0 = t * BK
                for e in range(A_LOADS):
                    kk = k0 + a_k + e * A_STEP
                    v = zero
                    if m_ok and kk < k_dim:
                        k, th, tw = _advance(a_kq, a_th, a_tw, e * A_STEP, taps_h, taps_w)
                        oh = oh_first - th * eh
                        ow = ow_first - tw * ew
                        if 0 <= oh < out_h and 0 <= ow < out_w:
                            v = grad_out[uint64(go_first + k * hw_out - th * step_h - tw * ew)]
                    a_next[e] = v
                kk = k0 + b_k
                w_row = w_first + b_kq * w_k + b_th * w_th + b_tw * rsw
                for e in range(B_LOADS):
                    c = n0 + b_n + e * B_STEP
                    v = zero
                    if c < c_g and kk < k_dim:
                        v = w[uint64(w_row + c * kh * kw)]
                    b_next[e] = v
                a_kq, a_th, a_tw = _advance(a_kq, a_th, a_tw, BK, taps_h, taps_w)
                b_kq, b_th, b_tw = _advance(b_kq, b_th, b_tw, BK, taps_h, taps_w)
            if t > 0:
                multiply(a_tile, b_tile, a_frag, b_frag, acc, a_col, b_col)
            cuda.syncthreads()  # every thread is done reading tile t - 1
            if t < n_tiles:
                for e in range(A_LOADS):
                    a_tile[(a_k + e * A_STEP) * A_WIDTH + a_row] = a_next[e]
                for e in range(B_LOADS):
                    b_tile[b_k * B_WIDTH + b_n + e * B_STEP] = b_next[e]
            cuda.syncthreads()  # tile t is in shared memory
        hw_in = in_h * in_w
        m = m0 + a_col
        img = m // plane_q
        jh = (m - img * plane_q) // cols_q
        jw = m - img * plane_q - jh * cols_q
        for i in range(TM):
            if m < m_total:
                at = ((img * in_ch + g * c_g + n0 + b_col) * hw_in + (qh + jh * sh) * in_w
                      + qw + jw * sw)
                for j in range(TN):
                    if n0 + b_col + j * COLS < c_g:
                        grad_in[uint64(at)] = acc[i, j]
                    at += COLS * hw_in
            m += ROWS  # the next output row of this thread's tile, without a division
            img, jh, jw = _advance(img, jh, jw, ROWS, rows_q, cols_q)

    return kernel


def conv2d_grad_input_tiled(grad_out, weight, grad_in, geometry, tile=None):
    """``grad_in`` of a conv (the transposed conv of ``grad_out``), one launch."""
    if tile is None:
        from .tuner import run_conv

        return run_conv("conv2d_grad_input", (grad_out, weight, grad_in, geometry))
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = grad_in.shape
    out_ch, c_g, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    # Taps reaching one phase are every (s / gcd(s, d))-th; their outputs step by d / gcd.
    rsh, rsw = sh // np.gcd(sh, dh), sw // np.gcd(sw, dw)
    eh, ew = dh // np.gcd(sh, dh), dw // np.gcd(sw, dw)
    biggest_phase = batch * (-(-in_h // sh)) * (-(-in_w // sw))
    grid = (-(-biggest_phase // tile.bm), -(-c_g // tile.bn), groups * sh * sw)
    if grid[2] > MAX_GRID_YZ:  # groups x phases past a grid's z extent: the direct kernel
        return conv.conv2d_grad_input(grad_out, weight, grad_in, geometry)
    launch(grad_input_kernel(tile, np.dtype(grad_in.dtype).name), grid, tile.threads,
           _flat(grad_out), _flat(weight), _flat(grad_in),
           _geometry(batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
                     sh, sw, ph, pw, dh, dw, groups, rsh, rsw, eh, ew))


# --------------------------------------------------------------------------- grad weight
@kernel_factory
def grad_weight_kernel(tile: Tile, dtype: str):
    """partials[split, k, col] = sum over the split's pixels p of grad_out[p, k] *
    x[p, col], col = (c, r, s); partials[split, k, C_g*kH*kW] = sum of grad_out[p, k]
    (the bias gradient, used when there is a bias).  Grid x = (row tile, column tile),
    y = split, z = group."""
    BM, BN, BK, TM, TN = check_tile(tile)
    THREADS = tile.threads
    A_WIDTH, B_WIDTH = BM + PAD, BN + PAD    # shared tile rows, padded
    A_SIZE, B_SIZE = BK * A_WIDTH, BK * B_WIDTH
    ROWS_SHIFT, BK_SHIFT = _log2(BM // TM), _log2(BK)
    ROWS, COLS = BM // TM, BN // TN
    A_LOADS, B_LOADS = BM * BK // THREADS, BK * BN // THREADS
    STEP = THREADS // BK     # rows (A) / columns (B) one load pass covers
    T = _nb(dtype)
    multiply = _tile_product(tile, dtype)
    arr = T[::1]
    sig = types.void(arr, arr, arr, types.UniTuple(int32, 18))

    @_jit(sig, register_budget(tile, dtype))
    def kernel(x, grad_out, partials, geo):
        (batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
         sh, sw, ph, pw, dh, dw, groups, chunk, tiles_m) = geo
        a_tile = cuda.shared.array(A_SIZE, T)
        b_tile = cuda.shared.array(B_SIZE, T)
        acc = cuda.local.array((TM, TN), T)
        a_next = cuda.local.array(A_LOADS, T)
        b_next = cuda.local.array(B_LOADS, T)
        a_frag = cuda.local.array(TM, T)
        b_frag = cuda.local.array(TN, T)
        col_c = cuda.local.array(B_LOADS, int32)   # this thread's B columns: (c, r, s)
        col_r = cuda.local.array(B_LOADS, int32)
        col_s = cuda.local.array(B_LOADS, int32)
        zero = T(0)
        tid = cuda.threadIdx.x & (THREADS - 1)  # a no-op that tells LLVM 0 <= tid
        # Shared loads index with uint64: numba adds no negative-index fix-up, so each
        # is one base register + a constant offset (the fix-ups cost ~60 registers).
        a_col = tid & (ROWS - 1)      # this thread's outputs: rows a_col + i*ROWS
        b_col = tid >> ROWS_SHIFT     # ... and columns b_col + j*COLS
        g = cuda.blockIdx.z
        tile_m = cuda.blockIdx.x % tiles_m
        m0 = tile_m * BM
        n0 = (cuda.blockIdx.x // tiles_m) * BN
        c_g = in_ch // groups
        k_g = out_ch // groups
        taps = kh * kw
        k_dim = c_g * taps
        hw_out = out_h * out_w
        hw_in = in_h * in_w
        p_total = batch * hw_out
        p_start = cuda.blockIdx.y * chunk
        p_end = min(p_start + chunk, p_total)
        # Loads run along the pixels (grad_out's and x's contiguous axis): this thread
        # loads pixel p0 + tid % BK of each tile for every row and column it loads.
        kk_own = tid & (BK - 1)
        first = tid >> BK_SHIFT
        for e in range(B_LOADS):
            col = n0 + first + e * STEP
            c = col // taps
            rs = col - c * taps
            r = rs // kw
            col_c[e] = c if col < k_dim else -1
            col_r[e] = r * dh
            col_s[e] = (rs - r * kw) * dw
        bias_acc = zero
        sums_bias = n0 == 0 and tid < BM   # (always: BM adds per tile, and one variant)
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = zero
        n_tiles = (p_end - p_start + BK - 1) // BK
        for t in range(n_tiles + 1):
            if t < n_tiles:
                p = p_start + t * BK + kk_own
                p_ok = p < p_end
                img = p // hw_out
                pix = p - img * hw_out
                oh = pix // out_w
                ow = pix - oh * out_w
                for e in range(A_LOADS):
                    row = m0 + first + e * STEP
                    v = zero
                    if p_ok and row < k_g:
                        v = grad_out[uint64((img * out_ch + g * k_g + row) * hw_out + pix)]
                    a_next[e] = v
                for e in range(B_LOADS):
                    v = zero
                    if p_ok and col_c[e] >= 0:
                        ih = oh * sh - ph + col_r[e]
                        iw = ow * sw - pw + col_s[e]
                        if 0 <= ih < in_h and 0 <= iw < in_w:
                            v = x[uint64((img * in_ch + g * c_g + col_c[e]) * hw_in + ih * in_w + iw)]
                    b_next[e] = v
            if t > 0:
                multiply(a_tile, b_tile, a_frag, b_frag, acc, a_col, b_col)
                if sums_bias:  # the bias gradient: grad_out's row sums, in a fixed order
                    for kk in range(BK):
                        bias_acc += a_tile[kk * A_WIDTH + tid]
            cuda.syncthreads()  # every thread is done reading tile t - 1
            if t < n_tiles:
                for e in range(A_LOADS):
                    a_tile[kk_own * A_WIDTH + first + e * STEP] = a_next[e]
                for e in range(B_LOADS):
                    b_tile[kk_own * B_WIDTH + first + e * STEP] = b_next[e]
            cuda.syncthreads()  # tile t is in shared memory
        base = cuda.blockIdx.y * out_ch + g * k_g
        for i in range(TM):
            row = m0 + a_col + i * ROWS
            if row < k_g:
                for j in range(TN):
                    col = n0 + b_col + j * COLS
                    if col < k_dim:
                        partials[uint64((base + row) * (k_dim + 1) + col)] = acc[i, j]
        if sums_bias and m0 + tid < k_g:
            partials[uint64((base + m0 + tid) * (k_dim + 1) + k_dim)] = bias_acc

    return kernel


@cuda.jit
def _sum_splits(total, partials, splits, grad_weight, grad_bias, with_bias):
    """grad_weight[k, col] = sum over splits, in split order, of partials[split, k, col];
    the last column of each row is grad_bias[k] (when ``with_bias``)."""
    cols = partials.shape[2]
    out_ch = partials.shape[1]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        k = i // cols
        col = i - k * cols
        acc = partials[0, k, col]
        for split in range(1, splits):
            acc += partials[split, k, col]
        if col < cols - 1:
            grad_weight[k * (cols - 1) + col] = acc
        elif with_bias and k < out_ch:
            grad_bias[k] = acc


def sum_splits(partials, grad_weight, grad_bias):
    """The fixed-order reduction of a split-K grad weight (``partials``: (splits,
    C_out, cols + 1)) into ``grad_weight`` (flat) and ``grad_bias`` (or None)."""
    splits, out_ch, cols = partials.shape
    with_bias = grad_bias is not None
    launch_1d(_sum_splits, out_ch * cols, partials, splits, grad_weight,
              grad_bias if with_bias else grad_weight, with_bias)


def split_count(blocks: int, pixels: int, bk: int) -> tuple[int, int]:
    """(splits, pixels per split) for a split-K grad weight: enough blocks for
    ``config.CUDA_BLOCKS_PER_SM`` per SM, each split at least
    ``config.CUDA_SPLIT_MIN_PIXELS`` pixels (a multiple of ``bk``)."""
    from .tuner import sm_count

    target = config.CUDA_BLOCKS_PER_SM * sm_count()
    splits = max(1, min(-(-target // blocks), -(-pixels // config.CUDA_SPLIT_MIN_PIXELS),
                        MAX_GRID_YZ))
    chunk = -(-(-(-pixels // splits)) // bk) * bk
    return -(-pixels // chunk), chunk


def conv2d_grad_weight_tiled(x, grad_out, grad_weight, geometry, tile=None, grad_bias=None):
    """``grad_weight`` (and ``grad_bias`` when given) of a conv: split-K partial products,
    then their fixed-order sum; two launches."""
    if tile is None:
        from .tuner import run_conv

        return run_conv("conv2d_grad_weight", (x, grad_out, grad_weight, geometry),
                        grad_bias=grad_bias)
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, c_g, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    k_dim = c_g * kh * kw
    tiles_m, tiles_n = -(-(out_ch // groups) // tile.bm), -(-k_dim // tile.bn)
    splits, chunk = split_count(tiles_m * tiles_n * groups, batch * out_h * out_w, tile.bk)
    partials = cuda.device_array((splits, out_ch, k_dim + 1), dtype=grad_weight.dtype,
                                 stream=config.CUDA_STREAM)
    kernel = grad_weight_kernel(tile, np.dtype(grad_weight.dtype).name)
    launch(kernel, (tiles_m * tiles_n, splits, groups), tile.threads,
           _flat(x), _flat(grad_out), _flat(partials),
           _geometry(batch, in_ch, in_h, in_w, out_ch, out_h, out_w, kh, kw,
                     sh, sw, ph, pw, dh, dw, groups, chunk, tiles_m))
    sum_splits(partials, _flat(grad_weight), grad_bias)


conv2d_grad_weight_tiled.folds_grad_bias = True
