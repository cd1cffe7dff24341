"""What one dask task runs: gather a piece of the input from its chunks, run a numbaconv op
on it, keep the outputs the block owns.

Tasks name these module-level functions and the ops by string, so a worker imports
numbaconv's kernels itself (from its JIT cache) and no jitted function is ever pickled.
Chunks keep their array type: NumPy chunks run on the CPU kernels, CuPy chunks on the
CUDA ones, through numbaconv's own dispatch.
"""

from __future__ import annotations

import importlib

import numpy as np

from ..dispatch import new_like
from . import _worker


def _library(a):
    return type(a).__module__.partition(".")[0]


def compute(a, fn):
    """``fn(a, xp)`` with ``xp`` NumPy or CuPy; numba device arrays, which have no
    arithmetic, go through the host (only the rare blocks that need it)."""
    lib = _library(a)
    if lib in ("numpy", "cupy"):
        return fn(a, importlib.import_module(lib))
    from ..dispatch import to_device, to_host

    return to_device(fn(to_host(a), np))


def assemble(grid, gathers):
    """The input piece, one contiguous array: ``grid`` nests the chunks along each
    spatial axis (outermost first), ``gathers`` slices their concatenation per axis.
    Each chunk's overlap is copied straight to its place (one copy, no concatenate)."""
    if not isinstance(grid, list):  # a whole chunk
        return grid
    leaves, offsets = [], []

    def walk(node, axis, origin):
        if not isinstance(node, list):
            leaves.append(node)
            offsets.append(origin)
            return
        at = 0
        for part in node:
            walk(part, axis + 1, origin + (at,))
            at += _length(part, axis)

    walk(grid, 2, ())
    first = leaves[0]
    shape = tuple(first.shape[:2]) + tuple(g.stop - g.start for g in gathers)
    piece = new_like(first, shape)
    for chunk, origin in zip(leaves, offsets):
        src, dst = [], []
        for g, off, n in zip(gathers, origin, chunk.shape[2:]):
            lo, hi = max(off, g.start), min(off + n, g.stop)
            if lo >= hi:
                break
            src.append(slice(lo - off, hi - off))
            dst.append(slice(lo - g.start, hi - g.start))
        else:
            piece[(slice(None), slice(None)) + tuple(dst)] = \
                chunk[(slice(None), slice(None)) + tuple(src)]
    return piece


def read(source, rows, ranges):
    """A block's piece straight from a file reader (``ops.register_source``)."""
    key = (slice(*rows), slice(None)) + tuple(slice(lo, hi) for lo, hi in ranges)
    return np.ascontiguousarray(source[key])


def cut(chunk, ranges):
    """The part of a chunk a neighbouring block needs, as a copy: a view would keep the
    whole chunk in memory until that block runs, a row of chunks later."""
    part = chunk[(slice(None), slice(None)) + tuple(slice(lo, hi) for lo, hi in ranges)]
    if _library(part) in ("numpy", "cupy"):
        return importlib.import_module(_library(part)).ascontiguousarray(part)
    return part


def _length(node, axis):
    while isinstance(node, list):
        node = node[0]
    return node.shape[axis]


def _local(op, piece, consts, params):
    import numbaconv

    if op == "conv_transpose":  # unpadded, no bias: the block adds it after placing
        fn = numbaconv.conv_transpose1d if piece.ndim == 3 else numbaconv.conv_transpose2d
        return fn(piece, consts[0], None, **params)
    if op == "interpolate":
        return _interpolate(piece, **params)
    return getattr(numbaconv, op)(piece, *consts, **params)


def _interpolate(piece, h_idx, h_lam, w_idx, w_lam, nearest, out_shape):
    from ..dispatch import backend_for
    from ..functional._common import as_4d

    be = backend_for("interpolate", input=piece)
    out = be.empty(out_shape, piece.dtype)
    be.kernels.interpolate2d_forward(as_4d(be, piece), out, be.from_host(h_idx),
                                     be.from_host(h_lam), be.from_host(w_idx),
                                     be.from_host(w_lam), nearest)
    return out.reshape(out_shape[:2] + out_shape[4 - (piece.ndim - 2):])


def run(op, params, consts, grid, gathers, places, shape, bias=None, index_map=None):
    """One output block of ``shape``: ``places`` holds per spatial axis the piece's
    outputs ``(lo, hi)`` and where they land ``(dst0, dst1)``, or None where the block
    reads no input (a transposed conv's gap: the block is the bias alone)."""
    _worker.enter()
    like = grid_leaf(grid)
    if any(p is None for p in places):
        out = new_like(like, shape, zero=True)
    else:
        piece = assemble(grid, gathers)
        y = _local(op, piece, consts, params)
        if index_map is not None:  # max pool: (values, flat indices in the piece's plane)
            y, idx = y
            idx = compute(idx, lambda i, xp: _global_index(i, piece.shape[2:], index_map))
            return keep(y, places, shape), keep(idx, places, shape)
        out = keep(y, places, shape)
    if bias is not None:
        out = compute(out, lambda o, xp: o + xp.asarray(bias).reshape(
            (-1,) + (1,) * (len(shape) - 2)))
    return out


def grid_leaf(grid):
    while isinstance(grid, list):
        grid = grid[0]
    return grid


def keep(y, places, shape):
    """The block from the piece's output ``y``: ``y`` itself where it is exactly the
    block, else a new block (zeros where the piece does not reach) with its part."""
    for axis, ((lo, hi), _) in enumerate(places):
        if y.shape[2 + axis] < hi:
            raise RuntimeError(f"numbaconv.dask: a piece gave {y.shape[2 + axis]} outputs "
                               f"along axis {2 + axis}, the block needs {hi}")
    src = tuple(slice(lo, hi) for (lo, hi), _ in places)
    dst = tuple(slice(d0, d1) for _, (d0, d1) in places)
    covered = all(d0 == 0 and d1 == n for (_, (d0, d1)), n in zip(places, shape[2:]))
    if covered and tuple(y.shape[2:]) == tuple(shape[2:]):
        return y
    out = new_like(y, shape, zero=not covered)
    out[(slice(None), slice(None)) + dst] = y[(slice(None), slice(None)) + src]
    return out


def _global_index(idx, piece_shape, index_map):
    """Flat indices within the piece's plane -> within the whole array's plane."""
    starts, full = index_map
    if len(piece_shape) == 1:
        moved = idx + starts[0]
    else:
        w = piece_shape[1]
        moved = (idx // w + starts[0]) * full[1] + (idx % w + starts[1])
    return moved * (idx >= 0) - (idx < 0)  # -1 (a window of padding only) stays -1


def getitem(pair, i):
    return pair[i]


def apply_model(model, grid, gathers, places, shape):
    """A model's forward on a piece (tiles) or a chunk of images (``places`` None)."""
    _worker.enter()
    piece = assemble(grid, gathers)
    model = _worker.thread_copy(model, piece)  # layers keep state: one copy per thread
    y = model.forward(piece)
    model.release()  # the layers' inputs, kept for a backward that will not come
    return y if places is None else keep(y, places, shape)
