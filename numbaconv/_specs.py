"""Checked geometry of every non-convolution op (and of the transposed convolution).

Like ``_args.conv_spec``, each ``*_spec`` validates one public call before any work is
done and returns plain integers in 2-D form: 1-D ops run through the 2-D kernels with a
height of 1.  Errors name the op, the argument, what was expected and what was given.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._args import (
    ConvSpec, _is_int, _to2d, check_float_dtypes, check_ndim, check_shape,
    conv_transpose_output_size, int_tuple, pool_output_size,
)

_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)"}


def _check_input(op, x, ndim, name="input"):
    dtype = check_float_dtypes(op, **{name: x})
    check_ndim(op, name, x, ndim + 2, _LAYOUT[ndim])
    if any(int(v) < 1 for v in x.shape):
        raise ValueError(f"{op}: {name} must have no empty dims; got shape {tuple(x.shape)}")
    return dtype


def _check_bool(op, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{op}: {name} must be True or False; got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------- transposed conv
def conv_transpose_spec(op, ndim, x, weight, bias, stride, padding, output_padding, groups,
                        dilation):
    """Validate a conv_transpose call; return the :class:`ConvSpec` of the convolution it
    is the adjoint of (that conv's *input* is the transposed conv's output)."""
    dtype = check_float_dtypes(op, input=x, weight=weight, bias=bias)
    check_ndim(op, "input", x, ndim + 2, _LAYOUT[ndim])
    wl = "(C_in, C_out // groups, kL)" if ndim == 1 else "(C_in, C_out // groups, kH, kW)"
    check_ndim(op, "weight", weight, ndim + 2, wl)
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int; got {groups!r}")
    n, c_in = (int(v) for v in x.shape[:2])
    if n < 1 or c_in < 1 or any(int(v) < 1 for v in weight.shape):
        raise ValueError(f"{op}: input and weight need non-empty dims; got input "
                         f"{tuple(x.shape)}, weight {tuple(weight.shape)}")
    if weight.shape[0] != c_in:
        raise ValueError(f"{op}: weight.shape[0] must equal input channels ({c_in}); got "
                         f"weight of shape {tuple(weight.shape)}")
    if c_in % groups:
        raise ValueError(f"{op}: input channels ({c_in}) must be divisible by groups ({groups})")
    c_out = int(weight.shape[1]) * groups
    if bias is not None:
        check_shape(op, "bias", bias, (c_out,))
    kernel = tuple(int(k) for k in weight.shape[2:])
    s = int_tuple(stride, ndim, "stride", op, 1)
    p = int_tuple(padding, ndim, "padding", op, 0)
    op_ = int_tuple(output_padding, ndim, "output_padding", op, 0)
    d = int_tuple(dilation, ndim, "dilation", op, 1)
    if any(o >= max(ss, dd) for o, ss, dd in zip(op_, s, d)):
        raise ValueError(f"{op}: output_padding must be smaller than stride or dilation in "
                         f"every dim; got output_padding={op_}, stride={s}, dilation={d}")
    in_size = tuple(int(v) for v in x.shape[2:])
    out = conv_transpose_output_size(in_size, kernel, s, p, op_, d)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: output size would be {out} (< 1): padding {p} is too large "
                         f"for input size {in_size} and kernel {kernel}")
    return ConvSpec(
        op=op, ndim=ndim, batch=n, in_channels=c_out, out_channels=c_in, groups=int(groups),
        in_size=_to2d(out, ndim, 1), kernel=_to2d(kernel, ndim, 1), stride=_to2d(s, ndim, 1),
        pads=_to2d(tuple((v, v) for v in p), ndim, (0, 0)), dilation=_to2d(d, ndim, 1),
        out_size=_to2d(in_size, ndim, 1), padding_mode="zeros", flip=False, dtype=dtype,
    )


# --------------------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PoolSpec:
    op: str
    ndim: int
    in_shape: tuple  # 4-D (N, C, H, W)
    out_shape: tuple  # 4-D
    geometry: tuple  # the pool tuple of kernels/_window.py
    dtype: np.dtype

    @property
    def output_shape(self):
        """The output shape of the public call (1-D ops drop the unit height)."""
        return self.out_shape[:2] + self.out_shape[4 - self.ndim:]


def _pool_spec(op, ndim, x, out, kernel, stride, pad, dil, adaptive, dtype):
    n, c = (int(v) for v in x.shape[:2])
    in_size = tuple(int(v) for v in x.shape[2:])
    out2 = _to2d(tuple(out), ndim, 1)
    geometry = (_to2d(kernel, ndim, 1) + _to2d(stride, ndim, 1) + _to2d(pad, ndim, 0)
                + _to2d(dil, ndim, 1) + out2 + (int(adaptive),))
    return PoolSpec(op, ndim, (n, c) + _to2d(in_size, ndim, 1), (n, c) + out2, geometry,
                    dtype)


def pool_spec(op, ndim, x, kernel_size, stride, padding, dilation, ceil_mode):
    """max_pool / avg_pool: kernel, stride (None = kernel), padding <= kernel / 2."""
    dtype = _check_input(op, x, ndim)
    k = int_tuple(kernel_size, ndim, "kernel_size", op, 1)
    empty = isinstance(stride, (tuple, list)) and len(stride) == 0  # PyTorch: the default
    s = k if stride is None or empty else int_tuple(stride, ndim, "stride", op, 1)
    p = int_tuple(padding, ndim, "padding", op, 0)
    d = int_tuple(dilation, ndim, "dilation", op, 1)
    _check_bool(op, "ceil_mode", ceil_mode)
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise ValueError(f"{op}: padding must be at most half the kernel size; got "
                         f"padding={p} for kernel_size={k}")
    in_size = tuple(int(v) for v in x.shape[2:])
    out = pool_output_size(in_size, k, s, p, d, bool(ceil_mode))
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: output size would be {out} (< 1): input size {in_size} "
                         f"with padding {p} is smaller than the (dilated) kernel "
                         f"{tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))}")
    return _pool_spec(op, ndim, x, out, k, s, p, d, False, dtype)


def adaptive_pool_spec(op, ndim, x, output_size):
    """adaptive pools: ``output_size`` an int or one entry per dim (None keeps that dim)."""
    dtype = _check_input(op, x, ndim)
    in_size = tuple(int(v) for v in x.shape[2:])
    if isinstance(output_size, (tuple, list)) and len(output_size) == ndim:
        size = tuple(i if o is None else o for o, i in zip(output_size, in_size))
    else:
        size = output_size
    out = int_tuple(size, ndim, "output_size", op, 1)
    one = (1,) * ndim
    return _pool_spec(op, ndim, x, out, one, one, (0,) * ndim, one, True, dtype)


def check_divisor(op, divisor_override):
    if divisor_override is None:
        return 0
    if not _is_int(divisor_override) or divisor_override < 1:
        raise ValueError(f"{op}: divisor_override must be None or a positive int; got "
                         f"{divisor_override!r}")
    return int(divisor_override)


def check_indices(op, indices, spec: PoolSpec):
    """The ``indices`` a max-pool backward may be given: int64, the output's shape."""
    if not (hasattr(indices, "shape") and hasattr(indices, "dtype")):
        raise TypeError(f"{op}: indices must be an array; got {type(indices).__name__}")
    if np.dtype(indices.dtype) != np.int64:
        raise TypeError(f"{op}: indices must be int64 (as returned by the forward call); "
                        f"got {indices.dtype}")
    check_shape(op, "indices", indices, spec.output_shape)


