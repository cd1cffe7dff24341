"""Convolution as im2col tiles multiplied in cache, in one parallel run per pass (CPU only).

Same signatures as the direct kernels in ``direct.py``, so the algorithm chooser
(``dispatch.choose_conv_algorithm``, algorithm ``'tiled'``) swaps one for the other.

Forward, per job (one image, one group, ``config.TILED_PIXELS`` output pixels)::

    tile[p, (r, s, c)] = x[n, g*C_g + c, oh*sh + r*dh - ph, ow*sw + s*dw - pw]  (0 outside)
    out[n, g*K_g + k, p] = sum over (r, s, c) of w[g, k, (r, s, c)] * tile[p, (r, s, c)]

The input is first copied into a frame (:func:`to_padded_groups`): channels last within
each group, zero-padded (or cropped) to exactly the positions the conv reads.  A tile
row is then built without bounds checks, each kernel row one contiguous run of
``kW * C_g`` values (``C_g`` per tap when dilated along W); the weights are packed
``(G, K_g, R*S*C_g)`` in the same ``(r, s, c)`` order.  The product runs :mod:`..gemm`'s
dot-product blocks on the tile while it sits in the thread's cache: no whole-chunk
column buffer goes to memory and back, and no BLAS call, so numba's thread pool never
hands the cores to OpenBLAS's.  On AVX-512 hosts (``config.TILED_IN_PLACE``), a conv
whose kernel rows are runs of whole vectors or long ones (dilation 1 along W, kW*C_g
a multiple of 16 in float32, or at least ``config.TILED_RAGGED_VECTORS`` vectors)
builds no tile at all (:func:`_forward_runs`): ``gemm.block_runs`` reads each pixel's
kernel rows as runs straight from the frame, which skips the tile's copy (output
channels padded to whole blocks of 4).  A forward dilated along W becomes one such
conv per column phase where that pays (:func:`_column_phases`).  The two kernels are
separate so that a process compiles only the one its layers run
(docs/benchmarks/cpu.md, "Compile time").
Tiles are near-equal in size (:func:`_even_tiles`); few jobs that would not divide
among the threads are split into more, smaller tiles (:func:`_jobs`).  Each thread
owns a fixed share of the jobs (and one tile buffer, ``tiles[t]``): the kernels are
serial shares, one per thread (:mod:`..shares`); every output entry is one dot
product in a fixed order: deterministic.

Backward:

* grad input (which is also the transposed convolution's forward) is this forward run
  on ``grad_out`` with the weights flipped and transposed, once per stride phase of the
  input (:func:`conv2d_grad_input_tiled`), all phases reading one frame of
  ``grad_out`` (their leading pads may be negative: the frame then crops).
* grad weight (:func:`conv2d_grad_weight_tiled`) builds, per job, the im2col columns
  of a few output rows in cache and adds their product with the same rows of
  ``grad_out`` (a reduction over pixels) into a per-thread partial sum.  With few
  output channels per group the column copy costs more than the products it serves;
  there, and on long reductions (AVX-512, runs of ``kW*C_g`` values not mostly
  padding: :func:`_grad_runs`)
  :func:`_grad_weight_runs` builds no columns: 16 vector accumulators sum outer
  products of 4 ``grad_out`` values and 4 vectors of a kernel row's run, read in place
  from the channels-last frame, over a job's pixels (no horizontal sums either).

Rule: ``dispatch.choose_conv_algorithm`` runs it where the register-blocked kernel does
not apply and a group has at least ``config.TILED_MIN_CHANNELS`` input channels
(thinner groups make short reductions and few rows), and for the grad weight of thinner
layers not left to the direct kernel (its reduction over pixels stays long).
"""

import math

import numba
import numpy as np
from numba import njit

from .... import config
from ....config import CPU_FASTMATH
from .. import simd
from ..gemm import BLOCK, _fma_4x4, block, block_runs, whole_block
from ..im2col import plane_to_columns
from ..rows import copy, fill, frame_span
from ..shares import private, run_shares, share, share_of
from ..workspace import scratch


@share()
def to_padded_groups(t, threads, args):
    """``xg[n, g, i, j*C_g + c] = x[n, g*C_g + c, i + lo_h, j + lo_w]``, 0 outside ``x``:
    each group's channels last, in a frame that holds every position a conv reads
    (``lo`` < 0 pads, ``lo`` > 0 crops), so a tile row is built without bounds checks."""
    x, xg, lo_h, lo_w = args
    batch, ch, in_h, in_w = x.shape
    groups, height = xg.shape[1], xg.shape[2]
    c_g = ch // groups
    width = xg.shape[3] // c_g
    zero = xg.dtype.type(0)
    j0, j1 = frame_span(lo_w, in_w, width)  # buffer columns j0 .. j1-1 hold input columns
    lo, hi = share_of(t, threads, batch * groups * height)
    for job in range(lo, hi):
        n, g, i = job // (groups * height), (job // height) % groups, job % height
        dst = xg[n, g, i]
        ih = i + lo_h
        if ih < 0 or ih >= in_h:
            fill(dst, zero)
        else:
            fill(dst[:j0 * c_g], zero)
            fill(dst[j1 * c_g:], zero)
            src = x[n, g * c_g:(g + 1) * c_g, ih]
            # gather a column's channels, write contiguously (faster than the reverse:
            # the writes are what the cache has to keep; measured: cpu.md, "Kernel
            # measurements")
            for j in range(j0, j1):
                run = dst[j * c_g:(j + 1) * c_g]
                for c in range(c_g):
                    run[c] = src[c, j + lo_w]


