"""A matrix product written in numba, in dot-product form: ``c[g] += a[g] @ b[g].T``.

What and how: both operands are read along their contiguous last axis (the reduction
axis), so every entry of ``c`` is a dot product of two unit-stride rows.  A job computes
a 4 x 4 block of ``c``: sixteen dot products in one loop over the reduction axis, 16
vector accumulators held in registers, reading 4 + 4 rows for 16 fused multiply-adds.
On AVX-512 hosts (32 vector registers) the block is written in explicit vectors
(:mod:`.simd`: whole vectors, a masked tail, one joint tree of horizontal sums);
elsewhere each entry is a scalar reduction that LLVM's loop vectorizer turns into a
vector accumulator, summed on its own.  Blocks accumulate (``c += ...``): the forward
starts from the bias, the grad weight sums its jobs into a per-thread partial.  Each
entry of ``c`` gets one dot product per call, in a fixed order: deterministic.  Edge
rows and columns (``M`` or ``N`` not a multiple of 4) take single dot products, rows
indexed in place.

Why: the tiled convolution (``conv/tiled.py``) calls :func:`block` inside its own parallel
region, on tiles it builds in cache (or :func:`block_runs` on the receptive fields where
they lie), so it needs no BLAS call and numba's thread pool never hands the cores to
OpenBLAS's; :func:`gemm_nt` is the same block as a standalone parallel product.  The
accumulators are locals, never an array: numba's arrays carry no ``noalias``, so
accumulators kept in an array stay in memory.  The explicit vectors beat the scalar
form per core (see :mod:`.simd`).

Rule: it serves products with a long reduction (a conv's ``C_g*kH*kW``, or pixels),
where it keeps up with OpenBLAS.  A short one, like the GEMM path's grad input (``W^T
@ dy``, reduction ``K_g``), stays with BLAS: the 16 horizontal sums at the end of every
block cost as much as a short loop (measured: docs/benchmarks/cpu.md, "Kernel
measurements").  Short reductions want the other form, ``c[m, :] += a[m, k] * b[k, :]``
(vectors along ``c``'s rows, no horizontal sums).  In plain numba that form was slow:
every step loads and stores ``c``, and LLVM guards the loop with runtime alias checks
(and leaves it scalar when a row is not typed contiguous).  With :mod:`.simd`'s vectors
held in registers it no longer has those costs; it needs its operand laid out
pixels-last, which the tiles are not, and is what ``conv/blocked.py`` runs at stride 1, on a
flat frame where it is.
"""

from numba import njit, prange

from ...config import CPU_FASTMATH
from . import simd

BLOCK = 4


@njit(inline="always", fastmath=CPU_FASTMATH)
def _block_scalar(a, m0, b, n0, c, cm, cn):
    """``c[cm:cm+4, cn:cn+4] += a[m0:m0+4] @ b[n0:n0+4].T``: 16 scalar reductions, each
    vectorized by LLVM (and summed on its own)."""
    a0, a1, a2, a3 = a[m0], a[m0 + 1], a[m0 + 2], a[m0 + 3]
    b0, b1, b2, b3 = b[n0], b[n0 + 1], b[n0 + 2], b[n0 + 3]
    c0, c1 = c[cm, cn:cn + 4], c[cm + 1, cn:cn + 4]
    c2, c3 = c[cm + 2, cn:cn + 4], c[cm + 3, cn:cn + 4]
    s00, s01, s02, s03 = c0[0], c0[1], c0[2], c0[3]
    s10, s11, s12, s13 = c1[0], c1[1], c1[2], c1[3]
    s20, s21, s22, s23 = c2[0], c2[1], c2[2], c2[3]
    s30, s31, s32, s33 = c3[0], c3[1], c3[2], c3[3]
    for k in range(a.shape[1]):
        x0, x1, x2, x3 = b0[k], b1[k], b2[k], b3[k]
        y = a0[k]
        s00 += y * x0
        s01 += y * x1
        s02 += y * x2
        s03 += y * x3
        y = a1[k]
        s10 += y * x0
        s11 += y * x1
        s12 += y * x2
        s13 += y * x3
        y = a2[k]
        s20 += y * x0
        s21 += y * x1
        s22 += y * x2
        s23 += y * x3
        y = a3[k]
        s30 += y * x0
        s31 += y * x1
        s32 += y * x2
        s33 += y * x3
    c0[0], c0[1], c0[2], c0[3] = s00, s01, s02, s03
    c1[0], c1[1], c1[2], c1[3] = s10, s11, s12, s13
    c2[0], c2[1], c2[2], c2[3] = s20, s21, s22, s23
    c3[0], c3[1], c3[2], c3[3] = s30, s31, s32, s33


@njit(inline="always", fastmath=CPU_FASTMATH)
def _fma_4x4(y0, y1, y2, y3, b, rows, cols, k, acc):
    """The 16 accumulators ``acc`` plus the outer products of the vectors ``y`` (of
    ``a``'s 4 rows) and the vectors ``b[rows[j], cols[j] + k :]``, ``j < 4``."""
    s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33 = acc
    x0, x1 = simd.load(b, rows[0], cols[0] + k), simd.load(b, rows[1], cols[1] + k)
    x2, x3 = simd.load(b, rows[2], cols[2] + k), simd.load(b, rows[3], cols[3] + k)
    return (simd.fma(y0, x0, s00), simd.fma(y0, x1, s01),
            simd.fma(y0, x2, s02), simd.fma(y0, x3, s03),
            simd.fma(y1, x0, s10), simd.fma(y1, x1, s11),
            simd.fma(y1, x2, s12), simd.fma(y1, x3, s13),
            simd.fma(y2, x0, s20), simd.fma(y2, x1, s21),
            simd.fma(y2, x2, s22), simd.fma(y2, x3, s23),
            simd.fma(y3, x0, s30), simd.fma(y3, x1, s31),
            simd.fma(y3, x2, s32), simd.fma(y3, x3, s33))


