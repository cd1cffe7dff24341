"""Register-blocked direct convolution, vectors along the output channels (CPU only).

Same signatures as the direct kernels in ``direct.py`` (forward, and the stride-1 grad
input), so the algorithm chooser (``dispatch.choose_conv_algorithm``, algorithm
``'channel_blocked'``) swaps one for the other.

What: the input is copied into the flat frame of the blocked kernel (``blocked.
to_flat_frame``), each plane zero-padded to the rows and columns the conv reads, as if
it ran at stride 1: ``Wf = (OW-1)*sW + (kW-1)*dW + 1`` wide.  Output pixel ``p = (oh,
ow)`` starts at frame offset ``offs[p] = oh*sH*Wf + ow*sW`` and tap ``(r, s)`` adds
``r*dH*Wf + s*dW``, so::

    out[n, k, p] = bias[k] + sum over (c, r, s) of
                   w[k, c, r, s] * frame[n, c, offs[p] + r*dH*Wf + s*dW]

How: a register block is 2 vectors of output channels (``2*lanes``: 32 in float32, 16
in float64) x 12 output pixels, 24 accumulators (:mod:`..simd`).  Per tap, 2 weight
vectors (packed so that a tap's output channels are adjacent: :func:`_pack`) and 12
broadcast frame values make 24 fused multiply-adds.  The 12 pixels are any 12 in
output order, each read at its own offset: no frame column is computed and dropped,
whatever the map's width, stride or dilation.  A job is one group's block of output
channels, a span of pixels and a run of images; it runs the reduction a chunk of
input channels at a time (``_WEIGHT_BYTES`` of packed weights, which stay in L1 while
every pixel block of the run reads them), keeping the partial sums in the thread's
tile, then writes the tile to ``out``.  Each output is one sum in a fixed order:
deterministic.  The stride-1 grad input is the same conv on ``grad_out`` with the
weights flipped and transposed (``blocked.adjoint``'s transform, done by the packing
share as it reads the layer's weights, without NumPy's copy).

Why: the blocked kernel (vectors along the pixels) computes every frame column, ``Wf -
OW`` of each row for nothing, which on small maps (14x14 at 3x3: 12%; 7x7: 22%; 19x19
at 5x5 dilation 2: 30%) is much of the work, and its 4 output channels per block read
the input window again for every 4 channels.  Here a block reuses each broadcast input
value for 32 output channels and each weight vector for 12 pixels, and pays only for
output channels past ``K_g`` in the last block (up to 31 in float32).

Rule: ``dispatch._channel_blocked_applies`` picks it, on AVX-512 hosts only (24
accumulators and 2 weight vectors need 32 vector registers), at stride 1, where the
output channels fill its blocks and the reduction is long; strided forwards ran faster
tiled, but thin ones on narrow maps, which run here (measured: docs/benchmarks/cpu.md,
"Session 11" to "Session 13").
"""

import numba
import numpy as np
from numba import njit

from ....config import CPU_FASTMATH
from .. import simd
from ..shares import run_shares, share, share_of
from ..workspace import scratch
from .blocked import _framed, adjoint_leads

PIXELS = 12  # output pixels per register block (x 2 vectors of channels: 24 accumulators)
_SPAN = 8 * PIXELS  # most pixels per job
_TILE_BYTES = 96 * 1024  # a thread's partial sums: the images of a job's run
_WEIGHT_BYTES = 24 * 1024  # packed weights per reduction chunk: half of L1


