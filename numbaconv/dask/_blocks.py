"""What one dask task runs: gather a piece of the input from its chunks, run a numbaconv op
on it, keep the outputs the block owns.

Tasks name these module-level functions and the ops by string, so a worker imports
numbaconv's kernels itself (from its JIT cache) and no jitted function is ever pickled.
Chunks keep their array type: NumPy chunks run on the CPU kernels, CuPy chunks on the
CUDA ones, through numbaconv's own dispatch.
"""

from __future__ import annotations

import importlib

from . import _worker


def namespace(a):
    """``numpy`` or ``cupy``: the module of the chunk's array type."""
    return importlib.import_module(type(a).__module__.split(".")[0])


def assemble(grid, gathers):
    """The input piece: ``grid`` nests the chunks along each spatial axis (outermost
    first); ``gathers`` slices the concatenation, one slice per spatial axis."""
    def cat(node, axis):
        if not isinstance(node, list):
            return node
        parts = [cat(p, axis + 1) for p in node]
        return parts[0] if len(parts) == 1 else namespace(parts[0]).concatenate(parts, axis)

    piece = cat(grid, 2)
    return piece[(slice(None), slice(None)) + tuple(gathers)]


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
    xp = namespace(grid_leaf(grid))
    out = None
    if all(p is not None for p in places):
        piece = assemble(grid, gathers)
        y = _local(op, piece, consts, params)
        if index_map is not None:  # max pool: (values, flat indices in the piece's plane)
            y, idx = y
            out = (_keep(xp, y, places, shape),
                   _keep(xp, _global_index(idx, piece.shape[2:], index_map), places, shape))
            return out
        out = _keep(xp, y, places, shape)
    else:
        out = xp.zeros(shape, grid_leaf(grid).dtype)
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (len(shape) - 2))
    return out


def grid_leaf(grid):
    while isinstance(grid, list):
        grid = grid[0]
    return grid


def _keep(xp, y, places, shape):
    """The block from the piece's output ``y``: a view's contiguous copy where the piece
    covers the block, else a zero block with the covered part filled."""
    src = tuple(slice(lo, hi) for (lo, hi), _ in places)
    for axis, ((lo, hi), _) in enumerate(places):
        if y.shape[2 + axis] < hi:
            raise RuntimeError(f"numbaconv.dask: a piece gave {y.shape[2 + axis]} outputs "
                               f"along axis {2 + axis}, the block needs {hi}")
    if all(d0 == 0 and d1 == n for (_, (d0, d1)), n in zip(places, shape[2:])):
        return xp.ascontiguousarray(y[(slice(None), slice(None)) + src])
    out = xp.zeros(shape, y.dtype)
    dst = tuple(slice(d0, d1) for _, (d0, d1) in places)
    out[(slice(None), slice(None)) + dst] = y[(slice(None), slice(None)) + src]
    return out


def _global_index(idx, piece_shape, index_map):
    """Flat indices within the piece's plane -> within the whole array's plane."""
    starts, full = index_map
    if len(piece_shape) == 1:
        return idx + starts[0]
    w = piece_shape[1]
    return (idx // w + starts[0]) * full[1] + (idx % w + starts[1])


def getitem(pair, i):
    return pair[i]


def apply_model(model, grid, gathers, places, shape):
    """A model's forward on a piece (tiles) or a chunk of images (``places`` None)."""
    _worker.enter()
    y = model.forward(assemble(grid, gathers))
    if places is None:
        return y
    return _keep(namespace(y), y, places, shape)