@share()
def merge_column_phases(t, threads, args):
    """``x[n, c, r*sh + a, 2*j + b]`` from column phase ``b`` (``even``, ``odd``) of
    row phase ``a``: one row of ``x`` per job, in whole vectors whose lanes alternate
    between the two phases (masked loads and stores at the row's end): faster than
    numpy's strided assignment of each phase (measured: docs/benchmarks/cpu.md, "Kernel
    measurements")."""
    even, odd, x, a, sh = args
    batch, ch, rows, w_even = even.shape
    w_odd, width = odd.shape[3], x.shape[3]
    lanes = simd.lanes(x)
    lo, hi = share_of(t, threads, batch * ch * rows)
    for job in range(lo, hi):
        n, c, r = job // (ch * rows), (job // rows) % ch, job % rows
        evens, odds, dst = even[n, c], odd[n, c], x[n, c]
        i = r * sh + a
        for j in range(0, w_even, lanes):
            low, high = simd.interleave(simd.load_range(evens, r, j, 0, w_even - j),
                                        simd.load_range(odds, r, j, 0, w_odd - j))
            simd.store_range(dst, i, 2 * j, low, 0, width - 2 * j)
            simd.store_range(dst, i, 2 * j + lanes, high, 0, width - 2 * j - lanes)


@njit(inline="always")
def _run_start(p, out_w, sh, sw, ph, pw, c_g):
    """Where output pixel ``p``'s receptive field starts in the frame: the frame row
    of its first kernel row and the offset ``(ow * sw - pw) * C_g`` in it."""
    oh = p // out_w
    return oh * sh - ph, ((p - oh * out_w) * sw - pw) * c_g


