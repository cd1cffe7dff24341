"""CPU convolution kernels (numba, parallel).

Three primitives make every convolution and its backward:

* ``conv2d_forward``     cross-correlation                    n c h w , k c r s -> n k oh ow
* ``conv2d_grad_input``  its adjoint w.r.t. the input         n k oh ow , k c r s -> n c h w
  (this *is* the transposed convolution)
* ``conv2d_grad_weight`` its adjoint w.r.t. the weight        n c h w , n k oh ow -> k c r s

plus ``conv2d_grad_bias`` (a sum over n, oh, ow).  1-D convs run through them with H = 1.

Contract (the dispatch layer guarantees it): arrays are C-contiguous, of one float dtype,
with shapes already checked; ``out`` is preallocated and fully overwritten;
``geometry = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)`` where the pads
are the *leading* pads (the trailing ones only shape the output, which ``out`` carries).

Each parallel job owns one output plane (or one weight entry), so no two threads write
the same element: results are deterministic and race-free.  The innermost loop runs
along the output row over the range of positions whose input tap is in bounds, computed
up front, so it is branch-free and, at stride 1, unit-stride.  It runs through
:func:`axpy` / :func:`dot` (and their strided forms) on row *views* indexed from 0:
numba wraps negative indices around, and with an index LLVM cannot prove non-negative
that check stops the loop from vectorizing (scalar ``vfmadd..ss`` only, much slower;
measured: docs/benchmarks/cpu.md, "Kernel measurements").
"""

from numba import njit, prange

from ...config import CPU_FASTMATH
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
# the contiguous case would stop vectorizing.
@njit(inline="always")
def axpy_from(dst, src, start, step, a):
    """``dst[i] += a * src[start + i * step]``."""
    if step == 1:
        axpy(dst, src[start:start + dst.shape[0]], a)
    else:
        axpy(dst, src[start:_span(start, step, dst.shape[0]):step], a)


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
        copy(dst, src[start:_span(start, step, dst.shape[0]):step])


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


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def conv2d_forward(x, weight, bias, out, geometry):
    # n c h w , k c r s -> n k oh ow   (bias has length k; pass zeros for no bias)
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, _, in_h, in_w = x.shape
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    out_per_group = out_ch // groups
    for job in prange(batch * out_ch):
        n = job // out_ch
        k = job % out_ch
        g = k // out_per_group
        plane = out[n, k]
        plane[:, :] = bias[k]
        for c in range(ch_per_group):
            x_plane = x[n, g * ch_per_group + c]
            for r in range(kh):
                oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
                for s in range(kw):
                    w = weight[k, c, r, s]
                    offset = s * dw - pw
                    ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
                    count = ow_hi - ow_lo
                    if count <= 0:
                        continue
                    for oh in range(oh_lo, oh_hi):
                        axpy_from(plane[oh, ow_lo:ow_hi], x_plane[oh * sh + r * dh - ph],
                                  ow_lo * sw + offset, sw, w)


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def conv2d_grad_input(grad_out, weight, grad_in, geometry):
    # n k oh ow , k c r s -> n c h w   (the transposed convolution)
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = grad_in.shape
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    for job in prange(batch * in_ch):
        n = job // in_ch
        ci = job % in_ch
        g = ci // ch_per_group
        c = ci % ch_per_group
        plane = grad_in[n, ci]
        plane[:, :] = 0
        for kk in range(out_per_group):
            k = g * out_per_group + kk
            go_plane = grad_out[n, k]
            for r in range(kh):
                oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
                for s in range(kw):
                    w = weight[k, c, r, s]
                    offset = s * dw - pw
                    ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
                    count = ow_hi - ow_lo
                    if count <= 0:
                        continue
                    for oh in range(oh_lo, oh_hi):
                        axpy_into(plane[oh * sh + r * dh - ph], ow_lo * sw + offset, sw,
                                  go_plane[oh, ow_lo:ow_hi], w)


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def conv2d_grad_weight(x, grad_out, grad_weight, geometry):
    # n c h w , n k oh ow -> k c r s   (one job per weight entry: a deterministic dot product)
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, _, in_h, in_w = x.shape
    out_ch, ch_per_group, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    taps = kh * kw
    for job in prange(out_ch * ch_per_group * taps):
        k = job // (ch_per_group * taps)
        c = (job // taps) % ch_per_group
        r = (job % taps) // kw
        s = job % kw
        ci = (k // out_per_group) * ch_per_group + c
        offset = s * dw - pw
        oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
        ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
        acc = grad_weight.dtype.type(0)
        count = ow_hi - ow_lo
        if count > 0:
            for n in range(batch):
                for oh in range(oh_lo, oh_hi):
                    acc = dot_from(grad_out[n, k, oh, ow_lo:ow_hi],
                                   x[n, ci, oh * sh + r * dh - ph], ow_lo * sw + offset, sw,
                                   acc)
        grad_weight[k, c, r, s] = acc


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def conv2d_grad_bias(grad_out, grad_bias):
    # n k oh ow -> k
    batch, out_ch, out_h, out_w = grad_out.shape
    for k in prange(out_ch):
        acc = grad_bias.dtype.type(0)
        for n in range(batch):
            for oh in range(out_h):
                for ow in range(out_w):
                    acc += grad_out[n, k, oh, ow]
        grad_bias[k] = acc


@njit(parallel=True, cache=True, nogil=True)
def add_channel_bias(out, bias):
    # n k h w += k   (in place: the bias of a transposed convolution, and of Linear)
    # Scalar loops over a flat view, not ``out[n, k] += b``: an array expression inside
    # a prange nests a second parfor, which multiplies the compile time (measured:
    # docs/benchmarks/cpu.md, "Compile time").
    batch, ch = out.shape[0], out.shape[1]
    flat = out.reshape(batch * ch, out.size // max(batch * ch, 1))
    for job in prange(batch * ch):
        b = bias[job % ch]
        for i in range(flat.shape[1]):
            flat[job, i] += b
