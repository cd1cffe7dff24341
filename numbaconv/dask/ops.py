"""numbaconv's functional ops over dask arrays, exact to the single-array call.

Each op validates its call as ``numbaconv.<op>`` does (same checks, same errors, on a
zero-stride stand-in of the input's shape, so nothing is computed), plans its output
blocks from its geometry (``_plan``: the halo of each block follows from kernel size,
dilation, stride and padding; block starts sit on the stride grid; padding only at the
array's true border) and writes one task per output block by hand, reading exactly the
input chunks that block needs, however the input is chunked: ragged chunks and chunks
smaller than the halo included.  No ``map_overlap``: its ``trim`` assumes a block keeps
its shape, which strided ops break.

Padding modes other than zeros are applied first with ``dask.array.pad`` (reflect ->
``reflect``, replicate -> ``edge``, circular -> ``wrap``: dask fetches the far edge for a
wrap), then the conv runs unpadded.  C must be one chunk; it is rechunked if not.
Weights are one graph key each, sent to a worker once, not copied into every task.
"""

from __future__ import annotations

import itertools
import weakref

import dask.array as da
import numpy as np
from dask.array.utils import meta_from_array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import _specs
from .._args import conv_spec
from ..config import NUMPY_PAD_MODES
from ..functional.pool import _avg_options
from . import _blocks
from ._plan import chunk_bounds, overlapping, table_axis, transpose_axis, window_axis

def standin(x):
    """A read-only zero-stride array with ``x``'s shape and dtype: what the spec checks
    need, at no memory cost."""
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)


def prepare(op, x, ndim):
    """Check that ``x`` is a dask array of the right rank; C in one chunk."""
    if not isinstance(x, da.Array):
        raise TypeError(f"numbaconv.dask.{op}: input must be a dask.array.Array; got "
                        f"{type(x).__name__} (numbaconv.{op} takes in-memory arrays)")
    if x.ndim != ndim + 2:
        layout = "(N, C, L)" if ndim == 1 else "(N, C, H, W)"
        raise ValueError(f"numbaconv.dask.{op}: input must be {ndim + 2}-D {layout}; got "
                         f"shape {tuple(x.shape)}")
    if any(np.isnan(c).any() for c in x.chunks):
        raise ValueError(f"numbaconv.dask.{op}: input has unknown chunk sizes; call "
                         f"x.compute_chunk_sizes() first")
    if x.numblocks[1] > 1:
        x = x.rechunk({1: -1})
    return x


def blocks_graph(name, x, plans, op, params, consts, out_channels, dtype, bias=None,
                 with_indices=False, block_params=None):
    """The dask array of ``op`` over ``x``: one task per (N chunk, output block per
    spatial axis).  ``plans`` holds the :class:`_plan.Block` s of each spatial axis;
    ``block_params(blocks, rows, channels)`` adds per-block arguments."""
    dsk = {}

    def literal(value, tag):
        if value is None or np.isscalar(value):
            return value
        key = f"{name}-{tag}"
        dsk[key] = value
        return key

    const_keys = [literal(c, f"const{i}") for i, c in enumerate(consts)]
    bias_key = literal(bias, "bias")
    full = tuple(int(v) for v in x.shape[2:])

    def task(blocks, grid, gathers, places, shape):
        args = dict(params)
        if block_params is not None:
            args.update(block_params(blocks, shape[0], shape[1]))
        index_map = (tuple(b.a for b in blocks), full) if with_indices else None
        return (_blocks.run, op, args, const_keys, grid, gathers, places, shape, bias_key,
                index_map)

    meta = meta_from_array(x._meta, ndim=x.ndim, dtype=dtype)
    if not with_indices:
        return tiled_array(name, x, plans, out_channels, meta, task, dsk)
    pairs = tiled_array(name, x, plans, out_channels, meta, task, dsk)
    return (_pick(pairs, 0, meta),
            _pick(pairs, 1, meta_from_array(x._meta, ndim=x.ndim, dtype=np.int64)))


