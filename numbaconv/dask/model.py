"""``predict``: a ``numbaconv.nn`` model over a dask array, equal to ``model.forward``.

A model made only of local layers (convs, pools, batch norm, activations, dropout,
channel shuffle and the blocks built of them) runs tile by tile over the spatial axes.
One halo serves the whole network: from ``analysis.receptive_field`` (size, jump = total
stride, start), output ``o`` reads input ``[start + o*jump - size/2, ... + size/2)``.
A tile's piece starts on a multiple of the jump (then every layer's grid lines up with
the whole array's) or at the true border (then the network pads there as it would), and
only outputs whose field lies inside the piece are kept, so no output ever sees a
padding the whole array would not have: exact, without blending.

Anything else (a classifier's Flatten / Linear / adaptive pooling, upsampling, a
transposed conv, padding other than zeros, batch statistics in eval, a module class
from outside ``numbaconv.nn``) runs per chunk of whole images along N (``batch_size``
rows per task if given).  The model
goes into the graph once, as one key, copied without the arrays its last forward kept;
each worker thread runs its own copy of it.
"""

from __future__ import annotations

import math
import pickle

import dask.array as da
import numpy as np
from dask.array.utils import meta_from_array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import analysis
from .._args import int_tuple, pool_output_size
from ..dispatch import device_of, to_host
from . import _blocks
from ._plan import field_axis
from .ops import prepare, tiled_array

_NONLOCAL = {"Linear", "Flatten", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Upsample",
             "ConvTranspose2d", "ResizeConv2d"}


def tileable(model) -> bool:
    """Whether every output of ``model`` depends only on its receptive field, with
    zeros (or the pool's -inf) as the only padding: layers with per-batch statistics,
    reflect / replicate / circular padding (they read pixels outside the field) or
    per-side padding run per chunk of images instead."""
    for _, m in model.named_modules():
        cls = type(m)
        if not cls.__module__.startswith("numbaconv.nn") or cls.__name__ in _NONLOCAL:
            return False
        if getattr(m, "padding_mode", "zeros") != "zeros":
            return False
        if getattr(m, "track_running_stats", True) is False:
            return False
    try:
        analysis.receptive_field(model)
    except ValueError:  # a padding form the field arithmetic does not follow
        return False
    return True


def output_length(model, length, axis, ndim):
    """The model's output length along ``axis`` for an input of ``length``: the layer
    chain that ``receptive_field`` follows, through the library's size formulas."""
    for layer in analysis._chain(model):
        geometry = analysis._layer_geometry(layer)
        if geometry is None:
            continue
        kernel, stride, padding, dilation = geometry
        if padding == "same":
            out = length  # 'same' needs stride 1 (the op's own rule)
        else:
            k, s, d = (int_tuple(v, ndim, name, "predict", 1)[axis] for v, name in
                       ((kernel, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
            p = 0 if padding == "valid" else int_tuple(padding, ndim, "padding", "predict",
                                                       0)[axis]
            out = pool_output_size(length, k, s, p, d, bool(getattr(layer, "ceil_mode", False)))
        if out < 1:
            raise ValueError(f"numbaconv.dask.predict: the input is too small for the model: "
                             f"{type(layer).__name__} would output {out} along spatial axis "
                             f"{axis}")
        length = out
    return length


def _shipped(model):
    """A host copy of ``model`` in eval mode, without the arrays of its last forward
    (a worker moves it to the GPU when its chunks are there, once)."""
    swapped = []
    for _, m in model.named_modules():
        for p in m._parameters.values():
            if p is None:
                continue
            swapped.append((p, "grad", p.grad))  # inference needs no gradients
            p.grad = None
            if device_of(p.data) == "cuda":
                swapped.append((p, "data", p.data))
                p.data = to_host(p.data)
        for name in m._buffers:
            value = getattr(m, name)
            if value is not None and device_of(value) == "cuda":
                swapped.append((m, name, value))
                object.__setattr__(m, name, to_host(value))
    try:
        copy = pickle.loads(pickle.dumps(model))
    finally:
        for owner, name, value in swapped:
            object.__setattr__(owner, name, value)
    copy.eval()
    return copy


def predict(model, x, batch_size=None):
    """``model.eval().forward`` over the dask array ``x`` (``(N, C, L)`` or
    ``(N, C, H, W)``), as a lazy dask array; see the module doc for how."""
    if not isinstance(x, da.Array):
        raise TypeError(f"numbaconv.dask.predict: x must be a dask.array.Array; got "
                        f"{type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"numbaconv.dask.predict: x must be (N, C, L) or (N, C, H, W); "
                         f"got shape {tuple(x.shape)}")
    if batch_size is not None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"numbaconv.dask.predict: batch_size must be a positive int; "
                             f"got {batch_size!r}")
        x = x.rechunk({0: batch_size})
    x = prepare("predict", x, x.ndim - 2)
    model = _shipped(model)
    ndim = x.ndim - 2
    name = f"predict-{tokenize(x, pickle.dumps(model))}"
    model_key = f"{name}-model"
    if tileable(model):
        return _tiled(model, model_key, name, x, ndim)
    return _per_images(model, model_key, name, x)


def _tiled(model, model_key, name, x, ndim):
    rf = analysis.receptive_field(model, ndim)
    plans = [field_axis(x.chunks[2 + i], output_length(model, int(x.shape[2 + i]), i, ndim),
                        rf.size[i], rf.jump[i], rf.start[i]) for i in range(ndim)]
    if any(not p for p in plans):
        raise ValueError(f"numbaconv.dask.predict: input of spatial size "
                         f"{tuple(x.shape[2:])} is smaller than the model's receptive "
                         f"field {rf.size}")
    # one small forward on the client for the output channels and dtype
    probe = np.zeros((1, x.shape[1]) + tuple(max(1, math.ceil(s)) for s in rf.size),
                     x.dtype)
    y = model.forward(probe)
    meta = meta_from_array(x._meta, ndim=x.ndim, dtype=y.dtype)

    def task(blocks, grid, gathers, places, shape):
        return (_blocks.apply_model, model_key, grid, gathers, places, shape)

    return tiled_array(name, x, plans, int(y.shape[1]), meta, task, {model_key: model})


def _per_images(model, model_key, name, x):
    whole = {i: -1 for i in range(2, x.ndim)}
    if any(getattr(m, "track_running_stats", True) is False for _, m in model.named_modules()):
        whole[0] = -1  # statistics over the whole batch, even in eval: one task
    x = x.rechunk(whole)
    y = model.forward(np.zeros((1,) + tuple(x.shape[1:]), x.dtype))
    dsk = {model_key: model}
    zeros = (0,) * (x.ndim - 1)
    for ni in range(len(x.chunks[0])):
        dsk[(name, ni) + (0,) * (y.ndim - 1)] = (
            _blocks.apply_model, model_key, (x.name, ni) + zeros, (), None, None)
    chunks = (x.chunks[0],) + tuple((int(n),) for n in y.shape[1:])
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, chunks, meta=meta_from_array(x._meta, ndim=y.ndim,
                                                              dtype=y.dtype))
