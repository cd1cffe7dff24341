"""CPU pooling and interpolation kernels (numba, parallel over (n, c) planes).

The per-element bodies live in ``kernels/_window.py`` and are shared with the CUDA
twins.  ``geometry`` is the pool tuple documented there; backward kernels gather (each
input element sums what every output that read it sends back), so a plane is written by
one thread only.
"""

from numba import njit, prange

from .._window import build

_el = build(njit(inline="always"))
_max_pool, _max_grad = _el.max_pool, _el.max_grad
_avg_pool, _avg_pool_grad = _el.avg_pool, _el.avg_pool_grad
_interp, _interp_grad = _el.interp, _el.interp_grad


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
    # n c oh ow -> n c h w : the gradient goes to the recorded arg-max
    batch, ch, in_h, in_w = grad_in.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        for ih in range(in_h):
            for iw in range(in_w):
                grad_in[n, c, ih, iw] = _max_grad(grad_out[n, c], indices[n, c], ih, iw,
                                                  in_h, in_w, geometry)


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
    batch, ch, in_h, in_w = grad_in.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        for ih in range(in_h):
            for iw in range(in_w):
                grad_in[n, c, ih, iw] = _avg_pool_grad(grad_out[n, c], ih, iw, in_h, in_w,
                                                       geometry, count_include_pad,
                                                       divisor_override)


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
    batch, ch, in_h, in_w = grad_in.shape
    for job in prange(batch * ch):
        n = job // ch
        c = job % ch
        for ih in range(in_h):
            for iw in range(in_w):
                grad_in[n, c, ih, iw] = _interp_grad(grad_out[n, c], ih, iw, h_idx, h_lam,
                                                     h_range, w_idx, w_lam, w_range)
