"""CPU depthwise convolution (``groups == C_in``, any channel multiplier ``m``: output
channel ``k`` reads input channel ``k // m``): forward, grad input and grad weight, the
fast path ``dispatch.choose_conv_algorithm`` picks.  Same signatures and contract as the
direct kernels in ``direct.py``.

Depthwise work is a few multiply-adds per pixel, so the enemy is loop overhead: a row of
56 outputs is too short for a vector loop to pay its set-up nine times over.  So each
plane is handled *flat*, after a stride-phase split.  With stride ``S`` and dilation
``D`` along an axis, tap ``t`` reads input ``o * S + t * D - P``; writing
``t * D = q * S + a`` (phase ``a < S``, shift ``q``), that is element ``o + q`` of the
phase plane ``a``, whose element ``i`` is input ``i * S + a - P`` (zero outside the
input).  In 2-D the ``S_h * S_w`` phase planes are stored flat with row pitch
``Wq = out_w + max q_w``, and the output is computed on the "extended" plane
``out_h x Wq`` (the junk columns past ``out_w`` are dropped when copying out).  Every
tap is then one shift ``off = q_r * Wq + q_s`` of a flat phase plane, so it is one long
unit-stride loop that vectorizes:

    forward      ext[e]           += w[r, s] * phase[e + off]
    grad input   phase_grad[e+off] += w[r, s] * ext_grad[e]     (junk columns zeroed)
    grad weight  dw[r, s]          += dot(ext_grad, phase[off : off + len(ext)])

All taps run in one pass with explicit SIMD vectors (:mod:`..simd`): the forward and the
stride-1 grad input as a gather into registers holding vectors of the output
(:func:`_gather_taps`), the grad weight with one accumulator per tap
(:func:`_dot_taps`); strided grad input keeps one ``axpy`` per tap.  Past 3x3 (whose 9
weights stay in registers), a gather loads an input vector and a weight for every
product; where each tap row reads whole rows below the one above (stride 1, or a
dilation that is a multiple of the stride), output rows ``rise`` apart read the same
input vectors at successive tap rows, so blocks of 4 such rows keep a window of input
vectors in registers down each tap column (:func:`_gather_rows`, about 2 loads for 3
products): the stride-1 grad input of one output channel a channel always (of 4 input
rows or more), the forward where its whole-vector rows cost at most 5/4 of the flat
pass (:func:`_rows_pay`; on maps of a few rows the flat pass's junk columns cost less
than a vector a row).  Strided layers of several row phases keep the flat pass: chains
of 2-3 tap rows a phase ran slower than it (docs/benchmarks/cpu.md, "Session 16").

At stride 1 there is one phase plane: the zero-padded input.  Each output plane
(forward), input plane (grad input) or channel's weights (grad weight, summed over the
batch in order) is computed by one parallel job: deterministic.  Each kernel is a
serial share per thread (:mod:`..shares`) of consecutive planes or channels, whose
buffers it allocates once: on a small map, allocating them per plane cost as much as
the plane's work.
"""

import numba
import numpy as np
from numba import njit

from ....config import CPU_FASTMATH
from .. import simd
from ..rows import axpy, copy, copy_from, copy_into, dot, fill, split_columns, valid_range
from ..shares import private, run_shares, share, share_of


# what a pass in whole vectors (:func:`..rows.split_columns`, :func:`_gather_taps`,
# :func:`_pad_rows`, :func:`_extend`, :func:`_store_rows`) may write or read past its
# data, up to a vector less one: kept at the end of the buffers (a float32 vector, 16
# values with AVX-512, covers every dtype)
_VECTOR_SLACK = simd.VECTOR_BYTES // 4


@njit(inline="always")
def _layout(out_h, out_w, kh, kw, sh, sw, dh, dw):
    """(phase plane rows Hq, row pitch Wq, extended length out_h * Wq, phase buffer
    length Hq * Wq + slack: what the junk columns of the last row read, max q_w, and
    what the last vector of a stride-2 split writes, :data:`_VECTOR_SLACK`)."""
    qh = ((kh - 1) * dh) // sh
    qw = ((kw - 1) * dw) // sw
    wq = out_w + qw
    hq = out_h + qh
    return hq, wq, out_h * wq, hq * wq + max(qw, _VECTOR_SLACK)


