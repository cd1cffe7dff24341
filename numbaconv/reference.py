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

from ._args import int_tuple, padding_pairs

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


conv1d = conv
conv2d = conv
conv1d_backward = conv_backward
conv2d_backward = conv_backward
