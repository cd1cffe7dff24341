"""Row primitives the CPU kernels share (inlined into each caller): valid output
ranges, axpy / dot / copy along a row, strided gathers and scatters, column splits.

Every conv, pool and im2col kernel runs its innermost loop along an output row, over the
range of positions whose input tap is in bounds, computed up front (:func:`valid_range`),
so the loop is branch-free and, at stride 1, unit-stride.  It runs through
:func:`axpy` / :func:`dot` on row *views* indexed from 0: numba wraps negative indices
around, and with an index LLVM cannot prove non-negative that check stops the loop
from vectorizing (scalar ``vfmadd..ss`` only, much slower; measured:
docs/benchmarks/cpu.md, "Kernel measurements").  Strided reads are the exception
(see the comment above :func:`axpy_from`): there a scalar loop is what is wanted.
"""

from numba import njit

from . import simd


@njit(inline="always")
def _floor_div(a, b):
    return a // b  # numba follows Python: rounds toward -inf


@njit(inline="always")
def valid_range(offset, stride, in_len, out_len):
    """Outputs ``o`` in ``[lo, hi)`` whose input tap ``o * stride + offset`` is in ``[0, in_len)``."""
    lo = -_floor_div(offset, stride)  # ceil(-offset / stride)
    if lo < 0:
        lo = 0
    hi = _floor_div(in_len - 1 - offset, stride) + 1
    if hi > out_len:
        hi = out_len
    return lo, hi


@njit(inline="always")
def frame_span(offset, in_len, out_len):
    """:func:`valid_range` at stride 1, clamped to ``0 <= lo <= hi <= out_len``: the
    positions ``[lo, hi)`` of a frame of ``out_len`` whose input ``o + offset`` exists
    (the frame copies pad before ``lo`` and from ``hi``)."""
    lo, hi = valid_range(offset, 1, in_len, out_len)
    lo = min(lo, out_len)
    return lo, max(hi, lo)


@njit(inline="always")
def _span(start, step, count):
    """The stop of ``count`` elements from ``start`` every ``step``."""
    return start + (count - 1) * step + 1


@njit(inline="always")
def axpy(dst, src, a):
    """``dst += a * src`` over views of one length, indexed from 0 (vectorizes)."""
    for i in range(dst.shape[0]):
        dst[i] += a * src[i]


@njit(inline="always")
def copy(dst, src):
    """``dst[:] = src`` over views of one length, indexed from 0 (vectorizes)."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(inline="always")
def fill(dst, value):
    for i in range(dst.shape[0]):
        dst[i] = value


@njit(inline="always")
def split_columns(src, row, lo, in_w, even, odd, at, count):
    """``even[at + j], odd[at + j] = src[row, 2*j + lo], src[row, 2*j + 1 + lo]`` for
    ``j < count``, 0 outside the row's ``in_w`` columns (``lo`` may be negative): the
    two column phases of a stride-2 row in one pass.  In whole vectors: two masked
    loads (lanes outside the row are zeros, their memory never read) split into even
    and odd lanes, so ``even`` and ``odd`` are overwritten up to a vector less one past
    ``at + count`` (callers write those values afterwards, or keep that much slack).
    Faster than a strided copy of each phase (measured: docs/benchmarks/cpu.md, "Kernel
    measurements")."""
    lanes = simd.lanes(even)
    for j in range(0, count, lanes):
        col = 2 * j + lo  # source columns col .. col + 2*lanes - 1
        first, stop = -col, in_w - col  # the lanes inside the row
        evens, odds = simd.deinterleave(
            simd.load_range(src, row, col, first, stop),
            simd.load_range(src, row, col + lanes, first - lanes, stop - lanes))
        simd.store_flat(even, at + j, evens)
        simd.store_flat(odd, at + j, odds)


@njit(inline="always")
def dot(a, b, acc):
    """``acc + sum(a * b)`` over views of one length, indexed from 0 (vectorizes)."""
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


# Strided forms: one of the rows is read or written every ``step`` elements from
# ``start``.  Each branches on ``step == 1`` and calls the loop with a contiguous view
# there: a helper returning either view would unify both to the strided array type, and
# the contiguous case would stop vectorizing.  A strided copy or axpy reads the row
# itself (``row[start + i * step]``), not a strided view, which LLVM vectorizes with
# gathers: those ran 4-5x slower than scalar loads on rows out of cache (AMD Zen 4;
# measured: docs/benchmarks/cpu.md, "Session 12").  Strided writes keep the view: LLVM
# leaves those loops scalar (no scatters).  The strided dot keeps it too: with fastmath's
# reassociation LLVM vectorizes its sum with gathers either way.
@njit(inline="always")
def axpy_from(dst, src, start, step, a):
    """``dst[i] += a * src[start + i * step]``."""
    if step == 1:
        axpy(dst, src[start:start + dst.shape[0]], a)
    else:
        for i in range(dst.shape[0]):
            dst[i] += a * src[start + i * step]


@njit(inline="always")
def axpy_into(dst, start, step, src, a):
    """``dst[start + i * step] += a * src[i]``."""
    if step == 1:
        axpy(dst[start:start + src.shape[0]], src, a)
    else:
        axpy(dst[start:_span(start, step, src.shape[0]):step], src, a)


@njit(inline="always")
def copy_from(dst, src, start, step):
    """``dst[i] = src[start + i * step]``."""
    if step == 1:
        copy(dst, src[start:start + dst.shape[0]])
    else:
        for i in range(dst.shape[0]):
            dst[i] = src[start + i * step]


@njit(inline="always")
def copy_into(dst, start, step, src):
    """``dst[start + i * step] = src[i]``."""
    if step == 1:
        copy(dst[start:start + src.shape[0]], src)
    else:
        copy(dst[start:_span(start, step, src.shape[0]):step], src)


@njit(inline="always")
def dot_from(a, src, start, step, acc):
    """``acc + sum(a[i] * src[start + i * step])``."""
    if step == 1:
        return dot(a, src[start:start + a.shape[0]], acc)
    return dot(a, src[start:_span(start, step, a.shape[0]):step], acc)