# --------------------------------------------------------------------------- unfold / fold
@dataclass(frozen=True)
class FoldSpec:
    op: str
    image_shape: tuple  # (N, C, H, W)
    cols_shape: tuple  # (N, C * kh * kw, L)
    geometry: tuple  # (kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w) of im2col / col2im
    dtype: np.dtype


def _fold_geometry(op, size, kernel_size, dilation, padding, stride):
    k = int_tuple(kernel_size, 2, "kernel_size", op, 1)
    d = int_tuple(dilation, 2, "dilation", op, 1)
    p = int_tuple(padding, 2, "padding", op, 0)
    s = int_tuple(stride, 2, "stride", op, 1)
    blocks = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                   for n, kk, pp, dd, ss in zip(size, k, p, d, s))
    if any(b < 1 for b in blocks):
        raise ValueError(f"{op}: no sliding block fits: size {size} with padding {p} is "
                         f"smaller than the dilated kernel "
                         f"{tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))}")
    return k + s + p + d + blocks


def unfold_spec(op, x, kernel_size, dilation, padding, stride):
    dtype = _check_input(op, x, 2)
    n, c, h, w = (int(v) for v in x.shape)
    g = _fold_geometry(op, (h, w), kernel_size, dilation, padding, stride)
    return FoldSpec(op, (n, c, h, w), (n, c * g[0] * g[1], g[8] * g[9]), g, dtype)


