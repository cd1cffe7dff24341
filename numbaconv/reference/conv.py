"""Reference implementations: plain NumPy loops that read like the formulas.

This is the oracle every kernel is tested against, and a place to read how each op is
defined.  It is slow on purpose (Python loops over output positions): use tiny shapes.
It shares nothing with the kernels but the argument normalizers; padding comes from
``np.pad`` and gradients are accumulated position by position.

Conventions are numbaconv's (and PyTorch's): channels first, cross-correlation unless
``flip=True``, weights ``(C_out, C_in // groups, *kernel)``.
"""

from __future__ import annotations

import numpy as np

from .._args import int_tuple, padding_pairs

_NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                "circular": "wrap"}


def _conv_geometry(x, weight, stride, padding, dilation):
    nd = x.ndim - 2
    kernel = weight.shape[2:]
    s = int_tuple(stride, nd, "stride", "reference", 1)
    d = int_tuple(dilation, nd, "dilation", "reference", 1)
    p = padding_pairs(padding, nd, "reference", kernel, d, s)
    return nd, kernel, s, d, p


def _pad(x, pads, padding_mode):
    """x padded on its spatial axes by per-side ``pads`` with ``padding_mode``."""
    width = [(0, 0), (0, 0)] + [tuple(p) for p in pads]
    return np.pad(x, width, mode=_NP_PAD_MODE[padding_mode])


def _window(nd, out_index, kernel, s, d):
    """Slices of the padded input that output position ``out_index`` sees:
    ``i = o * stride + k * dilation`` for ``k`` in ``range(kernel)``."""
    return tuple(
        slice(o * ss, o * ss + dd * (kk - 1) + 1, dd)
        for o, kk, ss, dd in zip(out_index, kernel, s, d)
    )


