"""Depthwise convolution on the GPU (``groups == C_in``, ``C_out = mult * C_in``): the
twins of ``kernels/cpu/conv/depthwise.py``.  Not a GEMM (one input channel per output
channel), so direct kernels, memory-bound, built to read each input value once from
global memory:

* ``conv2d_forward_depthwise``      out[n, k] = bias[k] + x[n, k // mult] (*) w[k]
* ``conv2d_grad_input_depthwise``   grad_in[n, c] = sum_j grad_out[n, c*mult + j] (*)^T w
* ``conv2d_grad_weight_depthwise``  w-grad and bias-grad: per-block partial sums over a
  run of pixels (a fixed-order tree in shared memory), then ``tiled.sum_splits`` adds
  the runs in order.  No atomics: bit-identical run after run.

How: a block owns a ``TH x TW`` tile of one output plane (``TH = rows * per_thread``,
``TW = cols`` threads across); it stages the input tile and its halo in shared memory
once (coalesced, zeros outside the image), keeps the plane's ``kH*kW`` weights in
registers, and each thread computes ``per_thread`` outputs down a column.  A kernel is
built per (kernel size, stride, dilation, dtype), so the tap loops unroll and the
stride-phase test of the grad input is a constant (none at stride 1).  Tiles whose
halo would not fit ``config.CUDA_DEPTHWISE_MAX_SHARED`` bytes run the direct kernels.
"""

from __future__ import annotations


import numpy as np
from numba import cuda, int32, types

from ... import config
from . import conv
from ._launch import MAX_GRID_YZ, kernel_factory, launch
from .tiled import _flat, _geometry, _nb, split_count, sum_splits

PAD = 1


def _shape():
    rows, cols, per = config.CUDA_DEPTHWISE_TILE
    return rows, cols, per, rows * cols


def _halo(th, tw, kh, kw, sh, sw, dh, dw):
    return (th - 1) * sh + (kh - 1) * dh + 1, (tw - 1) * sw + (kw - 1) * dw + 1


def _fits(rows, cols, dtype) -> bool:
    return rows * (cols + PAD) * np.dtype(dtype).itemsize <= config.CUDA_DEPTHWISE_MAX_SHARED


