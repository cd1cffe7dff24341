"""CPU pooling and interpolation kernels (numba, parallel over (n, c) planes).

The forward per-element bodies live in ``kernels/_window.py`` and are shared with the
CUDA twins; ``geometry`` is the pool tuple documented there.  The backward kernels
differ from the CUDA ones on purpose: one thread owns a whole (n, c) plane here, so it
can *scatter* each output's gradient onto its window (one pass over the outputs) without
races, where a GPU thread per input element has to gather.  Same sums, same order per
plane: deterministic.
"""

from numba import njit, prange

from .._window import build

_el = build(njit(inline="always"))
_max_pool, _avg_pool, _interp = _el.max_pool, _el.avg_pool, _el.interp
_avg_window, _avg_divisor = _el.avg_window, _el.avg_divisor


@njit(parallel=True, cache=True)
def max_pool2d_forward(x, out, indices, geometry):
    # n c h w -> n c oh ow (values), n c oh ow (flat arg-max per plane, int64)
    batch, ch = x.shape[0], x.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        for oh in range(out_h):
            for ow in range(out_w):
                v, i = _max_pool(plane, oh, ow, geometry)
                out[n, c, oh, ow] = v
                indices[n, c, oh, ow] = i


@njit(parallel=True, cache=True)
def max_pool2d_backward(grad_out, indices, grad_in, geometry):
    # n c oh ow -> n c h w : each output's gradient goes to its recorded arg-max
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        flat = grad_in[n, c].reshape(in_h * in_w)
        flat[:] = 0
        for oh in range(out_h):
            for ow in range(out_w):
                flat[indices[n, c, oh, ow]] += grad_out[n, c, oh, ow]


@njit(parallel=True, cache=True)
def avg_pool2d_forward(x, out, geometry, count_include_pad, divisor_override):
    batch, ch = x.shape[0], x.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        for oh in range(out_h):
            for ow in range(out_w):
                out[n, c, oh, ow] = _avg_pool(plane, oh, ow, geometry, count_include_pad,
                                              divisor_override)


@njit(parallel=True, cache=True)
def avg_pool2d_backward(grad_out, grad_in, geometry, count_include_pad, divisor_override):
    # each output's gradient / divisor spread over its (clipped) window
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, adaptive = geometry
    batch, ch, in_h, in_w = grad_in.shape
    for job in prange(batch * ch):
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


@njit(parallel=True, cache=True)
def interpolate2d_forward(x, out, h_idx, h_lam, w_idx, w_lam, nearest):
    # n c h w -> n c oh ow through per-axis (index, weight) tables
    batch, ch = x.shape[0], x.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        plane = x[n, c]
        for oh in range(out_h):
            for ow in range(out_w):
                out[n, c, oh, ow] = _interp(plane, oh, ow, h_idx, h_lam, w_idx, w_lam,
                                            nearest)


@njit(parallel=True, cache=True)
def interpolate2d_backward(grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam, w_range):
    # each output's gradient, times its weights, onto the (up to 4) inputs it read;
    # ``*_range`` (the gather form's tables) are unused here
    batch, ch, in_h, in_w = grad_in.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    for job in prange(batch * ch):
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