def tiled_array(name, x, plans, out_channels, meta, task, dsk=None):
    """A dask array with one block per (N chunk of ``x``, block of each plan), computed
    by ``task(blocks, grid, gathers, places, shape)``: ``grid`` nests the input pieces
    the block reads (whole chunks, or a cut of a neighbour: only the halo travels
    between workers, not the neighbour's chunk), ``gathers`` slices their concatenation
    per axis, ``places`` per axis ``((lo, hi), (dst0, dst1))`` or None where a block
    reads nothing."""
    dsk = {} if dsk is None else dsk
    bounds = [chunk_bounds(x.chunks[2 + i]) for i in range(len(plans))]
    cuts = f"{name}-halo"
    source = SOURCES.get(x.name)
    if source is not None:  # a file: each block reads its own piece, halo included
        dsk[f"{name}-source"] = source
    rows_at = chunk_bounds(x.chunks[0])
    for ni, rows in enumerate(x.chunks[0]):
        for combo in itertools.product(*(enumerate(p) for p in plans)):
            blocks = tuple(b for _, b in combo)
            parts, gathers, places = [], [], []
            for blk, bnd in zip(blocks, bounds):
                if blk.a == blk.b:
                    parts.append([(0, 0, int(bnd[1] - bnd[0]))])
                    gathers.append(slice(0, 0))
                    places.append(None)
                else:
                    parts.append(overlapping(bnd, blk.a, blk.b))
                    gathers.append(slice(0, blk.b - blk.a))
                    places.append(((blk.lo, blk.hi), (blk.dst0, blk.dst1)))
            shape = (rows, out_channels) + tuple(b.o1 - b.o0 for b in blocks)
            if source is not None:
                ranges = tuple((b.a, b.b) if b.a < b.b else (0, 1) for b in blocks)
                grid = (_blocks.read, f"{name}-source",
                        (int(rows_at[ni]), int(rows_at[ni + 1])), ranges)
                gathers = [slice(0, hi - lo) for lo, hi in ranges]
            else:
                grid = _nest(x, ni, parts, bounds, cuts, dsk)
            dsk[(name, ni, 0) + tuple(j for j, _ in combo)] = task(
                blocks, grid, tuple(gathers), tuple(places), shape)
    chunks = (x.chunks[0], (out_channels,)) + tuple(
        tuple(b.o1 - b.o0 for b in p) for p in plans)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, chunks, meta=meta)


# Arrays read straight from a file (numbaconv.dask.files): name -> a picklable reader
# that slices the file.  Blocks of such an array read their own piece, halo and all,
# instead of waiting for neighbouring chunks: memory per worker stays at a few pieces,
# and nothing travels between workers.
SOURCES = weakref.WeakValueDictionary()  # the array's graph holds the reader


def register_source(x, reader):
    """Say that ``x``'s data can be read at any slice from ``reader`` (``reader[key]``
    returns an in-memory array; it pickles small).  Returns ``x``."""
    SOURCES[x.name] = reader
    return x


def _nest(x, ni, parts, bounds, cuts, dsk):
    """Nested lists of input keys, outermost spatial axis first: a chunk's own key where
    the piece takes all of it, else the key of a task that cuts the part it needs."""
    def build(axis, picked):
        if axis < len(parts):
            return [build(axis + 1, picked + (p,)) for p in parts[axis]]
        key = (x.name, ni, 0) + tuple(j for j, _, _ in picked)
        if all(lo == 0 and hi == bnd[j + 1] - bnd[j]
               for (j, lo, hi), bnd in zip(picked, bounds)):
            return key
        cut = (cuts, ni) + tuple(v for p in picked for v in p)
        if cut not in dsk:
            dsk[cut] = (_blocks.cut, key, tuple((lo, hi) for _, lo, hi in picked))
        return cut
    return build(0, ())