@njit(inline="always")
def _tap(r, s, sw, sh, dh, dw, wq, size):
    """Where tap (r, s) starts in the flat phase buffer: its phase plane's start plus
    the tap's shift."""
    a, qr = (r * dh) % sh, (r * dh) // sh
    b, qs = (s * dw) % sw, (s * dw) // sw
    return (a * sw + b) * size + qr * wq + qs


@njit(inline="always")
def _interleave(dst, even, odd):
    """``dst[2p], dst[2p + 1] = even[p], odd[p]``: one flat loop LLVM vectorizes (the
    stride is a constant)."""
    for p in range(even.shape[0]):
        dst[2 * p] = even[p]
        dst[2 * p + 1] = odd[p]


@njit(inline="always")
def _phase_rows(rows, phases, a, sw, size, hq, wq):
    """Where row phase ``a`` is assembled: at stride 1 along W it is phase plane ``a``
    itself (row pitch ``wq``), else the ``rows`` buffer (row pitch ``sw * wq``)."""
    if sw == 1:
        return phases[a * size:(a + 1) * size]
    return rows[:hq * wq * sw]


@njit(inline="always")
def _columns(pw, in_w, pitch):
    """The columns ``[c0, c1)`` of a row-phase row that hold input columns ``c - pw``."""
    c0 = min(max(pw, 0), pitch)
    return c0, max(min(pw + in_w, pitch), c0)


@njit(nogil=True)
def _copy_rows(buf, plane, top, sh, pw, i_lo, i_hi, rows, pitch):
    """:func:`_pad_rows` for long rows: a fill, then a copy loop a row.  Compiled once
    and called, not inlined into each kernel: a call per plane costs nothing next to a
    plane of long rows, and the kernels compile faster without the copy loops."""
    fill(buf[:rows * pitch], buf.dtype.type(0))
    c0, c1 = _columns(pw, plane.shape[1], pitch)
    for i in range(i_lo, i_hi):
        copy(buf[i * pitch + c0:i * pitch + c1], plane[i * sh + top, c0 - pw:c1 - pw])


