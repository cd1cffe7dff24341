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

How: a register block is one vector of output channels (``lanes``: 16 in float32, 8
in float64) x 12 slots, 12 accumulators (:mod:`..simd`).  A slot is one output pixel
of one image, read at its own offset (every image's frames end to end), so a block's
12 slots may come from any pixels of any images: no frame column is computed and
dropped, whatever the map's width, stride or dilation.  Per tap, one weight vector
(packed so that a tap's output channels are adjacent: :func:`_pack_block`) and 12
broadcast frame values make 12 fused multiply-adds.  (Blocks of 2 vectors, 24
accumulators, ran no faster per channel on AVX-512, and wasted up to twice the lanes
past ``K_g``: docs/benchmarks/cpu.md, "Session 15".)  A block runs only the rectangle
of taps that its slots read inside the input: taps that read zero padding for all 12
are skipped, and where padding is much of what the taps read, the slots are grouped
into blocks that read the same taps, across images (:func:`_slots`).  The slots'
offsets, outputs and rectangles are listed once per layer shape (:func:`_tables`;
per call past ``_CACHE_MOST`` slots) by a share (:func:`_slot_tables`), which bounds
each block's rectangle as :func:`_slots` does in NumPy to choose the order.  A job is
one group's block of output channels and a span of slots; it runs the reduction a
chunk of input channels at a time
(``_WEIGHT_BYTES`` of packed weights, which stay in L1 while every block of the span
reads them), keeping the partial sums in the thread's tile, then writes the tile to
``out`` (runs of ``lanes`` consecutive outputs, each a square transposed in registers:
:func:`_write`).  With few spans, each job packs the chunk it reads as it goes; else the
weights are packed once for all.  Each output is one sum in a fixed order (skipped
taps add exact zeros): deterministic.  The stride-1 grad input is the same conv on
``grad_out`` with the weights flipped and transposed (``blocked.adjoint``'s transform,
done by the packing as it reads the layer's weights, without NumPy's copy).

Why: the blocked kernel (vectors along the pixels) computes every frame column, ``Wf -
OW`` of each row for nothing, which on small maps (14x14 at 3x3: 12%; 7x7: 22%; 19x19
at 5x5 dilation 2: 30%) is much of the work, and its 4 output channels per block read
the input window again for every 4 channels.  Here a block reuses each broadcast input
value for a vector of output channels and each weight vector for 12 pixels, and pays
only for output channels past ``K_g`` in the last block (up to 15 in float32).  It is also the
one kernel that skips padded taps: on an 8x8 map, a 5x5 kernel at dilation 3 reads
padding with 70% of its taps.

Rule: ``dispatch._channel_blocked_applies`` picks it, on AVX-512 hosts only (where it
was measured; its 13 live vectors would fit AVX2's 16 registers too), where the output
channels fill its blocks and the reduction is long, at stride 1 (and with 8-15 input
channels on narrow maps, and 2-7 into 100+ output channels on small maps); strided
forwards of 8-47 input channels per group, thin ones on narrow maps or into 64+ output
channels, and those of few output pixels (the others ran faster tiled or blocked); and
layers whose taps mostly read padding (``dispatch._live_taps``) (measured:
docs/benchmarks/cpu.md, "Session 11" to "Session 16").
"""

import functools

import numba
import numpy as np
from numba import njit

from ...._args import live_taps
from ....config import CPU_FASTMATH
from .. import simd
from .. import shares
from ..shares import run_shares, share, share_of
from ..workspace import scratch
from .blocked import _framed, adjoint_leads

PIXELS = 12  # output pixels per register block (x 1 vector of channels: 12 accumulators)
_SPAN = 64 * PIXELS  # most slots (image, pixel) per job
_TILE_BYTES = 96 * 1024  # a thread's partial sums: a job's span of slots
_WEIGHT_BYTES = 24 * 1024  # packed weights per reduction chunk: half of L1


@njit(inline="always", fastmath=CPU_FASTMATH)
def _taps(frame, ch0, packed, row0, offs, p, acc, c_n, kh, kw, row_step, dw, width, taps):
    """The 12 accumulators ``acc`` (pixel ``j``: ``acc[j]``, a vector of output channels)
    plus the taps ``(r, s)`` in the rectangle ``taps = (r0, r1, s0, s1)`` of frame
    channels ``ch0 .. ch0+c_n-1`` for the 12 pixels ``offs[p:p+12]``: ``packed[row0 + (c,
    r, s)]`` times the broadcast ``frame[ch0 + c, offs[p+j] + r*row_step + s*dw]``."""
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 = acc
    o0, o1, o2, o3 = offs[p], offs[p + 1], offs[p + 2], offs[p + 3]
    o4, o5, o6, o7 = offs[p + 4], offs[p + 5], offs[p + 6], offs[p + 7]
    o8, o9, o10, o11 = offs[p + 8], offs[p + 9], offs[p + 10], offs[p + 11]
    r0, r1, s0, s1 = taps
    f, b = simd.fma, simd.broadcast
    for c in range(c_n):
        ch = ch0 + c
        for r in range(r0, r1):
            col = r * row_step + s0 * dw
            j = row0 + (c * kh + r) * kw + s0
            for s in range(s0, s1):
                w = simd.load(packed, j, 0)
                a0, a1 = f(w, b(frame, ch, col + o0), a0), f(w, b(frame, ch, col + o1), a1)
                a2, a3 = f(w, b(frame, ch, col + o2), a2), f(w, b(frame, ch, col + o3), a3)
                a4, a5 = f(w, b(frame, ch, col + o4), a4), f(w, b(frame, ch, col + o5), a5)
                a6, a7 = f(w, b(frame, ch, col + o6), a6), f(w, b(frame, ch, col + o7), a7)
                a8, a9 = f(w, b(frame, ch, col + o8), a8), f(w, b(frame, ch, col + o9), a9)
                a10 = f(w, b(frame, ch, col + o10), a10)
                a11 = f(w, b(frame, ch, col + o11), a11)
                col += dw
                j += 1
    return a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11


@njit(inline="always")
def _load_block(tile, at, width):
    """The 12 accumulators of the block at ``tile[at:]`` (pixel-major)."""
    v = simd.load_flat
    return (v(tile, at), v(tile, at + width), v(tile, at + 2 * width),
            v(tile, at + 3 * width), v(tile, at + 4 * width), v(tile, at + 5 * width),
            v(tile, at + 6 * width), v(tile, at + 7 * width), v(tile, at + 8 * width),
            v(tile, at + 9 * width), v(tile, at + 10 * width), v(tile, at + 11 * width))


@njit(inline="always")
def _store_block(tile, at, width, acc):
    """:func:`_load_block`'s inverse."""
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 = acc
    v = simd.store_flat
    v(tile, at, a0), v(tile, at + width, a1), v(tile, at + 2 * width, a2)
    v(tile, at + 3 * width, a3), v(tile, at + 4 * width, a4), v(tile, at + 5 * width, a5)
    v(tile, at + 6 * width, a6), v(tile, at + 7 * width, a7), v(tile, at + 8 * width, a8)
    v(tile, at + 9 * width, a9), v(tile, at + 10 * width, a10)
    v(tile, at + 11 * width, a11)


@njit(inline="always")
def _bias(bias, row):
    """The 12 accumulators of a block, each holding the bias of channel block ``row``."""
    b = simd.load(bias, row, 0)
    return b, b, b, b, b, b, b, b, b, b, b, b


@njit(inline="always")
def _write(out, tile, dest, count, k0, kn, plane, kc):
    """The tile's ``count`` slots (slot-major, ``kc`` channels each) into ``out`` (flat)
    at ``dest[i] + (k0 + c) * plane``, channel ``c < kn``: in runs of slots whose outputs
    are consecutive, ``kc`` slots at a time, so that the stores are contiguous and the
    tile's rows they read stay in L1.  A run of ``kc`` slots is a square of the tile,
    transposed in registers (:func:`..simd.load_transposed`) and stored a vector a
    channel; shorter runs are copied a value at a time."""
    i = 0
    while i < count:
        stop = min(i + kc, count)
        e = i + 1
        while e < stop and dest[e] == dest[e - 1] + 1:
            e += 1
        first = dest[i]
        if e - i == kc:
            channels = simd.load_transposed(tile, i * kc)
            for c in range(kn):
                simd.store_flat(out, first + (k0 + c) * plane, channels[c])
        else:
            for c in range(kn):
                at = first + (k0 + c) * plane
                for u in range(e - i):
                    out[at + u] = tile[(i + u) * kc + c]
        i = e


@share(fastmath=CPU_FASTMATH)
def _forward_share(t, threads, args):
    """``out`` (flat, N x K x ``plane``) from ``frames`` (N*C, L: each image's frames in
    turn, read at channel row ``c`` of image 0 and an offset that runs on into image
    ``n``'s rows) and the weights: packed (G*KB*taps, lanes), or, where ``packed`` is
    empty, ``flat`` (K, C_g*kH*kW) packed a chunk at a time by each job into
    ``wbufs[t]`` (:func:`_pack_block`); ``bias`` (G*KB, lanes).  Slot ``q`` is the
    output whose frame offset is ``offs[q]`` and output position ``dest[q]`` (channel 0),
    in blocks of 12 that run the taps ``rects[b]`` (:func:`_slot_tables`).  Jobs:
    (slot span, group, channel block), channel blocks fastest; ``tiles[t]``: the job's
    partial sums, slot-major."""
    (frames, flat, packed, wbufs, flip, bias, out, tiles, offs, dest, rects, kh, kw, dh, dw,
     frame_w, plane, span, c_chunk, groups, out_ch) = args
    slots = offs.shape[0]
    groups_kb = bias.shape[0]
    area = kh * kw
    k_g = out_ch // groups
    c_g = flat.shape[0] // groups if flip else flat.shape[1] // area
    outputs = flat.shape[1] // area if flip else k_g
    taps = c_g * area
    kc = width = simd.lanes(frames)  # output channels per block
    kblocks = groups_kb // groups
    fused = packed.shape[0] == 0  # each job packs its chunks of weights into wbufs[t]
    wbuf, tile = wbufs[t], tiles[t]
    first, stop = share_of(t, threads, (slots + span - 1) // span * groups_kb)
    for job in range(first, stop):
        gkb = job % groups_kb
        g, kb = gkb // kblocks, gkb % kblocks
        q0 = (job // groups_kb) * span
        q1 = min(q0 + span, slots)
        for c0 in range(0, c_g, c_chunk):
            c_n = min(c_chunk, c_g - c0)
            if fused:
                _pack_block(flat, wbuf, g, kb * kc, min(kc, outputs - kb * kc), c0, c0 + c_n,
                            area, flat.shape[0] // groups, flip)
                weights, row0 = wbuf, 0
            else:
                weights, row0 = packed, gkb * taps + c0 * area
            for p in range(0, q1 - q0, PIXELS):
                at = p * kc
                if c0 == 0:
                    acc = _bias(bias, gkb)
                else:
                    acc = _load_block(tile, at, width)
                b = (q0 + p) // PIXELS
                acc = _taps(frames, g * c_g + c0, weights, row0, offs, q0 + p, acc, c_n, kh,
                            kw, dh * frame_w, dw, width,
                            (rects[b, 0], rects[b, 1], rects[b, 2], rects[b, 3]))
                _store_block(tile, at, width, acc)
        _write(out, tile, dest[q0:q1], q1 - q0, g * outputs + kb * kc,
               min(kc, outputs - kb * kc), plane, kc)


@share()
def _slot_tables(t, threads, args):
    """Slot ``q``'s frame offset ``offs[q]`` (every image's frames end to end,
    ``image_size`` values each) and output position ``dest[q]`` (channel 0), and each
    block's rectangle of taps ``rects[b]`` ``(r0, r1, s0, s1)``: the bounds of its slots'
    own ranges (``ranges``: rows' ``lo``, ``hi`` of kernel rows, then columns',
    ``_args.live_taps``), slots that read nothing left out, ``(0, 0, 0, 0)`` where all
    do.  Slot ``q`` is the output ``order[q]`` (image-major, ``n*plane + pixel``), or,
    where ``order`` is empty, output ``q`` (up to the last)."""
    (order, ranges, offs, dest, rects, out_h, out_w, sh, sw, frame_w, image_size, out_ch,
     batch) = args
    lo, hi = share_of(t, threads, rects.shape[0])
    q0, q1 = lo * PIXELS, hi * PIXELS
    if q0 == q1:
        return
    plane = out_h * out_w
    total = batch * plane
    natural = order.shape[0] == 0
    first = order[q0] if not natural else min(q0, total - 1)
    n = first // plane
    oh = (first - n * plane) // out_w
    ow = first - n * plane - oh * out_w
    for i in range(q1 - q0):
        if not natural:
            slot = order[q0 + i]
            n = slot // plane
            oh = (slot - n * plane) // out_w
            ow = slot - n * plane - oh * out_w
        elif i and q0 + i < total:  # the next slot: no divisions (past the end: the last)
            ow += 1
            if ow == out_w:
                ow = 0
                oh += 1
                if oh == out_h:
                    oh = 0
                    n += 1
        pixel = oh * out_w + ow
        offs[q0 + i] = n * image_size + oh * sh * frame_w + ow * sw
        dest[q0 + i] = n * out_ch * plane + pixel
        b = lo + i // PIXELS
        if i % PIXELS == 0:
            rects[b, 0], rects[b, 1], rects[b, 2], rects[b, 3] = 1 << 30, 0, 1 << 30, 0
        r0, r1 = ranges[0, oh], ranges[1, oh]
        s0, s1 = ranges[0, out_h + ow], ranges[1, out_h + ow]
        if r0 < r1 and s0 < s1:
            rects[b, 0] = min(rects[b, 0], r0)
            rects[b, 1] = max(rects[b, 1], r1)
            rects[b, 2] = min(rects[b, 2], s0)
            rects[b, 3] = max(rects[b, 3], s1)
        if i % PIXELS == PIXELS - 1 and rects[b, 1] == 0:
            rects[b, 0], rects[b, 1], rects[b, 2], rects[b, 3] = 0, 0, 0, 0


@njit(inline="always")
def _pack_block(flat, dst, g, o0, kn, a0, a1, area, k_g, flip):
    """Reduction rows ``a0*area .. a1*area`` (the ``j = (a, r, s)`` with ``a0 <= a < a1``)
    of the packed weights of the output channels ``o0 .. o0+kn-1`` of group ``g`` into
    ``dst[j - a0*area, lane]``, lanes past ``kn`` 0.  Forward: ``w[g*K_g + o0 + lane, a,
    r, s]``; ``flip`` (the stride-1 grad input, whose outputs are the layer's input
    channels): ``w[g*K_g + a, o0 + lane, kH-1-r, kW-1-s]``, read from the layer's weights
    as they are (``blocked.adjoint`` without its copy).  ``flat``: the weights as
    ``(K, C_g*kH*kW)``; one lane at a time, so each lane's weights are read in order."""
    zero = dst.dtype.type(0)
    for lane in range(kn):
        if flip:
            last = (o0 + lane) * area + area - 1
            for a in range(a0, a1):
                src = flat[g * k_g + a]
                for f in range(area):
                    dst[(a - a0) * area + f, lane] = src[last - f]
        else:
            src = flat[g * k_g + o0 + lane]
            for j in range(a0 * area, a1 * area):
                dst[j - a0 * area, lane] = src[j]
    for j in range((a1 - a0) * area):
        for lane in range(kn, dst.shape[1]):
            dst[j, lane] = zero


@share()
def _pack_share(t, threads, args):
    """``packed[(g*KB + kb)*taps + j]``: output channels ``kb*kc ..`` of group ``g`` at
    reduction index ``j`` (:func:`_pack_block`), in jobs of a few ``a``."""
    flat, packed, groups, kblocks, area, flip = args
    kc = packed.shape[1]
    k_g = flat.shape[0] // groups
    outputs, inputs = (flat.shape[1] // area, k_g) if flip else (k_g, flat.shape[1] // area)
    taps = inputs * area
    chunk = max(1, 64 // area)  # values of a per job
    chunks = (inputs + chunk - 1) // chunk
    lo, hi = share_of(t, threads, groups * kblocks * chunks)
    for job in range(lo, hi):
        gkb, a0 = job // chunks, (job % chunks) * chunk
        g, kb = gkb // kblocks, gkb % kblocks
        a1 = min(inputs, a0 + chunk)
        _pack_block(flat, packed[gkb * taps + a0 * area:gkb * taps + a1 * area], g, kb * kc,
                    min(kc, outputs - kb * kc), a0, a1, area, k_g, flip)


def _pack(weight, bias, groups, flip, whole):
    """``(K, C_g, R, S)`` weights and a bias of the packed conv's output channels ->
    ``(G*KB*taps, kc)`` (:func:`_pack_share`; where ``whole``, else left to the jobs) and
    ``(G*KB, kc)``, ``kc = lanes`` output channels per block, ``KB`` blocks per group,
    in reused buffers; and the weights as ``(K, C_g*R*S)``."""
    out_ch, c_g, kh, kw = weight.shape
    outputs, taps = ((c_g, out_ch // groups * kh * kw) if flip
                     else (out_ch // groups, c_g * kh * kw))
    kc = simd.VECTOR_BYTES // weight.itemsize
    kblocks = -(-outputs // kc)
    flat = np.ascontiguousarray(weight).reshape(out_ch, -1)
    biases = scratch("channel_blocked_bias", (groups * kblocks, kc), weight.dtype)
    biases[...] = 0
    biases.reshape(groups, -1)[:, :outputs] = bias.reshape(groups, outputs)
    packed = scratch("channel_blocked_weights",
                     (groups * kblocks * taps if whole else 0, kc), weight.dtype)
    if whole:
        run_shares(_pack_share, numba.get_num_threads(),
                   (flat, packed, groups, kblocks, kh * kw, flip))
    return flat, packed, biases


def _block_rects(lo_h, hi_h, lo_w, hi_w):
    """Each block of ``PIXELS`` slots' bounding rectangle of taps ``(r0, r1, s0, s1)``
    from its slots' own ranges (pixels that read nothing left out)."""
    empty = (hi_h <= lo_h) | (hi_w <= lo_w)
    big = np.iinfo(np.int64).max
    shape = (-1, PIXELS)
    rects = np.stack([np.where(empty, big, lo_h).reshape(shape).min(1),
                      np.where(empty, 0, hi_h).reshape(shape).max(1),
                      np.where(empty, big, lo_w).reshape(shape).min(1),
                      np.where(empty, 0, hi_w).reshape(shape).max(1)], axis=1)
    rects[rects[:, 1] == 0] = 0  # every pixel of the block reads only padding
    return rects


def _area(rect):
    return max(0, rect[1] - rect[0]) * max(0, rect[3] - rect[2])


def _union(a, b):
    if not _area(a):
        return b
    if not _area(b):
        return a
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def _work(rects):
    return int(((rects[:, 1] - rects[:, 0]) * (rects[:, 3] - rects[:, 2])).sum())


def _blocks_by_taps(batch, lo_h, hi_h, lo_w, hi_w):
    """Slots (image-major numbers ``n*OH*OW + pixel``) in blocks that share the taps
    they read, and each block's rectangle.  Output rows of one range of kernel rows form
    a band (so do columns); the slots of one band of rows and one of columns, in every
    image (a class), read the same taps and fill whole blocks of their own; the
    classes' last few slots are merged into shared blocks, largest rectangles first,
    each taking the leftover group that widens its rectangle least, while that costs
    less than a block of the group's own."""
    out_h, out_w = len(lo_h), len(lo_w)
    band_h = np.cumsum(np.r_[0, (np.diff(lo_h) != 0) | (np.diff(hi_h) != 0)])
    band_w = np.cumsum(np.r_[0, (np.diff(lo_w) != 0) | (np.diff(hi_w) != 0)])
    rows, cols = np.divmod(np.arange(out_h * out_w), out_w)
    by_class = np.lexsort((cols, rows, band_w[cols], band_h[rows]))
    key = band_h[rows[by_class]] * (band_w[-1] + 1) + band_w[cols[by_class]]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    pieces, leftovers = [], []
    for a, b in zip(starts, np.r_[starts[1:], len(key)]):
        oh, ow = rows[by_class[a]], cols[by_class[a]]
        rect = (lo_h[oh], hi_h[oh], lo_w[ow], hi_w[ow])
        group = (np.arange(batch)[:, None] * (out_h * out_w) + by_class[a:b]).ravel()
        whole = len(group) // PIXELS * PIXELS
        if whole:
            pieces.append((group[:whole], rect))
        if whole < len(group):
            leftovers.append((group[whole:], rect))
    leftovers.sort(key=lambda group: -_area(group[1]))
    while leftovers:
        block, rect = leftovers.pop(0)
        block = [block]
        free = PIXELS - len(block[0])
        while free:
            best = None
            for i, (group, r) in enumerate(leftovers):
                if len(group) <= free:
                    grow = _area(_union(rect, r)) - _area(rect)
                    if (grow < _area(r) or grow == 0) and (best is None or grow < best[0]):
                        best = (grow, i)
            if best is None:
                break
            group, r = leftovers.pop(best[1])
            block.append(group)
            rect = _union(rect, r)
            free -= len(group)
        block = np.concatenate(block)
        pieces.append((np.r_[block, np.full(free, block[-1])], rect))
    order = np.concatenate([piece for piece, _ in pieces])
    rects = np.array([rect for piece, rect in pieces for _ in range(len(piece) // PIXELS)],
                     np.int64).reshape(-1, 4)
    return order, rects


_FUSE_MOST_SPANS = 2  # most spans whose jobs pack their own weights
_SORT_MOST = 1 << 16  # most slots worth sorting into blocks by taps
_SORT_MIN_GAIN = 32  # fewest steps (tap x input channel) per block that sorting saves


def _slots(batch, in_h, in_w, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh, sw, c_g):
    """The slots of the blocks (image-major numbers ``n*OH*OW + pixel``, each block
    padded to whole by repeating a slot) and each block's rectangle of taps: taps that
    read only padding for every slot of a block are skipped.  Blocks take the slots in
    order, across images; where the padding is much of what the taps read (small maps,
    wide or dilated kernels), in blocks of slots that read the same taps
    (:func:`_blocks_by_taps`) if that saves at least ``_SORT_MIN_GAIN`` steps (a tap of
    one of the ``c_g`` input channels) per block: its slots' outputs are then scattered,
    and their stores cost more than a thin layer's few steps saved."""
    lo_h, hi_h = live_taps(out_h, in_h, lead_h, kh, dh, sh)
    lo_w, hi_w = live_taps(out_w, in_w, lead_w, kw, dw, sw)
    pixels = out_h * out_w
    total = batch * pixels
    order = np.arange(-(-total // PIXELS) * PIXELS).clip(max=total - 1)
    oh, ow = np.divmod(order % pixels, out_w)
    rects = _block_rects(lo_h[oh], hi_h[oh], lo_w[ow], hi_w[ow])
    exact = int((hi_h - lo_h).sum()) * int((hi_w - lo_w).sum()) * batch
    if _work(rects) * PIXELS > exact and total <= _SORT_MOST:
        order2, rects2 = _blocks_by_taps(batch, lo_h, hi_h, lo_w, hi_w)
        if (_work(rects) - _work(rects2)) * c_g >= _SORT_MIN_GAIN * len(rects):
            return order2, rects2
    return order, rects


@functools.lru_cache(maxsize=64)
def _layout(batch, in_h, in_w, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh, sw, c_g):
    """The kernel's order of the slots (empty: slot order, :func:`_slots`) and the taps'
    ranges along each axis (``_args.live_taps``): ``(2, OH + OW)``, the rows' ``lo`` and
    ``hi``, then the columns'.  Kept per layer shape: a few small arrays."""
    lo_h, hi_h = live_taps(out_h, in_h, lead_h, kh, dh, sh)
    lo_w, hi_w = live_taps(out_w, in_w, lead_w, kw, dw, sw)
    ranges = np.stack([np.r_[lo_h, lo_w], np.r_[hi_h, hi_w]]).astype(np.int64)
    order = np.zeros(0, np.int64)
    if batch * out_h * out_w <= _SORT_MOST:
        slots, _ = _slots(batch, in_h, in_w, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh,
                          sw, c_g)
        if slots[-1] != batch * out_h * out_w - 1 or (slots[:-1] > slots[1:]).any():
            order = slots.astype(np.int64)  # sorted by taps
    return order, ranges


_CACHE_MOST = 1 << 18  # most slots whose tables are kept for the next call of the shape


def _build_tables(batch, in_h, in_w, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh, sw,
                  c_g, frame_w, image_size, out_ch):
    """The slot tables of :func:`_slot_tables` for the layout of :func:`_layout`."""
    order, ranges = _layout(batch, in_h, in_w, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw,
                            sh, sw, c_g)
    slots = len(order) or -(-batch * out_h * out_w // PIXELS) * PIXELS
    offs, dest = np.empty(slots, np.int64), np.empty(slots, np.int64)
    rects = np.empty((slots // PIXELS, 4), np.int64)
    run_shares(_slot_tables, numba.get_num_threads(),
               (order, ranges, offs, dest, rects, out_h, out_w, sh, sw, frame_w, image_size,
                out_ch, batch))
    return offs, dest, rects


_cached_tables = functools.lru_cache(maxsize=8)(_build_tables)


def _tables(batch, *key):
    """:func:`_build_tables`, kept for the next call of the layer's shape where the
    tables are small (up to ``_CACHE_MOST`` slots): a thin layer's conv costs a few
    times what they do."""
    out_h, out_w = key[2], key[3]
    # not while ``numbaconv warmup`` records the kernels (shares.RECORDER): its shares
    # do not run, and the tables it leaves are zeros
    keep = batch * out_h * out_w <= _CACHE_MOST and shares.RECORDER is None
    return (_cached_tables if keep else _build_tables)(batch, *key)


def _run(x, weight, bias, out, lead_h, lead_w, dh, dw, sh, sw, groups, flip=False):
    """The conv of ``x`` with strides ``(sh, sw)`` and leading pads ``lead`` (negative:
    crop) into ``out``, with ``weight`` as it is or (``flip``) its adjoint."""
    batch, out_ch, out_h, out_w = out.shape
    if out.size == 0:
        return
    kh, kw = weight.shape[2], weight.shape[3]
    # x in the flat frame of the conv read at stride 1 (blocked._framed)
    frames, frame_w, _ = _framed(x, (out_h - 1) * sh + 1, (out_w - 1) * sw + 1, lead_h,
                                 lead_w, kh, kw, dh, dw, 1, 1)
    offs, dest, rects = _tables(batch, x.shape[2], x.shape[3], out_h, out_w, lead_h, lead_w, kh,
                                kw, dh, dw, sh, sw, x.shape[1] // groups, frame_w,
                                frames[0].size, out_ch)
    slots = len(offs)
    outputs = out_ch // groups  # the conv run here: the layer's input channels if flip
    kc = simd.VECTOR_BYTES // x.itemsize
    threads = numba.get_num_threads()
    # near-equal spans of whole blocks whose partial sums fit the tile, at most _SPAN
    # slots: enough jobs for every thread where there is work
    kblocks = groups * -(-outputs // kc)
    blocks = slots // PIXELS
    most = max(1, min(_SPAN, _TILE_BYTES // (kc * x.itemsize)) // PIXELS)
    spans = min(blocks, max(-(-blocks // most), -(-2 * threads // kblocks)))
    span = -(-blocks // spans) * PIXELS
    c_chunk = max(1, _WEIGHT_BYTES // (kh * kw * kc * x.itemsize))
    # few spans: each job packs the weights it reads as it goes, in L1 (a whole packed
    # copy would go to memory and back); many: one packed copy that they share
    whole = spans > _FUSE_MOST_SPANS
    flat_w, packed, biases = _pack(weight, bias, groups, flip, whole)
    wbufs = scratch("channel_blocked_chunk", (threads, 0 if whole else c_chunk * kh * kw, kc),
                    x.dtype)
    tiles = scratch("channel_blocked_tiles", (threads, span * kc), x.dtype)
    flat = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    run_shares(_forward_share, threads,
               (frames.reshape(-1, frames.shape[2]), flat_w, packed, wbufs, flip, biases,
                flat.reshape(-1), tiles, offs, dest, rects, kh, kw, dh, dw, frame_w,
                out_h * out_w, span, c_chunk, groups, out_ch))
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
