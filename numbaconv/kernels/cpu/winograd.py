"""Winograd F(2x2, 3x3) convolution for 3x3, stride 1, undilated, ungrouped layers (the
bulk of ResNet / VGG): 16 multiplies per 2x2 output tile and input channel instead of
36, so 2.25x fewer multiply-adds go through BLAS.

Each 4x4 input tile ``d`` (tiles overlap by 2) and each 3x3 filter ``g`` are transformed,
multiplied elementwise, summed over input channels and transformed back (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016)::

    Y = A^T [ sum_c (G g_kc G^T) * (B^T d_c B) ] A

The sum over ``c`` for each of the 16 tile positions is a matrix product, so the work
is: an input transform (numba, parallel over image planes), 16 BLAS products
``U[e] (K, C) @ V[e] (C, tiles)`` (NumPy's stacked matmul, from Python: never inside a
parallel region), and an output transform (numba, parallel over output planes).  Images
go in chunks whose transformed buffers stay under ``config.IM2COL_CHUNK_BYTES``.

Rounding: the transforms add and subtract input values (B has entries 0 / +-1, G
halves), so results differ from direct summation by a few ulps of the largest term,
well within the float32 test tolerance; float64 keeps ~1e-15.

``conv2d_grad_input_winograd`` is the forward on the gradient: at stride 1 the grad
input is a correlation of the (re-padded) grad output with the filters flipped and
transposed (C_in and C_out swapped).  The grad weight has no variant here: the chooser
falls back to the GEMM kernel for it.

Rule: the chooser runs this path only when forced (``config.CONV_ALGORITHM =
"winograd"``): the tiled kernels (``tiled.py``) were as fast or faster on every 3x3
layer of the bench suite (measured: docs/benchmarks/cpu.md, "Kernel measurements"),
because these 16 products have inner dimension C only and go through BLAS.
"""

import numpy as np
from numba import njit, prange

from ... import config
from ...config import CPU_FASTMATH
from .conv import copy_from, copy_into, valid_range
from .blas import matmul
from .gemm_conv import chunks, scratch

# G (4x3): the filter transform
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def applies(kernel, stride, dilation, groups, pads):
    """Whether F(2x2, 3x3) runs this geometry (leading pads up to 2 keep the grad
    input's padding non-negative)."""
    return (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and all(0 <= p[0] <= 2 for p in pads))


