"""PyTorch's edge cases, handled once around the functional ops (forward and backward,
CPU and CUDA), so the kernels only ever see the plain case:

* **unbatched input** (``(C, L)`` / ``(C, H, W)``, or ``(C * k, L)`` for ``fold``) to the
  convs, transposed convs, pools, unfold / fold and pad: run with a batch of one, and
  the data results come back without it;
* **an empty batch** (``N == 0``): run on one zero sample, return the data results with
  ``N == 0`` and the weight gradients (zero: no sample contributes) as computed;
* **zero output channels** of a conv or transposed conv: run with one channel per group
  of zero weights, return ``C_out == 0`` results and empty weight / bias gradients;
* **negative (cropping) pads** in the reflect / replicate / circular modes, as PyTorch
  does them: reflect and replicate pad by the positive parts (reflecting the whole
  input) and then crop; circular crops first and then wraps what is left.  The backward
  retraces the same two steps.

The rule: the wrapped op is called with arrays it accepts, never with special cases.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from ..dispatch import new_like

# the batched rank of the data argument, per op (pad: see _pad_rank)
RANK = {
    "conv1d": 3, "conv2d": 4, "conv_transpose1d": 3, "conv_transpose2d": 4,
    "max_pool1d": 3, "max_pool2d": 4, "avg_pool1d": 3, "avg_pool2d": 4,
    "adaptive_avg_pool1d": 3, "adaptive_avg_pool2d": 4, "adaptive_max_pool1d": 3,
    "adaptive_max_pool2d": 4, "unfold": 4, "fold": 3, "pad": None,
}
_CONVS = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")


def _zeros(like, shape):
    return new_like(like, shape, zero=True)


def _first(a):
    """``a`` with a new leading axis of 1 (a view)."""
    if isinstance(a, np.ndarray) or type(a).__module__.startswith("cupy"):
        return a[None]
    return a.reshape((1,) + tuple(a.shape))


def _pad_rank(values):
    pad, mode = values.get("pad"), values.get("mode", "constant")
    if not isinstance(pad, (tuple, list)):
        return None
    if mode == "constant":
        return max(3, len(pad) // 2 + 2)
    return len(pad) // 2 + 2


def edges(name, fn):
    """``fn`` (the functional op ``name``, or its ``_backward``) with PyTorch's edges."""
    backward = name.endswith("_backward")
    base = name[: -len("_backward")] if backward else name
    if base not in RANK:
        return fn
    params = list(inspect.signature(fn).parameters)
    data = ("grad_output", "x") if backward else ("x",)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        values = dict(zip(params, args))
        values.update(kwargs)
        x = values.get("x")
        if x is None or not hasattr(x, "shape"):
            return fn(*args, **kwargs)
        if base == "pad" and _flat_constant(values):
            return _constant_pad_any_rank(fn, values, backward)
        rank = _pad_rank(values) if base == "pad" else RANK[base]
        unbatched = rank is not None and len(x.shape) == rank - 1
        if unbatched:
            for key in (*data, "indices"):
                if values.get(key) is not None and hasattr(values[key], "shape"):
                    values[key] = _first(values[key])
        if base == "pad" and min(values.get("pad") or (0,)) < 0 \
                and values.get("mode", "constant") != "constant":
            result = _cropping_pad(fn, values, backward)
        elif values["x"].shape[0] == 0 or (base in _CONVS and values.get("weight") is not None
                                           and 0 in _out_channels(base, values)):
            result = _empty(base, fn, values, backward)
        else:
            result = fn(**values)
        if not unbatched:
            return result
        if backward:
            return (result[0][0],) + tuple(result[1:])
        if isinstance(result, tuple):
            return tuple(r[0] for r in result)
        return result[0]

    return op


def _flat_constant(values):
    """A constant pad of an input of another rank than (N, C, *padded dims)."""
    pad, x = values.get("pad"), values["x"]
    if values.get("mode", "constant") != "constant" or not isinstance(pad, (tuple, list)):
        return False
    dims = len(pad) // 2
    return len(pad) % 2 == 0 and 1 <= dims <= 2 and len(x.shape) >= dims \
        and len(x.shape) != dims + 2


