"""Register-blocked direct convolution, vectors along the output pixels (CPU only).

Same signatures as the direct kernels in ``direct.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``, algorithm ``'blocked'``) swaps one for the other.

What: the input is copied into a flat frame (:func:`to_flat_frame`), each channel's
plane zero-padded (or cropped) to exactly the rows and columns the conv reads, ``Wf =
OW + (kW-1)*dW`` wide, rows end to end.  Numbering the output pixels the same way, ``q
= oh*Wf + ow``, every tap is a constant shift::

    out[n, k, q] = bias[k] + sum over (c, r, s) of w[k, c, r, s] * frame[n, c, q + r*dH*Wf + s*dW]

so consecutive ``q`` read a contiguous run of the frame, whatever the tap, pad or
dilation; the columns ``ow >= OW`` are computed and dropped.

How: a register block is 4 output channels x 4 vectors of pixels, 16 accumulators
(:mod:`..simd`); per tap, 4 frame vectors and 4 broadcast weights make 16 fused
multiply-adds.  A job is one image, one group, 4 output channels and
``config.BLOCKED_BLOCKS`` blocks; each vector of a block, passed through L1, goes to
``out`` as one masked store per output row it touches (:func:`_store_block`), not a
per-value copy of rows shorter than a vector (measured: docs/benchmarks/cpu.md,
"Session 13").
Each output is one sum in a fixed order: deterministic.  Strided (forward only), the
frame holds each channel's ``sH x sW`` stride phases (:func:`_framed`,
:func:`to_phase_frame`), so a tap is again one shift within one phase plane
(:func:`_tap_tables`, :func:`_strided_taps`, compiled apart from the stride-1 loop).
The stride-1 grad input is the same conv on ``grad_out`` with the weights flipped and
transposed.  The grad weight, a reduction over pixels, keeps the dot-product form
(``gemm.block_runs``) but reads ``grad_out`` (in the same flat numbering, dropped
columns zero) and the frame in place, each tap a shift: no im2col columns.

Why: the reduction runs along the block's own registers, with no horizontal sums, so a
short reduction (a grouped conv's ``C_g*kH*kW``, a thin layer's) costs no more per step
than a long one; that is where the tiled kernel's dot-product blocks lose.  It loses in
turn where a long reduction meets a narrow map: it streams a block's weights and input
window from L2 once per 4 output channels, and a narrow map drops the largest share of
frame columns.  The grad weight pays a horizontal sum per dot product, so on long
reductions and small images the tiled grad weight wins.  A strided grad input and grad
weight ran slower than the tiled ones and are not built.

Rule: ``dispatch._blocked_applies`` picks it, on AVX-512 hosts only (its 16 accumulators
need 32 vector registers): every stride-1 forward except narrow maps (``OW <
config.BLOCKED_NARROW``) with many output channels; every stride-1 grad input; strided
forwards of at most ``config.BLOCKED_MAX_REDUCTION`` products per output; stride-1 grad
weights on enough channels per group (``config.BLOCKED_GRAD_MIN_CHANNELS``) whose
reduction stays within ``config.BLOCKED_GRAD_MAX_REDUCTION``.  The full conditions are
that function's (measured: docs/benchmarks/cpu.md, "Kernel measurements").
"""

import functools

import numba
import numpy as np
from numba import njit

from .... import config
from ....config import CPU_FASTMATH
from .. import simd
from ..gemm import BLOCK, _fma_4x4, block_runs
from ..rows import copy, fill, frame_span, split_columns
from ..shares import private, run_shares, share, share_of
from ..workspace import scratch