@njit(inline="always")
def _pad_rows(buf, plane, top, sh, pw, i_lo, i_hi, rows, pitch):
    """``buf[i * pitch + j] = plane[i * sh + top, j - pw]`` for ``i < rows``, ``j <
    pitch``, zero outside the plane (rows outside ``[i_lo, i_hi)`` are all zero).

    Rows of at most two vectors in whole vectors of masked loads (lanes outside the
    plane are zeros, their memory never read), one store each: a row's last vector
    writes up to a vector less one past it, which the next row overwrites; past the
    last row the caller keeps that much slack.  On short rows that beats a copy loop's
    set-up; long rows take the loop (:func:`_copy_rows`), whose plain loads are faster
    than masked ones."""
    in_w, width = plane.shape[1], simd.lanes(buf)
    if pitch > 2 * width:
        _copy_rows(buf, plane, top, sh, pw, i_lo, i_hi, rows, pitch)
        return
    zero = buf.dtype.type(0)
    for i in range(rows):
        at = i * pitch
        if i < i_lo or i >= i_hi:
            fill(buf[at:at + pitch], zero)
            continue
        ih = i * sh + top
        for v in range((pitch + width - 1) // width):
            j = v * width
            simd.store_flat(buf, at + j,
                            simd.load_range(plane, ih, j - pw, pw - j, pw - j + in_w))


@njit(nogil=True)
def _copy_out(plane, ext, wq):
    """:func:`_store_rows` for long rows: a copy loop a row (compiled once, called)."""
    out_h, out_w = plane.shape
    for oh in range(out_h):
        copy(plane[oh], ext[oh * wq:oh * wq + out_w])


@njit(inline="always")
def _store_rows(plane, ext, wq):
    """``plane[oh, j] = ext[oh * wq + j]`` for every row of ``plane``: rows of at most
    two vectors in whole vectors, each a masked store, ``ext`` read up to a vector past
    a row (its next row, or slack past the last); long rows by :func:`_copy_out`."""
    out_h, out_w = plane.shape
    width = simd.lanes(ext)
    if out_w > 2 * width:
        _copy_out(plane, ext, wq)
        return
    for oh in range(out_h):
        for v in range((out_w + width - 1) // width):
            j = v * width
            simd.store_range(plane, oh, j, simd.load_flat(ext, oh * wq + j), 0, out_w - j)


@njit(inline="always")
def _split_phases(phases, rows, plane, sh, sw, ph, pw, hq, wq):
    """``phases[(a * sw + b) * size + i * wq + j] = plane[i * sh + a - ph, j * sw + b - pw]``
    (flat, one phase plane every ``size`` elements), zero outside the plane.

    At column stride 2, row by row: both column phases of a row in one pass of vector
    loads and even/odd shuffles (:func:`..rows.split_columns`), no row buffer.  Other
    column strides in two passes, both flat: each row phase ``a`` is assembled with
    whole-row copies into ``rows`` (zero-padded, row pitch ``sw * wq``), then split into
    its ``sw`` column phases by one strided pass over the buffer (the column phase ``b``
    is every ``sw``-th element from ``b``).  Passes, not a per-row gather of ``wq``
    elements per phase (the first version), which spent most of the forward's time in
    loop set-up; at stride 2 the one-pass split is faster still (measured:
    docs/benchmarks/cpu.md, "Kernel measurements")."""
    in_h, in_w = plane.shape
    size = phases.shape[0] // (sh * sw)
    pitch, flat = sw * wq, hq * wq
    zero = phases.dtype.type(0)
    for a in range(sh):
        first = a * sw * size
        if sw == 2:  # both column phases of each row in one pass, no row buffer
            even, odd = phases[first:first + size], phases[first + size:first + 2 * size]
            for i in range(hq):
                ih = i * sh + a - ph
                if ih < 0 or ih >= in_h:
                    fill(even[i * wq:(i + 1) * wq], zero)
                    fill(odd[i * wq:(i + 1) * wq], zero)
                else:
                    split_columns(plane, ih, -pw, in_w, even, odd, i * wq, wq)
            fill(even[flat:], zero)  # the slack past the last row
            fill(odd[flat:], zero)
            continue
        buf = _phase_rows(rows, phases, a, sw, size, hq, wq)
        i_lo, i_hi = valid_range(a - ph, sh, in_h, hq)
        _pad_rows(buf, plane, a - ph, sh, pw, i_lo, i_hi, hq, pitch)
        if sw == 1:
            fill(buf[flat:], zero)  # the slack past the last row, read by junk columns
            continue
        for b in range(sw):
            copy_from(phases[first + b * size:first + b * size + flat], buf, b, sw)
        for b in range(sw):  # the slack past the last row, read by junk columns
            fill(phases[first + b * size + flat:first + (b + 1) * size], zero)


@njit(inline="always")
def _merge_phases(plane, phases, rows, sh, sw, ph, pw, hq, wq):
    """The adjoint of :func:`_split_phases`: every input element takes its phase-plane
    entry (each element has exactly one), zero where no phase plane reaches."""
    in_h, in_w = plane.shape
    size = phases.shape[0] // (sh * sw)
    pitch, flat = sw * wq, hq * wq
    c0, c1 = _columns(pw, in_w, pitch)
    fill(plane.reshape(in_h * in_w), plane.dtype.type(0))
    for a in range(sh):
        buf = _phase_rows(rows, phases, a, sw, size, hq, wq)
        first = a * sw * size
        if sw == 2:
            _interleave(buf, phases[first:first + flat], phases[first + size:first + size + flat])
        elif sw > 2:
            for b in range(sw):
                copy_into(buf, b, sw, phases[first + b * size:first + b * size + flat])
        i_lo, i_hi = valid_range(a - ph, sh, in_h, hq)
        for i in range(i_lo, i_hi):
            copy(plane[i * sh + a - ph, c0 - pw:c1 - pw], buf[i * pitch + c0:i * pitch + c1])


@njit(inline="always")
def _extend(ext, go_plane, wq):
    """``go_plane`` (out_h, out_w) into the extended layout, junk columns zero: each row
    in whole vectors of masked loads (:func:`_pad_rows`), so ``ext`` is written up to a
    vector less one past its end (zeros; callers keep that much slack)."""
    out_h, out_w = go_plane.shape
    _pad_rows(ext, go_plane, 0, 1, 0, 0, out_h, out_h, wq)


@njit(inline="always")
def _tap_offsets(kh, kw, sh, sw, dh, dw, wq, size):
    """Every tap's start in the flat phase buffer (:func:`_tap`), in ``(r, s)`` order."""
    offsets = np.empty(kh * kw, np.intp)  # written once, then only read
    for r in range(kh):
        for s in range(kw):
            offsets[r * kw + s] = _tap(r, s, sw, sh, dh, dw, wq, size)
    return offsets


@njit(inline="always", fastmath=CPU_FASTMATH)
def _dot_taps(ext, phases, offsets, sums):
    """``sums[t] += dot(ext, phases[offsets[t] :][:len(ext)])`` for every tap: at 3x3 one
    pass with 9 vector accumulators, each vector of ``ext`` loaded once (:mod:`..simd`);
    other kernels one dot product per tap."""
    width, size, count = simd.lanes(ext), ext.shape[0], offsets.shape[0]
    zero = ext.dtype.type(0)
    if count != 9:
        for t in range(count):
            sums[t] += dot(ext, phases[offsets[t]:offsets[t] + size], zero)
        return
    o0, o1, o2, o3, o4 = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4]
    o5, o6, o7, o8 = offsets[5], offsets[6], offsets[7], offsets[8]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = simd.zeros(ext)
    for step in range(size // width):
        e = step * width
        g = simd.load_flat(ext, e)
        a0 = simd.fma(g, simd.load_flat(phases, o0 + e), a0)
        a1 = simd.fma(g, simd.load_flat(phases, o1 + e), a1)
        a2 = simd.fma(g, simd.load_flat(phases, o2 + e), a2)
        a3 = simd.fma(g, simd.load_flat(phases, o3 + e), a3)
        a4 = simd.fma(g, simd.load_flat(phases, o4 + e), a4)
        a5 = simd.fma(g, simd.load_flat(phases, o5 + e), a5)
        a6 = simd.fma(g, simd.load_flat(phases, o6 + e), a6)
        a7 = simd.fma(g, simd.load_flat(phases, o7 + e), a7)
        a8 = simd.fma(g, simd.load_flat(phases, o8 + e), a8)
    tail = size - size % width
    sums[0] += simd.total(a0) + dot(ext[tail:], phases[o0 + tail:o0 + size], zero)
    sums[1] += simd.total(a1) + dot(ext[tail:], phases[o1 + tail:o1 + size], zero)
    sums[2] += simd.total(a2) + dot(ext[tail:], phases[o2 + tail:o2 + size], zero)
    sums[3] += simd.total(a3) + dot(ext[tail:], phases[o3 + tail:o3 + size], zero)
    sums[4] += simd.total(a4) + dot(ext[tail:], phases[o4 + tail:o4 + size], zero)
    sums[5] += simd.total(a5) + dot(ext[tail:], phases[o5 + tail:o5 + size], zero)
    sums[6] += simd.total(a6) + dot(ext[tail:], phases[o6 + tail:o6 + size], zero)
    sums[7] += simd.total(a7) + dot(ext[tail:], phases[o7 + tail:o7 + size], zero)
    sums[8] += simd.total(a8) + dot(ext[tail:], phases[o8 + tail:o8 + size], zero)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _gather_taps(out, src, shifts, taps, start, accumulate, size):
    """``out[i] = (out[i] if accumulate else start) + sum over t of taps[t] *
    src[i + shifts[t]]`` for ``i < size``: all taps in one pass, vectors of ``out`` kept
    in registers (:mod:`..simd`) while the taps add into them in tap order, then stored
    once; at 3x3 the 9 weights and shifts stay in registers too, other kernels run 4
    vectors at a time (4 independent chains of products).  In whole vectors, the
    last one partly past ``size``: it writes ``out`` and reads ``src`` up to a vector
    past ``size`` (callers keep :data:`_VECTOR_SLACK` there), lanes whose results land
    only there.

    The forward is ``ext = bias + taps over the phases`` (shifts: the taps' offsets);
    the stride-1 grad input, its adjoint, is ``phases += taps over ext`` read
    backwards (``ext`` in a zero-margined buffer, shifts ``margin - offset``).  One
    ``axpy`` per tap, which stores and reloads the plane every tap, is slower for the
    forward and the stride-1 grad input; the strided grad input keeps it, since each
    tap there reaches one of several phase planes and a gather over all of them was
    slower (measured: docs/benchmarks/cpu.md, "Kernel measurements")."""
    width, count = simd.lanes(out), shifts.shape[0]
    steps = (size + width - 1) // width
    if count == 9:
        w0, w1, w2 = simd.splat(out, taps[0]), simd.splat(out, taps[1]), simd.splat(out, taps[2])
        w3, w4, w5 = simd.splat(out, taps[3]), simd.splat(out, taps[4]), simd.splat(out, taps[5])
        w6, w7, w8 = simd.splat(out, taps[6]), simd.splat(out, taps[7]), simd.splat(out, taps[8])
        o0, o1, o2, o3, o4 = shifts[0], shifts[1], shifts[2], shifts[3], shifts[4]
        o5, o6, o7, o8 = shifts[5], shifts[6], shifts[7], shifts[8]
        for step in range(steps):
            i = step * width
            acc = simd.load_flat(out, i) if accumulate else simd.splat(out, start)
            acc = simd.fma(w0, simd.load_flat(src, o0 + i), acc)
            acc = simd.fma(w1, simd.load_flat(src, o1 + i), acc)
            acc = simd.fma(w2, simd.load_flat(src, o2 + i), acc)
            acc = simd.fma(w3, simd.load_flat(src, o3 + i), acc)
            acc = simd.fma(w4, simd.load_flat(src, o4 + i), acc)
            acc = simd.fma(w5, simd.load_flat(src, o5 + i), acc)
            acc = simd.fma(w6, simd.load_flat(src, o6 + i), acc)
            acc = simd.fma(w7, simd.load_flat(src, o7 + i), acc)
            acc = simd.fma(w8, simd.load_flat(src, o8 + i), acc)
            simd.store_flat(out, i, acc)
        return
    blocked = steps - steps % 4
    for step in range(0, blocked, 4):  # 4 vectors of out: 4 independent FMA chains
        i = step * width
        if accumulate:
            a0, a1 = simd.load_flat(out, i), simd.load_flat(out, i + width)
            a2, a3 = simd.load_flat(out, i + 2 * width), simd.load_flat(out, i + 3 * width)
        else:
            a0 = a1 = a2 = a3 = simd.splat(out, start)
        for t in range(count):
            w, j = simd.splat(out, taps[t]), shifts[t] + i
            a0 = simd.fma(w, simd.load_flat(src, j), a0)
            a1 = simd.fma(w, simd.load_flat(src, j + width), a1)
            a2 = simd.fma(w, simd.load_flat(src, j + 2 * width), a2)
            a3 = simd.fma(w, simd.load_flat(src, j + 3 * width), a3)
        simd.store_flat(out, i, a0)
        simd.store_flat(out, i + width, a1)
        simd.store_flat(out, i + 2 * width, a2)
        simd.store_flat(out, i + 3 * width, a3)
    for step in range(blocked, steps):
        i = step * width
        acc = simd.load_flat(out, i) if accumulate else simd.splat(out, start)
        for t in range(count):
            acc = simd.fma(simd.splat(out, taps[t]), simd.load_flat(src, shifts[t] + i), acc)
        simd.store_flat(out, i, acc)


@njit(inline="always")
def _row_step(shifts, kh, kw, pitch):
    """The shift between a tap and the one a kernel row below it, where every tap has
    the same one and it is whole rows of ``pitch`` (a stride-1 conv, or a strided one
    whose dilation is a multiple of its stride: one row phase), else 0."""
    if kh < 2:
        return 0
    step = shifts[kw] - shifts[0]
    if step % pitch:
        return 0
    for t in range(kw, kh * kw):
        if shifts[t] - shifts[t - kw] != step:
            return 0
    return step


@njit(inline="always")
def _rows_pay(rows, cols, pitch, rise, width):
    """Whether :func:`_gather_rows` computes a forward's plane for less than the flat pass
    (:func:`_gather_taps`): every chain of rows ``rise`` apart has a block of 4, and
    its vectors (whole vectors of ``cols`` a row, in blocks of 4 rows, the last block
    ending at the chain's end) are at most 5/4 of the flat pass's (``rows * pitch``
    values, junk columns included), which cost more each: an input vector and a weight
    loaded for every product, against about 2 for 3 here."""
    if rows < 4 * rise:
        return False
    computed = 0
    for rho in range(rise):
        chain = (rows - rho + rise - 1) // rise
        computed += 4 * ((chain + 3) // 4)
    return 4 * computed * ((cols + width - 1) // width) <= 5 * ((rows * pitch + width - 1) // width)


@njit(nogil=True, fastmath=CPU_FASTMATH)
def _gather_rows(out, src, shifts, taps, start, row0, rows, col0, cols, pitch, rise, step,
                 kh, kw):
    """``out[i*pitch + c] = start + sum over s, then r, of taps[r*kw + s] * src[i*pitch +
    c + shifts[r*kw + s]]`` for the rows ``row0 <= i < row0 + rows`` and the columns
    ``col0 <= c < col0 + cols`` of a plane of row pitch ``pitch``, where a tap reads
    ``step`` past the tap a kernel row above it, and ``step`` is ``rise`` rows of
    ``out`` (``-rise`` for the grad input's adjoint, which reads backwards).

    So the output ``rise`` rows below reads at tap ``r`` what this one reads at tap
    ``r + 1``: a block is one vector of columns of 4 rows ``rise`` apart, and per column
    tap ``s`` it keeps a window of 4 input vectors in registers, loading one new vector
    and one weight per kernel row for 4 fused multiply-adds (:func:`_gather_taps` loads
    an input vector for each, 1 + 1/4 loads per product; here ``(kh + 3 + kh) / (4 *
    kh)``).  Each chain of rows ``rise`` apart needs at least 4 (``rows >= 4 *
    rise``); its last block ends at its last row, overlapping the one before where the
    chain is not a multiple of 4.  In whole vectors: a row's last vector writes up to a
    vector less one past ``col0 + cols`` (the next row's values, or the slack past the
    plane, which callers keep), the values that position's own row computes, in the
    same order: so every block may run in any order, but ``out`` is overwritten, never
    added to."""
    width = simd.lanes(out)
    vectors = (cols + width - 1) // width
    span = rise * pitch
    for rho in range(rise):  # the rows row0 + rho, + rise, ...: a chain of blocks
        chain = (rows - rho + rise - 1) // rise
        for b in range((chain + 3) // 4):
            m = min(4 * b, chain - 4)  # the last block ends at the chain's end
            top = (row0 + rho + m * rise) * pitch + col0 + (3 * span if step < 0 else 0)
            for v in range(vectors):
                p = top + v * width
                a0 = a1 = a2 = a3 = simd.splat(out, start)
                for s in range(kw):
                    j = p + shifts[s]
                    x0, x1 = simd.load_flat(src, j), simd.load_flat(src, j + step)
                    x2 = simd.load_flat(src, j + 2 * step)
                    for r in range(kh):
                        w = simd.splat(out, taps[r * kw + s])
                        x3 = simd.load_flat(src, j + (r + 3) * step)
                        a0, a1 = simd.fma(w, x0, a0), simd.fma(w, x1, a1)
                        a2, a3 = simd.fma(w, x2, a2), simd.fma(w, x3, a3)
                        x0, x1, x2 = x1, x2, x3
                simd.store_flat(out, p, a0)
                simd.store_flat(out, p + step, a1)
                simd.store_flat(out, p + 2 * step, a2)
                simd.store_flat(out, p + 3 * step, a3)


@share(fastmath=CPU_FASTMATH)
def _conv2d_forward_depthwise(t, threads, args):
    # n c h w , (c m) 1 r s -> n (c m) oh ow
    x, weight, bias, out, sh, sw, ph, pw, dh, dw, groups = args
    batch, in_ch = x.shape[0], x.shape[1]
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    multiplier = out_ch // in_ch
    hq, wq, length, size = _layout(out_h, out_w, kh, kw, sh, sw, dh, dw)
    offsets = _tap_offsets(kh, kw, sh, sw, dh, dw, wq, size)
    jobs = batch * out_ch
    zero = x.dtype.type(0)
    buffer = private(sh * sw * size + _VECTOR_SLACK, x.dtype)
    fill(buffer[sh * sw * size:], zero)
    phases = buffer[:sh * sw * size]
    # split_columns needs no row buffer; _pad_rows writes a vector past its rows
    rows = private(0 if sw == 2 else hq * wq * sw + _VECTOR_SLACK, x.dtype)
    ext = private(length + _VECTOR_SLACK, x.dtype)
    step = _row_step(offsets, kh, kw, wq) if kh * kw != 9 else 0  # 3x3: weights in registers
    if step and not _rows_pay(out_h, out_w, wq, step // wq, simd.lanes(ext)):
        step = 0
    origin = np.intp(0)  # row and column 0, typed as the grad input's (one compile)
    lo, hi = share_of(t, threads, jobs)
    for job in range(lo, hi):
        n = job // out_ch
        k = job % out_ch
        _split_phases(phases, rows, x[n, k // multiplier], sh, sw, ph, pw, hq, wq)
        if step:  # a window of input vectors down each tap column, in registers
            _gather_rows(ext, buffer, offsets, weight[k, 0].reshape(kh * kw), bias[k], origin,
                         out_h, origin, out_w, wq, step // wq, step, kh, kw)
        else:
            _gather_taps(ext, buffer, offsets, weight[k, 0].reshape(kh * kw), bias[k],
                         False, length)
        _store_rows(out[n, k], ext, wq)


def conv2d_forward_depthwise(x, weight, bias, out, geometry):
    run_shares(_conv2d_forward_depthwise, numba.get_num_threads(),
               (x, weight, bias, out, *geometry))


@share(fastmath=CPU_FASTMATH)
def _conv2d_grad_input_depthwise(t, threads, args):
    # n (c m) oh ow , (c m) 1 r s -> n c h w
    grad_out, weight, grad_in, sh, sw, ph, pw, dh, dw, groups = args
    batch, in_ch = grad_in.shape[0], grad_in.shape[1]
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    multiplier = out_ch // in_ch
    hq, wq, length, size = _layout(out_h, out_w, kh, kw, sh, sw, dh, dw)
    offsets = _tap_offsets(kh, kw, sh, sw, dh, dw, wq, size)
    spread = sh * sw == 1  # one phase plane: all taps in one gather pass
    margin = offsets.max() if spread else 0
    shifts = margin - offsets  # where a tap reads ext in the buffer, for the gather
    zero = grad_in.dtype.type(0)
    jobs = batch * in_ch
    buffer = private(sh * sw * size + _VECTOR_SLACK, grad_in.dtype)
    phases = buffer[:sh * sw * size]
    rows = private(hq * wq * sw, grad_in.dtype)
    padded = private(margin + (size if spread else length) + _VECTOR_SLACK, grad_in.dtype)
    fill(padded[:margin], zero)  # zeros around ext, for the gather
    fill(padded[margin + length:], zero)
    ext = padded[margin:margin + length]
    # one output channel an input channel at stride 1: the window of input vectors
    # (_gather_rows) computes the rows and columns _merge_phases reads, overwriting
    step = (_row_step(shifts, kh, kw, wq)
            if spread and multiplier == 1 and kh * kw != 9 else 0)
    i_lo, i_hi = valid_range(-ph, 1, grad_in.shape[2], hq)
    c0, c1 = _columns(pw, grad_in.shape[3], wq)
    if i_hi - i_lo < 4 * (-step // wq):
        step = 0  # a chain of rows under 4
    lo, hi = share_of(t, threads, jobs)
    for job in range(lo, hi):
        n = job // in_ch
        c = job % in_ch
        if not step:
            fill(buffer, zero)
        for j in range(multiplier):
            k = c * multiplier + j
            _extend(ext, grad_out[n, k], wq)
            if step:
                _gather_rows(buffer, padded, shifts, weight[k, 0].reshape(kh * kw), zero,
                             i_lo, i_hi - i_lo, c0, c1 - c0, wq, -step // wq, step, kh, kw)
            elif spread:
                _gather_taps(buffer, padded, shifts, weight[k, 0].reshape(kh * kw), zero,
                             True, size)
            else:  # each tap reaches one phase plane of several: an axpy there
                taps = weight[k, 0].reshape(kh * kw)
                for tap in range(kh * kw):
                    axpy(phases[offsets[tap]:offsets[tap] + length], ext, taps[tap])
        _merge_phases(grad_in[n, c], phases, rows, sh, sw, ph, pw, hq, wq)


def conv2d_grad_input_depthwise(grad_out, weight, grad_in, geometry):
    run_shares(_conv2d_grad_input_depthwise, numba.get_num_threads(),
               (grad_out, weight, grad_in, *geometry))


@share(fastmath=CPU_FASTMATH)
def _conv2d_grad_weight_depthwise(t, threads, args):
    # n c h w , n (c m) oh ow -> (c m) 1 r s   (one job per output channel; batch in order)
    x, grad_out, grad_weight, sh, sw, ph, pw, dh, dw, groups = args
    batch, in_ch = x.shape[0], x.shape[1]
    out_ch, _, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    multiplier = out_ch // in_ch
    hq, wq, length, size = _layout(out_h, out_w, kh, kw, sh, sw, dh, dw)
    offsets = _tap_offsets(kh, kw, sh, sw, dh, dw, wq, size)
    acc = private(kh * kw, np.float64)
    phases = private(sh * sw * size, x.dtype)
    # split_columns needs no row buffer; _pad_rows writes a vector past its rows
    rows = private(0 if sw == 2 else hq * wq * sw + _VECTOR_SLACK, x.dtype)
    ext = private(length + _VECTOR_SLACK, x.dtype)  # _extend writes into the slack
    lo, hi = share_of(t, threads, out_ch)
    for k in range(lo, hi):
        acc[:] = 0.0
        for n in range(batch):
            _split_phases(phases, rows, x[n, k // multiplier], sh, sw, ph, pw, hq, wq)
            _extend(ext, grad_out[n, k], wq)
            _dot_taps(ext[:length], phases, offsets, acc)
        for tap in range(kh * kw):
            grad_weight[k, 0, tap // kw, tap % kw] = acc[tap]


def conv2d_grad_weight_depthwise(x, grad_out, grad_weight, geometry):
    run_shares(_conv2d_grad_weight_depthwise, numba.get_num_threads(),
               (x, grad_out, grad_weight, *geometry))
