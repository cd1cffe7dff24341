"""Which input each output block reads, per spatial axis: exact integer geometry, no dask.

Every op here is *local*: output ``o`` along an axis depends on a known input interval.
A :class:`Block` says, for one output block ``[o0, o1)``: gather input ``[a, b)``, run
the op on that piece (with the op's own padding arguments), take the piece's outputs
``[lo, hi)`` and put them at ``[dst0, dst1)`` of the block (the rest is the fill: zero,
or the bias).  The rule that makes a block exact: its piece starts where the global
output grid and the piece's own grid coincide (``a`` a multiple of the stride, or
``a = 0``, the true border, where the op pads as it would globally), and every output
kept reads only real data of the piece, never the padding the op adds at a piece edge
that is not the array's.  Output chunk boundaries follow the input's: output ``o``
goes with the input chunk where its window starts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    o0: int    # global output block [o0, o1)
    o1: int
    a: int     # input piece [a, b); a == b: the block reads nothing (fill only)
    b: int
    lo: int    # the piece's outputs [lo, hi) ...
    hi: int
    dst0: int  # ... land at [dst0, dst1) of the block
    dst1: int


def chunk_bounds(chunks):
    """Cumulative boundaries ``[0, c0, c0 + c1, ...]`` of a dask chunk tuple."""
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _out_chunks(starts, out_len):
    """Output chunks from output block starts (one per input chunk), empty ones dropped."""
    edges = sorted({min(max(int(s), 0), out_len) for s in starts} | {0, out_len})
    return tuple(int(e1 - e0) for e0, e1 in itertools.pairwise(edges) if e1 > e0)


def _blocks(out_chunks, make):
    blocks, o0 = [], 0
    for n in out_chunks:
        blocks.append(make(o0, o0 + n))
        o0 += n
    return tuple(blocks)


def window_axis(in_chunks, out_len, kernel, stride, dilation, pad_lo):
    """A windowed op (conv, pool): output ``o`` reads padded positions
    ``[o*s, o*s + d*(k-1) + 1)``, i.e. input ``o*s - pad_lo + [0, span)``."""
    span = dilation * (kernel - 1) + 1
    length = int(sum(in_chunks))
    starts = [-(-(int(c) + pad_lo) // stride) for c in chunk_bounds(in_chunks)[:-1]]

    def make(o0, o1):
        first = o0 * stride - pad_lo           # input where the first window starts
        # a window may lie wholly in the end padding: the piece then still ends at the
        # array's end, where the op pads as it does globally
        a = 0 if first <= 0 else (min(first, length - 1) // stride) * stride
        b = min(length, max((o1 - 1) * stride - pad_lo + span, a + 1))
        lo = o0 - a // stride
        return Block(o0, o1, a, b, lo, lo + o1 - o0, 0, o1 - o0)

    return _blocks(_out_chunks(starts, out_len), make)


def transpose_axis(in_chunks, out_len, kernel, stride, dilation, pad_lo):
    """A transposed conv: input ``i`` adds to outputs ``i*s - pad_lo + d*[0, k)``.  The
    piece runs unpadded; its full output starts at global ``a*s - pad_lo``."""
    length = int(sum(in_chunks))
    reach = dilation * (kernel - 1)
    starts = [int(c) * stride - pad_lo for c in chunk_bounds(in_chunks)[:-1]]

    def make(o0, o1):
        a = max(0, -(-(o0 + pad_lo - reach) // stride))
        b = min(length, (o1 - 1 + pad_lo) // stride + 1)
        if a >= b:
            return Block(o0, o1, 0, 0, 0, 0, 0, 0)
        origin = a * stride - pad_lo             # global output of the piece's output 0
        full = (b - a - 1) * stride + reach + 1
        d0, d1 = max(o0, origin), min(o1, origin + full)
        return Block(o0, o1, a, b, d0 - origin, d1 - origin, d0 - o0, d1 - o0)

    return _blocks(_out_chunks(starts, out_len), make)


def table_axis(in_chunks, idx):
    """Interpolation: output ``o`` reads the inputs ``idx[o]`` (-1: none)."""
    first = idx[:, 0]
    starts = np.searchsorted(first, chunk_bounds(in_chunks)[:-1], "left")

    def make(o0, o1):
        used = idx[o0:o1][idx[o0:o1] >= 0]
        a, b = int(used.min()), int(used.max()) + 1
        return Block(o0, o1, a, b, 0, o1 - o0, 0, o1 - o0)

    return _blocks(_out_chunks(starts, len(idx)), make)


def field_axis(in_chunks, out_len, size, jump, start):
    """A whole network with receptive field ``size``, ``jump`` (total stride) and
    ``start`` (the centre of output 0's field, in pixel units where pixel ``i`` spans
    ``[i, i + 1)``): output ``o`` reads ``[start + o*jump - size/2, ... + size/2)``."""
    length = int(sum(in_chunks))
    starts = [math.ceil((int(c) + 0.5 - start) / jump) for c in chunk_bounds(in_chunks)[:-1]]

    def make(o0, o1):
        first = math.floor(start + o0 * jump - size / 2)
        a = 0 if first <= 0 else (min(first, length - 1) // jump) * jump
        b = min(length, max(math.ceil(start + (o1 - 1) * jump + size / 2), a + 1))
        lo = o0 - a // jump
        return Block(o0, o1, a, b, lo, lo + o1 - o0, 0, o1 - o0)

    return _blocks(_out_chunks(starts, out_len), make)


def overlapping(bounds, a, b):
    """The chunks (``bounds`` from :func:`chunk_bounds`) that meet ``[a, b)``: a list of
    ``(chunk index, start, stop)`` with ``[start, stop)`` the part inside that chunk."""
    first = int(np.searchsorted(bounds, a, "right")) - 1
    last = int(np.searchsorted(bounds, b, "left")) - 1
    return [(j, max(a, int(bounds[j])) - int(bounds[j]),
             min(b, int(bounds[j + 1])) - int(bounds[j])) for j in range(first, last + 1)]
