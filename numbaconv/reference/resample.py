"""Reference unfold / fold, interpolate, pad and channel shuffle: loops over positions
and the textbook coordinate formulas."""

from __future__ import annotations

import math

import numpy as np

from .._args import int_tuple


# --------------------------------------------------------------------------- unfold / fold
def _blocks(size, kernel_size, dilation, padding, stride):
    k = int_tuple(kernel_size, 2, "kernel_size", "reference", 1)
    d = int_tuple(dilation, 2, "dilation", "reference", 1)
    p = int_tuple(padding, 2, "padding", "reference", 0)
    s = int_tuple(stride, 2, "stride", "reference", 1)
    out = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for n, kk, pp, dd, ss in zip(size, k, p, d, s))
    return k, d, p, s, out


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """``cols[n, (c kH + i) kW + j, bh OW + bw] = xpad[n, c, bh sh + i dh, bw sw + j dw]``"""
    k, d, p, s, out = _blocks(x.shape[2:], kernel_size, dilation, padding, stride)
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    n, c = x.shape[:2]
    cols = np.zeros((n, c * k[0] * k[1], out[0] * out[1]), x.dtype)
    for ch, i, j, bh, bw in np.ndindex(c, k[0], k[1], out[0], out[1]):
        cols[:, (ch * k[0] + i) * k[1] + j, bh * out[1] + bw] = \
            xp[:, ch, bh * s[0] + i * d[0], bw * s[1] + j * d[1]]
    return cols


def fold(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of :func:`unfold`: every column entry added back where it was read."""
    size = int_tuple(output_size, 2, "output_size", "reference", 1)
    k, d, p, s, out = _blocks(size, kernel_size, dilation, padding, stride)
    n, c = cols.shape[0], cols.shape[1] // (k[0] * k[1])
    xp = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]), cols.dtype)
    for ch, i, j, bh, bw in np.ndindex(c, k[0], k[1], out[0], out[1]):
        xp[:, ch, bh * s[0] + i * d[0], bw * s[1] + j * d[1]] += \
            cols[:, (ch * k[0] + i) * k[1] + j, bh * out[1] + bw]
    return xp[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]].copy()


def unfold_backward(grad_output, x, kernel_size, dilation=1, padding=0, stride=1):
    return (fold(grad_output, x.shape[2:], kernel_size, dilation, padding, stride),)


def fold_backward(grad_output, cols, output_size, kernel_size, dilation=1, padding=0,
                  stride=1):
    return (unfold(grad_output, kernel_size, dilation, padding, stride),)


# --------------------------------------------------------------------------- interpolate
def _sources(in_len, out_len, scale_factor, mode, align_corners):
    """For each output position: [(input index, weight), ...] along one axis."""
    taps = []
    for o in range(out_len):
        if mode == "nearest":
            # PyTorch computes the nearest index in float32: kept, as part of the definition
            scale = np.float32(1 / scale_factor) if scale_factor else \
                np.float32(in_len) / np.float32(out_len)
            taps.append([(min(int(math.floor(np.float32(o) * scale)), in_len - 1), 1.0)])
            continue
        if align_corners:
            src = o * (in_len - 1) / (out_len - 1) if out_len > 1 else 0.0
        else:
            scale = 1 / scale_factor if scale_factor else in_len / out_len
            src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), in_len - 1)
        i1 = min(i0 + 1, in_len - 1)
        frac = min(max(src - i0, 0.0), 1.0)
        taps.append([(i0, 1 - frac), (i1, frac)])
    return taps


def _interp_axes(x, size, scale_factor, mode, align_corners):
    nd = x.ndim - 2
    scales = (None,) * nd
    if size is None:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else \
            (scale_factor,) * nd
        size = tuple(int(math.floor(n * f)) for n, f in zip(x.shape[2:], scales))
    size = int_tuple(size, nd, "size", "reference", 1)
    return size, [_sources(n, o, f, mode, bool(align_corners))
                  for n, o, f in zip(x.shape[2:], size, scales)]


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """``y[n, c, o] = sum over corners of (prod of axis weights) * x[n, c, corner]``"""
    size, axes = _interp_axes(x, size, scale_factor, mode, align_corners)
    y = np.zeros(x.shape[:2] + size, x.dtype)
    for o in np.ndindex(*size):
        for corner in np.ndindex(*(len(axes[a][o[a]]) for a in range(len(o)))):
            taps = [axes[a][o[a]][corner[a]] for a in range(len(o))]
            weight = np.prod([w for _, w in taps])
            y[(Ellipsis,) + o] += weight * x[(Ellipsis,) + tuple(i for i, _ in taps)]
    return y


def interpolate_backward(grad_output, x, size=None, scale_factor=None, mode="nearest",
                         align_corners=None):
    size, axes = _interp_axes(x, size, scale_factor, mode, align_corners)
    grad = np.zeros_like(x, dtype=grad_output.dtype)
    for o in np.ndindex(*size):
        for corner in np.ndindex(*(len(axes[a][o[a]]) for a in range(len(o)))):
            taps = [axes[a][o[a]][corner[a]] for a in range(len(o))]
            weight = np.prod([w for _, w in taps])
            grad[(Ellipsis,) + tuple(i for i, _ in taps)] += weight * grad_output[
                (Ellipsis,) + o]
    return (grad,)


# --------------------------------------------------------------------------- pad, shuffle
_NP_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
             "circular": "wrap"}


def _pad_width(x, pad):
    """F.pad's flat (last dim first) list -> per-axis (begin, end), possibly negative."""
    width = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        width[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return width


def _apply_pad(a, width, mode, **kw):
    grow = [(max(b, 0), max(e, 0)) for b, e in width]
    out = np.pad(a, grow, mode=_NP_MODES[mode], **kw)
    crop = tuple(slice(max(-b, 0), out.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(width))
    return out[crop]


def pad(x, pad, mode="constant", value=0.0):
    kw = {"constant_values": value} if mode == "constant" else {}
    return _apply_pad(x, _pad_width(x, pad), mode, **kw).copy()


def pad_backward(grad_output, x, pad, mode="constant", value=0.0):
    """Each padded position's gradient goes to the input element it copies (if any)."""
    width = _pad_width(x, pad)
    source = np.arange(x.size).reshape(x.shape)
    kw = {"constant_values": -1} if mode == "constant" else {}
    source = _apply_pad(source, width, mode, **kw)
    grad = np.zeros(x.size, grad_output.dtype)
    for i, g in zip(source.reshape(-1), grad_output.reshape(-1)):
        if i >= 0:
            grad[i] += g
    return (grad.reshape(x.shape),)


def channel_shuffle(x, groups):
    """Channels as a (groups, C / groups) matrix, transposed."""
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


def channel_shuffle_backward(grad_output, x, groups):
    """The inverse permutation: a shuffle with C / groups groups."""
    return (channel_shuffle(grad_output, x.shape[1] // groups),)
