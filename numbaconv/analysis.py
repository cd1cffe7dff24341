"""Analysis tools: output-size formulas (the very ones the ops validate with), the cost
of a layer, receptive fields, and the overlap map of a transposed convolution.

    >>> from numbaconv import analysis
    >>> analysis.conv_output_size(32, 3, stride=2, padding=1)
    16
    >>> analysis.checkerboard(3, 2).uneven        # kernel 3 is not a multiple of stride 2
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._args import (_is_int, conv_output_size, conv_transpose_output_size, int_tuple,
                    pool_output_size)


# --------------------------------------------------------------------------- layer cost
def conv_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Parameters of a conv layer: ``C_out * C_in / groups * prod(kernel) (+ C_out)``.
    ``kernel_size`` is an int (square 2-D) or one int per spatial dim.  The same count
    holds for the transposed conv with the same channels."""
    k = (kernel_size, kernel_size) if _is_int(kernel_size) else tuple(kernel_size)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"conv_params: channels ({in_channels}, {out_channels}) must be "
                         f"divisible by groups ({groups})")
    return out_channels * (in_channels // groups) * math.prod(k) + (out_channels if bias else 0)


def conv_flops(input_shape, out_channels, kernel_size, stride=1, padding=0, dilation=1,
               groups=1, transposed=False, output_padding=0):
    """Multiply-accumulates of one conv layer on an input of ``input_shape`` (N, C, *spatial),
    batch included (FLOPs are about twice this).

    conv: ``N * C_out * prod(out_size) * C_in / groups * prod(kernel)``; transposed conv:
    every input element times its ``C_out / groups * prod(kernel)`` stamp.
    """
    n, c_in, *size = (int(v) for v in input_shape)
    nd = len(size)
    k = int_tuple(kernel_size, nd, "kernel_size", "conv_flops", 1)
    if c_in % groups or out_channels % groups:
        raise ValueError(f"conv_flops: channels ({c_in}, {out_channels}) must be divisible "
                         f"by groups ({groups})")
    if transposed:
        return n * c_in * math.prod(size) * (out_channels // groups) * math.prod(k)
    out = conv_output_size(tuple(size), k, stride, padding, dilation)
    return n * out_channels * math.prod(out) * (c_in // groups) * math.prod(k)


# --------------------------------------------------------------------------- receptive field
@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial dim: ``size`` of the input region one output sees, ``jump`` (input
    distance between neighbouring outputs) and ``start`` (input coordinate of the centre
    of the first output's region; negative when it lies in the padding)."""

    size: tuple
    jump: tuple
    start: tuple


def _layer_geometry(layer):
    """(kernel, stride, padding, dilation) of a layer-like object, or None if it keeps
    the geometry (activations, batch-norm, ...).  Dicts with those keys work too."""
    get = layer.get if isinstance(layer, dict) else (lambda k, d=None: getattr(layer, k, d))
    if get("kernel_size") is None:
        return None
    return (get("kernel_size"), get("stride", 1) or 1, get("padding", 0) or 0,
            get("dilation", 1) or 1)


def _chain(model):
    """Layers of ``model`` in order: a list as given, a module's ``receptive_chain()``
    (blocks name their main path), a Sequential's children."""
    if isinstance(model, (list, tuple)):
        for item in model:
            yield from _chain(item)
    elif hasattr(model, "receptive_chain"):
        for item in model.receptive_chain():
            if item is model:
                yield model
            else:
                yield from _chain(item)
    else:
        yield model


def receptive_field(model_or_layers, ndim=2):
    """Receptive field of the last layer of a chain of convs / pools (a list of layers or
    of dicts with ``kernel_size``, ``stride``, ``padding``, ``dilation``; or a model)::

        size_l  = size_{l-1} + (k - 1) * dilation * jump_{l-1}
        jump_l  = jump_{l-1} * stride
        start_l = start_{l-1} + ((k - 1) / 2 * dilation - padding) * jump_{l-1}

    Stacked dilated 3x3 convs with dilations 1, 2, 4, ... grow it exponentially.
    """
    size, jump, start = [1] * ndim, [1] * ndim, [0.5] * ndim
    for layer in _chain(model_or_layers):
        geometry = _layer_geometry(layer)
        if geometry is None:
            continue
        kernel, stride, padding, dilation = geometry
        k = int_tuple(kernel, ndim, "kernel_size", "receptive_field", 1)
        s = int_tuple(stride, ndim, "stride", "receptive_field", 1)
        d = int_tuple(dilation, ndim, "dilation", "receptive_field", 1)
        if padding == "same":
            p = tuple((dd * (kk - 1)) // 2 for kk, dd in zip(k, d))
        elif padding == "valid":
            p = (0,) * ndim
        else:
            p = int_tuple(padding, ndim, "padding", "receptive_field", 0)
        for i in range(ndim):
            start[i] += ((k[i] - 1) / 2 * d[i] - p[i]) * jump[i]
            size[i] += (k[i] - 1) * d[i] * jump[i]
            jump[i] *= s[i]
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


# --------------------------------------------------------------------------- checkerboard
@dataclass(frozen=True)
class Checkerboard:
    """Overlap of a transposed conv's kernel stamps.

    ``counts``: how many (input pixel, kernel tap) pairs write each output position for
    an all-ones input of ``input_size`` (no padding).  ``period``: the repeating pattern of
    the interior, one stride period per dim.  ``uneven``: the period is not constant,
    i.e. some interior outputs get more contributions than their neighbours: the
    checkerboard artifact, which happens exactly when a kernel size is not divisible by
    its stride.
    """

    counts: np.ndarray
    period: np.ndarray
    uneven: bool

    def __str__(self):
        rows = np.atleast_2d(self.counts)
        width = len(str(int(rows.max())))
        lines = [" ".join(f"{int(v):>{width}}" for v in row) for row in rows]
        state = "uneven (checkerboard artifacts)" if self.uneven else "even"
        return "\n".join(lines + [f"period {self.period.tolist()}: {state}"])


def checkerboard(kernel_size, stride, input_size=None, dilation=1):
    """The overlap-count map of a transposed conv with ``kernel_size`` and ``stride`` (ints
    for a square 2-D kernel, or one per dim), and whether it is uneven.  ``input_size``
    defaults to enough pixels per dim to show the interior pattern."""
    nd = 2 if _is_int(kernel_size) and _is_int(stride) else len(
        kernel_size if not _is_int(kernel_size) else stride)
    k = int_tuple(kernel_size, nd, "kernel_size", "checkerboard", 1)
    s = int_tuple(stride, nd, "stride", "checkerboard", 1)
    d = int_tuple(dilation, nd, "dilation", "checkerboard", 1)
    if input_size is None:
        input_size = tuple(-(-(dd * (kk - 1) + 1) // ss) + 3 for kk, ss, dd in zip(k, s, d))
    size = int_tuple(input_size, nd, "input_size", "checkerboard", 1)
    axes, periods = [], []
    for n, kk, ss, dd in zip(size, k, s, d):
        count = np.zeros(conv_transpose_output_size(n, kk, ss, 0, 0, dd), np.int64)
        for i in range(n):
            count[i * ss + dd * np.arange(kk)] += 1
        axes.append(count)
        # interior: output o gets one write per tap t with o = i * s + t * d for some i
        periods.append(np.array([sum(1 for t in range(kk) if (r - t * dd) % ss == 0)
                                 for r in range(ss)], np.int64))
    counts, period = axes[0], periods[0]
    for a, p in zip(axes[1:], periods[1:]):
        counts, period = np.multiply.outer(counts, a), np.multiply.outer(period, p)
    return Checkerboard(counts, period, bool(period.min() != period.max()))


# --------------------------------------------------------------------------- model summary
@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals of :func:`summary`; ``str()`` prints the table."""

    input_shape: tuple
    rows: tuple

    @property
    def total_params(self):
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self):
        return sum(r.macs for r in self.rows)

    @property
    def total_activation_bytes(self):
        return sum(r.activation_bytes for r in self.rows)

    def __str__(self):
        head = ("layer", "type", "output shape", "params", "MACs", "activations")
        body = [(r.name, r.kind, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}",
                 _bytes(r.activation_bytes)) for r in self.rows]
        total = ("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}",
                 _bytes(self.total_activation_bytes))
        widths = [max(len(row[i]) for row in [head, *body, total]) for i in range(6)]
        fmt = lambda row: "  ".join(  # noqa: E731
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        rule = "-" * len(fmt(head))
        return "\n".join([f"input {self.input_shape}", fmt(head), rule, *map(fmt, body),
                          rule, fmt(total)])


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def summary(model, input_shape, dtype=np.float32):
    """Run ``model`` once (eval mode, on zeros of ``input_shape``, CPU) and report, per
    leaf layer: output shape, parameters, multiply-accumulates (batch included) and
    activation memory of its output; and the totals."""
    rows = []
    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]
    originals = {}

    def recorder(name, m, forward):
        def run(x):
            y = forward(x)
            macs = m.macs(tuple(x.shape), tuple(y.shape)) if hasattr(m, "macs") else 0
            params = sum(int(np.prod(p.shape)) for p in m._parameters.values()
                         if p is not None)
            rows.append(LayerRow(name, type(m).__name__, tuple(y.shape), params, int(macs),
                                 int(np.prod(y.shape)) * y.dtype.itemsize))
            return y
        return run

    was_training = model.training
    model.eval()
    try:
        for name, m in leaves:
            originals[name] = m.__dict__.get("forward")
            object.__setattr__(m, "forward", recorder(name, m, m.forward))
        model(np.zeros(input_shape, dtype))
    finally:
        for name, m in leaves:
            if originals[name] is None:
                del m.__dict__["forward"]
            else:
                object.__setattr__(m, "forward", originals[name])
        model.train(was_training)
    return Summary(tuple(input_shape), tuple(rows))


__all__ = [
    "conv_output_size", "conv_transpose_output_size", "pool_output_size", "conv_params",
    "conv_flops", "receptive_field", "ReceptiveField", "checkerboard", "Checkerboard",
    "summary", "Summary",
]