def fold_spec(op, cols, output_size, kernel_size, dilation, padding, stride):
    dtype = check_float_dtypes(op, input=cols)
    check_ndim(op, "input", cols, 3, "(N, C * kH * kW, L)")
    size = int_tuple(output_size, 2, "output_size", op, 1)
    g = _fold_geometry(op, size, kernel_size, dilation, padding, stride)
    n, rows, length = (int(v) for v in cols.shape)
    taps = g[0] * g[1]
    if rows % taps or rows == 0:
        raise ValueError(f"{op}: input.shape[1] must be a positive multiple of kH * kW = "
                         f"{taps}; got input of shape {tuple(cols.shape)}")
    if length != g[8] * g[9]:
        raise ValueError(f"{op}: input.shape[2] must be the number of sliding blocks, "
                         f"{g[8]} * {g[9]} = {g[8] * g[9]} for output_size {size}; got "
                         f"input of shape {tuple(cols.shape)}")
    if n < 1:
        raise ValueError(f"{op}: input needs a non-empty batch; got {tuple(cols.shape)}")
    return FoldSpec(op, (n, rows // taps) + size, (n, rows, length), g, dtype)


# --------------------------------------------------------------------------- interpolate
_INTERP_MODES = {"nearest": (1, 2), "nearest-exact": (1, 2), "linear": (1,), "bilinear": (2,),
                 "bicubic": (2,)}


@dataclass(frozen=True)
class InterpSpec:
    op: str
    ndim: int
    in_shape: tuple  # 4-D
    out_shape: tuple  # 4-D
    mode: str
    align_corners: bool
    scales: tuple  # user scale factor per 2-D axis, or None
    dtype: np.dtype

    @property
    def output_shape(self):
        return self.out_shape[:2] + self.out_shape[4 - self.ndim:]


def interpolate_spec(op, x, size, scale_factor, mode, align_corners):
    dtype = check_float_dtypes(op, input=x)
    if mode not in _INTERP_MODES:
        raise ValueError(f"{op}: mode must be one of {tuple(_INTERP_MODES)}; got {mode!r}")
    ndim = len(x.shape) - 2
    if ndim not in _INTERP_MODES[mode]:
        want = " or ".join(f"{d + 2}-D {_LAYOUT[d]}" for d in _INTERP_MODES[mode])
        raise ValueError(f"{op}: mode={mode!r} needs {want} input; got shape "
                         f"{tuple(x.shape)} ({len(x.shape)}-D)")
    _check_input(op, x, ndim)
    if mode.startswith("nearest") and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with mode 'linear' or "
                         f"'bilinear'; got align_corners={align_corners!r} with mode={mode!r}")
    corners = False if align_corners is None else _check_bool(op, "align_corners",
                                                              align_corners)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor; got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    in_size = tuple(int(v) for v in x.shape[2:])
    if size is not None:
        out = int_tuple(size, ndim, "size", op, 1)
        scales = (None,) * ndim
    else:
        if isinstance(scale_factor, numbers.Real) and not isinstance(scale_factor, bool):
            scales = (float(scale_factor),) * ndim
        elif (isinstance(scale_factor, (tuple, list)) and len(scale_factor) == ndim
              and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                      for v in scale_factor)):
            scales = tuple(float(v) for v in scale_factor)
        else:
            raise ValueError(f"{op}: scale_factor must be a number or {ndim} numbers (one "
                             f"per spatial dim); got {scale_factor!r}")
        if any(not np.isfinite(v) or v <= 0 for v in scales):
            raise ValueError(f"{op}: scale_factor must be positive and finite; got "
                             f"{scale_factor!r}")
        out = tuple(int(np.floor(n * f)) for n, f in zip(in_size, scales))
        if any(o < 1 for o in out):
            raise ValueError(f"{op}: scale_factor {scale_factor!r} makes an empty output "
                             f"{out} from input size {in_size}")
    n, c = (int(v) for v in x.shape[:2])
    return InterpSpec(op, ndim, (n, c) + _to2d(in_size, ndim, 1), (n, c) + _to2d(out, ndim, 1),
                      mode, corners, _to2d(scales, ndim, None), dtype)


