"""Direct convolution kernels (numba, parallel; the forward also serial, for tiny layers):
the general algorithm, any geometry.

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
the same element: results are deterministic and race-free.  The parallel kernels are
serial shares of consecutive jobs, one per thread (:mod:`..shares`).

The innermost loop runs along the output row over the range of positions whose input tap
is in bounds, through the row primitives of :mod:`..rows`; a pointwise tap (1x1, stride
1, no padding) runs along the whole plane at once, as narrow rows do not vectorize.
"""

import numba
from numba import njit

from ....config import CPU_FASTMATH
from ..rows import axpy, axpy_from, axpy_into, dot_from, valid_range
from ..shares import run_shares, share, share_of


@njit(inline="always")
def _forward_plane(x, weight, out, geometry, job):
    # out[n, k] += the cross-correlation of x[n, group of k] with weight[k], job = n*K + k
    sh, sw, ph, pw, dh, dw, groups = geometry
    in_h, in_w = x.shape[2], x.shape[3]
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    n = job // out_ch
    k = job % out_ch
    g = k // (out_ch // groups)
    plane = out[n, k]
    if kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 \
            and in_h == out_h and in_w == out_w:
        # pointwise: each channel's plane is one flat run (narrow rows do not vectorize)
        flat = plane.reshape(out_h * out_w)
        for c in range(ch_per_group):
            axpy(flat, x[n, g * ch_per_group + c].reshape(in_h * in_w), weight[k, c, 0, 0])
        return
    for c in range(ch_per_group):
        x_plane = x[n, g * ch_per_group + c]
        for r in range(kh):
            oh_lo, oh_hi = valid_range(r * dh - ph, sh, in_h, out_h)
            for s in range(kw):
                w = weight[k, c, r, s]
                offset = s * dw - pw
                ow_lo, ow_hi = valid_range(offset, sw, in_w, out_w)
                if ow_hi <= ow_lo:
                    continue
                for oh in range(oh_lo, oh_hi):
                    axpy_from(plane[oh, ow_lo:ow_hi], x_plane[oh * sh + r * dh - ph],
                              ow_lo * sw + offset, sw, w)


@share(fastmath=CPU_FASTMATH)
def _conv2d_forward(t, threads, args):
    # n c h w , k c r s -> n k oh ow   (bias has length k; pass zeros for no bias)
    x, weight, bias, out, sh, sw, ph, pw, dh, dw, groups = args
    geometry = (sh, sw, ph, pw, dh, dw, groups)
    out_ch = weight.shape[0]
    lo, hi = share_of(t, threads, x.shape[0] * out_ch)
    for job in range(lo, hi):
        out[job // out_ch, job % out_ch] = bias[job % out_ch]
        _forward_plane(x, weight, out, geometry, job)


def conv2d_forward(x, weight, bias, out, geometry):
    run_shares(_conv2d_forward, numba.get_num_threads(), (x, weight, bias, out, *geometry))


@njit(cache=True, nogil=True, fastmath=CPU_FASTMATH)
def conv2d_forward_serial(x, weight, bias, out, geometry):
    # conv2d_forward on the calling thread: a tiny layer's whole work costs less than
    # waking numba's threads, and a serial kernel compiles in about half the time
    # (docs/benchmarks/cpu.md, "Compile time")
    out_ch = weight.shape[0]
    for job in range(x.shape[0] * out_ch):
        out[job // out_ch, job % out_ch] = bias[job % out_ch]
        _forward_plane(x, weight, out, geometry, job)


@share(fastmath=CPU_FASTMATH)
def _conv2d_grad_input(t, threads, args):
    # n k oh ow , k c r s -> n c h w   (the transposed convolution)
    grad_out, weight, grad_in, sh, sw, ph, pw, dh, dw, groups = args
    batch, in_ch, in_h, in_w = grad_in.shape
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    lo, hi = share_of(t, threads, batch * in_ch)
    for job in range(lo, hi):
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


def conv2d_grad_input(grad_out, weight, grad_in, geometry):
    run_shares(_conv2d_grad_input, numba.get_num_threads(),
               (grad_out, weight, grad_in, *geometry))


@share(fastmath=CPU_FASTMATH)
def _conv2d_grad_weight(t, threads, args):
    # n c h w , n k oh ow -> k c r s   (one job per weight entry: a deterministic dot product)
    x, grad_out, grad_weight, sh, sw, ph, pw, dh, dw, groups = args
    batch, _, in_h, in_w = x.shape
    out_ch, ch_per_group, kh, kw = grad_weight.shape
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    out_per_group = out_ch // groups
    taps = kh * kw
    lo, hi = share_of(t, threads, out_ch * ch_per_group * taps)
    for job in range(lo, hi):
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


def conv2d_grad_weight(x, grad_out, grad_weight, geometry):
    run_shares(_conv2d_grad_weight, numba.get_num_threads(),
               (x, grad_out, grad_weight, *geometry))


@share(fastmath=CPU_FASTMATH)
def _conv2d_grad_bias(t, threads, args):
    # n k oh ow -> k
    grad_out, grad_bias = args
    batch, out_ch, out_h, out_w = grad_out.shape
    lo, hi = share_of(t, threads, out_ch)
    for k in range(lo, hi):
        acc = grad_bias.dtype.type(0)
        for n in range(batch):
            for oh in range(out_h):
                for ow in range(out_w):
                    acc += grad_out[n, k, oh, ow]
        grad_bias[k] = acc


def conv2d_grad_bias(grad_out, grad_bias):
    run_shares(_conv2d_grad_bias, numba.get_num_threads(), (grad_out, grad_bias))


@share()
def _add_channel_bias(t, threads, args):
    # n k h w += k   (in place: the bias of a transposed convolution, and of Linear)
    # Scalar loops over a flat view, not ``out[n, k] += b`` (an array expression
    # compiled slower: docs/benchmarks/cpu.md, "Compile time").
    out, bias = args
    batch, ch = out.shape[0], out.shape[1]
    flat = out.reshape(batch * ch, out.size // max(batch * ch, 1))
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        b = bias[job % ch]
        for i in range(flat.shape[1]):
            flat[job, i] += b


def add_channel_bias(out, bias):
    run_shares(_add_channel_bias, numba.get_num_threads(), (out, bias))
