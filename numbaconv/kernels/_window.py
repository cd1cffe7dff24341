"""Per-element bodies of the pooling and interpolation kernels, written once and compiled
for each target by :func:`build` (``numba.njit(inline='always')`` for the CPU,
``numba.cuda.jit(device=True)`` for CUDA), so the CPU and CUDA twins cannot drift apart.

The CPU kernels call the forward bodies inside a ``prange`` over (n, c) planes (but the
CPU max-pool forward, which is separable: rows first, then columns, same scan rule; the
oracle tests hold the two to the same values and indices); the CUDA kernels call every
body from one thread per element.  The backward bodies are *gathers*
(one input element collects from every output that read it: no atomics, deterministic)
and serve the CUDA kernels; the CPU backward kernels scatter instead, since one CPU
thread owns a whole plane (``kernels/cpu/pool.py``), 10-20x faster there.

Pool geometry, one tuple for every pooling op::

    (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out_h, out_w, adaptive)

With ``adaptive`` the window of output ``o`` over an axis of length ``n`` is
``[floor(o * n / out), ceil((o + 1) * n / out))`` and kernel / stride / pad are unused.
"""

from types import SimpleNamespace

import numpy as np

_ZERO = np.float32(0)  # compares with float32 values without a float64 conversion
_NEG_INF = np.float32(-np.inf)