def interpolation_table(in_len, out_len, scale, mode, align_corners, dtype):
    """Per-axis interpolation table, PyTorch's index rules and arithmetic precision.

    Returns ``idx (out_len, 2)`` int64 (the two inputs each output reads; -1 = none),
    ``lam (out_len, 2)`` their weights in ``dtype``, and ``readers (in_len, 2)``: for each
    input, a ``[lo, hi)`` range of outputs that holds all of those that read it.
    """
    o = np.arange(out_len)
    idx = np.full((out_len, 2), -1, np.int64)
    lam = np.zeros((out_len, 2), dtype)
    if mode == "nearest-exact":  # pixel centres: floor((o + 0.5) * scale), in float32
        f = np.float32(1.0 / scale) if scale else np.float32(in_len) / np.float32(out_len)
        src = np.floor((o.astype(np.float32) + np.float32(0.5)) * f).astype(np.int64)
        idx[:, 0] = np.minimum(src, in_len - 1)
        lam[:, 0] = 1
    elif mode == "nearest":
        # float32 arithmetic on purpose: it is PyTorch's, and picks the same index at ties
        if out_len == in_len:
            src = o
        elif out_len == 2 * in_len:
            src = o >> 1
        else:
            f = np.float32(1.0 / scale) if scale else np.float32(in_len) / np.float32(out_len)
            src = np.floor(o.astype(np.float32) * f).astype(np.int64)
        idx[:, 0] = np.minimum(src, in_len - 1)
        lam[:, 0] = 1
    else:
        t = np.dtype(dtype).type
        if align_corners:
            f = t(in_len - 1) / t(out_len - 1) if out_len > 1 else t(0)
            real = f * o.astype(dtype)
        else:
            f = t(1.0 / scale) if scale else t(in_len) / t(out_len)
            real = np.maximum(f * (o.astype(dtype) + t(0.5)) - t(0.5), t(0))
        i0 = np.minimum(real.astype(np.int64), in_len - 1)
        lam1 = np.clip(real - i0.astype(dtype), 0, 1).astype(dtype)
        idx[:, 0] = i0
        idx[:, 1] = np.minimum(i0 + 1, in_len - 1)
        lam[:, 0] = t(1) - lam1
        lam[:, 1] = lam1
    return idx, lam, _readers(idx, in_len)


def _readers(idx, in_len):
    """For each input, a ``[lo, hi)`` range of the outputs that read it: those have
    ``idx0`` in ``{i - 1, i}``, and ``idx0`` is non-decreasing in the output."""
    first = idx[:, 0]
    i = np.arange(in_len)
    return np.stack([np.searchsorted(first, i - 1, "left"),
                     np.searchsorted(first, i, "right")], axis=1).astype(np.int64)


def bicubic_tables(in_len, out_len, scale, align_corners, dtype):
    """PyTorch's bicubic (cubic convolution, A = -0.75, indices clamped to the edge) as
    two 2-tap tables per axis, ``(idx, lam, readers)`` for taps (-1, 0) and (+1, +2)
    around ``floor(src)``: the 2-tap kernels run once per pair of pairs and the four
    results add up to the 4x4-tap value."""
    t = np.dtype(dtype).type
    o = np.arange(out_len).astype(dtype)
    if align_corners:
        real = (t(in_len - 1) / t(out_len - 1) if out_len > 1 else t(0)) * o
    else:
        f = t(1.0 / scale) if scale else t(in_len) / t(out_len)
        real = f * (o + t(0.5)) - t(0.5)  # not clamped at 0 for cubic, as PyTorch
    base = np.floor(real)
    d = (real - base).astype(dtype)
    a = t(-0.75)

    def near(x):   # |x| <= 1
        return ((a + t(2)) * x - (a + t(3))) * x * x + t(1)

    def far(x):    # 1 < |x| < 2
        return ((a * x - t(5) * a) * x + t(8) * a) * x - t(4) * a

    weights = [far(d + t(1)), near(d), near(t(1) - d), far(t(2) - d)]
    start = base.astype(np.int64) - 1
    tables = []
    for pair in (0, 2):
        idx = np.stack([np.clip(start + pair + k, 0, in_len - 1) for k in (0, 1)], axis=1)
        lam = np.stack([weights[pair], weights[pair + 1]], axis=1).astype(dtype)
        tables.append((idx.astype(np.int64), lam, _readers(idx, in_len)))
    return tables