@njit(inline="always")
def _fill_tile(xg, n, g, p0, count, tile, geometry, kh, kw, out_w):
    """Rows ``0 .. count-1`` of ``tile``: the receptive fields of pixels ``p0 ..``, in
    ``(r, s, c)`` order.  ``geometry``'s pads are minus the frame's offsets (``<= 0``), so
    every tap lies inside ``xg``; at dilation 1 along W a tap row is one run of
    ``kW * C_g`` values."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    c_g = tile.shape[1] // (kh * kw)
    run = kw * c_g
    for i in range(count):
        top, left = _run_start(p0 + i, out_w, sh, sw, ph, pw, c_g)
        row = tile[i]
        for r in range(kh):
            src = xg[n, g, top + r * dh]
            if dw == 1:
                copy(row[r * run:(r + 1) * run], src[left:left + run])
            else:
                for s in range(kw):
                    at = left + s * dw * c_g
                    copy(row[r * run + s * c_g:r * run + (s + 1) * c_g], src[at:at + c_g])


@njit(inline="always")
def _even_tiles(length, most):
    """(tiles per image, pixels per tile): as few tiles of at most ``most`` pixels as
    cover ``length``, of near-equal size (a multiple of the block's 4 where ``most``
    allows).  Tiles of ``most`` and a short last one left the threads unequal shares:
    a 14x14 image in tiles of 64 is 64+64+64+4, 128 pixels against 68 where two threads
    split one image."""
    count = (length + most - 1) // most
    size = (length + count - 1) // count
    return count, min((size + BLOCK - 1) // BLOCK * BLOCK, most)


@njit(inline="always")
def _jobs(out, groups, most, threads):
    """The forward's jobs: one image, one group, near-equal tiles of at most ``most``
    output pixels (:func:`_even_tiles`).  Where the jobs are few (under 4 per thread)
    and do not divide among the threads, an image takes up to ``threads`` more, smaller
    tiles, the first count that divides: one image of 12x12 in 3 tiles of 48 left one of
    2 threads idle a third of the time, 4 tiles of 36 do not.  Returns (jobs, tiles per
    image, pixels per tile)."""
    length = out.shape[2] * out.shape[3]
    images = out.shape[0] * groups
    per_image, tile_pixels = _even_tiles(length, most)
    if (images * per_image) % threads != 0 and images * per_image < 4 * threads:
        for more in range(per_image + 1, per_image + threads + 1):
            size = min((((length + more - 1) // more) + BLOCK - 1) // BLOCK * BLOCK, most)
            tiles = (length + size - 1) // size  # every tile holds pixels
            if (images * tiles) % threads == 0:
                per_image, tile_pixels = tiles, size
                break
    return images * per_image, per_image, tile_pixels


@share(fastmath=CPU_FASTMATH)
def _forward_tiles(t, threads, args):
    xg, wp, bias, out, tiles, sh, sw, ph, pw, dh, dw, groups, kh, kw = args
    geometry = (sh, sw, ph, pw, dh, dw, groups)
    # xg (N, G, H', W'*C_g) framed channels-last; wp (G, K_g, kh*kw*C_g); out (N, K, OH, OW)
    groups, k_g = wp.shape[0], wp.shape[1]
    out_w, length = out.shape[3], out.shape[2] * out.shape[3]
    jobs, per_image, tile_pixels = _jobs(out, groups, tiles.shape[1], threads)
    tile = tiles[t]
    first, stop = share_of(t, threads, jobs)
    for job in range(first, stop):
        n, g = job // (groups * per_image), (job // per_image) % groups
        p0 = (job % per_image) * tile_pixels
        count = min(tile_pixels, length - p0)
        w = wp[g]
        c = out[n].reshape(out.shape[1], length)[g * k_g:(g + 1) * k_g, p0:p0 + count]
        for m in range(k_g):
            fill(c[m], bias[g * k_g + m])
        _fill_tile(xg, n, g, p0, count, tile, geometry, kh, kw, out_w)
        # 4 weight rows stay in L1 while the tile (in L2) streams past them
        for m0 in range(0, k_g, BLOCK):
            for i0 in range(0, count, BLOCK):
                block(w, m0, tile, i0, c, m0, i0, k_g, count)


@share(fastmath=CPU_FASTMATH)
def _forward_runs(t, threads, args):
    """The forward of :func:`_forward_tiles` with no tile: each block of 4 pixels x 4
    output channels reads the pixels' kernel rows as runs straight from the frame
    (``gemm.block_runs``); 4 weight rows stay in L1 while the frame (in L2) streams
    past.  For runs of whole vectors and whole blocks of output channels only
    (:func:`_in_place`).  Where a job's pixels do not fill its last block, that block
    repeats the job's last pixel, lands in a 4x4 buffer, and only its real columns are
    added to the output."""
    xg, wp, bias, out, sh, sw, ph, pw, dh, dw, groups, kh, kw, most = args
    groups, k_g = wp.shape[0], wp.shape[1]
    out_w, length = out.shape[3], out.shape[2] * out.shape[3]
    jobs, per_image, tile_pixels = _jobs(out, groups, most, threads)
    c_g = wp.shape[2] // (kh * kw)
    run = kw * c_g
    edge = private(BLOCK * BLOCK, wp.dtype).reshape((BLOCK, BLOCK))
    first, stop = share_of(t, threads, jobs)
    for job in range(first, stop):
        n, g = job // (groups * per_image), (job // per_image) % groups
        p0 = (job % per_image) * tile_pixels
        count = min(tile_pixels, length - p0)
        w = wp[g]
        frame = xg[n, g]
        c = out[n].reshape(out.shape[1], length)[g * k_g:(g + 1) * k_g, p0:p0 + count]
        for m in range(k_g):
            fill(c[m], bias[g * k_g + m])
        whole = count - count % BLOCK
        for m0 in range(0, k_g, BLOCK):
            for i0 in range(0, whole, BLOCK):
                p = p0 + i0
                r0, c0 = _run_start(p, out_w, sh, sw, ph, pw, c_g)
                r1, c1 = _run_start(p + 1, out_w, sh, sw, ph, pw, c_g)
                r2, c2 = _run_start(p + 2, out_w, sh, sw, ph, pw, c_g)
                r3, c3 = _run_start(p + 3, out_w, sh, sw, ph, pw, c_g)
                block_runs(w, m0, frame, (r0, r1, r2, r3), (c0, c1, c2, c3), c, m0, i0,
                           kh, run, dh)
        # (the four starts stay written out: returned from an inline helper as a
        # tuple of tuples, they broke numba's array analysis in the parallel pass)
        if whole < count:  # 1-3 pixels left: the last one repeated to a block, in edge
            p, last = p0 + whole, count - 1 - whole
            r0, c0 = _run_start(p, out_w, sh, sw, ph, pw, c_g)
            r1, c1 = _run_start(p + min(1, last), out_w, sh, sw, ph, pw, c_g)
            r2, c2 = _run_start(p + min(2, last), out_w, sh, sw, ph, pw, c_g)
            r3, c3 = _run_start(p + last, out_w, sh, sw, ph, pw, c_g)
            for m0 in range(0, k_g, BLOCK):
                fill(edge.reshape(BLOCK * BLOCK), edge.dtype.type(0))
                block_runs(w, m0, frame, (r0, r1, r2, r3), (c0, c1, c2, c3), edge, 0, 0,
                           kh, run, dh)
                for i in range(BLOCK):
                    for j in range(last + 1):
                        c[m0 + i, whole + j] += edge[i, j]


L2_PANEL = 65536  # values of a product's re-read operand kept in L2 (256 KiB in float32)


def _pack(weight, groups, pad=1):
    """``(K, C_g, R, S)`` -> ``(G, K_g', R*S*C_g)`` in ``(r, s, c)`` order, ``K_g'`` the
    output channels per group rounded up to a multiple of ``pad`` (zero rows)."""
    out_ch, c_g, kh, kw = weight.shape
    return _rows_padded(weight.reshape(groups, out_ch // groups, c_g, kh, kw)
                        .transpose(0, 1, 3, 4, 2), pad)


def _rows_padded(view, pad):
    """``view`` ``(G, M, ...)`` copied once into a C-contiguous ``(G, M', L)``, ``M'``
    rounded up to a multiple of ``pad`` with zero rows."""
    groups, rows = view.shape[0], view.shape[1]
    total = -(-rows // pad) * pad
    packed = np.empty((groups, total) + view.shape[2:], view.dtype)
    packed[:, rows:] = 0
    packed[:, :rows] = view
    return packed.reshape(groups, total, -1)


def _reach(out_size, stride, dilation, taps, pad):
    """First and one-past-last input index a conv reads along one axis (either may lie
    outside the input: the frame pads or crops)."""
    return -pad, (out_size - 1) * stride + (taps - 1) * dilation - pad + 1


def _framed(x, groups, rows, cols, slack=0, key="framed"):
    """``x`` copied into the frame ``rows = (lo, hi)``, ``cols = (lo, hi)`` of input
    positions, channels last per group (:func:`to_padded_groups`), in the scratch buffer
    ``key``, followed by ``slack`` zeros that whole-vector reads past its end may touch."""
    batch, ch = x.shape[0], x.shape[1]
    shape = (batch, groups, rows[1] - rows[0], (cols[1] - cols[0]) * (ch // groups))
    size = math.prod(shape)
    flat = scratch(key, (size + slack,), x.dtype)
    flat[size:] = 0
    xg = flat[:size].reshape(shape)
    run_shares(to_padded_groups, numba.get_num_threads(), (x, xg, rows[0], cols[0]))
    return xg


def _in_place(run, itemsize, dw, taps):
    """Whether the forward reads receptive fields in place (:func:`_forward_runs`): on
    AVX-512 hosts (``config.TILED_IN_PLACE``), at dilation 1 along W, with kernel rows
    (``run`` values, ``kW * C_g``) of whole vectors, or (kernels of more than one tap)
    at least ``config.TILED_RAGGED_VECTORS`` vectors long.  A ragged run's tail vector
    costs a full step, so short ragged runs go to the tile, and so do ragged 1x1 convs,
    whose tile is a plain copy (measured: docs/benchmarks/cpu.md, "Kernel measurements"
    and "Session 7").  Callers then pack the weights with output channels padded to
    whole blocks of 4 (:func:`_pack`)."""
    lanes = simd.VECTOR_BYTES // itemsize
    return (config.TILED_IN_PLACE and simd.WIDE and dw == 1
            and (run % lanes == 0
                 or (taps > 1 and run >= config.TILED_RAGGED_VECTORS * lanes)))


def _block_pad(k_g, run, kh, kw, itemsize, dw):
    """What to round the packed weights' output channels up to: a whole block of 4
    where the forward reads in place (:func:`_in_place`) and either no padding is
    needed or the reduction (``kh * run`` values per output) is at least
    ``config.TILED_PAD_MIN_REDUCTION``: the padded channels' scratch output and its copy
    cost a few passes over the output, which a short reduction does not repay; else 1,
    and output channels that are not whole blocks build the tile."""
    if not _in_place(run, itemsize, dw, kh * kw):
        return 1
    return BLOCK if k_g % BLOCK == 0 or kh * run >= config.TILED_PAD_MIN_REDUCTION else 1


def _run(xg, origin, packed, bias, out, geometry, kh, kw):
    """The tiled forward of ``geometry`` on ``xg``, a frame whose first row and column
    are input position ``origin``.  In place (output channels in whole blocks of 4),
    weights packed with padded output channels (``packed.shape[1]`` above ``out``'s per
    group, :func:`_block_pad`) run into a scratch output whose real channels are then
    copied out."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    framed = (sh, sw, ph + origin[0], pw + origin[1], dh, dw, groups)
    threads = numba.get_num_threads()
    if (packed.shape[1] % BLOCK == 0
            and _in_place(packed.shape[2] // kh, packed.itemsize, dw, kh * kw)):
        k_g, k_pad = out.shape[1] // groups, packed.shape[1]
        if k_pad == k_g:
            run_shares(_forward_runs, threads,
                       (xg, packed, bias, out, *framed, kh, kw, config.TILED_PIXELS))
            return
        batch, _, out_h, out_w = out.shape
        wide_bias = np.zeros((groups, k_pad), bias.dtype)
        wide_bias[:, :k_g] = bias.reshape(groups, k_g)
        wide = scratch("runs_out", (batch, groups * k_pad, out_h, out_w), out.dtype)
        run_shares(_forward_runs, threads, (xg, packed, wide_bias.reshape(-1), wide, *framed,
                                            kh, kw, config.TILED_PIXELS))
        out[...] = wide.reshape(batch, groups, k_pad, out_h, out_w)[:, :, :k_g].reshape(
            out.shape)
        return
    tiles = scratch("tiles", (threads, config.TILED_PIXELS, packed.shape[2]), xg.dtype)
    run_shares(_forward_tiles, threads, (xg, packed, bias, out, tiles, *framed, kh, kw))


def conv2d_forward_tiled(x, weight, bias, out, geometry):
    sh, sw, ph, pw, dh, dw, groups = geometry
    kh, kw = weight.shape[2], weight.shape[3]
    if out.size == 0:
        return
    if _phases_pay(weight, x.itemsize, out, sw, dw):
        _column_phases(x, weight, bias, out, geometry)
        return
    rows = _reach(out.shape[2], sh, dh, kh, ph)
    cols = _reach(out.shape[3], sw, dw, kw, pw)
    pad = _block_pad(weight.shape[0] // groups, kw * weight.shape[1], kh, kw, x.itemsize, dw)
    _run(_framed(x, groups, rows, cols), (rows[0], cols[0]), _pack(weight, groups, pad), bias,
         out, geometry, kh, kw)


def _phases_pay(weight, itemsize, out, sw, dw):
    """Whether a forward dilated along W runs as column phases (:func:`_column_phases`):
    at stride 1 along W, where each phase reads in place (:func:`_in_place` at dilation
    1), its runs are at least ``config.TILED_PHASE_VECTORS`` vectors long (shorter
    ones gain less than the phases' copies cost) and each phase still fills a whole
    tile of ``config.TILED_PIXELS`` pixels per image (fewer pixels per job re-read the
    weights once per phase).  Measured: docs/benchmarks/cpu.md, "Session 7"."""
    kh, kw = weight.shape[2], weight.shape[3]
    run = kw * weight.shape[1]
    return (dw > 1 and sw == 1 and kw > 1 and _in_place(run, itemsize, 1, kh * kw)
            and run * itemsize >= config.TILED_PHASE_VECTORS * simd.VECTOR_BYTES
            and out.shape[2] * out.shape[3] >= dw * config.TILED_PIXELS)


def _column_phases(x, weight, bias, out, geometry):
    """A forward dilated along W (``dW > 1``) at stride 1 along W, as ``dW`` convs of
    dilation 1 that read in place: output columns ``a, a + dW, ...`` read only the
    input columns ``p, p + dW, ...`` with ``p = (a - pW) mod dW``, so each phase is a
    conv of those columns (copied out) with its own leading pad, whose result goes back
    to every ``dW``-th output column."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, out_ch, out_h, out_w = out.shape
    for a in range(min(dw, out_w)):
        p = (a - pw) % dw
        columns = x[..., p::dw]
        phase_out = scratch("column phase", (batch, out_ch, out_h, len(range(a, out_w, dw))),
                            out.dtype)
        if columns.shape[3] == 0:  # every tap of these columns reads padding
            phase_out[...] = bias.reshape(1, out_ch, 1, 1)
        else:
            phase_in = scratch("column phase input", columns.shape, x.dtype)
            phase_in[...] = columns
            conv2d_forward_tiled(phase_in, weight, bias, phase_out,
                                 (sh, 1, ph, (p - a + pw) // dw, dh, 1, groups))
        # NumPy's strided assignment, not merge_column_phases: a few percent of these
        # long reductions, and no kernel to compile for it
        out[..., a::dw] = phase_out


def _phase_taps(phase, stride, pad, dilation, size):
    """The taps that reach the input positions ``i * stride + phase`` (a stride phase),
    in the order a stride-1 forward conv over ``grad_out`` meets them (descending), and
    that conv's leading pad and dilation: tap ``t`` reads ``grad_out[i + q_t]`` with
    ``q_t = (phase + pad - t * dilation) / stride``, an integer for these taps only."""
    taps = [t for t in range(size - 1, -1, -1) if (phase + pad - t * dilation) % stride == 0]
    if not taps:
        return taps, 0, 1
    step = stride // math.gcd(stride, dilation)
    return taps, -((phase + pad - taps[0] * dilation) // stride), dilation * step // stride


def conv2d_grad_input_tiled(grad_out, weight, grad_in, geometry):
    """The adjoint of the forward as forward convs over ``grad_out``, one per stride
    phase ``(a, b)`` of the input: input rows ``i * sh + a`` get exactly the taps
    ``r`` with ``(a + ph - r * dh) % sh == 0``, a stride-1 conv with the flipped,
    transposed sub-kernel ``w'[c, k, r', s'] = w[k, c, taps_r[r'], taps_s[s']]``.  No
    zero-inserted input, no scatter: each phase's pixels are computed once, then copied
    into place (at stride 1 the one phase is ``grad_in`` itself; at column stride 2 a
    row phase's two column phases together, :func:`merge_column_phases`)."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, c_g, kh, kw = weight.shape
    k_g = out_ch // groups
    batch, in_ch, in_h, in_w = grad_in.shape
    w = weight.reshape(groups, k_g, c_g, kh, kw)
    zero_bias = np.zeros(in_ch, grad_in.dtype)
    phases = []  # (a, b, target, taps_r, taps_s, the phase conv's geometry)
    for a in range(sh):
        taps_r, pad_h, dil_h = _phase_taps(a, sh, ph, dh, kh)
        for b in range(sw):
            taps_s, pad_w, dil_w = _phase_taps(b, sw, pw, dw, kw)
            target = grad_in[:, :, a::sh, b::sw]
            if not taps_r or not taps_s or target.size == 0:
                target[...] = 0
            else:
                phases.append((a, b, target, taps_r, taps_s,
                               (1, 1, pad_h, pad_w, dil_h, dil_w, groups)))
    if not phases:
        return
    # one frame of grad_out that covers what every phase reads
    reach_r = [_reach(t.shape[2], 1, geo[4], len(tr), geo[2]) for _, _, t, tr, _, geo in phases]
    reach_s = [_reach(t.shape[3], 1, geo[5], len(ts), geo[3]) for _, _, t, _, ts, geo in phases]
    rows = (min(r[0] for r in reach_r), max(r[1] for r in reach_r))
    cols = (min(r[0] for r in reach_s), max(r[1] for r in reach_s))
    framed = _framed(grad_out, groups, rows, cols)
    computed = {(a, b) for a, b, *_ in phases}
    even = None  # a row phase's even column phase, held for its odd one (column stride 2)
    for a, b, target, taps_r, taps_s, phase_geometry in phases:
        sub = w[:, :, :, taps_r][:, :, :, :, taps_s]  # (G, K_g, C_g, R', S')
        pad = _block_pad(c_g, len(taps_s) * k_g, len(taps_r), len(taps_s), grad_out.itemsize,
                         phase_geometry[5])
        packed = _rows_padded(sub.transpose(0, 2, 3, 4, 1), pad)
        out = (grad_in if sh == sw == 1
               else scratch(f"phase {b}", target.shape, grad_in.dtype))
        _run(framed, (rows[0], cols[0]), packed, zero_bias, out, phase_geometry, len(taps_r),
             len(taps_s))
        if out is grad_in:
            continue
        # at column stride 2 a row phase's two column phases go in place together, as
        # whole rows of a contiguous grad_in (phases come in order: (a, 0), then (a, 1))
        paired = sw == 2 and {(a, 0), (a, 1)} <= computed and grad_in.flags.c_contiguous
        if not paired:
            target[...] = out
        elif b == 0:
            even = out  # its own scratch key, "phase 0": the odd phase does not reuse it
        else:
            run_shares(merge_column_phases, numba.get_num_threads(),
                       (even, out, grad_in, a, sh))
            even = None


@share(fastmath=CPU_FASTMATH)
def _grad_weight_tiles(t, threads, args):
    """``partials[t]``: thread ``t``'s share of the grad weight, ``(G, K_g, C_g*kh*kw)``
    padded with zeros to whole blocks of 4 along both matrix axes.

    A job is one group and ``chunk_rows`` output rows of the batch (the rows of all
    images in a row, so small images still make long jobs): it copies those rows of
    ``grad_out`` (``K_g`` x pixels) and builds the matching im2col columns
    (``C_g*kh*kw`` x pixels) in the thread's ``work`` buffer, each padded with zero rows
    to a whole block, then adds their product over the pixels (``gemm``'s 4x4
    dot-product blocks, whole ones only: no edge code) into the thread's partial sum."""
    x, dy, partials, work, sh, sw, ph, pw, dh, dw, groups, kh, kw, out_w, chunk_rows = args
    k_pad, rows_pad = partials.shape[2], partials.shape[3]
    c_g = x.shape[1] // groups
    k_g, rows = dy.shape[1] // groups, c_g * kh * kw
    batch, out_len = dy.shape[0], dy.shape[2]
    out_h = out_len // out_w
    total = batch * out_h  # output rows of the whole batch
    per_group = (total + chunk_rows - 1) // chunk_rows
    zero = partials.dtype.type(0)
    partial = partials[t]
    fill(partial.reshape(partial.size), zero)
    for job in range(t, groups * per_group, threads):
        g, q0 = job // per_group, (job % per_group) * chunk_rows
        q1 = min(q0 + chunk_rows, total)
        length = (q1 - q0) * out_w
        a = work[t, :k_pad * length].reshape(k_pad, length)
        flat = work[t, k_pad * length:(k_pad + rows_pad) * length]
        # the pad rows only make entries of partial that are never read; zeroed so
        # that no stale value (a denormal is slow) enters the arithmetic
        fill(a[k_g:].reshape((k_pad - k_g) * length), zero)
        fill(flat[rows * length:], zero)
        q = q0
        while q < q1:  # one image's rows at a time
            n, oh0 = q // out_h, q % out_h
            count = min(q1 - q, out_h - oh0)
            at, src = (q - q0) * out_w, oh0 * out_w
            for m in range(k_g):
                copy(a[m, at:at + count * out_w], dy[n, g * k_g + m, src:src + count * out_w])
            columns = (kh, kw, sh, sw, ph - oh0 * sh, pw, dh, dw, count, out_w)
            for c in range(c_g):
                plane_to_columns(x[n, g * c_g + c], c, flat, length, at, columns)
            q += count
        b = flat.reshape(rows_pad, length)
        # GEMM cache blocking: a panel of grad_out rows stays in L2 (the rows that
        # fit in L2_PANEL values), 4 column rows at a time in L1 stream past it
        panel = max(BLOCK, L2_PANEL // length // BLOCK * BLOCK)
        for mp in range(0, k_pad, panel):
            for i0 in range(0, rows_pad, BLOCK):
                for m0 in range(mp, min(mp + panel, k_pad), BLOCK):
                    whole_block(a, m0, b, i0, partial[g], m0, i0)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _add_4x4(c, m0, col, width, acc):
    """``c[m0 + i, col + j*width :][:width] += acc[4*i + j]``, ``i, j < 4``."""
    one = simd.splat(c, 1.0)
    for i in range(4):
        row = c[m0 + i]
        for j in range(4):
            at = col + j * width
            simd.store_flat(row, at, simd.fma(one, acc[4 * i + j], simd.load_flat(row, at)))


@share(fastmath=CPU_FASTMATH)
def _grad_weight_runs(t, threads, args):
    """``partials[t]``: thread ``t``'s share of the grad weight, ``(G, K_g, kh*pieces*
    run)`` in ``(r, piece, run)`` order, both padded: output channels to whole blocks of
    4, each run to whole blocks of 4 vectors.  A run is a kernel row's ``kW*C_g``
    values (``pieces == 1``, dilation 1 along W) or one tap's ``C_g`` (``pieces ==
    kW``), contiguous in the channels-last frame ``xg`` (:func:`to_padded_groups`).

    A job is one image, one group and ``chunk_rows`` output rows: ``grad_out``'s rows
    of the chunk are transposed into the thread's ``dyt`` (pixels x ``K_g``, padded with
    zero columns); then per run, block of 4 vectors along it and block of 4 output
    channels, 16 vector accumulators sum over the chunk's pixels the outer products of
    4 ``grad_out`` values and 4 frame vectors read in place: no im2col columns, no
    horizontal sums.  A padded block reads up to ``4*width - 1`` values past its run
    (the caller leaves that slack after ``xg``); their lanes are never read back."""
    (xg, dy, partials, dyt, sh, sw, ph, pw, dh, dw, groups, kh, pieces, c_g, out_w,
     chunk_rows, band) = args
    k_pad, span = partials.shape[2], partials.shape[3]
    run_pad = span // (kh * pieces)
    batch, out_len = dy.shape[0], dy.shape[2]
    k_g = dy.shape[1] // groups
    out_h = out_len // out_w
    per_image = (out_h + chunk_rows - 1) // chunk_rows
    width = simd.lanes(partials)
    zero = partials.dtype.type(0)
    partial = partials[t]
    fill(partial.reshape(partial.size), zero)
    for job in range(t, groups * batch * per_image, threads):
        g, n = job // (batch * per_image), (job // per_image) % batch
        oh0 = (job % per_image) * chunk_rows
        oh1 = min(oh0 + chunk_rows, out_h)
        length = (oh1 - oh0) * out_w
        a = dyt[t, :length * k_pad].reshape(length, k_pad)
        for m in range(k_pad):
            if m < k_g:
                src = dy[n, g * k_g + m, oh0 * out_w:oh1 * out_w]
                for q in range(length):
                    a[q, m] = src[q]
            else:
                for q in range(length):
                    a[q, m] = zero
        plane = xg[n, g]
        for r in range(kh):
            for piece in range(pieces):
                for v0 in range(0, run_pad, BLOCK * width):
                    start = piece * dw * c_g + v0
                    at = (r * pieces + piece) * run_pad + v0
                    # a band of output rows whose frame vectors stay in L1 while
                    # every block of output channels reads them
                    for b0 in range(oh0, oh1, band):
                        b1 = min(b0 + band, oh1)
                        for k0 in range(0, k_pad, BLOCK):
                            z = simd.zeros(partials)
                            acc = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
                            q = (b0 - oh0) * out_w
                            for oh in range(b0, b1):
                                fr = oh * sh + r * dh
                                col = start
                                for _ in range(out_w):
                                    acc = _fma_4x4(
                                        simd.splat(partials, a[q, k0]),
                                        simd.splat(partials, a[q, k0 + 1]),
                                        simd.splat(partials, a[q, k0 + 2]),
                                        simd.splat(partials, a[q, k0 + 3]), plane,
                                        (fr, fr, fr, fr),
                                        (col, col + width, col + 2 * width,
                                         col + 3 * width), 0, acc)
                                    q += 1
                                    col += sw * c_g
                            _add_4x4(partial[g], k0, at, width, acc)


def _grad_runs(k_g, c_g, kh, kw, dw, itemsize):
    """``(pieces, run, run_pad)`` of the in-place grad weight (:func:`_grad_weight_runs`),
    or None where the im2col tiles do better.  It needs AVX-512 (and
    ``config.TILED_IN_PLACE``) and runs that padding to whole blocks of 4 vectors
    lengthens by at most ``config.TILED_GRAD_RUN_WASTE`` (a thin layer's short runs
    would be mostly padding); and either at most
    ``config.TILED_GRAD_RUNS_MAX_CHANNELS`` output channels per group (the tiles' column
    copy is paid once for all of them, so it pays off on many) or a reduction of at
    least ``config.TILED_GRAD_RUNS_MIN_REDUCTION`` values per output (``C_g*kH*kW``:
    the tiles' jobs then hold few pixels, and each adds its product into the whole
    partial grad weight).  Measured: docs/benchmarks/cpu.md, "Session 6"."""
    if not (config.TILED_IN_PLACE and simd.WIDE):
        return None
    if (k_g > config.TILED_GRAD_RUNS_MAX_CHANNELS
            and c_g * kh * kw < config.TILED_GRAD_RUNS_MIN_REDUCTION):
        return None
    pieces, run = (1, kw * c_g) if dw == 1 else (kw, c_g)
    step = BLOCK * simd.VECTOR_BYTES // itemsize
    run_pad = -(-run // step) * step
    if run_pad - run > config.TILED_GRAD_RUN_WASTE * run:
        return None
    return pieces, run, run_pad


def _grad_weight_in_place(x, grad_out, grad_weight, geometry, runs):
    sh, sw, ph, pw, dh, dw, groups = geometry
    out_ch, c_g, kh, kw = grad_weight.shape
    batch, _, out_h, out_w = grad_out.shape
    pieces, run, run_pad = runs
    xg = _framed(x, groups, _reach(out_h, sh, dh, kh, ph), _reach(out_w, sw, dw, kw, pw),
                 slack=BLOCK * simd.VECTOR_BYTES // x.itemsize,  # what a padded block reads
                 key="grad_frame")
    k_g = out_ch // groups
    k_pad = -(-k_g // BLOCK) * BLOCK
    threads = numba.get_num_threads()
    # about TILED_GRAD_PIXELS pixels per job, but a job for every thread where the
    # images have the rows
    per_image = -(-threads // (groups * batch))
    chunk_rows = max(1, min(config.TILED_GRAD_PIXELS // out_w, -(-out_h // per_image)))
    partials = scratch("partials", (threads, groups, k_pad, kh * pieces * run_pad),
                       grad_weight.dtype)
    dyt = scratch("grad_rows", (threads, chunk_rows * out_w * k_pad), grad_weight.dtype)
    run_shares(_grad_weight_runs, threads,
               (xg, grad_out.reshape(batch, out_ch, out_h * out_w), partials, dyt, *geometry,
                kh, pieces, c_g, out_w, chunk_rows, max(1, config.TILED_GRAD_BAND // out_w)))
    summed = partials.sum(axis=0).reshape(groups, k_pad, kh, pieces, run_pad)
    taps = summed[:, :k_g, ..., :run].reshape(groups, k_g, kh, kw, c_g)  # (r, s, c) order
    grad_weight[...] = taps.transpose(0, 1, 4, 2, 3).reshape(out_ch, c_g, kh, kw)


def conv2d_grad_weight_tiled(x, grad_out, grad_weight, geometry):
    """The grad weight as per-thread sums over jobs of output rows (about
    ``config.TILED_GRAD_PIXELS`` pixels each, fewer where their buffers would pass
    ``config.TILED_GRAD_BYTES``), added in thread order: deterministic for a given
    thread count.  Outer products on the frame where :func:`_grad_runs` allows (few
    output channels, or a long reduction), else im2col columns per job; never a
    whole-chunk column buffer."""
    groups = geometry[6]
    out_ch, c_g, kh, kw = grad_weight.shape
    batch, _, out_h, out_w = grad_out.shape
    rows = c_g * kh * kw
    if grad_out.size == 0:
        grad_weight[...] = 0
        return
    runs = _grad_runs(out_ch // groups, c_g, kh, kw, geometry[5], grad_weight.itemsize)
    if runs is not None:
        _grad_weight_in_place(x, grad_out, grad_weight, geometry, runs)
        return
    k_g = out_ch // groups
    k_pad, rows_pad = -(-k_g // BLOCK) * BLOCK, -(-rows // BLOCK) * BLOCK  # whole blocks
    pixels = min(config.TILED_GRAD_PIXELS,
                 config.TILED_GRAD_BYTES // ((k_pad + rows_pad) * grad_weight.itemsize))
    threads = numba.get_num_threads()
    # at least one job per thread where the batch has the rows: a small batch of small
    # maps would otherwise be one job on one thread
    per_group = -(-threads // groups)
    chunk_rows = max(1, min(pixels // out_w, -(-batch * out_h // per_group)))
    partials = scratch("partials", (threads, groups, k_pad, rows_pad), grad_weight.dtype)
    pixels = min(chunk_rows, batch * out_h) * out_w
    work = scratch("grad_tiles", (threads, (k_pad + rows_pad) * pixels), grad_weight.dtype)
    run_shares(_grad_weight_tiles, threads, (x, grad_out.reshape(batch, out_ch, out_h * out_w),
                                            partials, work, *geometry, kh, kw, out_w,
                                            chunk_rows))
    np.sum(partials[:, :, :k_g, :rows], axis=0,
           out=grad_weight.reshape(groups, k_g, rows))