@share()
def to_flat_frame(t, threads, args):
    """``frame[n, c, i*width + j] = x[n, c, i + lo_h, j + lo_w]`` for ``i < height``,
    ``j < width``, 0 outside ``x`` and past row ``height`` (``lo`` < 0 pads, ``lo`` > 0
    crops)."""
    x, frame, lo_h, lo_w, height, width = args
    batch, ch, in_h, in_w = x.shape
    zero = frame.dtype.type(0)
    j0, j1 = frame_span(lo_w, in_w, width)  # frame columns j0 .. j1-1 hold input columns
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n, c = job // ch, job % ch
        dst = frame[n, c]
        for i in range(height):
            row = dst[i * width:(i + 1) * width]
            ih = i + lo_h
            if ih < 0 or ih >= in_h:
                fill(row, zero)
            else:
                fill(row[:j0], zero)
                fill(row[j1:], zero)
                copy(row[j0:j1], x[n, c, ih, j0 + lo_w:j1 + lo_w])
        fill(dst[height * width:], zero)


@share()
def to_phase_frame(t, threads, args):
    """:func:`to_flat_frame` of each stride phase of ``x`` at column stride 2 (row stride
    ``sh``): ``frame[n, 2*(c*sh + a) + b, i*width + j] = x[n, c, i*sh + a + lo_h, 2*j +
    b + lo_w]``, 0 outside ``x``; a row's two column phases in one pass
    (:func:`..rows.split_columns`, whose last vector runs into the next row, written after
    it, or past the last row into the frame's slack)."""
    x, frame, lo_h, lo_w, height, width, sh = args
    batch, ch, in_h, in_w = x.shape
    zero = frame.dtype.type(0)
    lo, hi = share_of(t, threads, batch * ch * sh)
    for job in range(lo, hi):
        n, p = job // (ch * sh), job % (ch * sh)
        c, a = p // sh, p % sh
        src, even, odd = x[n, c], frame[n, 2 * p], frame[n, 2 * p + 1]
        for i in range(height):
            ih = i * sh + a + lo_h
            if ih < 0 or ih >= in_h:
                fill(even[i * width:(i + 1) * width], zero)
                fill(odd[i * width:(i + 1) * width], zero)
            else:
                split_columns(src, ih, lo_w, in_w, even, odd, i * width, width)
        fill(even[height * width:], zero)
        fill(odd[height * width:], zero)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _taps(frame, ch0, w, kb, at, acc, c_g, kh, kw, row_step, dw):
    """The 16 accumulators ``acc`` (output channel ``i`` of block ``kb`` x pixel vector
    ``v``, ``4*i + v``) plus every tap of channels ``ch0 .. ch0+c_g-1`` for the 4 pixel
    vectors starting at flat position ``at``: ``w[kb, (c, r, s), i]`` broadcast times
    ``frame[ch0 + c, at + r*row_step + s*dw + v*width :]`` (stride 1: one plane per
    channel)."""
    width = simd.lanes(frame)
    j = 0
    for c in range(c_g):
        ch = ch0 + c
        rows = (ch, ch, ch, ch)
        for r in range(kh):
            col = at + r * row_step
            for s in range(kw):
                acc = _fma_4x4(simd.splat(frame, w[kb, j, 0]), simd.splat(frame, w[kb, j, 1]),
                               simd.splat(frame, w[kb, j, 2]), simd.splat(frame, w[kb, j, 3]),
                               frame, rows, (col, col + width, col + 2 * width, col + 3 * width),
                               0, acc)
                col += dw
                j += 1
    return acc


@njit(inline="always", fastmath=CPU_FASTMATH)
def _strided_taps(frame, plane0, w, kb, at, acc, c_g, kh, kw, rows_at, cols_at, phases):
    """:func:`_taps` on a strided conv's frame of stride phases: tap ``(c, r, s)`` reads
    plane ``plane0 + c*phases + rows_at[0, r] + cols_at[0, s]`` from ``at + rows_at[1, r]
    + cols_at[1, s]`` (:func:`_tap_tables`)."""
    width = simd.lanes(frame)
    j = 0
    for c in range(c_g):
        base = plane0 + c * phases
        for r in range(kh):
            row_plane, row_col = base + rows_at[0, r], at + rows_at[1, r]
            for s in range(kw):
                ch = row_plane + cols_at[0, s]
                col = row_col + cols_at[1, s]
                acc = _fma_4x4(simd.splat(frame, w[kb, j, 0]), simd.splat(frame, w[kb, j, 1]),
                               simd.splat(frame, w[kb, j, 2]), simd.splat(frame, w[kb, j, 3]),
                               frame, (ch, ch, ch, ch),
                               (col, col + width, col + 2 * width, col + 3 * width), 0, acc)
                j += 1
    return acc