def _pick(pairs, i, meta):
    """Element ``i`` of every block of an array whose blocks are pairs."""
    out = f"{pairs.name}-{i}"
    layer = {(out,) + key[1:]: (_blocks.getitem, key, i)
             for key in _flat(pairs.__dask_keys__())}
    g = HighLevelGraph.from_collections(out, layer, dependencies=[pairs])
    return da.Array(g, out, pairs.chunks, meta=meta)


def _flat(keys):
    if isinstance(keys, list):
        for k in keys:
            yield from _flat(k)
    else:
        yield keys


def _axes(spec_tuple, ndim):
    """The public call's spatial entries of a 2-D-form spec tuple."""
    return tuple(spec_tuple[2 - ndim:])


# --------------------------------------------------------------------------- convolution
def _conv(op, ndim, x, weight, bias, stride, padding, dilation, groups, padding_mode, flip):
    x = prepare(op, x, ndim)
    spec = conv_spec(op, ndim, standin(x), weight, bias, stride, padding, dilation, groups,
                     padding_mode, flip)
    pads = _axes(spec.pads, ndim)
    local_padding = padding
    if spec.padding_mode != "zeros" and any(p for pair in pads for p in pair):
        x = da.pad(x, ((0, 0), (0, 0)) + pads, mode=NUMPY_PAD_MODES[spec.padding_mode])
        local_padding, pads = 0, ((0, 0),) * ndim
    plans = [window_axis(x.chunks[2 + i], n, k, s, d, p[0]) for i, (n, k, s, d, p) in
             enumerate(zip(_axes(spec.out_size, ndim), _axes(spec.kernel, ndim),
                           _axes(spec.stride, ndim), _axes(spec.dilation, ndim), pads))]
    params = {"stride": stride, "padding": local_padding, "dilation": dilation, "groups": groups,
                  "flip": flip}
    name = f"{op}-{tokenize(x, weight, bias, params, padding_mode)}"
    return blocks_graph(name, x, plans, op, params, [weight, bias], spec.out_channels,
                        spec.dtype)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", flip=False):
    """:func:`numbaconv.conv1d` over a dask array ``x`` of ``(N, C, L)``."""
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups,
                 padding_mode, flip)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", flip=False):
    """:func:`numbaconv.conv2d` over a dask array ``x`` of ``(N, C, H, W)``."""
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups,
                 padding_mode, flip)