def build(jit):
    """The element functions compiled with ``jit`` (a decorator); returns a namespace."""

    @jit
    def window(o, in_len, out_len, k, s, p, d, adaptive):
        """(first input position, number of taps, step between taps) of output ``o``."""
        if adaptive:
            start = (o * in_len) // out_len
            end = ((o + 1) * in_len + out_len - 1) // out_len
            return start, end - start, 1
        return o * s - p, k, d

    @jit
    def readers(i, in_len, out_len, k, s, p, d, adaptive):
        """[lo, hi): a range of outputs that holds every output whose window may contain
        input position ``i`` (callers check membership)."""
        if adaptive:
            lo = (i * out_len) // in_len
            hi = ((i + 1) * out_len + in_len - 1) // in_len
        else:
            num = i + p - (k - 1) * d
            lo = 0 if num <= 0 else (num + s - 1) // s
            hi = (i + p) // s + 1
        if lo < 0:
            lo = 0
        if hi > out_len:
            hi = out_len
        return lo, hi

    @jit
    def max_pool(plane, oh, ow, g):
        """(max, flat index of the max) over the window of output (oh, ow).  Scan order
        is row-major; the first maximum wins and NaN propagates, as in PyTorch.  A window
        with no tap inside the input gives (-inf, -1)."""
        kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = g
        in_h, in_w = plane.shape
        h0, nh, hstep = window(oh, in_h, out_h, kh, sh, ph, dh, adaptive)
        w0, nw, wstep = window(ow, in_w, out_w, kw, sw, pw, dw, adaptive)
        best = _NEG_INF  # float32: numba widens it to a float64 plane's type
        arg = -1
        for th in range(nh):
            ih = h0 + th * hstep
            if ih < 0 or ih >= in_h:
                continue
            for tw in range(nw):
                iw = w0 + tw * wstep
                if iw < 0 or iw >= in_w:
                    continue
                v = plane[ih, iw]
                if arg < 0 or v > best or v != v:
                    best = v
                    arg = ih * in_w + iw
        return best, arg

    @jit
    def avg_window(o, in_len, out_len, k, s, p, adaptive):
        """(lo, hi, size): clipped window [lo, hi) of output ``o`` and its size counting
        padding (PyTorch's ``count_include_pad`` divisor; the padded window stops at
        ``in_len + pad``)."""
        start, taps, _ = window(o, in_len, out_len, k, s, p, 1, adaptive)
        end = start + taps
        if end > in_len + p:
            end = in_len + p
        size = end - start
        lo = start if start > 0 else 0
        hi = end if end < in_len else in_len
        return lo, hi, size

    @jit
    def avg_divisor(oh, ow, in_h, in_w, g, count_include_pad, divisor_override):
        kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = g
        h_lo, h_hi, h_size = avg_window(oh, in_h, out_h, kh, sh, ph, adaptive)
        w_lo, w_hi, w_size = avg_window(ow, in_w, out_w, kw, sw, pw, adaptive)
        if divisor_override > 0:
            return divisor_override
        if count_include_pad:
            return h_size * w_size
        return (h_hi - h_lo) * (w_hi - w_lo)

    @jit
    def avg_pool(plane, oh, ow, g, count_include_pad, divisor_override):
        kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = g
        in_h, in_w = plane.shape
        h_lo, h_hi, _ = avg_window(oh, in_h, out_h, kh, sh, ph, adaptive)
        w_lo, w_hi, _ = avg_window(ow, in_w, out_w, kw, sw, pw, adaptive)
        acc = plane.dtype.type(0)
        for ih in range(h_lo, h_hi):
            for iw in range(w_lo, w_hi):
                acc += plane[ih, iw]
        div = avg_divisor(oh, ow, in_h, in_w, g, count_include_pad, divisor_override)
        return acc / plane.dtype.type(div)

    @jit
    def avg_pool_grad(grad_plane, ih, iw, in_h, in_w, g, count_include_pad,
                      divisor_override):
        """Gradient of input (ih, iw): grad_output / divisor summed over the windows
        that contain it."""
        kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = g
        oh_lo, oh_hi = readers(ih, in_h, out_h, kh, sh, ph, 1, adaptive)
        ow_lo, ow_hi = readers(iw, in_w, out_w, kw, sw, pw, 1, adaptive)
        acc = grad_plane.dtype.type(0)
        for oh in range(oh_lo, oh_hi):
            h_lo, h_hi, _ = avg_window(oh, in_h, out_h, kh, sh, ph, adaptive)
            if ih < h_lo or ih >= h_hi:
                continue
            for ow in range(ow_lo, ow_hi):
                w_lo, w_hi, _ = avg_window(ow, in_w, out_w, kw, sw, pw, adaptive)
                if iw < w_lo or iw >= w_hi:
                    continue
                div = avg_divisor(oh, ow, in_h, in_w, g, count_include_pad, divisor_override)
                acc += grad_plane[oh, ow] / grad_plane.dtype.type(div)
        return acc

    @jit
    def max_grad(grad_plane, index_plane, ih, iw, in_h, in_w, g):
        """Gradient of input (ih, iw): grad_output summed over the windows whose
        recorded arg-max is this element."""
        kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = g
        oh_lo, oh_hi = readers(ih, in_h, out_h, kh, sh, ph, dh, adaptive)
        ow_lo, ow_hi = readers(iw, in_w, out_w, kw, sw, pw, dw, adaptive)
        flat = ih * in_w + iw
        acc = grad_plane.dtype.type(0)
        for oh in range(oh_lo, oh_hi):
            for ow in range(ow_lo, ow_hi):
                if index_plane[oh, ow] == flat:
                    acc += grad_plane[oh, ow]
        return acc

    @jit
    def interp(plane, oh, ow, h_idx, h_lam, w_idx, w_lam, nearest):
        """Separable interpolation of output (oh, ow) from per-axis tables: ``idx[o] =
        (i0, i1)`` and ``lam[o] = (weight of i0, weight of i1)``.  Nearest copies."""
        h0 = h_idx[oh, 0]
        w0 = w_idx[ow, 0]
        if nearest:
            return plane[h0, w0]
        h1 = h_idx[oh, 1]
        w1 = w_idx[ow, 1]
        top = w_lam[ow, 0] * plane[h0, w0] + w_lam[ow, 1] * plane[h0, w1]
        if h_lam[oh, 1] == _ZERO:  # 1-D data (unit height) and exact rows: one row is read
            return h_lam[oh, 0] * top
        bottom = w_lam[ow, 0] * plane[h1, w0] + w_lam[ow, 1] * plane[h1, w1]
        return h_lam[oh, 0] * top + h_lam[oh, 1] * bottom

    @jit
    def axis_weight(idx, lam, o, i):
        """Weight with which output ``o`` reads input ``i`` along one axis."""
        wt = lam.dtype.type(0)
        if idx[o, 0] == i:
            wt += lam[o, 0]
        if idx[o, 1] == i:
            wt += lam[o, 1]
        return wt

    @jit
    def interp_grad(grad_plane, ih, iw, h_idx, h_lam, h_range, w_idx, w_lam, w_range):
        """Gradient of input (ih, iw): every output that read it, times its weight.
        ``range[i] = (lo, hi)`` bounds the outputs that read input ``i`` on that axis."""
        acc = grad_plane.dtype.type(0)
        for oh in range(h_range[ih, 0], h_range[ih, 1]):
            wh = axis_weight(h_idx, h_lam, oh, ih)
            if wh == _ZERO:
                continue
            row = grad_plane.dtype.type(0)
            for ow in range(w_range[iw, 0], w_range[iw, 1]):
                ww = axis_weight(w_idx, w_lam, ow, iw)
                if ww != _ZERO:
                    row += ww * grad_plane[oh, ow]
            acc += wh * row
        return acc

    return SimpleNamespace(
        window=window, readers=readers, max_pool=max_pool, max_grad=max_grad,
        avg_window=avg_window, avg_divisor=avg_divisor, avg_pool=avg_pool,
        avg_pool_grad=avg_pool_grad, interp=interp,
        interp_grad=interp_grad,
    )
