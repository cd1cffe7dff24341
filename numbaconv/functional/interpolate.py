"""interpolate: nearest, nearest-exact and area (1-D, 2-D), linear (1-D), bilinear and
bicubic (2-D) resizing.

The per-axis arithmetic (which inputs each output reads, with which weights) is done
once per call on the host, by PyTorch's rules and in its precision
(``_specs.interpolation_table``); the kernels then only gather with those 2-tap tables,
the backward as a gather too (each input sums the outputs that read it).  1-D data is
2-D data with a height of 1.  Bicubic's four taps per axis are two 2-tap tables
(``_specs.bicubic_tables``): the same kernels run once per pair of tables and the four
partial results are summed, forward and backward, on either device.  ``area`` is
adaptive average pooling to the output size.

Coordinates: with ``align_corners=False`` (the default) pixels are areas and output
``o`` samples input ``(o + 0.5) * scale - 0.5`` (clamped at 0), where ``scale`` is
``1 / scale_factor`` when a scale factor was given, else ``in / out``; with
``align_corners=True`` the corner pixels' centres line up: ``o * (in - 1) / (out - 1)``.
Nearest takes ``floor(o * scale)``, nearest-exact ``floor((o + 0.5) * scale)``; bicubic
does not clamp at 0 and reads indices clamped to the edge.
"""

from __future__ import annotations

import numpy as np

from .._args import check_float_dtypes, check_shape
from .._specs import InterpSpec, bicubic_tables, interpolate_spec, interpolation_table
from ..dispatch import backend_for
from ._common import as_4d, one_grad


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` data to ``size``, or by ``scale_factor``
    (output ``floor(n * scale_factor)``); give exactly one.

    ``mode``: ``'nearest'``, ``'nearest-exact'`` (pixel centres, as PIL and scikit-image)
    and ``'area'`` (adaptive average pooling) on 3-D or 4-D input, ``'linear'`` (3-D),
    ``'bilinear'`` and ``'bicubic'`` (4-D).  ``align_corners`` (linear and cubic modes
    only, default False): see the module doc.  ``recompute_scale_factor=True`` samples
    as if the output size had been given (``in / out`` instead of ``1 / scale_factor``),
    as PyTorch does.
    """
    size, scale_factor, mode = _resolve("interpolate", x, size, scale_factor, mode,
                                        align_corners, recompute_scale_factor)
    if mode == "area":
        return _area(x)(x, size)
    spec = interpolate_spec("interpolate", x, size, scale_factor, mode, align_corners)
    be = backend_for(spec.op, input=x)
    parts = []
    for h, w in _tables(be, spec):
        out = be.empty(spec.out_shape, spec.dtype)
        be.kernels.interpolate2d_forward(as_4d(be, x), out, h[0], h[1], w[0], w[1],
                                         spec.mode in ("nearest", "nearest-exact"))
        parts.append(out)
    return _total(be, parts).reshape(spec.output_shape)


def interpolate_backward(grad_output, x, size=None, scale_factor=None, mode="nearest",
                         align_corners=None, recompute_scale_factor=None):
    """Gradient of :func:`interpolate`: ``(grad_input,)``."""
    size, scale_factor, mode = _resolve("interpolate_backward", x, size, scale_factor, mode,
                                        align_corners, recompute_scale_factor)
    if mode == "area":
        return _area(x, backward=True)(grad_output, x, size)
    spec = interpolate_spec("interpolate_backward", x, size, scale_factor, mode,
                            align_corners)
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.output_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x)
    parts = []
    for h, w in _tables(be, spec):
        grad = be.empty(spec.in_shape, spec.dtype)
        be.kernels.interpolate2d_backward(be.asarray(grad_output).reshape(spec.out_shape),
                                          grad, *h, *w)
        parts.append(grad)
    return one_grad(_total(be, parts).reshape(x.shape))


def _area(x, backward=False):
    """``mode='area'`` is adaptive average pooling to the output size, as in PyTorch."""
    from . import pool

    name = f"adaptive_avg_pool{len(x.shape) - 2}d" + ("_backward" if backward else "")
    return getattr(pool, name)


def _resolve(op, x, size, scale_factor, mode, align_corners, recompute):
    """``(size, scale_factor, mode)`` after ``recompute_scale_factor`` and ``'area'``
    (which pools to a size, so a scale factor becomes one)."""
    if recompute not in (None, True, False):
        raise ValueError(f"{op}: recompute_scale_factor must be True, False or None; got "
                         f"{recompute!r}")
    if mode == "area" and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with mode 'linear', "
                         f"'bilinear' or 'bicubic'; got align_corners={align_corners!r} with "
                         f"mode='area'")
    if recompute and size is not None:
        raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit "
                         f"size; give scale_factor instead")
    if not (recompute or mode == "area") or scale_factor is None:
        return size, scale_factor, mode
    # the output size PyTorch computes from the scale factor; then sample from sizes
    out = interpolate_spec(op, x, None, scale_factor, "nearest", None).output_shape[2:]
    return out, None, mode


def _tables(be, spec: InterpSpec):
    """``[(height table, width table)]`` on ``be``'s device, each ``(idx, lam,
    readers)``: one pair for the 2-tap modes, four for bicubic (its taps two by two)."""
    per_axis = []
    for axis in (0, 1):
        in_len, out_len = spec.in_shape[2 + axis], spec.out_shape[2 + axis]
        if spec.mode == "bicubic":
            tabs = bicubic_tables(in_len, out_len, spec.scales[axis], spec.align_corners,
                                  spec.dtype)
        else:
            mode = spec.mode if (axis == 1 or spec.ndim == 2) else "nearest"
            tabs = [interpolation_table(in_len, out_len, spec.scales[axis], mode,
                                        spec.align_corners, spec.dtype)]
        per_axis.append([tuple(be.from_host(a) for a in t) for t in tabs])
    return [(h, w) for h in per_axis[0] for w in per_axis[1]]


def _total(be, parts):
    """The sum of the partial results (one part but for bicubic)."""
    total = parts[0]
    for part in parts[1:]:
        if isinstance(total, np.ndarray):
            total += part
        else:
            from ..nn._ops import add

            total = add(total, part)
    return total
