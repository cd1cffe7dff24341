"""Convolution as im2col + matrix product (CPU only: the matrix product is BLAS).

Same signatures as the direct kernels in ``direct.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``) swaps one for the other.  A chunk of ``nb``
images lays its columns out one of two ways (:func:`_per_image`):

* per image, ``cols[n, g]`` of shape ``(C_g*R*S, OH*OW)``: each image's products
  apart, ``out`` and ``grad_out`` read and written in place (and ``x`` too for a
  pointwise conv, which needs no columns)::

    forward      out[n, g] = W[g] (K_g, C_g*R*S) @ cols[n, g] + bias
    grad weight  dW[g] = sum over n of dy[n, g] @ cols[n, g]^T   (``blas.matmul_sum``)
    grad input   cols[n, g] = W[g]^T @ dy[n, g],  then col2im sums the columns back

* side by side ("wide"), ``cols[g]`` of shape ``(C_g*R*S, nb*OH*OW)``: one product per
  group and chunk, with ``dy[g]`` (and the forward's product) laid out the same way by
  a transposing copy.

Why: the wide product's one BLAS call beats many small ones on small maps, but its
copies of ``grad_out`` and of the product cost more than the per-image calls once the
maps are larger (``config.GEMM_IMAGE_MIN_PIXELS``; for the grad weight, whose
per-image sums are shorter, ``config.GEMM_GRAD_WEIGHT_IMAGE_MIN_PIXELS``; measured:
docs/benchmarks/cpu.md, "Kernel measurements").  Chunks keep the buffers under
``config.IM2COL_CHUNK_BYTES`` (never a whole-batch buffer); they come from a per-thread
workspace (:func:`scratch`).
BLAS runs from Python (:mod:`..blas`, never BLAS's own pool), between numba's parallel
regions, never inside one.  A 1x1 convolution with stride 1 and no padding needs no
im2col: the input already is the column matrix of each image.
"""


import numpy as np

from .... import config
from ..blas import matmul, matmul_sum
from ..im2col import col2im_at, col2im_wide, im2col_at, im2col_wide
from ..workspace import scratch


