"""Reference pooling: every output position's window, spelled out (any number of
spatial dims).  PyTorch's conventions: max pooling pads with -inf, keeps the first
maximum in row-major order and lets NaN win; average pooling divides by the window
size counting padding (``count_include_pad``), by the in-bounds count, or by
``divisor_override``; adaptive output ``o`` of ``out`` over ``n`` inputs covers
``[floor(o n / out), ceil((o + 1) n / out))``."""

from __future__ import annotations

import math

import numpy as np

from .._args import int_tuple, pool_output_size


def _fixed_windows(x, kernel_size, stride, padding, dilation, ceil_mode):
    """For each output index: per axis, the list of input positions its window taps
    (out-of-bounds ones included, as None) and the padded window size."""
    nd = x.ndim - 2
    k = int_tuple(kernel_size, nd, "kernel_size", "reference", 1)
    s = k if stride is None else int_tuple(stride, nd, "stride", "reference", 1)
    p = int_tuple(padding, nd, "padding", "reference", 0)
    d = int_tuple(dilation, nd, "dilation", "reference", 1)
    out = pool_output_size(x.shape[2:], k, s, p, d, ceil_mode)
    axes = []
    for n, kk, ss, pp, dd, oo in zip(x.shape[2:], k, s, p, d, out):
        per_out = []
        for o in range(oo):
            taps = [o * ss - pp + t * dd for t in range(kk)]
            padded_end = min(o * ss - pp + kk, n + pp)  # avg pool: window stops at padding
            per_out.append(([i for i in taps if 0 <= i < n], padded_end - (o * ss - pp)))
        axes.append(per_out)
    return out, axes


def _adaptive_windows(x, output_size):
    nd = x.ndim - 2
    if isinstance(output_size, (tuple, list)):
        output_size = tuple(n if o is None else o for o, n in zip(output_size, x.shape[2:]))
    out = int_tuple(output_size, nd, "output_size", "reference", 1)
    axes = []
    for n, oo in zip(x.shape[2:], out):
        per_out = []
        for o in range(oo):
            lo, hi = (o * n) // oo, math.ceil((o + 1) * n / oo)
            per_out.append((list(range(lo, hi)), hi - lo))
        axes.append(per_out)
    return out, axes


def _windows(out, axes):
    """(output index, list of input indices in row-major order, padded size)."""
    for o in np.ndindex(*out):
        lists = [axes[a][o[a]][0] for a in range(len(o))]
        size = int(np.prod([axes[a][o[a]][1] for a in range(len(o))]))
        yield o, [tuple(i) for i in np.array(np.meshgrid(*lists, indexing="ij")).reshape(
            len(o), -1).T], size


def _max(x, out, axes, return_indices):
    y = np.zeros(x.shape[:2] + tuple(out), x.dtype)
    idx = np.zeros(y.shape, np.int64)
    for n, c in np.ndindex(*x.shape[:2]):
        for o, taps, _ in _windows(out, axes):
            best, arg = -np.inf, None
            for i in taps:
                v = x[(n, c) + i]
                if arg is None or v > best or np.isnan(v):
                    best, arg = v, i
            y[(n, c) + o] = best  # -inf where no tap is inside the input
            idx[(n, c) + o] = -1 if arg is None else np.ravel_multi_index(arg, x.shape[2:])
    return (y, idx) if return_indices else y


def _max_backward(grad_output, x, out, axes):
    _, idx = _max(x, out, axes, True)
    grad = np.zeros_like(x, dtype=grad_output.dtype)
    for n, c in np.ndindex(*x.shape[:2]):
        flat = grad[n, c].reshape(-1)  # a view
        for o in np.ndindex(*out):
            if idx[(n, c) + o] >= 0:  # an empty window sends no gradient
                flat[idx[(n, c) + o]] += grad_output[(n, c) + o]
    return (grad,)


def _divisor(taps, size, count_include_pad, divisor_override):
    if divisor_override:
        return divisor_override
    return size if count_include_pad else len(taps)


def _avg(x, out, axes, count_include_pad=True, divisor_override=None):
    y = np.zeros(x.shape[:2] + tuple(out), x.dtype)
    for n, c in np.ndindex(*x.shape[:2]):
        for o, taps, size in _windows(out, axes):
            total = sum(x[(n, c) + i] for i in taps)
            y[(n, c) + o] = total / _divisor(taps, size, count_include_pad, divisor_override)
    return y


def _avg_backward(grad_output, x, out, axes, count_include_pad=True, divisor_override=None):
    grad = np.zeros_like(x, dtype=grad_output.dtype)
    for n, c in np.ndindex(*x.shape[:2]):
        for o, taps, size in _windows(out, axes):
            share = grad_output[(n, c) + o] / _divisor(taps, size, count_include_pad,
                                                       divisor_override)
            for i in taps:
                grad[(n, c) + i] += share
    return (grad,)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    """``y[n, c, o] = max_t x[n, c, o * s - p + t * d]`` over in-bounds taps."""
    out, axes = _fixed_windows(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max(x, out, axes, return_indices)


def max_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                      ceil_mode=False, return_indices=False, indices=None):
    """Each window's gradient goes to its arg-max: ``(grad_x,)``."""
    out, axes = _fixed_windows(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_backward(grad_output, x, out, axes)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    """``y[n, c, o] = sum_t x[n, c, o * s - p + t] / divisor`` over in-bounds taps."""
    out, axes = _fixed_windows(x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg(x, out, axes, count_include_pad, divisor_override)


def avg_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                      count_include_pad=True, divisor_override=None):
    """Each window's gradient, divided by its divisor, to every in-bounds tap."""
    out, axes = _fixed_windows(x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg_backward(grad_output, x, out, axes, count_include_pad, divisor_override)


def adaptive_max_pool(x, output_size, return_indices=False):
    out, axes = _adaptive_windows(x, output_size)
    return _max(x, out, axes, return_indices)


def adaptive_max_pool_backward(grad_output, x, output_size, return_indices=False,
                               indices=None):
    out, axes = _adaptive_windows(x, output_size)
    return _max_backward(grad_output, x, out, axes)


def adaptive_avg_pool(x, output_size):
    out, axes = _adaptive_windows(x, output_size)
    return _avg(x, out, axes)


def adaptive_avg_pool_backward(grad_output, x, output_size):
    out, axes = _adaptive_windows(x, output_size)
    return _avg_backward(grad_output, x, out, axes)