@njit(inline="always", fastmath=CPU_FASTMATH)
def block_runs(a, m0, b, rows, cols, c, cm, cn, runs, run, row_step):
    """``c[cm+i, cn+j] += a[m0+i] . (the runs of b for j)``, ``i, j < 4``, where row
    ``m0+i`` of ``a`` is ``runs`` runs of ``run`` values and the runs of ``j`` are
    ``b[rows[j] + q * row_step, cols[j] : cols[j] + run]``, ``q < runs`` (``run`` at
    least a vector).  With one run that is ``a[m0:m0+4] @ b[rows].T``; with several it
    reads a conv's receptive fields straight from a channels-last frame (``conv/tiled.py``),
    one run per kernel row.  16 vector accumulators (:mod:`.simd`); a run's tail is
    one last vector with its already-summed lanes zeroed in ``a``; one joint tree of
    horizontal sums at the end.  Rows are indexed in place, never taken as views (see
    ``simd.load``)."""
    width = simd.lanes(a)
    z = simd.zeros(a)
    acc = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
    steps, rest = run // width, run % width
    for q in range(runs):
        at = (rows[0] + q * row_step, rows[1] + q * row_step,
              rows[2] + q * row_step, rows[3] + q * row_step)
        ka = q * run
        for step in range(steps):
            k = step * width
            acc = _fma_4x4(simd.load(a, m0, ka + k), simd.load(a, m0 + 1, ka + k),
                           simd.load(a, m0 + 2, ka + k), simd.load(a, m0 + 3, ka + k),
                           b, at, cols, k, acc)
        if rest:  # the run's last vector, its lanes already summed zeroed in a
            stop = ka + run
            acc = _fma_4x4(simd.load_last(a, m0, stop, rest),
                           simd.load_last(a, m0 + 1, stop, rest),
                           simd.load_last(a, m0 + 2, stop, rest),
                           simd.load_last(a, m0 + 3, stop, rest), b, at, cols, run - width, acc)
    simd.add_sums_4x4(c, cm, cn, *acc)


@njit(inline="always", fastmath=CPU_FASTMATH)
def _block_vector(a, m0, b, n0, c, cm, cn):
    """``c[cm:cm+4, cn:cn+4] += a[m0:m0+4] @ b[n0:n0+4].T`` in explicit vectors
    (:func:`block_runs` with one run); rows shorter than a vector take single dot
    products."""
    size = a.shape[1]
    if size < simd.lanes(a):
        _dots(a, m0, b, n0, c, cm, cn, BLOCK, BLOCK)
    else:
        block_runs(a, m0, b, (n0, n0 + 1, n0 + 2, n0 + 3), (0, 0, 0, 0), c, cm, cn, 1, size, 0)


# explicit vectors where the host has AVX-512's 32 registers (16 accumulators + 8 loads);
# with 16 registers (AVX2) they would spill, and LLVM's own choice is kept.  ``whole_block``
# is the 4x4 step of a product whose operands' rows come in whole blocks of 4 (callers
# pad them with zero rows), which then needs no edge code
whole_block = _block_vector if simd.WIDE else _block_scalar


@njit(inline="always", fastmath=CPU_FASTMATH)
def block(a, m0, b, n0, c, cm, cn, rows, cols):
    """``c[cm:cm+4, cn:cn+4] += a[m0:m0+4] @ b[n0:n0+4].T`` clipped to a ``rows x cols``
    product: the register block when whole, single dot products at the edges."""
    if m0 + BLOCK <= rows and n0 + BLOCK <= cols:
        whole_block(a, m0, b, n0, c, cm, cn)
    else:
        _dots(a, m0, b, n0, c, cm, cn, min(BLOCK, rows - m0), min(BLOCK, cols - n0))


@njit(inline="always", fastmath=CPU_FASTMATH)
def _dots(a, m0, b, n0, c, cm, cn, rows, cols):
    """``c[cm:cm+rows, cn:cn+cols] += a[m0:m0+rows] @ b[n0:n0+cols].T``, one dot product
    per entry, rows indexed in place: a row view here, even on a path never taken,
    leaves reference-count calls in every block, which slow the vector block down
    (measured: docs/benchmarks/cpu.md, "Kernel measurements")."""
    for i in range(rows):
        for j in range(cols):
            acc = c[cm + i, cn + j]
            for k in range(a.shape[1]):
                acc += a[m0 + i, k] * b[n0 + j, k]
            c[cm + i, cn + j] = acc


@njit(parallel=True, cache=True, nogil=True, fastmath=CPU_FASTMATH)
def gemm_nt(a, b, c):
    """``c[g] += a[g] @ b[g].T`` for ``a (G, M, K)``, ``b (G, N, K)``, ``c (G, M, N)``;
    the last axis of ``a``, ``b`` and ``c`` unit-stride (any strides elsewhere)."""
    groups, rows, cols = c.shape
    mb, nb = (rows + BLOCK - 1) // BLOCK, (cols + BLOCK - 1) // BLOCK
    # m-blocks vary fastest: the 4 rows of b stay in cache while every row of a meets them
    for job in prange(groups * nb * mb):
        g = job // (nb * mb)
        m0 = (job % mb) * BLOCK
        n0 = ((job // mb) % nb) * BLOCK
        block(a[g], m0, b[g], n0, c[g], m0, n0, rows, cols)