# --------------------------------------------------------------------------- forward
@kernel_factory
def forward_kernel(shape, kh, kw, sh, sw, dh, dw, dtype):
    ROWS, COLS, PER, THREADS = shape
    TH, TW = ROWS * PER, COLS
    IN_ROWS, IN_COLS = _halo(TH, TW, kh, kw, sh, sw, dh, dw)
    IN_WIDTH = IN_COLS + PAD
    TAPS = kh * kw
    T = _nb(dtype)
    arr = T[::1]

    @cuda.jit(types.void(arr, arr, arr, arr, types.UniTuple(int32, 10)))
    def kernel(x, w, bias, out, geo):
        in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, tiles_w, mult = geo
        tile = cuda.shared.array((IN_ROWS, IN_WIDTH), T)
        taps = cuda.local.array(TAPS, T)
        tid = cuda.threadIdx.x
        k = cuda.blockIdx.y
        img = cuda.blockIdx.z
        tr = cuda.blockIdx.x // tiles_w
        oh0 = tr * TH
        ow0 = (cuda.blockIdx.x - tr * tiles_w) * TW
        ih0 = oh0 * sh - ph
        iw0 = ow0 * sw - pw
        x_base = (img * in_ch + k // mult) * in_h * in_w
        for idx in range(tid, IN_ROWS * IN_COLS, THREADS):
            rr = idx // IN_COLS
            cc = idx - rr * IN_COLS
            ih = ih0 + rr
            iw = iw0 + cc
            v = T(0)
            if 0 <= ih < in_h and 0 <= iw < in_w:
                v = x[x_base + ih * in_w + iw]
            tile[rr, cc] = v
        for q in range(TAPS):
            taps[q] = w[k * TAPS + q]
        cuda.syncthreads()  # the input tile and its halo are in shared memory
        col = tid % COLS
        ow = ow0 + col
        out_base = (img * out_ch + k) * out_h * out_w
        for i in range(PER):
            row = tid // COLS + i * ROWS
            acc = bias[k]
            for r in range(kh):
                for s in range(kw):
                    acc += taps[r * kw + s] * tile[row * sh + r * dh, col * sw + s * dw]
            oh = oh0 + row
            if oh < out_h and ow < out_w:
                out[out_base + oh * out_w + ow] = acc

    return kernel


def conv2d_forward_depthwise(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    shape = _shape()
    th, tw = shape[0] * shape[2], shape[1]
    if not _fits(*_halo(th, tw, kh, kw, sh, sw, dh, dw), out.dtype) or batch > MAX_GRID_YZ:
        return conv.conv2d_forward(x, weight, bias, out, geometry)
    tiles_h, tiles_w = -(-out_h // th), -(-out_w // tw)
    kernel = forward_kernel(shape, kh, kw, sh, sw, dh, dw, np.dtype(out.dtype).name)
    launch(kernel, (tiles_h * tiles_w, out_ch, batch), shape[3], _flat(x), _flat(weight), bias,
           _flat(out), _geometry(in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, tiles_w,
                                 out_ch // in_ch))


# --------------------------------------------------------------------------- grad input
@kernel_factory
def grad_input_kernel(shape, kh, kw, sh, sw, dh, dw, dtype):
    ROWS, COLS, PER, THREADS = shape
    TH, TW = ROWS * PER, COLS
    # grad_out rows that a TH-row tile of grad_in reads: floor(a/s) .. floor(b/s)
    GO_ROWS = (TH - 1 + (kh - 1) * dh) // sh + 2
    GO_COLS = (TW - 1 + (kw - 1) * dw) // sw + 2
    GO_WIDTH = GO_COLS + PAD
    TAPS = kh * kw
    T = _nb(dtype)
    arr = T[::1]

    @cuda.jit(types.void(arr, arr, arr, types.UniTuple(int32, 9)))
    def kernel(grad_out, w, grad_in, geo):
        in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, tiles_w = geo
        tile = cuda.shared.array((GO_ROWS, GO_WIDTH), T)
        acc = cuda.local.array(PER, T)
        tid = cuda.threadIdx.x
        c = cuda.blockIdx.y
        img = cuda.blockIdx.z
        tr = cuda.blockIdx.x // tiles_w
        ih0 = tr * TH
        iw0 = (cuda.blockIdx.x - tr * tiles_w) * TW
        oh_lo = (ih0 + ph - (kh - 1) * dh) // sh   # floor division: may be negative
        ow_lo = (iw0 + pw - (kw - 1) * dw) // sw
        col = tid % COLS
        iw = iw0 + col
        for i in range(PER):
            acc[i] = T(0)
        mult = out_ch // in_ch
        for j in range(mult):
            k = c * mult + j
            go_base = (img * out_ch + k) * out_h * out_w
            for idx in range(tid, GO_ROWS * GO_COLS, THREADS):
                rr = idx // GO_COLS
                cc = idx - rr * GO_COLS
                oh = oh_lo + rr
                ow = ow_lo + cc
                v = T(0)
                if 0 <= oh < out_h and 0 <= ow < out_w:
                    v = grad_out[go_base + oh * out_w + ow]
                tile[rr, cc] = v
            cuda.syncthreads()  # this channel's grad_out tile is in shared memory
            # taps outside, this thread's PER outputs inside: the short inner loop
            # unrolls at any kernel size, so acc stays in registers
            for r in range(kh):
                for s in range(kw):
                    num_w = iw + pw - s * dw
                    if num_w % sw == 0:
                        weight = w[k * TAPS + r * kw + s]   # the same for the whole block
                        col = num_w // sw - ow_lo
                        for i in range(PER):
                            num_h = ih0 + tid // COLS + i * ROWS + ph - r * dh
                            if num_h % sh == 0:
                                acc[i] += weight * tile[num_h // sh - oh_lo, col]
            cuda.syncthreads()  # done with the tile before the next channel's replaces it
        base = (img * in_ch + c) * in_h * in_w
        for i in range(PER):
            ih = ih0 + tid // COLS + i * ROWS
            if ih < in_h and iw < in_w:
                grad_in[base + ih * in_w + iw] = acc[i]

    return kernel


def conv2d_grad_input_depthwise(grad_out, weight, grad_in, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = grad_in.shape
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    shape = _shape()
    th, tw = shape[0] * shape[2], shape[1]
    go_rows = (th - 1 + (kh - 1) * dh) // sh + 2
    go_cols = (tw - 1 + (kw - 1) * dw) // sw + 2
    if not _fits(go_rows, go_cols, grad_in.dtype) or batch > MAX_GRID_YZ:
        return conv.conv2d_grad_input(grad_out, weight, grad_in, geometry)
    tiles_h, tiles_w = -(-in_h // th), -(-in_w // tw)
    kernel = grad_input_kernel(shape, kh, kw, sh, sw, dh, dw, np.dtype(grad_in.dtype).name)
    launch(kernel, (tiles_h * tiles_w, in_ch, batch), shape[3], _flat(grad_out), _flat(weight),
           _flat(grad_in), _geometry(in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, tiles_w))


# --------------------------------------------------------------------------- grad weight
@kernel_factory
def grad_weight_kernel(threads, kh, kw, sh, sw, dh, dw, dtype, with_bias):
    """partials[split, k, r*kw + s] = sum over the split's pixels of grad_out * x at tap
    (r, s); partials[split, k, kh*kw] = sum of grad_out (the bias gradient).  Grid
    x = split, y = output channel."""
    TAPS = kh * kw
    # kernel rows summed per pass over the pixels: all of a 3x3's taps at once; one row
    # at a time for larger kernels, so the accumulators (indexed by unrolled loops) stay
    # in registers
    RPP = kh if TAPS <= 9 else 1
    SUMS = RPP * kw + 1          # + the bias gradient's sum
    T = _nb(dtype)
    arr = T[::1]

    @cuda.jit(types.void(arr, arr, arr, types.UniTuple(int32, 10)))
    def kernel(x, grad_out, partials, geo):
        batch, in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, chunk = geo
        red = cuda.shared.array(threads, T)
        acc = cuda.local.array(SUMS, T)
        tid = cuda.threadIdx.x
        split = cuda.blockIdx.x
        k = cuda.blockIdx.y
        c = k // (out_ch // in_ch)
        hw_out = out_h * out_w
        p_end = min((split + 1) * chunk, batch * hw_out)
        out_base = (split * out_ch + k) * (TAPS + 1)
        for r0 in range(0, kh, RPP):
            for q in range(SUMS):
                acc[q] = T(0)
            for p in range(split * chunk + tid, p_end, threads):
                img = p // hw_out
                pix = p - img * hw_out
                oh = pix // out_w
                ow = pix - oh * out_w
                g = grad_out[(img * out_ch + k) * hw_out + pix]
                x_base = (img * in_ch + c) * in_h * in_w
                for rr in range(RPP):
                    ih = oh * sh - ph + (r0 + rr) * dh
                    for s in range(kw):
                        iw = ow * sw - pw + s * dw
                        if 0 <= ih < in_h and 0 <= iw < in_w:
                            acc[rr * kw + s] += g * x[x_base + ih * in_w + iw]
                acc[SUMS - 1] += g
            for q in range(SUMS):
                if q < SUMS - 1 or (with_bias and r0 == 0):
                    red[tid] = acc[q]
                    cuda.syncthreads()  # every thread's sum q is in shared memory
                    half = threads // 2
                    while half > 0:  # a fixed tree: the same order every run
                        if tid < half:
                            red[tid] += red[tid + half]
                        cuda.syncthreads()  # this level of the tree is complete
                        half //= 2
                    if tid == 0:
                        partials[out_base + (r0 * kw + q if q < SUMS - 1 else TAPS)] = red[0]
                    cuda.syncthreads()  # red[0] is read before the next sum overwrites it

    return kernel


def conv2d_grad_weight_depthwise(x, grad_out, grad_weight, geometry, grad_bias=None):
    """Depthwise ``grad_weight`` (and ``grad_bias``): two launches, deterministic."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, _, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    threads = config.CUDA_REDUCE_THREADS
    splits, chunk = split_count(out_ch, batch * out_h * out_w, threads)
    partials = cuda.device_array((splits, out_ch, kh * kw + 1), dtype=grad_weight.dtype,
                                 stream=config.CUDA_STREAM)
    kernel = grad_weight_kernel(threads, kh, kw, sh, sw, dh, dw,
                                np.dtype(grad_weight.dtype).name, grad_bias is not None)
    launch(kernel, (splits, out_ch), threads, _flat(x), _flat(grad_out), _flat(partials),
           _geometry(batch, in_ch, in_h, in_w, out_ch, out_h, out_w, ph, pw, chunk))
    sum_splits(partials, _flat(grad_weight), grad_bias)


conv2d_grad_weight_depthwise.folds_grad_bias = True