def _conv_transpose(op, ndim, x, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    x = prepare(op, x, ndim)
    spec = _specs.conv_transpose_spec(op, ndim, standin(x), weight, bias, stride, padding,
                                      output_padding, groups, dilation)
    # spec describes the conv this is the adjoint of: its in_size is our output size
    plans = [transpose_axis(x.chunks[2 + i], n, k, s, d, p[0]) for i, (n, k, s, d, p) in
             enumerate(zip(_axes(spec.in_size, ndim), _axes(spec.kernel, ndim),
                           _axes(spec.stride, ndim), _axes(spec.dilation, ndim),
                           _axes(spec.pads, ndim)))]
    params = {"stride": stride, "padding": 0, "output_padding": 0, "groups": groups,
                  "dilation": dilation}
    name = f"{op}-{tokenize(x, weight, bias, stride, padding, output_padding, groups, dilation)}"
    return blocks_graph(name, x, plans, "conv_transpose", params, [weight],
                        spec.in_channels, spec.dtype, bias=bias)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """:func:`numbaconv.conv_transpose1d` over a dask array ``x`` of ``(N, C, L)``."""
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """:func:`numbaconv.conv_transpose2d` over a dask array ``x`` of ``(N, C, H, W)``."""
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


# --------------------------------------------------------------------------- pooling
def _pool(op, ndim, x, kernel_size, stride, padding, dilation, ceil_mode, params,
          with_indices=False):
    x = prepare(op, x, ndim)
    spec = _specs.pool_spec(op, ndim, standin(x), kernel_size, stride, padding, dilation,
                            ceil_mode)
    g = spec.geometry  # kernel (2), stride (2), padding (2), dilation (2), output (2)
    if op.startswith("avg"):
        _avg_options(spec, params["count_include_pad"], params["divisor_override"])
    plans = [window_axis(x.chunks[2 + i], n, k, s, d, p) for i, (n, k, s, d, p) in
             enumerate(zip(_axes(g[8:10], ndim), _axes(g[0:2], ndim), _axes(g[2:4], ndim),
                           _axes(g[6:8], ndim), _axes(g[4:6], ndim)))]
    params = dict(params, kernel_size=kernel_size, stride=stride, padding=padding,
                  ceil_mode=ceil_mode)
    name = f"{op}-{tokenize(x, params, dilation, with_indices)}"
    return blocks_graph(name, x, plans, op, params, [], spec.in_shape[1], spec.dtype,
                        with_indices=with_indices)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """:func:`numbaconv.max_pool1d` over a dask array; indices are global, as there."""
    return _pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode,
                 {"dilation": dilation, "return_indices": bool(return_indices)},
                 bool(return_indices))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """:func:`numbaconv.max_pool2d` over a dask array; indices are ``h * W + w`` of the
    whole array's plane, as there."""
    return _pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode,
                 {"dilation": dilation, "return_indices": bool(return_indices)},
                 bool(return_indices))


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """:func:`numbaconv.avg_pool1d` over a dask array."""
    return _pool("avg_pool1d", 1, x, kernel_size, stride, padding, 1, ceil_mode,
                 {"count_include_pad": count_include_pad,
                      "divisor_override": divisor_override})


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """:func:`numbaconv.avg_pool2d` over a dask array."""
    return _pool("avg_pool2d", 2, x, kernel_size, stride, padding, 1, ceil_mode,
                 {"count_include_pad": count_include_pad,
                      "divisor_override": divisor_override})


# --------------------------------------------------------------------------- resizing
def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """:func:`numbaconv.interpolate` over a dask array: each block gathers with its rows
    of the whole array's interpolation tables, so it computes what the single call does."""
    ndim = x.ndim - 2 if isinstance(x, da.Array) else 2
    x = prepare("interpolate", x, ndim if ndim in (1, 2) else 2)
    spec = _specs.interpolate_spec("interpolate", standin(x), size, scale_factor, mode,
                                   align_corners)
    if spec.mode == "bicubic":  # four tables per axis: not planned here yet
        raise ValueError("numbaconv.dask.interpolate: mode 'bicubic' is not supported on "
                         "dask arrays; use 'bilinear', or numbaconv.interpolate per chunk")
    tables = []
    for axis in (0, 1):
        in_len, out_len = spec.in_shape[2 + axis], spec.out_shape[2 + axis]
        axis_mode = spec.mode if (axis == 1 or spec.ndim == 2) else "nearest"
        tables.append(_specs.interpolation_table(in_len, out_len, spec.scales[axis],
                                                 axis_mode, spec.align_corners,
                                                 spec.dtype)[:2])
    plans = [table_axis(x.chunks[2 + i], idx) for i, (idx, _) in
             enumerate(tables[2 - spec.ndim:])]

    def block_params(blocks, rows, channels):
        local = list(tables)
        for i, blk in enumerate(blocks):
            idx, lam = tables[2 - spec.ndim + i]
            part = idx[blk.o0:blk.o1]
            local[2 - spec.ndim + i] = (np.where(part >= 0, part - blk.a, -1), lam[blk.o0:blk.o1])
        out_shape = (rows, channels, len(local[0][0]), len(local[1][0]))
        return {"h_idx": local[0][0], "h_lam": local[0][1], "w_idx": local[1][0],
                    "w_lam": local[1][1], "out_shape": out_shape}

    params = {"nearest": spec.mode in ("nearest", "nearest-exact")}
    name = f"interpolate-{tokenize(x, size, scale_factor, mode, align_corners)}"
    return blocks_graph(name, x, plans, "interpolate", params, [], spec.in_shape[1],
                        spec.dtype, block_params=block_params)
