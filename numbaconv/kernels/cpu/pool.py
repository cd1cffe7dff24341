"""CPU pooling and interpolation kernels (numba; per-thread shares of the (n, c) planes,
:mod:`.shares`).

The forward per-element bodies live in ``kernels/_window.py`` and are shared with the
CUDA twins (but max-pool's forward, separable here); ``geometry`` is the pool tuple
documented there.  The backward kernels
differ from the CUDA ones on purpose: one thread owns a whole (n, c) plane here, so it
can *scatter* each output's gradient onto its window (one pass over the outputs) without
races, where a GPU thread per input element has to gather.  Same sums, same order per
plane: deterministic.
"""

import numpy as np
import numba
from numba import njit

from .._window import build
from .rows import axpy, copy, fill
from .shares import private, run_shares, share, share_of

_el = build(njit(inline="always"))
_avg_pool, _interp = _el.avg_pool, _el.interp
_avg_window, _avg_divisor, _window = _el.avg_window, _el.avg_divisor, _el.window


@njit(inline="always")
def _tap_range(o, in_len, out_len, k, stride, pad, dil, adaptive):
    """Window ``o`` along one axis, from the shared body (``_window.window``): its
    first position, its step, and the taps ``[lo, hi)`` that land inside the input."""
    start, taps, step = _window(o, in_len, out_len, k, stride, pad, dil, adaptive)
    lo = 0
    while lo < taps and start + lo * step < 0:
        lo += 1
    hi = taps
    while hi > lo and start + (hi - 1) * step >= in_len:
        hi -= 1
    return start, step, lo, hi


@share()
def _max_pool2d_forward(t, threads, args):
    # thread t's share of the planes (flat n*C + c) of max_pool2d_forward
    x, out, indices, kh, kw, sh, sw, ph, pw, dh, dw, _, _, adaptive = args
    first, stop = share_of(t, threads, x.shape[0] * x.shape[1])
    # Separable: the max of each row's window first, then the max over the rows.  Same
    # scan rule in both passes (strictly greater, or NaN: the first maximum and the last
    # NaN win), so value and index equal a row-major scan of the window.  A window with
    # no tap inside the input (padding and dilation can make one) gives -inf, index -1.
    ch, in_h, in_w = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    lowest = x.dtype.type(-np.inf)
    # allocated once for all the planes
    row_max = private(in_h * out_w, x.dtype).reshape((in_h, out_w))
    row_arg = private(in_h * out_w, np.int64).reshape((in_h, out_w))
    for job in range(first, stop):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        for ih in range(in_h):
            row = plane[ih]
            for ow in range(out_w):
                start, step, lo, hi = _tap_range(ow, in_w, out_w, kw, sw, pw, dw, adaptive)
                best, arg = lowest, -1
                if hi > lo:
                    arg = start + lo * step
                    best = row[arg]
                    for tap in range(lo + 1, hi):
                        v = row[start + tap * step]
                        take = (v > best) | (v != v)  # branch-free: random data mispredicts
                        best = v if take else best
                        arg = start + tap * step if take else arg
                    arg += ih * in_w
                row_max[ih, ow] = best
                row_arg[ih, ow] = arg
        for oh in range(out_h):
            start, step, lo, hi = _tap_range(oh, in_h, out_h, kh, sh, ph, dh, adaptive)
            best_row = out[n, c, oh]
            arg_row = indices[n, c, oh]
            if hi <= lo:
                fill(best_row, lowest)
                fill(arg_row, -1)
                continue
            copy(best_row, row_max[start + lo * step])
            copy(arg_row, row_arg[start + lo * step])
            for tap in range(lo + 1, hi):
                vals = row_max[start + tap * step]
                found = row_arg[start + tap * step]
                for ow in range(out_w):
                    v = vals[ow]
                    take = (v > best_row[ow]) | (v != v)
                    best_row[ow] = v if take else best_row[ow]
                    arg_row[ow] = found[ow] if take else arg_row[ow]


def max_pool2d_forward(x, out, indices, geometry):
    # n c h w -> n c oh ow (values), n c oh ow (flat arg-max per plane, int64)
    run_shares(_max_pool2d_forward, numba.get_num_threads(), (x, out, indices, *geometry))


def global_avg_pool2d_forward(x, out, geometry, count_include_pad, divisor_override):
    # n c h w -> n c 1 1: the mean of each plane (an avg pool whose one window is the
    # whole plane).  NumPy, not a kernel: a memory-bound sum that one thread does as
    # fast, with nothing to compile.  Same signature as the windowed kernel.
    n, c, h, w = x.shape
    np.sum(x.reshape(n, c, h * w), axis=2, out=out.reshape(n, c))
    out /= out.dtype.type(h * w)


def global_avg_pool2d_backward(grad_out, grad_in, geometry, count_include_pad,
                               divisor_override):
    # n c 1 1 -> n c h w: each plane's gradient spread evenly over it
    n, c, h, w = grad_in.shape
    np.copyto(grad_in, grad_out.reshape(n, c, 1, 1) / grad_in.dtype.type(h * w))


@share()
def _max_pool2d_backward(t, threads, args):
    # n c oh ow -> n c h w : each output's gradient goes to its recorded arg-max; an index
    # outside the plane (-1: an empty window) sends none, as in the CUDA twin's gather
    grad_out, indices, grad_in = args
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        flat = grad_in[n, c].reshape(in_h * in_w)
        flat[:] = 0
        for oh in range(out_h):
            for ow in range(out_w):
                i = indices[n, c, oh, ow]
                if 0 <= i < in_h * in_w:
                    flat[i] += grad_out[n, c, oh, ow]