@njit(inline="always", fastmath=CPU_FASTMATH)
def _fma2(w0, w1, x, a0, a1):
    return simd.fma(w0, x, a0), simd.fma(w1, x, a1)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _taps(frame, ch0, packed, row0, offs, p, acc, c_n, kh, kw, row_step, dw, width):
    """The 24 accumulators ``acc`` (pixel ``j``, channel vector ``v``: ``2*j + v``) plus
    every tap of frame channels ``ch0 .. ch0+c_n-1`` for the 12 pixels ``offs[p:p+12]``:
    ``packed[row0 + (c, r, s)]`` (2 vectors) times the broadcast ``frame[ch0 + c,
    offs[p+j] + r*row_step + s*dw]``."""
    (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
     a16, a17, a18, a19, a20, a21, a22, a23) = acc
    o0, o1, o2, o3 = offs[p], offs[p + 1], offs[p + 2], offs[p + 3]
    o4, o5, o6, o7 = offs[p + 4], offs[p + 5], offs[p + 6], offs[p + 7]
    o8, o9, o10, o11 = offs[p + 8], offs[p + 9], offs[p + 10], offs[p + 11]
    j = row0
    for c in range(c_n):
        ch = ch0 + c
        for r in range(kh):
            col = r * row_step
            for s in range(kw):
                w0, w1 = simd.load(packed, j, 0), simd.load(packed, j, width)
                a0, a1 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o0), a0, a1)
                a2, a3 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o1), a2, a3)
                a4, a5 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o2), a4, a5)
                a6, a7 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o3), a6, a7)
                a8, a9 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o4), a8, a9)
                a10, a11 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o5), a10, a11)
                a12, a13 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o6), a12, a13)
                a14, a15 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o7), a14, a15)
                a16, a17 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o8), a16, a17)
                a18, a19 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o9), a18, a19)
                a20, a21 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o10), a20, a21)
                a22, a23 = _fma2(w0, w1, simd.broadcast(frame, ch, col + o11), a22, a23)
                col += dw
                j += 1
    return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
            a16, a17, a18, a19, a20, a21, a22, a23)


@njit(inline="always")
def _load_block(tile, at, width):
    """The 24 accumulators of the block at ``tile[at:]`` (pixel-major, 2 vectors each)."""
    v = simd.load_flat
    return (v(tile, at), v(tile, at + width), v(tile, at + 2 * width),
            v(tile, at + 3 * width), v(tile, at + 4 * width), v(tile, at + 5 * width),
            v(tile, at + 6 * width), v(tile, at + 7 * width), v(tile, at + 8 * width),
            v(tile, at + 9 * width), v(tile, at + 10 * width), v(tile, at + 11 * width),
            v(tile, at + 12 * width), v(tile, at + 13 * width), v(tile, at + 14 * width),
            v(tile, at + 15 * width), v(tile, at + 16 * width), v(tile, at + 17 * width),
            v(tile, at + 18 * width), v(tile, at + 19 * width), v(tile, at + 20 * width),
            v(tile, at + 21 * width), v(tile, at + 22 * width), v(tile, at + 23 * width))


@njit(inline="always")
def _store_block(tile, at, width, acc):
    """:func:`_load_block`'s inverse."""
    (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
     a16, a17, a18, a19, a20, a21, a22, a23) = acc
    v = simd.store_flat
    v(tile, at, a0), v(tile, at + width, a1), v(tile, at + 2 * width, a2)
    v(tile, at + 3 * width, a3), v(tile, at + 4 * width, a4), v(tile, at + 5 * width, a5)
    v(tile, at + 6 * width, a6), v(tile, at + 7 * width, a7), v(tile, at + 8 * width, a8)
    v(tile, at + 9 * width, a9), v(tile, at + 10 * width, a10)
    v(tile, at + 11 * width, a11), v(tile, at + 12 * width, a12)
    v(tile, at + 13 * width, a13), v(tile, at + 14 * width, a14)
    v(tile, at + 15 * width, a15), v(tile, at + 16 * width, a16)
    v(tile, at + 17 * width, a17), v(tile, at + 18 * width, a18)
    v(tile, at + 19 * width, a19), v(tile, at + 20 * width, a20)
    v(tile, at + 21 * width, a21), v(tile, at + 22 * width, a22)
    v(tile, at + 23 * width, a23)