# --------------------------------------------------------------------------- shuffle, pad
def channel_shuffle_spec(op, x, groups):
    dtype = check_float_dtypes(op, input=x)
    if len(x.shape) < 3:
        raise ValueError(f"{op}: input must be at least 3-D (N, C, *spatial); got shape "
                         f"{tuple(x.shape)}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int; got {groups!r}")
    c = int(x.shape[1])
    if c % groups:
        raise ValueError(f"{op}: channels ({c}) must be divisible by groups ({groups})")
    return dtype, int(groups)


PAD_MODES = ("constant", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class PadSpec:
    op: str
    in_shape: tuple  # 4-D
    out_shape: tuple  # 4-D
    leading: tuple  # (top, left) pads (negative crops, constant mode only)
    mode: str
    value: float
    output_shape: tuple  # of the public call
    dtype: np.dtype


def pad_spec(op, x, pad, mode, value):
    """``pad`` as PyTorch: (left, right) for the last dim, then (top, bottom) for the one
    before.  3-D input takes 2 values, 4-D input 2 or 4."""
    dtype = check_float_dtypes(op, input=x)
    nd = len(x.shape)
    if nd not in (3, 4):
        raise ValueError(f"{op}: input must be 3-D (N, C, L) or 4-D (N, C, H, W); got shape "
                         f"{tuple(x.shape)}")
    if mode not in PAD_MODES:
        raise ValueError(f"{op}: mode must be one of {PAD_MODES}; got {mode!r}")
    if not (isinstance(pad, (tuple, list)) and all(_is_int(v) for v in pad)
            and len(pad) in (2, 4) and len(pad) // 2 <= nd - 2):
        raise ValueError(f"{op}: pad must be a tuple of 2 ints (left, right)"
                         f"{' or 4 ints (left, right, top, bottom)' if nd == 4 else ''} for "
                         f"{nd}-D input; got {pad!r}")
    if mode != "constant" and len(pad) != 2 * (nd - 2):
        raise ValueError(f"{op}: mode={mode!r} pads every spatial dim: {2 * (nd - 2)} values "
                         f"for {nd}-D input; got pad={pad!r}")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{op}: value must be a number; got {value!r}")
    if mode != "constant" and float(value) != 0.0:
        raise ValueError(f"{op}: value is only used with mode='constant'; got value={value!r} "
                         f"with mode={mode!r}")
    pads = [int(v) for v in pad] + [0, 0] * (2 - len(pad) // 2)
    (left, right, top, bottom) = pads
    if mode != "constant" and min(pads) < 0:
        raise ValueError(f"{op}: negative padding (cropping) needs mode='constant'; got "
                         f"pad={pad!r} with mode={mode!r}")
    shape4 = tuple(int(v) for v in x.shape) if nd == 4 else (int(x.shape[0]), int(x.shape[1]),
                                                              1, int(x.shape[2]))
    h, w = shape4[2:]
    for name, (a, b), size in (("width", (left, right), w), ("height", (top, bottom), h)):
        if mode == "reflect" and max(a, b) >= size:
            raise ValueError(f"{op}: mode='reflect' needs padding < input size; got pad "
                             f"{(a, b)} for {name} {size}")
        if mode == "circular" and max(a, b) > size:
            raise ValueError(f"{op}: mode='circular' needs padding <= input size; got pad "
                             f"{(a, b)} for {name} {size}")
    out4 = shape4[:2] + (h + top + bottom, w + left + right)
    if min(out4) < 1:
        raise ValueError(f"{op}: pad {pad!r} leaves an empty output {out4[2 + (nd == 3):]} "
                         f"from input {tuple(x.shape)}")
    output_shape = out4 if nd == 4 else out4[:2] + out4[3:]
    return PadSpec(op, shape4, out4, (top, left), mode, float(value), output_shape, dtype)
