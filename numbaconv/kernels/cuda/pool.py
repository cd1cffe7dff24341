"""CUDA pooling and interpolation kernels: twins of ``kernels/cpu/pool.py``, one thread
per element, running the element bodies of ``kernels/_window.py`` that the CPU kernels
run too.  Backward kernels gather (one thread per input element): no atomics, and the
same summation order on every run."""

from numba import cuda

from .._index import unravel4
from .._window import build
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)
_el = build(cuda.jit(device=True))
_max_pool, _max_grad = _el.max_pool, _el.max_grad
_avg_pool, _avg_pool_grad = _el.avg_pool, _el.avg_pool_grad
_interp, _interp_grad = _el.interp, _el.interp_grad


@cuda.jit
def _max_pool2d_forward(total, x, out, indices, geometry):
    ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, oh, ow = unravel(i, ch, out_h, out_w)
        v, arg = _max_pool(x[n, c], oh, ow, geometry)
        out[n, c, oh, ow] = v
        indices[n, c, oh, ow] = arg


@cuda.jit
def _max_pool2d_backward(total, grad_out, indices, grad_in, geometry):
    ch, in_h, in_w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, ih, iw = unravel(i, ch, in_h, in_w)
        grad_in[n, c, ih, iw] = _max_grad(grad_out[n, c], indices[n, c], ih, iw, in_h, in_w,
                                          geometry)


@cuda.jit
def _avg_pool2d_forward(total, x, out, geometry, count_include_pad, divisor_override):
    ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, oh, ow = unravel(i, ch, out_h, out_w)
        out[n, c, oh, ow] = _avg_pool(x[n, c], oh, ow, geometry, count_include_pad,
                                      divisor_override)


@cuda.jit
def _avg_pool2d_backward(total, grad_out, grad_in, geometry, count_include_pad,
                         divisor_override):
    ch, in_h, in_w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, ih, iw = unravel(i, ch, in_h, in_w)
        grad_in[n, c, ih, iw] = _avg_pool_grad(grad_out[n, c], ih, iw, in_h, in_w, geometry,
                                               count_include_pad, divisor_override)


@cuda.jit
def _interpolate2d_forward(total, x, out, h_idx, h_lam, w_idx, w_lam, nearest):
    ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, oh, ow = unravel(i, ch, out_h, out_w)
        out[n, c, oh, ow] = _interp(x[n, c], oh, ow, h_idx, h_lam, w_idx, w_lam, nearest)


@cuda.jit
def _interpolate2d_backward(total, grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam,
                            w_range):
    ch, in_h, in_w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, c, ih, iw = unravel(i, ch, in_h, in_w)
        grad_in[n, c, ih, iw] = _interp_grad(grad_out[n, c], ih, iw, h_idx, h_lam, h_range,
                                             w_idx, w_lam, w_range)


def max_pool2d_forward(x, out, indices, geometry):
    launch_1d(_max_pool2d_forward, out.size, x, out, indices, geometry)


def max_pool2d_backward(grad_out, indices, grad_in, geometry):
    launch_1d(_max_pool2d_backward, grad_in.size, grad_out, indices, grad_in, geometry)


def avg_pool2d_forward(x, out, geometry, count_include_pad, divisor_override):
    launch_1d(_avg_pool2d_forward, out.size, x, out, geometry, count_include_pad,
              divisor_override)


def avg_pool2d_backward(grad_out, grad_in, geometry, count_include_pad, divisor_override):
    launch_1d(_avg_pool2d_backward, grad_in.size, grad_out, grad_in, geometry,
              count_include_pad, divisor_override)


def interpolate2d_forward(x, out, h_idx, h_lam, w_idx, w_lam, nearest):
    launch_1d(_interpolate2d_forward, out.size, x, out, h_idx, h_lam, w_idx, w_lam, nearest)


def interpolate2d_backward(grad_out, grad_in, h_idx, h_lam, h_range, w_idx, w_lam, w_range):
    launch_1d(_interpolate2d_backward, grad_in.size, grad_out, grad_in, h_idx, h_lam, h_range,
              w_idx, w_lam, w_range)


# The CPU runs a whole-plane average in NumPy (no compile); here it is the windowed
# kernel with one window per plane.
global_avg_pool2d_forward = avg_pool2d_forward
global_avg_pool2d_backward = avg_pool2d_backward
