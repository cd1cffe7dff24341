"""The one boundary: argument normalization, validation and the output-size formulas.

Every public op calls into this module before any work is done, so a bad argument is
reported once, in the same words, whatever the device.  Kernels downstream receive only
plain, already-checked integers.

Errors name the argument, what was expected and what was given::

    ValueError: conv2d: stride must be positive, one int per spatial dim (2); got (0, 1)
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# --------------------------------------------------------------------------- scalars
def _is_int(v) -> bool:
    t = type(v)
    if t is int:  # the common case, without the abstract-class check (~1 us each)
        return True
    return t is not bool and isinstance(v, numbers.Integral)


def int_tuple(value, ndim: int, name: str, op: str, minimum: int = 0) -> tuple[int, ...]:
    """An int or one int per spatial dim -> a tuple of ``ndim`` ints ``>= minimum``.  A
    one-element tuple stands for every dim, as PyTorch takes it."""
    if _is_int(value):
        vals = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == 1 and _is_int(value[0]):
        vals = (int(value[0]),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(_is_int(v) for v in value):
        vals = tuple(int(v) for v in value)
    else:
        raise ValueError(
            f"{op}: {name} must be an int or a tuple of {ndim} ints (one per spatial dim); "
            f"got {value!r}"
        )
    if any(v < minimum for v in vals):
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(
            f"{op}: {name} must be {what}, one int per spatial dim ({ndim}); got {value!r}"
        )
    return vals


def padding_pairs(padding, ndim: int, op: str, kernel_size=None, dilation=None, stride=None):
    """Normalize ``padding`` to per-side pairs ``((begin, end), ...)``, one per spatial dim.

    Accepts an int, one int per dim, per-side pairs ``((top, bottom), (left, right))``,
    and the strings ``'valid'`` (no padding) and ``'same'`` (output size == input size;
    needs stride 1; an odd total puts the extra element at the end, as PyTorch does).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if stride is not None and any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' needs stride 1 in every dim; got stride={stride}"
                )
            pairs = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(
            f"{op}: padding must be an int, a tuple, per-side pairs, 'same' or 'valid'; "
            f"got {padding!r}"
        )
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == ndim
        and all(isinstance(p, (tuple, list)) for p in padding)
    ):
        if not all(len(p) == 2 and all(_is_int(v) for v in p) for p in padding):
            raise ValueError(
                f"{op}: per-side padding must be {ndim} pairs of ints (begin, end); got {padding!r}"
            )
        pairs = tuple((int(a), int(b)) for a, b in padding)
        if any(v < 0 for p in pairs for v in p):
            raise ValueError(f"{op}: padding must be >= 0; got {padding!r}")
        return pairs
    vals = int_tuple(padding, ndim, "padding", op, minimum=0)
    return tuple((v, v) for v in vals)