@njit(inline="always")
def _store_block(block, out, n, k0, kn, q, stop, frame_w, out_w):
    """The valid lanes of a register block, ``block[(i*4 + v)*width ..]`` for output
    channel ``k0 + i`` (the first ``kn`` real) and vector ``v`` of flat positions ``q +
    v*width ..``, into ``out[n]`` (rows unit-stride): position ``p`` is output row ``p
    // Wf``, column ``p % Wf``, valid below ``out_w`` and ``stop``.  One masked store
    per output row a vector touches (its other lanes' memory is neither read nor
    written); the rows are found by stepping, with one division per block."""
    width = simd.lanes(block)
    oh = q // frame_w
    row = oh * frame_w  # where output row oh starts in the flat positions
    # the vectors before stop: a count LLVM cannot unroll (unrolled, it compiled slowly)
    for v in range(min(BLOCK, (stop - q + width - 1) // width)):
        at = q + v * width
        end = min(at + width, stop)
        while row + frame_w <= at:
            oh += 1
            row += frame_w
        r, start = oh, row
        while start < end:
            lo, hi = max(start, at) - at, min(start + out_w, end) - at
            if hi > lo:  # lane 0 lands in column at - start (may be negative: masked)
                for i in range(kn):
                    simd.store_range(out[n, k0 + i], r, at - start,
                                     simd.load_flat(block, (i * BLOCK + v) * width), lo, hi)
            r += 1
            start += frame_w


@njit(inline="always")
def _store_row(tile, at, width, v0, v1, v2, v3):
    simd.store_flat(tile, at, v0)
    simd.store_flat(tile, at + width, v1)
    simd.store_flat(tile, at + 2 * width, v2)
    simd.store_flat(tile, at + 3 * width, v3)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _forward_share(t, threads, frames, packed, bias, out, span, kh, kw, dh, dw, frame_w,
                   tables):
    """``out`` (its rows unit-stride) from ``frames`` (N, C*phases, Hf*Wf + slack;
    :func:`_framed`) and ``packed`` (G, K_g/4, C_g*kH*kW, 4) weights, in jobs of
    ``span`` flat positions (whole register blocks).  ``tables``: None at stride 1,
    else the taps' planes and shifts (:func:`_tap_tables`).  numba compiles the two
    cases apart (it prunes the ``is None`` branch), so the stride-1 loop does not carry
    the strided taps' tables (in one kernel they slowed it; measured:
    docs/benchmarks/cpu.md, "Kernel measurements")."""
    batch, out_ch, out_h, out_w = out.shape
    groups, kblocks, taps = packed.shape[0], packed.shape[1], packed.shape[2]
    k_g = out_ch // groups
    c_g = taps // (kh * kw)
    phases = frames.shape[1] // (groups * c_g)
    width = simd.lanes(frames)
    step = BLOCK * width  # pixels per register block
    length = out_h * frame_w  # flat output positions of an image
    # near-equal spans of whole register blocks, at most ``span``: with a short last
    # span an image's work would not divide evenly among contiguous runs of jobs
    spans = (length + span - 1) // span
    span = ((length + spans - 1) // spans + step - 1) // step * step
    jobs = batch * groups * spans * kblocks
    zero = out.dtype.type(0)
    block = private(BLOCK * step, out.dtype)  # a register block, channel by channel
    # a contiguous run of jobs per thread (shares.py), output-channel blocks fastest: a
    # thread's next job reads the same input window (in L2) with other weights
    first, stop = share_of(t, threads, jobs)
    for job in range(first, stop):
        kb, rest = job % kblocks, job // kblocks
        q0 = (rest % spans) * span
        g, n = (rest // spans) % groups, rest // (spans * groups)
        q1 = min(q0 + span, length)
        frame, w = frames[n], packed[g]
        k0 = g * k_g + kb * BLOCK
        kn = min(BLOCK, k_g - kb * BLOCK)
        b0 = bias[k0]
        b1 = bias[k0 + 1] if kn > 1 else zero
        b2 = bias[k0 + 2] if kn > 2 else zero
        b3 = bias[k0 + 3] if kn > 3 else zero
        for q in range(q0, q1, step):
            y0, y1 = simd.splat(frame, b0), simd.splat(frame, b1)
            y2, y3 = simd.splat(frame, b2), simd.splat(frame, b3)
            acc = (y0, y0, y0, y0, y1, y1, y1, y1, y2, y2, y2, y2, y3, y3, y3, y3)
            if tables is None:
                acc = _taps(frame, g * c_g, w, kb, q, acc, c_g, kh, kw, dh * frame_w, dw)
            else:
                acc = _strided_taps(frame, g * c_g * phases, w, kb, q, acc, c_g, kh, kw,
                                    tables[0], tables[1], phases)
            _store_row(block, 0, width, acc[0], acc[1], acc[2], acc[3])
            _store_row(block, step, width, acc[4], acc[5], acc[6], acc[7])
            _store_row(block, 2 * step, width, acc[8], acc[9], acc[10], acc[11])
            _store_row(block, 3 * step, width, acc[12], acc[13], acc[14], acc[15])
            # through L1 to the rows: one copy of the store code, not 16 inlined ones
            # (which compiled slowly)
            _store_block(block, out, n, k0, kn, q, q1, frame_w, out_w)


@share(fastmath=CPU_FASTMATH)
def _forward_blocked(t, threads, args):
    """:func:`_forward_share` at stride 1 (``tables`` None)."""
    frames, packed, bias, out, span, kh, kw, dh, dw, frame_w = args
    _forward_share(t, threads, frames, packed, bias, out, span, kh, kw, dh, dw, frame_w, None)


@share(fastmath=CPU_FASTMATH)
def _forward_blocked_strided(t, threads, args):
    """:func:`_forward_share` with stride tap tables (:func:`_tap_tables`)."""
    frames, packed, bias, out, span, kh, kw, dh, dw, frame_w, rows_at, cols_at = args
    _forward_share(t, threads, frames, packed, bias, out, span, kh, kw, dh, dw, frame_w,
                   (rows_at, cols_at))


@njit(inline="always")
def _tap(ch0, j, taps, kw, area, row_step, dw):
    """Tap ``j = (c, r, s)`` (``min(j, taps-1)``) of a group whose first channel is
    ``ch0``: its frame row ``ch0 + c`` and shift ``r*row_step + s*dw``."""
    j = min(j, taps - 1)
    f = j % area
    return ch0 + j // area, (f // kw) * row_step + (f % kw) * dw


@share(fastmath=CPU_FASTMATH)
def _grad_weight_blocked(t, threads, args):
    """``grad_weight[k, (c, r, s)] = sum over n, q of grads[n, k, q] * frames[n, g*C_g + c,
    q + r*dH*Wf + s*dW]``: dot products along the flat pixels, the columns past ``OW``
    of ``grads`` zero.  A job is a 4 x 4 block (4 output channels x 4 taps) of one group,
    summed over the whole batch by one thread: deterministic, no partial sums.  Each
    thread runs all its jobs on one image's group before the next, so that group's frame
    and ``grads`` rows stay in its L2."""
    frames, grads, grad_weight, kh, kw, dh, frame_w, dw = args
    batch, out_ch, length = grads.shape
    taps = grad_weight.shape[1]
    area = kh * kw
    c_g = taps // area
    groups = frames.shape[1] // c_g
    k_g = out_ch // groups
    tblocks = (taps + BLOCK - 1) // BLOCK
    per_group = (k_g + BLOCK - 1) // BLOCK * tblocks
    zero = grad_weight.dtype.type(0)
    first, stop = share_of(t, threads, groups * per_group)
    for job in range(first, stop):
        g, kb, tb = job // per_group, (job % per_group) // tblocks, job % tblocks
        m0 = g * k_g + kb * BLOCK
        for i in range(m0, min(m0 + BLOCK, (g + 1) * k_g)):
            fill(grad_weight[i, tb * BLOCK:min(tb * BLOCK + BLOCK, taps)], zero)
    for n in range(batch):
        a, b = grads[n], frames[n]
        for job in range(first, stop):
            g, kb, tb = job // per_group, (job % per_group) // tblocks, job % tblocks
            m0, j0 = g * k_g + kb * BLOCK, tb * BLOCK
            rows_ = min(BLOCK, k_g - kb * BLOCK)
            cols_ = min(BLOCK, taps - j0)
            # the 4 taps' frame rows (channels) and shifts (clamped to the last tap)
            ch0, f0 = _tap(g * c_g, j0, taps, kw, area, dh * frame_w, dw)
            ch1, f1 = _tap(g * c_g, j0 + 1, taps, kw, area, dh * frame_w, dw)
            ch2, f2 = _tap(g * c_g, j0 + 2, taps, kw, area, dh * frame_w, dw)
            ch3, f3 = _tap(g * c_g, j0 + 3, taps, kw, area, dh * frame_w, dw)
            if rows_ == BLOCK and cols_ == BLOCK:
                block_runs(a, m0, b, (ch0, ch1, ch2, ch3), (f0, f1, f2, f3), grad_weight,
                           m0, j0, 1, length, 0)
            else:  # an edge block: single dot products
                for i in range(rows_):
                    for j in range(cols_):
                        ch, shift = _tap(g * c_g, j0 + j, taps, kw, area, dh * frame_w, dw)
                        acc = grad_weight[m0 + i, j0 + j]
                        for q in range(length):
                            acc += a[m0 + i, q] * b[ch, shift + q]
                        grad_weight[m0 + i, j0 + j] = acc


def _pack(weight, groups):
    """``(K, C_g, R, S)`` -> ``(G, ceil(K_g/4), C_g*R*S, 4)``: for each block of 4
    output channels, the 4 weights of a tap together (zero past ``K_g``).  Small weights
    by one transposing copy; larger ones (``_PACK_BY_LANES``) lane by lane, 4 strided
    copies, which avoid NumPy's slow copy of rows of 4 values (measured:
    docs/benchmarks/cpu.md, "Session 10")."""
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    kblocks = -(-k_g // BLOCK)
    taps = c_g * kh * kw
    rows = weight.reshape(groups, k_g, taps)
    if weight.size < _PACK_BY_LANES:
        padded = np.zeros((groups, kblocks * BLOCK, taps), weight.dtype)
        padded[:, :k_g] = rows
        return np.ascontiguousarray(
            padded.reshape(groups, kblocks, BLOCK, taps).transpose(0, 1, 3, 2))
    packed = np.empty((groups, kblocks, taps, BLOCK), weight.dtype)
    for lane in range(BLOCK):
        count = len(range(lane, k_g, BLOCK))  # blocks with an output channel in this lane
        packed[:, :count, :, lane] = rows[:, lane::BLOCK]
        packed[:, count:, :, lane] = 0
    return packed


_PACK_BY_LANES = 4096  # weights of at least this many values are packed lane by lane


@functools.lru_cache(maxsize=256)
def _tap_tables(kh, kw, dh, dw, sh, sw, frame_w):
    """Where each kernel row and column reads the frame of :func:`_framed`: row
    ``r`` in phase-row ``r*dH % sH`` (``rows_at[0, r]``, as a plane offset), shifted
    ``(r*dH // sH)`` frame rows (``rows_at[1, r]``, in values); column ``s`` in phase
    column ``s*dW % sW``, shifted ``s*dW // sW`` values.  Read-only."""
    r, s = np.arange(kh) * dh, np.arange(kw) * dw
    rows_at = np.stack([(r % sh) * sw, (r // sh) * frame_w]).astype(np.int64)
    cols_at = np.stack([s % sw, s // sw]).astype(np.int64)
    rows_at.flags.writeable = cols_at.flags.writeable = False
    return rows_at, cols_at


def _framed(x, out_h, out_w, lead_h, lead_w, kh, kw, dh, dw, sh, sw):
    """``x`` in the flat frame of a conv with output size ``(out_h, out_w)``, strides
    ``(sh, sw)`` and leading pads ``lead`` (negative: crop), its width and tap tables.

    At stride 1 a channel's frame is its plane, zero-padded to exactly the rows and
    columns the conv reads.  Strided, it is the channel's ``sh x sw`` stride phases,
    each so padded: ``frames[n, (c*sh + a)*sw + b, i*Wf + j] = x[n, c, i*sh + a - lead_h,
    j*sw + b - lead_w]``, so a tap again reads a run of consecutive values of one
    plane (:func:`_tap_tables`), and every input value the conv reads is copied once."""
    x = np.ascontiguousarray(x)  # the phase split reads rows as unit-stride vectors
    reach_w = (kw - 1) * dw // sw  # the last tap's shift within its phase row
    frame_h, frame_w = out_h + (kh - 1) * dh // sh, out_w + reach_w
    # a block may start up to a block before the image's end, and its taps reach past
    # that by whole frame rows (inside the plane) and reach_w columns
    slack = BLOCK * simd.VECTOR_BYTES // x.itemsize + reach_w
    batch, ch = x.shape[0], x.shape[1]
    threads = numba.get_num_threads()
    frames = scratch("flat_frame", (batch, ch * sh * sw, frame_h * frame_w + slack), x.dtype)
    if sh == sw == 1:
        run_shares(to_flat_frame, threads, (x, frames, -lead_h, -lead_w, frame_h, frame_w))
    elif sw == 2:
        run_shares(to_phase_frame, threads, (x, frames, -lead_h, -lead_w, frame_h, frame_w, sh))
    else:  # each phase from a strided view of x (its copy is a scalar gather)
        phases = frames.reshape(batch, ch, sh, sw, -1)
        for a in range(sh):
            for b in range(sw):
                # phase row i is input row i*sh + a - lead_h = (i + lo)*sh + first
                lo_h, first_h = divmod(a - lead_h, sh)
                lo_w, first_w = divmod(b - lead_w, sw)
                run_shares(to_flat_frame, threads, (x[:, :, first_h::sh, first_w::sw],
                                                    phases[:, :, a, b], lo_h, lo_w, frame_h,
                                                    frame_w))
    return frames, frame_w, _tap_tables(kh, kw, dh, dw, sh, sw, frame_w)


def _run(x, packed, bias, out, lead_h, lead_w, kh, kw, dh, dw, sh, sw):
    """The conv of ``x`` with strides ``(sh, sw)`` and leading pads ``lead`` (negative:
    crop) into ``out``."""
    if out.size == 0:
        return
    if out.strides[3] != out.itemsize:  # the kernel stores whole rows of vectors
        dense = np.empty(out.shape, out.dtype)
        _run(x, packed, bias, dense, lead_h, lead_w, kh, kw, dh, dw, sh, sw)
        out[...] = dense
        return
    frames, frame_w, (rows_at, cols_at) = _framed(x, out.shape[2], out.shape[3], lead_h,
                                                  lead_w, kh, kw, dh, dw, sh, sw)
    span = config.BLOCKED_BLOCKS * BLOCK * simd.VECTOR_BYTES // out.itemsize
    threads = numba.get_num_threads()
    args = (frames, packed, bias, out, span, kh, kw, dh, dw, frame_w)
    if sh == sw == 1:
        run_shares(_forward_blocked, threads, args)
    else:
        run_shares(_forward_blocked_strided, threads, (*args, rows_at, cols_at))


def _check_stride(geometry):
    if geometry[0] != 1 or geometry[1] != 1:
        raise ValueError(f"the blocked grad input and grad weight run stride 1 only, got "
                         f"stride {geometry[:2]} (dispatch sends them to 'tiled')")


def conv2d_forward_blocked(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    kh, kw = weight.shape[2], weight.shape[3]
    _run(x, _pack(weight, groups), bias, out, ph, pw, kh, kw, dh, dw, sh, sw)


def adjoint_leads(kh, kw, geometry):
    """The leading pads of the stride-1 grad input run as a forward conv of ``grad_out``
    (:func:`adjoint`): ``(kH-1)*dH - pH``, ``(kW-1)*dW - pW`` (negative: crop)."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    return (kh - 1) * dh - ph, (kw - 1) * dw - pw


def adjoint(weight, geometry):
    """The stride-1 grad input as a forward conv of ``grad_out``: its weights ``w'[g, c,
    k, r, s] = w[g, k, c, kH-1-r, kW-1-s]`` (``(G*C_g, K_g, kH, kW)``, a copy) and its
    leading pads (:func:`adjoint_leads`)."""
    groups = geometry[6]
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    flipped = weight.reshape(groups, k_g, c_g, kh, kw)[:, :, :, ::-1, ::-1]
    return (flipped.transpose(0, 2, 1, 3, 4).reshape(groups * c_g, k_g, kh, kw),
            *adjoint_leads(kh, kw, geometry))


def conv2d_grad_input_blocked(grad_out, weight, grad_in, geometry):
    """At stride 1 the adjoint of the forward is a forward conv of ``grad_out``
    (:func:`adjoint`)."""
    _check_stride(geometry)
    sh, sw, ph, pw, dh, dw, groups = geometry
    kh, kw = weight.shape[2], weight.shape[3]
    flipped, lead_h, lead_w = adjoint(weight, geometry)
    _run(grad_out, _pack(flipped, groups), np.zeros(grad_in.shape[1], grad_in.dtype), grad_in,
         lead_h, lead_w, kh, kw, dh, dw, 1, 1)


def conv2d_grad_weight_blocked(x, grad_out, grad_weight, geometry):
    """Dot products along the flat pixels of ``grad_out`` (its columns past ``OW``
    zeroed, its length padded to whole vectors) and of the input's frame, each tap a
    shift (:func:`_grad_weight_blocked`): no im2col columns."""
    _check_stride(geometry)
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, c_g, kh, kw = grad_weight.shape
    batch, _, out_h, out_w = grad_out.shape
    if grad_out.size == 0 or x.size == 0:
        grad_weight[...] = 0
        return
    frames, frame_w, _ = _framed(x, out_h, out_w, ph, pw, kh, kw, dh, dw, 1, 1)
    width = simd.VECTOR_BYTES // grad_out.itemsize
    length = -(-out_h * frame_w // width) * width
    grads = scratch("flat_grads", (batch, out_ch, length), grad_out.dtype)
    threads = numba.get_num_threads()
    run_shares(to_flat_frame, threads, (grad_out, grads, 0, 0, out_h, frame_w))
    contiguous = grad_weight.flags.c_contiguous
    flat = (grad_weight if contiguous else np.empty_like(grad_weight)).reshape(out_ch, -1)
    run_shares(_grad_weight_blocked, threads, (frames, grads, flat, kh, kw, dh, frame_w, dw))
    if not contiguous:
        grad_weight[...] = flat.reshape(grad_weight.shape)