def max_pool2d_backward(grad_out, indices, grad_in, geometry):
    run_shares(_max_pool2d_backward, numba.get_num_threads(), (grad_out, indices, grad_in))


@njit(cache=True, nogil=True)
def _avg_axis(in_len, out_len, k, stride, pad, adaptive):
    """Per-output clipped window ``[lo, hi)`` of the averaging windows along one axis
    (the shared ``_window.avg_window``)."""
    lo = np.empty(out_len, np.int64)  # written once, then only read
    hi = np.empty(out_len, np.int64)
    for o in range(out_len):
        lo[o], hi[o], _ = _avg_window(o, in_len, out_len, k, stride, pad, adaptive)
    return lo, hi


@share()
def _avg_pool2d_forward(t, threads, args):
    # Separable: window sums along each row first, then over the window's rows (one
    # vector add per row).  Windows and divisors are per-axis, as PyTorch's.
    (x, out, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive, count_include_pad,
     divisor_override) = args
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive)
    batch, ch, in_h, in_w = x.shape
    h_lo, h_hi = _avg_axis(in_h, out_h, kh, sh, ph, adaptive)
    w_lo, w_hi = _avg_axis(in_w, out_w, kw, sw, pw, adaptive)
    # of every output: the shared rule
    divisor = private(out_h * out_w, x.dtype).reshape((out_h, out_w))
    for oh in range(out_h):
        for ow in range(out_w):
            divisor[oh, ow] = _avg_divisor(oh, ow, in_h, in_w, geometry, count_include_pad,
                                           divisor_override)
    # one buffer for the share's planes (out_w / in_w of their size): no allocation per
    # plane, which dominated small planes (a global pool of 7x7 planes)
    lo, hi = share_of(t, threads, batch * ch)
    sums = private((hi - lo) * in_h * out_w, x.dtype).reshape((hi - lo, in_h, out_w))
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        row_sums = sums[job - lo]
        for ih in range(in_h):
            row = plane[ih]
            for ow in range(out_w):
                acc = x.dtype.type(0)
                for iw in range(w_lo[ow], w_hi[ow]):
                    acc += row[iw]
                row_sums[ih, ow] = acc
        for oh in range(out_h):
            dst, div_row = out[n, c, oh], divisor[oh]
            fill(dst, x.dtype.type(0))
            for ih in range(h_lo[oh], h_hi[oh]):
                axpy(dst, row_sums[ih], x.dtype.type(1))
            for ow in range(out_w):
                dst[ow] = dst[ow] / div_row[ow]


def avg_pool2d_forward(x, out, geometry, count_include_pad, divisor_override):
    run_shares(_avg_pool2d_forward, numba.get_num_threads(),
               (x, out, *geometry, count_include_pad, divisor_override))


@share()
def _avg_pool2d_backward(t, threads, args):
    # each output's gradient / divisor spread over its (clipped) window
    (grad_out, grad_in, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive,
     count_include_pad, divisor_override) = args
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive)
    batch, ch, in_h, in_w = grad_in.shape
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        plane = grad_in[n, c]
        plane[:, :] = 0
        for oh in range(out_h):
            h_lo, h_hi, _ = _avg_window(oh, in_h, out_h, kh, sh, ph, adaptive)
            for ow in range(out_w):
                w_lo, w_hi, _ = _avg_window(ow, in_w, out_w, kw, sw, pw, adaptive)
                div = _avg_divisor(oh, ow, in_h, in_w, geometry, count_include_pad,
                                   divisor_override)
                share = grad_out[n, c, oh, ow] / grad_in.dtype.type(div)
                for ih in range(h_lo, h_hi):
                    for iw in range(w_lo, w_hi):
                        plane[ih, iw] += share


def avg_pool2d_backward(grad_out, grad_in, geometry, count_include_pad, divisor_override):
    run_shares(_avg_pool2d_backward, numba.get_num_threads(),
               (grad_out, grad_in, *geometry, count_include_pad, divisor_override))


@share()
def _interpolate2d_forward(t, threads, args):
    # n c h w -> n c oh ow through per-axis (index, weight) tables
    x, out, h_idx, h_lam, w_idx, w_lam, nearest = args
    batch, ch = x.shape[0], x.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        for oh in range(out_h):
            for ow in range(out_w):
                out[n, c, oh, ow] = _interp(plane, oh, ow, h_idx, h_lam, w_idx, w_lam,
                                            nearest)


def interpolate2d_forward(x, out, h_idx, h_lam, w_idx, w_lam, nearest):
    run_shares(_interpolate2d_forward, numba.get_num_threads(),
               (x, out, h_idx, h_lam, w_idx, w_lam, nearest))


@share()
def _interpolate2d_backward(t, threads, args):
    # each output's gradient, times its weights, onto the (up to 4) inputs it read;
    # ``*_range`` (the gather form's tables) are unused here
    grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam, w_range = args
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        c = job % ch
        plane = grad_in[n, c]
        plane[:, :] = 0
        for oh in range(out_h):
            for a in range(2):
                ih = h_idx[oh, a]
                wh = h_lam[oh, a]
                if ih < 0 or wh == 0:
                    continue
                for ow in range(out_w):
                    g = wh * grad_out[n, c, oh, ow]
                    for b in range(2):
                        iw = w_idx[ow, b]
                        if iw >= 0 and w_lam[ow, b] != 0:
                            plane[ih, iw] += w_lam[ow, b] * g


def interpolate2d_backward(grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam, w_range):
    run_shares(_interpolate2d_backward, numba.get_num_threads(),
               (grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam, w_range))
