"""Convolution as im2col + matrix product (CPU only: the matrix product is BLAS).

Same signatures as the direct kernels in ``conv.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``) swaps one for the other:

    forward      out[n, g]  = W[g] (K_g, C_g*R*S) @ cols[n, g] (C_g*R*S, OH*OW) + bias
    grad weight  dW[g]     += dy[n, g] (K_g, OH*OW) @ cols[n, g]^T
    grad input   cols[n, g] = W[g]^T @ dy[n, g],  then col2im sums the columns back

Images are processed in chunks whose column buffer stays under
``config.IM2COL_CHUNK_BYTES`` (never a whole-batch buffer).  BLAS runs from Python,
between the numba parallel regions, never inside one.  A 1x1 convolution with stride 1
and no padding needs no im2col at all: the input already is the column matrix.
"""

import threading

import numpy as np

from ... import config
from .im2col import col2im, im2col


def _layout(x_shape, weight_shape, out_shape, geometry, itemsize):
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, ch_per_group, kh, kw = weight_shape
    out_h, out_w = out_shape[2], out_shape[3]
    cols_geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    pointwise = kh == kw == 1 and sh == sw == 1 and ph == pw == 0
    rows = ch_per_group * kh * kw
    per_image = x_shape[1] * kh * kw * out_h * out_w * itemsize
    chunk = max(1, min(x_shape[0], config.IM2COL_CHUNK_BYTES // max(per_image, 1)))
    return groups, out_ch // groups, rows, out_h * out_w, cols_geometry, pointwise, chunk


def _columns(x, n0, nb, buffer, cols_geometry, pointwise):
    if pointwise:
        return x[n0:n0 + nb].reshape(nb, x.shape[1], -1)
    cols = buffer[:nb]
    im2col(x[n0:n0 + nb], cols, cols_geometry)
    return cols


_workspace = threading.local()


def scratch(key, shape, dtype):
    """An array carved from a per-thread workspace named ``key``, reused across calls
    (grown when too small): a fresh buffer per call would pay a page fault per 4 KiB
    on every call.  Contents are undefined; one buffer per key at a time."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    spaces = getattr(_workspace, "spaces", None)
    if spaces is None:
        spaces = _workspace.spaces = {}
    space = spaces.get(key)
    if space is None or space.size < nbytes:
        space = spaces[key] = np.empty(nbytes, np.uint8)
    return space[:nbytes].view(dtype).reshape(shape)


def _buffer(x, weight_shape, out_len, chunk, pointwise):
    """The column buffer (a per-thread workspace, see :func:`scratch`)."""
    if pointwise:
        return None
    shape = (chunk, x.shape[1] * weight_shape[2] * weight_shape[3], out_len)
    return scratch("columns", shape, x.dtype)


def conv2d_forward_gemm(x, weight, bias, out, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        x.shape, weight.shape, out.shape, geometry, x.itemsize)
    w = weight.reshape(groups, k_g, rows)
    b = bias.reshape(1, groups, k_g, 1)
    buffer = _buffer(x, weight.shape, out_len, chunk, pointwise)
    for n0 in range(0, x.shape[0], chunk):
        nb = min(chunk, x.shape[0] - n0)
        cols = _columns(x, n0, nb, buffer, cols_geometry, pointwise)
        o = out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
        np.matmul(w, cols.reshape(nb, groups, rows, out_len), out=o)
        o += b


def conv2d_grad_weight_gemm(x, grad_out, grad_weight, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        x.shape, grad_weight.shape, grad_out.shape, geometry, x.itemsize)
    gw = grad_weight.reshape(groups, k_g, rows)
    gw[...] = 0
    partial = np.empty_like(gw)
    buffer = _buffer(x, grad_weight.shape, out_len, chunk, pointwise)
    for n0 in range(0, x.shape[0], chunk):
        nb = min(chunk, x.shape[0] - n0)
        cols = _columns(x, n0, nb, buffer, cols_geometry, pointwise).reshape(
            nb, groups, rows, out_len)
        dy = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
        for i in range(nb):  # summed in image order: deterministic
            np.matmul(dy[i], cols[i].transpose(0, 2, 1), out=partial)
            gw += partial


def conv2d_grad_input_gemm(grad_out, weight, grad_in, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        grad_in.shape, weight.shape, grad_out.shape, geometry, grad_in.itemsize)
    w_t = weight.reshape(groups, k_g, rows).transpose(0, 2, 1)
    buffer = _buffer(grad_in, weight.shape, out_len, chunk, pointwise)
    for n0 in range(0, grad_in.shape[0], chunk):
        nb = min(chunk, grad_in.shape[0] - n0)
        dy = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
        if pointwise:
            np.matmul(w_t, dy, out=grad_in[n0:n0 + nb].reshape(nb, groups, rows, out_len))
            continue
        cols = buffer[:nb]
        np.matmul(w_t, dy, out=cols.reshape(nb, groups, rows, out_len))
        col2im(cols, grad_in[n0:n0 + nb], cols_geometry)