def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros", flip=False):
    """N-D convolution, the definition::

        y[n, k, o] = bias[k] + sum_{c, t} w[k, c, t] * xpad[n, g(k) * C_g + c, o * s + t * d]

    where ``g(k) = k // (C_out / groups)`` is the group of output channel ``k``.
    """
    nd, kernel, s, d, p = _conv_geometry(x, weight, stride, padding, dilation)
    if flip:
        weight = weight[(Ellipsis,) + (slice(None, None, -1),) * nd]
    xp = _pad(x, p, padding_mode)
    n_batch, c_out = x.shape[0], weight.shape[0]
    c_g = weight.shape[1]
    k_per_group = c_out // groups
    out_size = tuple((xp.shape[2 + i] - d[i] * (kernel[i] - 1) - 1) // s[i] + 1 for i in range(nd))
    y = np.zeros((n_batch, c_out) + out_size, dtype=np.result_type(x, weight))
    for n in range(n_batch):
        for k in range(c_out):
            g = k // k_per_group
            for o in np.ndindex(*out_size):
                patch = xp[(n, slice(g * c_g, (g + 1) * c_g)) + _window(nd, o, kernel, s, d)]
                y[(n, k) + o] = np.sum(patch * weight[k])
            if bias is not None:
                y[n, k] += bias[k]
    return y


def conv_backward(grad_output, x, weight, bias=None, stride=1, padding=0, dilation=1,
                  groups=1, padding_mode="zeros", flip=False):
    """Gradients of :func:`conv`, accumulated output position by output position::

        d xpad[n, g*C_g + c, o*s + t*d] += w[k, c, t] * dy[n, k, o]
        d w[k, c, t]                    += xpad[n, g*C_g + c, o*s + t*d] * dy[n, k, o]
        d bias[k]                       += dy[n, k, o]

    and ``d x`` gathers ``d xpad`` back through the padding: each padded position
    contributes to the input element it was copied from (none for zero padding).
    """
    nd, kernel, s, d, p = _conv_geometry(x, weight, stride, padding, dilation)
    flip_index = (Ellipsis,) + (slice(None, None, -1),) * nd
    w = weight[flip_index] if flip else weight
    xp = _pad(x, p, padding_mode)
    c_g = w.shape[1]
    k_per_group = w.shape[0] // groups
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros_like(w)
    for n in range(x.shape[0]):
        for k in range(w.shape[0]):
            g = k // k_per_group
            for o in np.ndindex(*grad_output.shape[2:]):
                where = (n, slice(g * c_g, (g + 1) * c_g)) + _window(nd, o, kernel, s, d)
                dy = grad_output[(n, k) + o]
                grad_xp[where] += w[k] * dy
                grad_w[k] += xp[where] * dy
    # Which input element each padded position holds: pad an array of flat indices.
    spatial = x.shape[2:]
    source = np.arange(int(np.prod(spatial))).reshape(spatial)
    if padding_mode == "zeros":
        source = np.pad(source, p, mode="constant", constant_values=-1)
    else:
        source = np.pad(source, p, mode=_NP_PAD_MODE[padding_mode])
    grad_x = np.zeros((x.shape[0], x.shape[1], int(np.prod(spatial))),
                      dtype=grad_xp.dtype)
    flat_src = source.reshape(-1)
    keep = flat_src >= 0
    flat_grad = grad_xp.reshape(x.shape[0], x.shape[1], -1)
    for i in np.flatnonzero(keep):
        grad_x[:, :, flat_src[i]] += flat_grad[:, :, i]
    grad_x = grad_x.reshape(x.shape)
    grad_b = None if bias is None else grad_output.sum(axis=(0,) + tuple(range(2, 2 + nd)))
    if flip:
        grad_w = grad_w[flip_index]
    return grad_x, np.ascontiguousarray(grad_w), grad_b




def _transpose_geometry(x, weight, stride, padding, output_padding, dilation):
    nd = x.ndim - 2
    kernel = weight.shape[2:]
    s = int_tuple(stride, nd, "stride", "reference", 1)
    p = int_tuple(padding, nd, "padding", "reference", 0)
    op = int_tuple(output_padding, nd, "output_padding", "reference", 0)
    d = int_tuple(dilation, nd, "dilation", "reference", 1)
    # the output before cropping ``padding`` from each side
    full = tuple((n - 1) * ss + dd * (kk - 1) + 1 + oo
                 for n, ss, dd, kk, oo, pp in zip(x.shape[2:], s, d, kernel, op, p))
    return nd, kernel, s, p, d, full


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                   dilation=1):
    """N-D transposed convolution, the definition: every input element stamps the kernel,
    scaled by its value, onto the output::

        yfull[n, g*C_og + co, i * s + t * d] += x[n, g*C_ig + ci, i] * w[g*C_ig + ci, co, t]

    then ``padding`` is cropped from both ends of every spatial axis (``output_padding``
    extends the far end first).  Weights are ``(C_in, C_out // groups, *kernel)``.
    """
    nd, kernel, s, p, d, full = _transpose_geometry(x, weight, stride, padding,
                                                    output_padding, dilation)
    c_in, c_og = weight.shape[:2]
    c_ig = c_in // groups
    yfull = np.zeros((x.shape[0], c_og * groups) + full, dtype=np.result_type(x, weight))
    for n in range(x.shape[0]):
        for ci in range(c_in):
            g = ci // c_ig
            for i in np.ndindex(*x.shape[2:]):
                where = (n, slice(g * c_og, (g + 1) * c_og)) + _window(nd, i, kernel, s, d)
                yfull[where] += x[(n, ci) + i] * weight[ci]
    y = yfull[(Ellipsis,) + tuple(slice(pp, f - pp) for pp, f in zip(p, full))]
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * nd)
    return np.ascontiguousarray(y)


def conv_transpose_backward(grad_output, x, weight, bias=None, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1):
    """Gradients of :func:`conv_transpose`: each stamp's contribution traced back::

        d x[n, ci, i]    = sum_{co, t} w[ci, co, t] * dyfull[n, g*C_og + co, i * s + t * d]
        d w[ci, co, t]  += x[n, ci, i] * dyfull[n, g*C_og + co, i * s + t * d]
    """
    nd, kernel, s, p, d, full = _transpose_geometry(x, weight, stride, padding,
                                                    output_padding, dilation)
    c_in, c_og = weight.shape[:2]
    c_ig = c_in // groups
    gfull = np.zeros(grad_output.shape[:2] + full, dtype=grad_output.dtype)
    gfull[(Ellipsis,) + tuple(slice(pp, f - pp) for pp, f in zip(p, full))] = grad_output
    grad_x = np.zeros_like(x, dtype=grad_output.dtype)
    grad_w = np.zeros_like(weight, dtype=grad_output.dtype)
    for n in range(x.shape[0]):
        for ci in range(c_in):
            g = ci // c_ig
            for i in np.ndindex(*x.shape[2:]):
                patch = gfull[(n, slice(g * c_og, (g + 1) * c_og)) + _window(nd, i, kernel, s, d)]
                grad_x[(n, ci) + i] = np.sum(patch * weight[ci])
                grad_w[ci] += x[(n, ci) + i] * patch
    grad_b = None if bias is None else grad_output.sum(axis=(0,) + tuple(range(2, 2 + nd)))
    return grad_x, grad_w, grad_b