def _layout(x_shape, weight_shape, out_shape, geometry, itemsize):
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, ch_per_group, kh, kw = weight_shape
    out_h, out_w = out_shape[2], out_shape[3]
    cols_geometry = (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)
    # a plain product only where input and output planes have one size (a transposed
    # conv's output_padding makes its output, this conv's input, larger)
    pointwise = (kh == kw == 1 and sh == sw == 1 and ph == pw == 0
                 and tuple(x_shape[2:]) == (out_h, out_w))
    rows = ch_per_group * kh * kw
    per_image = (x_shape[1] * kh * kw + out_ch) * out_h * out_w * itemsize  # cols + dy/out
    chunk = max(1, min(x_shape[0], config.IM2COL_CHUNK_BYTES // max(per_image, 1)))
    return groups, out_ch // groups, rows, out_h * out_w, cols_geometry, pointwise, chunk


def chunks(batch, chunk):
    """(first image, images) of each chunk of ``chunk`` images."""
    for n0 in range(0, batch, chunk):
        yield n0, min(chunk, batch - n0)


def _per_image(nb, out_len, least=None):
    """Whether a chunk of ``nb`` images lays its columns out per image, ``(nb, G, rows,
    OH*OW)``, each image's products apart, rather than side by side (``(G, rows, nb *
    OH*OW)``, one wide product): per image, ``grad_out`` and ``out`` are read and
    written in place (no transposing copy), which pays from ``least`` output pixels
    (``config.GEMM_IMAGE_MIN_PIXELS`` unless given), and for one image; on smaller maps
    the wide product's one BLAS call wins."""
    return nb == 1 or out_len >= (config.GEMM_IMAGE_MIN_PIXELS if least is None else least)


def _columns(x, n0, nb, groups, rows, out_len, cols_geometry, images):
    """The chunk's columns: ``(nb, groups, rows, out_len)`` per image, else ``(groups,
    rows, nb * out_len)`` (:func:`_per_image`)."""
    if images:
        cols = scratch("columns", (nb, groups, rows, out_len), x.dtype)
        im2col_at(x, n0, nb, cols.reshape(cols.size), out_len, groups * rows * out_len,
                  cols_geometry)
        return cols
    cols = scratch("columns", (groups, rows, nb * out_len), x.dtype)
    im2col_wide(x, n0, nb, cols.reshape(cols.size), cols_geometry)
    return cols


def _wide_grad(grad_out, n0, nb, groups, k_g, out_len):
    """The chunk's output gradient as ``(groups, k_g, nb * out_len)`` (a copy)."""
    dy = scratch("grad_rows", (groups, k_g, nb, out_len), grad_out.dtype)
    dy[...] = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len).transpose(1, 2, 0, 3)
    return dy.reshape(groups, k_g, nb * out_len)


def conv2d_forward_gemm(x, weight, bias, out, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        x.shape, weight.shape, out.shape, geometry, x.itemsize)
    w = weight.reshape(groups, k_g, rows)
    b = bias.reshape(1, groups, k_g, 1)
    for n0, nb in chunks(x.shape[0], chunk):
        o = out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
        images = pointwise or _per_image(nb, out_len)
        if images:  # the input (pointwise) or each image's columns: out in place
            cols = (x[n0:n0 + nb].reshape(nb, groups, rows, out_len) if pointwise else
                    _columns(x, n0, nb, groups, rows, out_len, cols_geometry, True))
            matmul(w, cols, out=o)
            if bias.any():  # a pass over the whole output: not for a layer without bias
                o += b
            continue
        cols = _columns(x, n0, nb, groups, rows, out_len, cols_geometry, False)
        product = scratch("product", (groups, k_g, nb * out_len), x.dtype)
        matmul(w, cols, out=product)
        np.add(product.reshape(groups, k_g, nb, out_len).transpose(2, 0, 1, 3), b, out=o)


def conv2d_grad_weight_gemm(x, grad_out, grad_weight, geometry):
    """The grad weight summed over chunks of images (in chunk order: deterministic):
    per chunk, the images' products ``dy[n, g] @ cols[n, g].T`` summed
    (``blas.matmul_sum``), or one wide product ``dy[g] @ cols[g].T``."""
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        x.shape, grad_weight.shape, grad_out.shape, geometry, x.itemsize)
    gw = grad_weight.reshape(groups, k_g, rows)
    batch = x.shape[0]
    if batch == 0:
        gw[...] = 0
        return
    if pointwise:  # no columns: the images' products summed (blas.matmul_sum)
        matmul_sum(grad_out.reshape(batch, groups, k_g, out_len),
                   x.reshape(batch, groups, rows, out_len).transpose(0, 1, 3, 2), gw)
        return
    partial = np.empty_like(gw)
    for n0, nb in chunks(batch, chunk):
        into = gw if n0 == 0 else partial
        if _per_image(nb, out_len, config.GEMM_GRAD_WEIGHT_IMAGE_MIN_PIXELS):
            cols = _columns(x, n0, nb, groups, rows, out_len, cols_geometry, True)
            dy = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
            matmul_sum(dy, cols.transpose(0, 1, 3, 2), into)
        else:
            cols = _columns(x, n0, nb, groups, rows, out_len, cols_geometry, False)
            dy = _wide_grad(grad_out, n0, nb, groups, k_g, out_len)
            matmul(dy, cols.transpose(0, 2, 1), out=into)
        if n0:
            gw += partial


def conv2d_grad_input_gemm(grad_out, weight, grad_in, geometry):
    groups, k_g, rows, out_len, cols_geometry, pointwise, chunk = _layout(
        grad_in.shape, weight.shape, grad_out.shape, geometry, grad_in.itemsize)
    w_t = weight.reshape(groups, k_g, rows).transpose(0, 2, 1)
    for n0, nb in chunks(grad_in.shape[0], chunk):
        if pointwise:
            dy = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
            matmul(w_t, dy, out=grad_in[n0:n0 + nb].reshape(nb, groups, rows, out_len))
            continue
        if _per_image(nb, out_len):  # grad_out read in place, each image's columns
            dy = grad_out[n0:n0 + nb].reshape(nb, groups, k_g, out_len)
            cols = scratch("columns", (nb, groups, rows, out_len), grad_in.dtype)
            matmul(w_t, dy, out=cols)
            col2im_at(cols.reshape(cols.size), out_len, groups * rows * out_len, n0, nb,
                      grad_in, cols_geometry)
            continue
        dy = _wide_grad(grad_out, n0, nb, groups, k_g, out_len)
        cols = scratch("columns", (groups, rows, nb * out_len), grad_in.dtype)
        matmul(w_t, dy, out=cols)
        col2im_wide(cols.reshape(cols.size), n0, nb, grad_in, cols_geometry)