@share(fastmath=CPU_FASTMATH)
def _forward_share(t, threads, args):
    """``out`` (N, K, OH*OW) from ``frames`` (N, C, Hf*Wf) and ``packed`` (G*KB*taps,
    2*lanes; :func:`_pack`), ``bias`` (G*KB, 2*lanes), ``offs`` (the pixels' frame
    offsets, padded to whole blocks by repeating the last).  Jobs: (image run, pixel
    span, group, channel block), channel blocks fastest; ``tiles[t]``: the job's partial
    sums, pixel-major."""
    frames, packed, bias, out, tiles, offs, kh, kw, dh, dw, frame_w, span, run, c_chunk = args
    batch, out_ch, pixels = out.shape
    groups_kb = bias.shape[0]
    taps = packed.shape[0] // groups_kb
    c_g = taps // (kh * kw)
    width = simd.lanes(frames)
    kc = 2 * width
    groups = frames.shape[1] // c_g
    kblocks = groups_kb // groups
    k_g = out_ch // groups
    spans = (pixels + span - 1) // span
    runs = (batch + run - 1) // run
    tile = tiles[t]
    for job in range(t, runs * spans * groups_kb, threads):
        gkb, rest = job % groups_kb, job // groups_kb
        g, kb = gkb // kblocks, gkb % kblocks
        q0 = (rest % spans) * span
        q1 = min(q0 + span, pixels)
        n0 = (rest // spans) * run
        n1 = min(n0 + run, batch)
        for c0 in range(0, c_g, c_chunk):
            c_n = min(c_chunk, c_g - c0)
            row0 = gkb * taps + c0 * kh * kw
            for n in range(n0, n1):
                frame = frames[n]
                base = (n - n0) * span * kc
                for p in range(q0, q1, PIXELS):
                    at = base + (p - q0) * kc
                    if c0 == 0:
                        b0, b1 = simd.load(bias, gkb, 0), simd.load(bias, gkb, width)
                        acc = (b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1,
                               b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1)
                    else:
                        acc = _load_block(tile, at, width)
                    acc = _taps(frame, g * c_g + c0, packed, row0, offs, p, acc, c_n, kh, kw,
                                dh * frame_w, dw, width)
                    _store_block(tile, at, width, acc)
        k0 = g * k_g + kb * kc
        for n in range(n0, n1):
            base = (n - n0) * span * kc
            for i in range(min(kc, k_g - kb * kc)):
                dst = out[n, k0 + i]
                for q in range(q0, q1):
                    dst[q] = tile[base + (q - q0) * kc + i]


@share()
def _pack_share(t, threads, args):
    """``packed[(g*KB + kb)*taps + j, lane]``: the weight of output channel ``o = kb*kc +
    lane`` of group ``g`` at reduction index ``j = (a, r, s)``, 0 past the group's
    outputs; the bias alike into ``biases[g*KB + kb, lane]``.  Forward: ``w[g*K_g + o,
    a, r, s]``.  ``flip`` (the stride-1 grad input, whose outputs are the layer's input
    channels): ``w[g*K_g + a, o, kH-1-r, kW-1-s]``, read from the layer's weights as they
    are (``blocked.adjoint`` without its copy)."""
    weight, bias, packed, biases, groups, flip = args
    out_ch, c_g, kh, kw = weight.shape
    area = kh * kw
    k_g = out_ch // groups
    outputs = c_g if flip else k_g  # output channels per group of the conv packed
    taps = (k_g if flip else c_g) * area
    kc = packed.shape[1]
    kblocks = biases.shape[0] // groups
    chunk = 64
    chunks = (taps + chunk - 1) // chunk
    zero = packed.dtype.type(0)
    lo, hi = share_of(t, threads, groups * kblocks * chunks)
    for job in range(lo, hi):
        gkb, j0 = job // chunks, (job % chunks) * chunk
        g, kb = gkb // kblocks, gkb % kblocks
        o0, kn = kb * kc, min(kc, outputs - kb * kc)
        if j0 == 0:
            for lane in range(kc):
                biases[gkb, lane] = bias[g * outputs + o0 + lane] if lane < kn else zero
        for j in range(j0, min(taps, j0 + chunk)):
            at = gkb * taps + j
            a, f = j // area, j % area
            r, s = f // kw, f % kw
            if flip:
                for lane in range(kn):
                    packed[at, lane] = weight[g * k_g + a, o0 + lane, kh - 1 - r, kw - 1 - s]
            else:
                for lane in range(kn):
                    packed[at, lane] = weight[g * k_g + o0 + lane, a, r, s]
            for lane in range(kn, kc):
                packed[at, lane] = zero


def _pack(weight, bias, groups, flip):
    """``(K, C_g, R, S)`` weights and a bias of the packed conv's output channels ->
    ``(G*KB*taps, kc)`` and ``(G*KB, kc)`` (:func:`_pack_share`), ``kc = 2*lanes`` output
    channels per block, ``KB`` blocks per group, in reused buffers."""
    out_ch, c_g, kh, kw = weight.shape
    outputs, taps = ((c_g, out_ch // groups * kh * kw) if flip
                     else (out_ch // groups, c_g * kh * kw))
    kc = 2 * simd.VECTOR_BYTES // weight.itemsize
    kblocks = -(-outputs // kc)
    packed = scratch("channel_blocked_weights", (groups * kblocks * taps, kc), weight.dtype)
    biases = scratch("channel_blocked_bias", (groups * kblocks, kc), weight.dtype)
    run_shares(_pack_share, numba.get_num_threads(),
               (np.ascontiguousarray(weight), np.ascontiguousarray(bias), packed, biases,
                groups, flip))
    return packed, biases


def _frames_and_offsets(x, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh, sw):
    """``x`` in the flat frame of the conv read at stride 1 (``blocked._framed``), its
    width, and each output pixel's frame offset (padded to whole blocks by repeating
    the last)."""
    frames, frame_w, _ = _framed(x, (out_h - 1) * sh + 1, (out_w - 1) * sw + 1, lead_h,
                                 lead_w, kh, kw, dh, dw, 1, 1)
    pixels = out_h * out_w
    offs = np.empty(-(-pixels // PIXELS) * PIXELS, np.int64)
    offs[:pixels] = (np.arange(out_h)[:, None] * (sh * frame_w)
                     + np.arange(out_w) * sw).ravel()
    offs[pixels:] = offs[pixels - 1]
    return frames, frame_w, offs


def _run(x, weight, bias, out, lead_h, lead_w, dh, dw, sh, sw, groups, flip=False):
    """The conv of ``x`` with strides ``(sh, sw)`` and leading pads ``lead`` (negative:
    crop) into ``out``, with ``weight`` as it is or (``flip``) its adjoint."""
    batch, out_ch, out_h, out_w = out.shape
    if out.size == 0:
        return
    kh, kw = weight.shape[2], weight.shape[3]
    frames, frame_w, offs = _frames_and_offsets(x, out_h, out_w, lead_h, lead_w, kh, kw,
                                                dh, dw, sh, sw)
    pixels = out_h * out_w
    packed, biases = _pack(weight, bias, groups, flip)
    kc = packed.shape[1]
    threads = numba.get_num_threads()
    # near-equal pixel spans of whole blocks, at most _SPAN pixels, and runs of images
    # whose partial sums fit the tile: enough jobs for every thread where there is work
    blocks = len(offs) // PIXELS
    spans = min(blocks, max(-(-pixels // _SPAN), -(-2 * threads // (biases.shape[0] * batch))))
    span = -(-blocks // spans) * PIXELS
    jobs_per_image = spans * biases.shape[0]
    run = max(1, min(batch, _TILE_BYTES // (span * kc * x.itemsize),
                     batch * jobs_per_image // (2 * threads)))
    c_chunk = max(1, _WEIGHT_BYTES // (kh * kw * kc * x.itemsize))
    tiles = scratch("channel_blocked_tiles", (threads, run * span * kc), x.dtype)
    flat = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    run_shares(_forward_share, threads,
               (frames, packed, biases, flat.reshape(batch, out_ch, pixels), tiles, offs,
                kh, kw, dh, dw, frame_w, span, run, c_chunk))
    if flat is not out:
        out[...] = flat


def conv2d_forward_channel_blocked(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    _run(x, weight, bias, out, ph, pw, dh, dw, sh, sw, groups)


def conv2d_grad_input_channel_blocked(grad_out, weight, grad_in, geometry):
    """At stride 1 the adjoint of the forward is a forward conv of ``grad_out`` with the
    weights flipped and transposed (``blocked.adjoint``; here packed straight from
    ``weight``)."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    if sh != 1 or sw != 1:
        raise ValueError(f"the channel-blocked grad input runs stride 1 only, got stride "
                         f"{geometry[:2]} (dispatch sends it to 'tiled')")
    lead_h, lead_w = adjoint_leads(weight.shape[2], weight.shape[3], geometry)
    _run(grad_out, weight, np.zeros(grad_in.shape[1], grad_in.dtype), grad_in, lead_h,
         lead_w, dh, dw, 1, 1, groups, flip=True)