def _constant_pad_any_rank(fn, values, backward):
    """Constant padding pads the last dims whatever comes before them (PyTorch): the
    leading dims fold into N, with C = 1, and unfold again after."""
    dims = len(values["pad"]) // 2
    x = values["x"]
    lead = tuple(int(v) for v in x.shape[: len(x.shape) - dims])
    rows = int(np.prod(lead)) if lead else 1
    values = dict(values)
    for key in ("grad_output", "x"):
        if values.get(key) is not None:
            a = values[key]
            values[key] = a.reshape((rows, 1) + tuple(a.shape[len(a.shape) - dims:]))
    if rows == 0:
        result = _empty("pad", fn, values, backward)
    else:
        result = fn(**values)
    first = result[0] if backward else result
    shaped = first.reshape(lead + tuple(first.shape[2:]))
    return (shaped,) if backward else shaped


def _out_channels(base, values):
    w = values["weight"]
    if base.startswith("conv_transpose"):
        return (int(w.shape[1]),)
    return (int(w.shape[0]),)


def _empty(base, fn, values, backward):
    """N == 0 or C_out == 0: run on stand-ins, cut the results back to empty."""
    values = dict(values)
    n = int(values["x"].shape[0])
    if n == 0:
        values["x"] = _zeros(values["x"], (1,) + tuple(values["x"].shape[1:]))
        values.pop("indices", None)
    channels = base in _CONVS and 0 in _out_channels(base, values)
    if channels:
        w, groups = values["weight"], int(values.get("groups", 1) or 1)
        if base.startswith("conv_transpose"):
            values["weight"] = _zeros(w, (w.shape[0], 1) + tuple(w.shape[2:]))
        else:
            values["weight"] = _zeros(w, (groups,) + tuple(w.shape[1:]))
        if values.get("bias") is not None:
            values["bias"] = _zeros(values["bias"], (groups,))
    if backward:
        g = values["grad_output"]
        shape = list(g.shape)
        shape[0] = max(shape[0], 1)
        if channels:
            shape[1] = int(values.get("groups", 1) or 1)
        values["grad_output"] = _zeros(g, tuple(shape))
    result = fn(**values)
    if backward:
        grads = list(result)
        grads[0] = grads[0][:n]
        if channels:
            grads[1] = grads[1][:, :0] if base.startswith("conv_transpose") else grads[1][:0]
            if len(grads) > 2 and grads[2] is not None:
                grads[2] = grads[2][:0]
        return tuple(grads)
    if isinstance(result, tuple):
        return tuple(r[:n] for r in result)
    return result[:n, :0] if channels else result[:n]


def _cropping_pad(fn, values, backward):
    """Negative pads in a non-constant mode (see the module doc)."""
    pad = [int(v) for v in values["pad"]]
    grow = tuple(max(v, 0) for v in pad)
    x = values["x"]
    nd = len(x.shape)
    circular = values.get("mode") == "circular"
    # crop the input (circular) or the padded output (the others)
    size = list(x.shape)
    if not circular:
        for i in range(len(pad) // 2):  # (left, right) of the last dim first
            size[nd - 1 - i] += grow[2 * i] + grow[2 * i + 1]
    keep = [slice(None)] * nd
    for i in range(len(pad) // 2):
        axis = nd - 1 - i
        keep[axis] = slice(max(-pad[2 * i], 0), size[axis] - max(-pad[2 * i + 1], 0))
    keep = tuple(keep)
    out = [len(range(*k.indices(n))) for k, n in zip(keep, size)]
    if circular:
        out = [n + grow[2 * (nd - 1 - a)] + grow[2 * (nd - 1 - a) + 1]
               if nd - 1 - a < len(pad) // 2 else n for a, n in enumerate(out)]
    if min(out) < 1:
        raise ValueError(f"pad: pad {tuple(pad)} leaves an empty output {tuple(out)} from "
                         f"input {tuple(x.shape)}")
    values = dict(values, pad=grow)
    if circular:
        cropped = _copy(x[keep])
        values["x"] = cropped
        if not backward:
            return fn(**values)
        (g,) = fn(**values)
        full = _zeros(x, tuple(x.shape))
        full[keep] = g
        return (full,)
    if not backward:
        return _copy(fn(**values)[keep])
    g = values["grad_output"]
    full = _zeros(g, tuple(size))
    full[keep] = g
    values["grad_output"] = full
    return fn(**values)


def _copy(a):
    """A contiguous copy of a view (kernels and callers expect contiguous results)."""
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a)
    out = _zeros(a, tuple(a.shape))
    out[...] = a
    return out
