"""CUDA direct convolution kernels: the twins of ``kernels/cpu/conv/direct.py`` (same names,
same signatures, same contract), one thread per output element, no shared memory.  The
tuner (``tuner.py``) runs them on tiny layers, where a tiled kernel's tile would be
mostly empty; everything else runs ``tiled.py`` or ``depthwise.py``.

* ``conv2d_forward``     n c h w , k c r s -> n k oh ow   (gather over c, r, s)
* ``conv2d_grad_input``  n k oh ow , k c r s -> n c h w   (gather over k, r, s: each
  input pixel collects the outputs whose window covers it; no atomics)
* ``conv2d_grad_weight`` n c h w , n k oh ow -> k c r s   (one thread per weight entry
  sums over n, oh, ow in a fixed order: bit-identical run after run)
* ``conv2d_grad_bias``   n k oh ow -> k
"""

from numba import cuda

from .._index import reading_output, unravel4
from ._launch import launch_1d

unravel = cuda.jit(device=True)(unravel4)
reader = cuda.jit(device=True)(reading_output)


@cuda.jit
def _conv2d_forward(total, x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    in_h, in_w = x.shape[2], x.shape[3]
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    out_per_group = out_ch // groups
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, k, oh, ow = unravel(i, out_ch, out_h, out_w)
        c0 = (k // out_per_group) * ch_per_group
        acc = bias[k]
        for c in range(ch_per_group):
            for r in range(kh):
                ih = oh * sh - ph + r * dh
                if ih < 0 or ih >= in_h:
                    continue
                for s in range(kw):
                    iw = ow * sw - pw + s * dw
                    if 0 <= iw < in_w:
                        acc += weight[k, c, r, s] * x[n, c0 + c, ih, iw]
        out[n, k, oh, ow] = acc


@cuda.jit
def _conv2d_grad_input(total, grad_out, weight, grad_in, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    in_ch, in_h, in_w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, ci, ih, iw = unravel(i, in_ch, in_h, in_w)
        g = ci // ch_per_group
        c = ci % ch_per_group
        acc = grad_in.dtype.type(0)  # typed zero: no float64 promotion in float32
        for r in range(kh):
            oh = reader(ih, ph, r * dh, sh, out_h)
            if oh < 0:
                continue
            for s in range(kw):
                ow = reader(iw, pw, s * dw, sw, out_w)
                if ow < 0:
                    continue
                for kk in range(out_per_group):
                    k = g * out_per_group + kk
                    acc += weight[k, c, r, s] * grad_out[n, k, oh, ow]
        grad_in[n, ci, ih, iw] = acc


@cuda.jit
def _conv2d_grad_weight(total, x, grad_out, grad_weight, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_h, in_w = x.shape[0], x.shape[2], x.shape[3]
    out_ch, ch_per_group, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        k, c, r, s = unravel(i, ch_per_group, kh, kw)
        ci = (k // out_per_group) * ch_per_group + c
        acc = grad_weight.dtype.type(0)
        for n in range(batch):
            for oh in range(out_h):
                ih = oh * sh - ph + r * dh
                if ih < 0 or ih >= in_h:
                    continue
                for ow in range(out_w):
                    iw = ow * sw - pw + s * dw
                    if 0 <= iw < in_w:
                        acc += grad_out[n, k, oh, ow] * x[n, ci, ih, iw]
        grad_weight[k, c, r, s] = acc


@cuda.jit
def _conv2d_grad_bias(total, grad_out, grad_bias):
    batch, _, out_h, out_w = grad_out.shape
    for k in range(cuda.grid(1), total, cuda.gridsize(1)):
        acc = grad_bias.dtype.type(0)
        for n in range(batch):
            for oh in range(out_h):
                for ow in range(out_w):
                    acc += grad_out[n, k, oh, ow]
        grad_bias[k] = acc


def conv2d_forward(x, weight, bias, out, geometry):
    launch_1d(_conv2d_forward, out.size, x, weight, bias, out, geometry)


def conv2d_grad_input(grad_out, weight, grad_in, geometry):
    launch_1d(_conv2d_grad_input, grad_in.size, grad_out, weight, grad_in, geometry)


def conv2d_grad_weight(x, grad_out, grad_weight, geometry):
    launch_1d(_conv2d_grad_weight, grad_weight.size, x, grad_out, grad_weight, geometry)


def conv2d_grad_bias(grad_out, grad_bias):
    launch_1d(_conv2d_grad_bias, grad_bias.size, grad_out, grad_bias)


@cuda.jit
def _add_channel_bias(total, out, bias):
    ch, h, w = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        n, k, oh, ow = unravel(i, ch, h, w)
        out[n, k, oh, ow] += bias[k]


def add_channel_bias(out, bias):
    launch_1d(_add_channel_bias, out.size, out, bias)