def _filter_transform(weight):
    """U (16, K, C) = G g G^T for every (k, c), in the weight's dtype (G's entries are
    0, +-1/2 and 1: exact in float32): two BLAS products over all filters at once."""
    k, c = weight.shape[:2]
    g = _G.astype(weight.dtype)
    t = (weight.reshape(k * c * 3, 3) @ g.T).reshape(k * c, 3, 4)  # g G^T
    u = np.tensordot(g, t, axes=([1], [1]))  # G (g G^T): (4, k*c, 4)
    return np.ascontiguousarray(u.transpose(0, 2, 1)).reshape(16, k, c)


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def _input_transform(x, n0, nb, v, ph, pw, tiles_h, tiles_w):
    # x (N, C, H, W) -> v (16, C, nb * tiles_h * tiles_w): B^T d B of every 4x4 tile.
    # Tile column tx reads padded columns 2tx .. 2tx+3, i.e. even[tx], odd[tx],
    # even[tx+1], odd[tx+1] of the padded plane split by column parity; with that split
    # done once per plane, every step below is a unit-stride vector over a tile row.
    ch, in_h, in_w = x.shape[1], x.shape[2], x.shape[3]
    per_image = tiles_h * tiles_w
    hp, half = 2 * tiles_h + 2, tiles_w + 1
    for job in prange(nb * ch):
        i = job // ch
        c = job % ch
        plane = x[n0 + i, c]
        even = np.zeros((hp, half), x.dtype)
        odd = np.zeros((hp, half), x.dtype)
        for parity in range(2):
            dst = even if parity == 0 else odd
            j_lo, j_hi = valid_range(parity - pw, 2, in_w, half)
            if j_hi <= j_lo:
                continue
            for r in range(max(0, ph), min(hp, in_h + ph)):
                copy_from(dst[r, j_lo:j_hi], plane[r - ph], j_lo * 2 + parity - pw, 2)
        te = np.empty((4, half), x.dtype)  # B^T d for the even / odd columns
        to = np.empty((4, half), x.dtype)
        for ty in range(tiles_h):
            r = 2 * ty
            for src, t in ((even, te), (odd, to)):
                d0, d1, d2, d3 = src[r], src[r + 1], src[r + 2], src[r + 3]
                t0, t1, t2, t3 = t[0], t[1], t[2], t[3]
                for j in range(half):
                    t0[j] = d0[j] - d2[j]
                    t1[j] = d1[j] + d2[j]
                    t2[j] = d2[j] - d1[j]
                    t3[j] = d1[j] - d3[j]
            p0 = i * per_image + ty * tiles_w
            for a in range(4):  # (B^T d) B along the columns
                e0, e1 = te[a, :tiles_w], te[a, 1:]
                o0, o1 = to[a, :tiles_w], to[a, 1:]
                v0 = v[4 * a, c, p0:p0 + tiles_w]
                v1 = v[4 * a + 1, c, p0:p0 + tiles_w]
                v2 = v[4 * a + 2, c, p0:p0 + tiles_w]
                v3 = v[4 * a + 3, c, p0:p0 + tiles_w]
                for j in range(tiles_w):
                    v0[j] = e0[j] - e1[j]
                    v1[j] = o0[j] + e1[j]
                    v2[j] = e1[j] - o0[j]
                    v3[j] = o0[j] - o1[j]


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def _output_transform(m, bias, out, n0, nb, tiles_h, tiles_w):
    # m (16, K, nb * tiles) -> out[n0:n0+nb] (N, K, OH, OW): A^T m A + bias, edges cropped.
    # Vectors over a tile row; the two output columns of each tile go to even / odd
    # rows first, then interleave into the output row.
    out_ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    per_image = tiles_h * tiles_w
    for job in prange(nb * out_ch):
        i = job // out_ch
        k = job % out_ch
        plane = out[n0 + i, k]
        s = np.empty((2, 4, tiles_w), m.dtype)
        y_even = np.empty(tiles_w, m.dtype)
        y_odd = np.empty(tiles_w, m.dtype)
        bk = bias[k]
        for ty in range(tiles_h):
            p0 = i * per_image + ty * tiles_w
            for b in range(4):  # s = A^T m
                m0, m1 = m[b, k, p0:p0 + tiles_w], m[4 + b, k, p0:p0 + tiles_w]
                m2, m3 = m[8 + b, k, p0:p0 + tiles_w], m[12 + b, k, p0:p0 + tiles_w]
                s0, s1 = s[0, b], s[1, b]
                for j in range(tiles_w):
                    s0[j] = m0[j] + m1[j] + m2[j]
                    s1[j] = m1[j] - m2[j] - m3[j]
            for a in range(2):  # y = s A
                oh = 2 * ty + a
                if oh >= out_h:
                    break
                sa0, sa1, sa2, sa3 = s[a, 0], s[a, 1], s[a, 2], s[a, 3]
                for j in range(tiles_w):
                    y_even[j] = sa0[j] + sa1[j] + sa2[j] + bk
                    y_odd[j] = sa1[j] - sa2[j] - sa3[j] + bk
                row = plane[oh]
                copy_into(row, 0, 2, y_even[:(out_w + 1) // 2])
                copy_into(row, 1, 2, y_odd[:out_w // 2])


def _winograd(x, u, bias, out, ph, pw):
    """out = conv(x, filters whose transform is u) + bias, chunk by chunk."""
    batch, ch = x.shape[0], x.shape[1]
    out_ch, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    tiles_h, tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
    per_image = tiles_h * tiles_w
    bytes_per_image = 16 * (ch + out_ch) * per_image * x.itemsize
    chunk = max(1, min(batch, config.IM2COL_CHUNK_BYTES // max(bytes_per_image, 1)))
    for n0, nb in chunks(batch, chunk):
        v = scratch("winograd_in", (16, ch, nb * per_image), x.dtype)
        m = scratch("winograd_out", (16, out_ch, nb * per_image), x.dtype)
        _input_transform(x, n0, nb, v, ph, pw, tiles_h, tiles_w)
        matmul(u, v, m)  # 16 products (K, C) @ (C, tiles): BLAS, outside prange
        _output_transform(m, bias, out, n0, nb, tiles_h, tiles_w)


def conv2d_forward_winograd(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    _winograd(x, _filter_transform(weight), bias, out, ph, pw)


def conv2d_grad_input_winograd(grad_out, weight, grad_in, geometry):
    # grad_in[c] = sum_k correlate(grad_out[k] padded by 2 - p, flip(w[k, c]))
    sh, sw, ph, pw, dh, dw, groups = geometry
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    zero = np.zeros(grad_in.shape[1], grad_in.dtype)
    _winograd(grad_out, _filter_transform(flipped), zero, grad_in, 2 - ph, 2 - pw)
