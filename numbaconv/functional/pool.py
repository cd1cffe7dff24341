"""Pooling: max / average over fixed windows, and adaptive (output-size driven) windows.

Every variant runs through four kernels (``kernels/*/pool.py``), fed by one geometry
tuple (``_specs.PoolSpec.geometry``); 1-D pools are 2-D pools with a height of 1.

* max pooling records the flat arg-max of every window (PyTorch's ``indices``: per
  (n, c) plane, ``h * W + w``); its backward sends each gradient to that element.  The
  first maximum in row-major order wins a tie; NaN propagates.
* average pooling divides by the window size counting padding
  (``count_include_pad=True``), by the in-bounds count, or by ``divisor_override``;
  its backward spreads each gradient evenly over the window.
* adaptive pooling gives output ``o`` of an axis of length ``n`` the window
  ``[floor(o * n / out), ceil((o + 1) * n / out))``.
"""

from __future__ import annotations

import numpy as np

from .._args import check_float_dtypes, check_shape
from .._specs import (PoolSpec, adaptive_pool_spec, check_divisor, check_indices,
                      pool_spec)
from ..dispatch import backend_for
from ._common import as_4d, one_grad


# --------------------------------------------------------------------------- max
def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of ``(N, C, L)`` data; ``stride=None`` means ``kernel_size``.

    ``padding`` (at most half the kernel) pads with -inf.  With ``return_indices`` also
    returns the int64 position of each maximum in its row of length L.
    """
    spec = pool_spec("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_forward(spec, x, return_indices)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of ``(N, C, H, W)`` data; ``stride=None`` means ``kernel_size``.

    Output size per dim: ``floor((n + 2p - d (k - 1) - 1) / s) + 1`` (``ceil`` with
    ``ceil_mode``, dropping a last window that would start in the right padding).  With
    ``return_indices`` also returns int64 ``h * W + w`` of each maximum in its plane.
    """
    spec = pool_spec("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_forward(spec, x, return_indices)


def adaptive_max_pool1d(x, output_size, return_indices=False):
    """Max pooling of ``(N, C, L)`` data to ``output_size`` windows (see module doc)."""
    spec = adaptive_pool_spec("adaptive_max_pool1d", 1, x, output_size)
    return _max_forward(spec, x, return_indices)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max pooling of ``(N, C, H, W)`` data to ``output_size`` (int, or (oh, ow) where
    None keeps that dim); ``output_size=1`` is global max pooling."""
    spec = adaptive_pool_spec("adaptive_max_pool2d", 2, x, output_size)
    return _max_forward(spec, x, return_indices)


def max_pool1d_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False, indices=None):
    """Gradient of :func:`max_pool1d`: ``(grad_input,)``.  Pass the forward's
    ``indices`` to skip the arg-max search."""
    spec = pool_spec("max_pool1d_backward", 1, x, kernel_size, stride, padding, dilation,
                     ceil_mode)
    return _max_backward(spec, grad_output, x, indices)


def max_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False, indices=None):
    """Gradient of :func:`max_pool2d`: ``(grad_input,)``; each window's gradient goes to
    its maximum (summed where windows overlap).  Pass the forward's ``indices`` to skip
    the arg-max search."""
    spec = pool_spec("max_pool2d_backward", 2, x, kernel_size, stride, padding, dilation,
                     ceil_mode)
    return _max_backward(spec, grad_output, x, indices)


def adaptive_max_pool1d_backward(grad_output, x, output_size, return_indices=False,
                                 indices=None):
    """Gradient of :func:`adaptive_max_pool1d`: ``(grad_input,)``."""
    spec = adaptive_pool_spec("adaptive_max_pool1d_backward", 1, x, output_size)
    return _max_backward(spec, grad_output, x, indices)


def adaptive_max_pool2d_backward(grad_output, x, output_size, return_indices=False,
                                 indices=None):
    """Gradient of :func:`adaptive_max_pool2d`: ``(grad_input,)``."""
    spec = adaptive_pool_spec("adaptive_max_pool2d_backward", 2, x, output_size)
    return _max_backward(spec, grad_output, x, indices)


def _max_indices(be, spec: PoolSpec, x4):
    out = be.empty(spec.out_shape, spec.dtype)
    indices = be.empty(spec.out_shape, np.int64)
    be.kernels.max_pool2d_forward(x4, out, indices, spec.geometry)
    return out, indices


def _max_forward(spec: PoolSpec, x, return_indices):
    if not isinstance(return_indices, (bool, np.bool_)):
        raise ValueError(f"{spec.op}: return_indices must be True or False; got "
                         f"{return_indices!r}")
    be = backend_for(spec.op, input=x)
    out, indices = _max_indices(be, spec, as_4d(be, x))
    out = out.reshape(spec.output_shape)
    return (out, indices.reshape(spec.output_shape)) if return_indices else out


def max_pool2d_backward_of_forward(grad_output, x, indices, kernel_size, stride=None,
                                   padding=0, dilation=1, ceil_mode=False):
    """:func:`max_pool2d_backward` given the ``indices`` of the matching forward call (the
    layer's path, ``nn.MaxPool2d``): without the pass over the indices that checks a
    caller's are in range, which costs a large pool's backward a quarter of its time
    (docs/benchmarks/cpu.md, "Compile time", round 2).  The kernels never write out of
    range whatever the indices."""
    spec = pool_spec("max_pool2d_backward", 2, x, kernel_size, stride, padding, dilation,
                     ceil_mode)
    return _max_backward(spec, grad_output, x, indices, check_range=False)


def _max_backward(spec: PoolSpec, grad_output, x, indices, check_range=True):
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.output_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x, indices=indices)
    if indices is None:
        _, idx4 = _max_indices(be, spec, as_4d(be, x))
    else:
        check_indices(spec.op, indices, spec)
        idx4 = be.asarray(indices).reshape(spec.out_shape)
        plane = spec.in_shape[2] * spec.in_shape[3]
        if check_range and isinstance(idx4, np.ndarray) and (idx4.min() < -1
                                                            or idx4.max() >= plane):
            # a clear error for a caller's bad indices (both kernels would send their
            # gradient nowhere); on the host only: on a GPU it would cost a copy back
            raise ValueError(f"{spec.op}: indices must lie in [-1, {plane}) (flat positions "
                             f"in an input plane, -1 for an empty window); got "
                             f"[{idx4.min()}, {idx4.max()}]")
    grad = be.empty(spec.in_shape, spec.dtype)
    be.kernels.max_pool2d_backward(be.asarray(grad_output).reshape(spec.out_shape), idx4,
                                   grad, spec.geometry)
    return one_grad(grad.reshape(x.shape))


# --------------------------------------------------------------------------- average
def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of ``(N, C, L)`` data (see :func:`avg_pool2d`)."""
    spec = pool_spec("avg_pool1d", 1, x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg_forward(spec, x, count_include_pad, divisor_override)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of ``(N, C, H, W)`` data; ``stride=None`` means ``kernel_size``.

    The divisor is ``divisor_override`` if given, else the window size counting zero
    padding (``count_include_pad=True``; a ``ceil_mode`` window hanging past the padding
    counts only up to it), else the number of in-bounds elements.
    """
    spec = pool_spec("avg_pool2d", 2, x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg_forward(spec, x, count_include_pad, divisor_override)


def adaptive_avg_pool1d(x, output_size):
    """Average pooling of ``(N, C, L)`` data to ``output_size`` windows."""
    spec = adaptive_pool_spec("adaptive_avg_pool1d", 1, x, output_size)
    return _avg_forward(spec, x, True, None)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling of ``(N, C, H, W)`` data to ``output_size`` (int, or (oh, ow) where
    None keeps that dim); ``output_size=1`` is global average pooling."""
    spec = adaptive_pool_spec("adaptive_avg_pool2d", 2, x, output_size)
    return _avg_forward(spec, x, True, None)


def avg_pool1d_backward(grad_output, x, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool1d`: ``(grad_input,)``."""
    spec = pool_spec("avg_pool1d_backward", 1, x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg_backward(spec, grad_output, x, count_include_pad, divisor_override)


def avg_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d`: ``(grad_input,)``."""
    spec = pool_spec("avg_pool2d_backward", 2, x, kernel_size, stride, padding, 1, ceil_mode)
    return _avg_backward(spec, grad_output, x, count_include_pad, divisor_override)


def adaptive_avg_pool1d_backward(grad_output, x, output_size):
    """Gradient of :func:`adaptive_avg_pool1d`: ``(grad_input,)``."""
    spec = adaptive_pool_spec("adaptive_avg_pool1d_backward", 1, x, output_size)
    return _avg_backward(spec, grad_output, x, True, None)


def adaptive_avg_pool2d_backward(grad_output, x, output_size):
    """Gradient of :func:`adaptive_avg_pool2d`: ``(grad_input,)``."""
    spec = adaptive_pool_spec("adaptive_avg_pool2d_backward", 2, x, output_size)
    return _avg_backward(spec, grad_output, x, True, None)


def _avg_options(spec, count_include_pad, divisor_override):
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise ValueError(f"{spec.op}: count_include_pad must be True or False; got "
                         f"{count_include_pad!r}")
    return bool(count_include_pad), check_divisor(spec.op, divisor_override)


def _whole_plane(spec: PoolSpec, divisor_override) -> bool:
    """One window per plane, covering it: global average pooling."""
    kh, kw, _, _, ph, pw, dh, dw, out_h, out_w, adaptive = spec.geometry
    covers = adaptive or ((kh, kw) == spec.in_shape[2:] and (ph, pw) == (0, 0))
    return (out_h, out_w) == (1, 1) and covers and divisor_override is None


def _avg_kernel(be, spec, divisor_override, which):
    prefix = "global_" if _whole_plane(spec, divisor_override) else ""
    return getattr(be.kernels, f"{prefix}avg_pool2d_{which}")


def _avg_forward(spec: PoolSpec, x, count_include_pad, divisor_override):
    options = _avg_options(spec, count_include_pad, divisor_override)
    be = backend_for(spec.op, input=x)
    out = be.empty(spec.out_shape, spec.dtype)
    _avg_kernel(be, spec, divisor_override, "forward")(as_4d(be, x), out, spec.geometry,
                                                      *options)
    return out.reshape(spec.output_shape)


def _avg_backward(spec: PoolSpec, grad_output, x, count_include_pad, divisor_override):
    options = _avg_options(spec, count_include_pad, divisor_override)
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.output_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x)
    grad = be.empty(spec.in_shape, spec.dtype)
    _avg_kernel(be, spec, divisor_override, "backward")(
        be.asarray(grad_output).reshape(spec.out_shape), grad, spec.geometry, *options)
    return one_grad(grad.reshape(x.shape))