# --------------------------------------------------------------------------- formulas
def live_taps(out_n, in_n, lead, taps, dilation, stride):
    """Per output position along one axis of a conv, the taps ``[lo, hi)`` that read
    inside the input (``lo == hi``: none); the others read the zero padding.  Tap ``t``
    of output ``o`` reads input index ``o*stride - lead + t*dilation`` (``lead``: the
    leading pad).  NumPy arrays ``(lo, hi)`` of ``out_n`` entries."""
    start = np.arange(out_n) * stride - lead  # the input index tap 0 reads
    lo = np.maximum(0, -(start // dilation))
    hi = np.minimum(taps, (in_n - 1 - start) // dilation + 1)
    return lo, np.maximum(hi, lo)


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution along one or more dims.

    ``out = floor((size + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1``

    Every argument is an int or a tuple (one value per dim); ``padding`` also takes
    per-side pairs.  Returns an int for int ``size``, else a tuple.  The result may be
    below 1 here; the ops reject that.
    """
    scalar = _is_int(size)
    sizes = (int(size),) if scalar else tuple(int(s) for s in size)
    nd = len(sizes)
    k = int_tuple(kernel_size, nd, "kernel_size", "conv_output_size", 1)
    s = int_tuple(stride, nd, "stride", "conv_output_size", 1)
    d = int_tuple(dilation, nd, "dilation", "conv_output_size", 1)
    p = padding_pairs(padding, nd, "conv_output_size", k, d, s)
    out = _conv_out(sizes, k, s, p, d)
    return out[0] if scalar else out


def _conv_out(sizes, kernel, stride, pads, dilation):
    """The formula of :func:`conv_output_size` on normalized tuples."""
    return tuple((n + pb + pe - dd * (kk - 1) - 1) // ss + 1
                 for n, kk, ss, (pb, pe), dd in zip(sizes, kernel, stride, pads, dilation))


def conv_transpose_output_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length of a transposed convolution (the inverse map of :func:`conv_output_size`).

    ``out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``
    """
    scalar = _is_int(size)
    sizes = (int(size),) if scalar else tuple(int(s) for s in size)
    nd = len(sizes)
    k = int_tuple(kernel_size, nd, "kernel_size", "conv_transpose_output_size", 1)
    s = int_tuple(stride, nd, "stride", "conv_transpose_output_size", 1)
    p = int_tuple(padding, nd, "padding", "conv_transpose_output_size", 0)
    op = int_tuple(output_padding, nd, "output_padding", "conv_transpose_output_size", 0)
    d = int_tuple(dilation, nd, "dilation", "conv_transpose_output_size", 1)
    out = tuple(
        (n - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
        for n, kk, ss, pp, oo, dd in zip(sizes, k, s, p, op, d)
    )
    return out[0] if scalar else out


def pool_output_size(size, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Output length of a pooling window, PyTorch's rule.

    Like :func:`conv_output_size` with symmetric padding; with ``ceil_mode`` the division
    rounds up, but a last window that would start inside the right padding is dropped.
    """
    scalar = _is_int(size)
    sizes = (int(size),) if scalar else tuple(int(s) for s in size)
    nd = len(sizes)
    k = int_tuple(kernel_size, nd, "kernel_size", "pool_output_size", 1)
    s = k if stride is None else int_tuple(stride, nd, "stride", "pool_output_size", 1)
    p = int_tuple(padding, nd, "padding", "pool_output_size", 0)
    d = int_tuple(dilation, nd, "dilation", "pool_output_size", 1)
    out = []
    for n, kk, ss, pp, dd in zip(sizes, k, s, p, d):
        span = n + 2 * pp - dd * (kk - 1) - 1
        o = (-(-span // ss) if ceil_mode else span // ss) + 1
        if ceil_mode and (o - 1) * ss >= n + pp:
            o -= 1
        out.append(o)
    return out[0] if scalar else tuple(out)


# --------------------------------------------------------------------------- arrays
def check_float_dtypes(op: str, **arrays):
    """All non-None arrays share one float dtype (float32 or float64); return it."""
    for name, a in arrays.items():
        if a is not None and not (hasattr(a, "shape") and hasattr(a, "dtype")):
            raise TypeError(
                f"{op}: {name} must be an array (NumPy, or a GPU array with "
                f"__cuda_array_interface__); got {type(a).__name__}"
            )
    got = {name: np.dtype(a.dtype) for name, a in arrays.items() if a is not None}
    bad = {n: d for n, d in got.items() if d not in FLOAT_DTYPES}
    if bad:
        desc = ", ".join(f"{n}={d}" for n, d in bad.items())
        raise TypeError(f"{op}: arrays must be float32 or float64; got {desc}")
    if len(set(got.values())) > 1:
        desc = ", ".join(f"{n}={d}" for n, d in got.items())
        raise TypeError(
            f"{op}: arrays must share one dtype (float32 or float64); got {desc}. "
            f"Cast them with .astype() first."
        )
    return next(iter(got.values()))


def check_ndim(op: str, name: str, a, ndim: int, layout: str):
    if len(a.shape) != ndim:
        raise ValueError(
            f"{op}: {name} must be {ndim}-D {layout}; got shape {tuple(a.shape)} ({len(a.shape)}-D)"
        )


def check_shape(op: str, name: str, a, expected: tuple):
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)}; got {tuple(a.shape)}")


# --------------------------------------------------------------------------- conv spec
@dataclass(frozen=True)
class ConvSpec:
    """Checked geometry of one convolution, in 2-D form (1-D ops use a height of 1).

    ``pads`` are the (begin, end) pairs applied to the input; when ``padding_mode`` is not
    ``'zeros'`` they are materialized by an explicit pad and the kernel sees no padding.
    """

    op: str
    ndim: int  # spatial dims of the public call (1 or 2)
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: tuple  # (H, W)
    kernel: tuple  # (kH, kW)
    stride: tuple
    pads: tuple  # ((top, bottom), (left, right))
    dilation: tuple
    out_size: tuple  # (OH, OW)
    padding_mode: str
    flip: bool
    dtype: np.dtype

    @property
    def output_shape(self) -> tuple:
        return (self.batch, self.out_channels) + self.out_size[2 - self.ndim :]

    @property
    def padded_size(self) -> tuple:
        return tuple(n + b + e for n, (b, e) in zip(self.in_size, self.pads))

    def kernel_geometry(self, explicit_pad: bool) -> tuple:
        """The integers the kernels take: (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups).

        With ``explicit_pad`` the input was already padded, so the kernel pads nothing.
        """
        ph, pw = (0, 0) if explicit_pad else (self.pads[0][0], self.pads[1][0])
        return (self.stride[0], self.stride[1], ph, pw, self.dilation[0], self.dilation[1], self.groups)


def _to2d(t: tuple, ndim: int, fill) -> tuple:
    return t if ndim == 2 else (fill,) + t


# Checked specs by call signature: a training loop or benchmark calls the same layer
# shapes over and over, and validating one from scratch costs ~15 us of Python.
_SPECS: dict = {}
_SPECS_MAX = 4096


def conv_spec(op, ndim, x, weight, bias, stride, padding, dilation, groups, padding_mode, flip):
    """Validate a conv1d / conv2d call and return its :class:`ConvSpec` (remembered per
    signature: array shapes and dtypes, and the arguments as ``repr`` gives them, so
    ``True`` and ``1`` are different calls)."""
    try:
        key = (op, ndim, tuple(x.shape), x.dtype, tuple(weight.shape), weight.dtype,
               None if bias is None else (tuple(bias.shape), bias.dtype),
               repr((stride, padding, dilation, groups, padding_mode, flip)))
        spec = _SPECS.get(key)
    except (AttributeError, TypeError):  # not arrays: the full check says what is wrong
        key = spec = None
    if spec is None:
        spec = _check_conv(op, ndim, x, weight, bias, stride, padding, dilation, groups,
                           padding_mode, flip)
        if key is not None and len(_SPECS) < _SPECS_MAX:
            _SPECS[key] = spec
    return spec


def _check_conv(op, ndim, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                flip):
    dtype = check_float_dtypes(op, input=x, weight=weight, bias=bias)
    layout = "(N, C, L)" if ndim == 1 else "(N, C, H, W)"
    wlayout = "(C_out, C_in // groups, kL)" if ndim == 1 else "(C_out, C_in // groups, kH, kW)"
    check_ndim(op, "input", x, ndim + 2, layout)
    check_ndim(op, "weight", weight, ndim + 2, wlayout)
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int; got {groups!r}")
    n, c_in = x.shape[:2]
    c_out, c_in_g = weight.shape[:2]
    if c_in % groups:
        raise ValueError(f"{op}: input channels ({c_in}) must be divisible by groups ({groups})")
    if c_out % groups:
        raise ValueError(
            f"{op}: weight.shape[0] (out channels, {c_out}) must be divisible by groups ({groups})"
        )
    if c_in_g != c_in // groups:
        raise ValueError(
            f"{op}: weight.shape[1] must be C_in // groups = {c_in} // {groups} = {c_in // groups}; "
            f"got weight of shape {tuple(weight.shape)}"
        )
    if bias is not None:
        check_shape(op, "bias", bias, (c_out,))
    if n < 1 or c_in < 1 or c_out < 1:
        raise ValueError(f"{op}: input and weight need non-empty batch and channel dims; "
                         f"got input {tuple(x.shape)}, weight {tuple(weight.shape)}")
    kernel = tuple(int(k) for k in weight.shape[2:])
    if any(k < 1 for k in kernel):
        raise ValueError(f"{op}: weight's kernel dims must be >= 1; got {tuple(weight.shape)}")
    s = int_tuple(stride, ndim, "stride", op, 1)
    d = int_tuple(dilation, ndim, "dilation", op, 1)
    p = padding_pairs(padding, ndim, op, kernel, d, s)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {PADDING_MODES}; got {padding_mode!r}")
    in_size = tuple(int(v) for v in x.shape[2:])
    if padding_mode == "reflect" and any(max(pp) >= size for pp, size in zip(p, in_size)):
        raise ValueError(
            f"{op}: padding_mode='reflect' needs padding < input size in every dim; "
            f"got padding {p} for input size {in_size}"
        )
    if padding_mode == "circular" and any(max(pp) > size for pp, size in zip(p, in_size)):
        raise ValueError(
            f"{op}: padding_mode='circular' needs padding <= input size in every dim; "
            f"got padding {p} for input size {in_size}"
        )
    out = _conv_out(in_size, kernel, s, p, d)
    if any(o < 1 for o in out):
        raise ValueError(
            f"{op}: output size would be {out} (< 1): input size {in_size} with padding {p} is "
            f"smaller than the dilated kernel {tuple(dd * (k - 1) + 1 for k, dd in zip(kernel, d))}"
        )
    if not isinstance(flip, (bool, np.bool_)):
        raise ValueError(f"{op}: flip must be True or False; got {flip!r}")
    return ConvSpec(
        op=op, ndim=ndim, batch=int(n), in_channels=int(c_in), out_channels=int(c_out),
        groups=int(groups), in_size=_to2d(in_size, ndim, 1), kernel=_to2d(kernel, ndim, 1),
        stride=_to2d(s, ndim, 1), pads=_to2d(p, ndim, (0, 0)), dilation=_to2d(d, ndim, 1),
        out_size=_to2d(out, ndim, 1), padding_mode=padding_mode, flip=bool(flip), dtype=dtype,
    )


__all__ = [
    "ConvSpec", "conv_spec", "conv_output_size", "conv_transpose_output_size",
    "pool_output_size", "int_tuple", "padding_pairs", "check_float_dtypes", "check_ndim",
    "check_shape",
]


def unwritable_file(path) -> str | None:
    """Why a file cannot be written at ``path`` (its folder is missing or is not one), or
    None; an empty path means "skip" and is fine."""
    if not path:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"folder {folder!r} does not exist"
    if os.path.isdir(path):
        return "is a folder; give a file name"
    if not os.access(folder, os.W_OK):
        return f"folder {folder!r} is not writable"
    return None
