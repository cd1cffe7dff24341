"""SIMD vectors in numba: a vector type and the few operations the matrix-product block
(``gemm.block_runs``), the depthwise taps (``depthwise._gather_taps``, ``_dot_taps``), the
blocked convs (``blocked._taps``, ``channel_blocked._taps`` and its writes,
``channel_blocked._write``) and the stride-2 phase split and merge
(``conv.split_columns``, ``tiled.merge_column_phases``) need, written as LLVM
intrinsics.

numba has no vector types; a loop of scalar reductions is left to LLVM's loop
vectorizer, which gives every reduction its own vector accumulator and its own
horizontal sum, plus a remainder loop. With explicit vectors the block keeps 16
accumulators in registers, takes a reduction's tail as one more vector whose
already-summed lanes are zeroed (:func:`load_last`), and sums all 16 together at the end
(:func:`add_sums_4x4`): one tree that halves the *set* of vectors at each level (pairs
of vectors become one vector of half-segments), 15 vector adds and 30 shuffles instead
of 16 separate trees, whose lanes come out in the block's row-major order and are added
to ``c`` four at a time (rows of 4, not extracted lanes). It is never slower than the
scalar reductions and gains most on short reductions, in float32 and float64
(measured: docs/benchmarks/cpu.md, "Kernel measurements").

Two rules decide whether this pays, both measured there: rows are indexed in place
(:func:`load` takes the 2-D array and a row), because a row *view* carries a
reference count whose increments and decrements, left in every block by any branch
numba's pruning cannot see through, cost more than a short block; and the loop counts
whole vectors (``range(size // width)``), not a stepped range (which left the first
version slower than the scalar block).

The width is the host's widest: 64 bytes with AVX-512, else 32 (``VECTOR_BYTES``);
numba's cache is keyed by the host CPU, so a cached kernel never runs on another.
Loads read ``width`` consecutive elements with no bounds check: callers keep them
inside the array (:func:`load_range` and :func:`store_range` touch only their unmasked
lanes), whose rows must be unit-stride (the row stride is read from the array; within a
row, elements are taken to follow each other in memory).
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model

WIDE = bool(llvm.get_host_cpu_features().get("avx512f"))
VECTOR_BYTES = 64 if WIDE else 32
LINE_BYTES = 64  # a cache line (x86-64, Arm's Neoverse): what threads must not share


class Vector(types.Type):
    """``width`` lanes of a float ``dtype``, held in one SIMD register."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.width = VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"Vector({dtype} x {self.width})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        lane = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(lane, fe_type.width))


def _vector_of(arr):
    if not isinstance(arr, types.Array) or not isinstance(arr.dtype, types.Float):
        raise TypingError(f"simd: expected a float array, got {arr}")
    return Vector(arr.dtype)


def _address(context, builder, aryty, ary, row, col):
    """A pointer to ``ary[row, col]`` of a 2-D array whose rows are unit-stride (the
    caller's contract: the row stride is read from the array, the column step is the
    item size)."""
    arr = context.make_array(aryty)(context, builder, ary)
    row_stride = cgutils.unpack_tuple(builder, arr.strides, 2)[0]
    intp = row_stride.type
    base = builder.ptrtoint(arr.data, intp)
    offset = builder.add(builder.mul(row, row_stride),
                         builder.mul(col, ir.Constant(intp, aryty.dtype.bitwidth // 8)))
    return builder.add(base, offset)


def _load(context, builder, vt, address):
    lltype = context.get_value_type(vt)
    ptr = builder.inttoptr(address, lltype.as_pointer())
    return builder.load(ptr, align=vt.dtype.bitwidth // 8)


def _int_vector(values, bits=32):
    kind = ir.IntType(bits)
    return ir.Constant(ir.VectorType(kind, len(values)), [ir.Constant(kind, v) for v in values])


@intrinsic
def lanes(typingctx, arr):
    """The number of lanes of ``arr``'s vectors (a compile-time constant)."""
    vt = _vector_of(arr)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, vt.width)
    return types.intp(arr), codegen


@intrinsic
def zeros(typingctx, arr):
    """A vector of zeros of ``arr``'s dtype."""
    vt = _vector_of(arr)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr), codegen


def _check_2d(name, arr, *indices):
    if arr.ndim != 2 or not all(isinstance(i, types.Integer) for i in indices):
        raise TypingError(f"simd.{name}: expected a 2-D array and integer indices")


def _intp_args(context, builder, sig, args):
    return [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:])]


@intrinsic
def load(typingctx, arr, row, col):
    """``arr[row, col : col + width]`` (rows indexed in place: a row view would carry a
    reference count, and its increments and decrements cost more than a short block)."""
    vt = _vector_of(arr)
    _check_2d("load", arr, row, col)

    def codegen(context, builder, sig, args):
        row_, col_ = _intp_args(context, builder, sig, args)
        return _load(context, builder, vt, _address(context, builder, sig.args[0], args[0],
                                                    row_, col_))
    return vt(arr, row, col), codegen


@intrinsic
def load_last(typingctx, arr, row, stop, count):
    """``arr[row, stop - width : stop]`` with all but its last ``count`` lanes zeroed:
    the tail of a reduction whose earlier lanes were already summed
    (``width <= stop``)."""
    vt = _vector_of(arr)
    _check_2d("load_last", arr, row, stop, count)

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        row_, stop_, count_ = _intp_args(context, builder, sig, args)
        width = ir.Constant(intp, vt.width)
        start = builder.sub(stop_, width)
        vec = _load(context, builder, vt, _address(context, builder, sig.args[0], args[0],
                                                   row_, start))
        first = builder.sub(width, count_)  # lanes below it were summed already
        lane_ids = _int_vector(range(vt.width), intp.width)
        splat = builder.insert_element(ir.Constant(lane_ids.type, None), first,
                                       ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(splat, splat, _int_vector([0] * vt.width))
        keep = builder.icmp_signed(">=", lane_ids, splat)
        return builder.select(keep, vec, ir.Constant(vec.type, None))
    return vt(arr, row, stop, count), codegen


def _flat_address(context, builder, aryty, ary, idx):
    """A pointer to ``ary[idx]`` of a 1-D array with unit stride."""
    arr = context.make_array(aryty)(context, builder, ary)
    base = builder.ptrtoint(arr.data, idx.type)
    return builder.add(base, builder.mul(idx, ir.Constant(idx.type,
                                                          aryty.dtype.bitwidth // 8)))


def _check_1d(name, arr, idx):
    if arr.ndim != 1 or not isinstance(idx, types.Integer):
        raise TypingError(f"simd.{name}: expected a 1-D array and an integer index")


@intrinsic
def load_flat(typingctx, arr, idx):
    """``arr[idx : idx + width]`` of a unit-stride 1-D array."""
    vt = _vector_of(arr)
    _check_1d("load_flat", arr, idx)

    def codegen(context, builder, sig, args):
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        return _load(context, builder, vt, _flat_address(context, builder, sig.args[0],
                                                         args[0], index))
    return vt(arr, idx), codegen


@intrinsic
def store_flat(typingctx, arr, idx, vec):
    """``arr[idx : idx + width] = vec`` on a unit-stride 1-D array."""
    vt = _vector_of(arr)
    _check_1d("store_flat", arr, idx)
    if vec != vt:
        raise TypingError(f"simd.store_flat: expected a {vt}, got {vec}")

    def codegen(context, builder, sig, args):
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        address = _flat_address(context, builder, sig.args[0], args[0], index)
        ptr = builder.inttoptr(address, context.get_value_type(vt).as_pointer())
        builder.store(args[2], ptr, align=vt.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(arr, idx, vec), codegen


@intrinsic
def load_transposed(typingctx, arr, idx):
    """The square of ``width`` vectors ``arr[idx + j*width : idx + (j+1)*width]`` (a
    unit-stride 1-D array), transposed: a tuple whose vector ``c`` holds lane ``c`` of
    each, in order.  ``log2(width)`` rounds of two-vector shuffles, each swapping one bit
    of the row index with that bit of the lane index (64 shuffles for 16 lanes, where
    the scalar copy makes 256 loads and stores)."""
    vt = _vector_of(arr)
    _check_1d("load_transposed", arr, idx)
    width = vt.width
    square = types.UniTuple(vt, width)

    def codegen(context, builder, sig, args):
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr_ty = context.get_value_type(vt).as_pointer()
        rows = []
        for j in range(width):
            at = builder.add(index, ir.Constant(index.type, j * width))
            address = _flat_address(context, builder, sig.args[0], args[0], at)
            rows.append(builder.load(builder.inttoptr(address, ptr_ty),
                                     align=vt.dtype.bitwidth // 8))
        step = 1
        while step < width:  # swap bit `step` of the row with bit `step` of the lane
            low = [lane if not lane & step else width + lane - step for lane in range(width)]
            high = [lane + step if not lane & step else width + lane for lane in range(width)]
            for i in range(width):
                if not i & step:
                    a, b = rows[i], rows[i + step]
                    rows[i] = builder.shuffle_vector(a, b, _int_vector(low))
                    rows[i + step] = builder.shuffle_vector(a, b, _int_vector(high))
            step *= 2
        return context.make_tuple(builder, sig.return_type, rows)
    return square(arr, idx), codegen


def _splatted(context, builder, vt, lane):
    """The vector of type ``vt`` with the scalar ``lane`` in every lane."""
    lltype = context.get_value_type(vt)
    one = builder.insert_element(ir.Constant(lltype, None), lane,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, _int_vector([0] * vt.width))


@intrinsic
def splat(typingctx, arr, value):
    """A vector of ``arr``'s dtype with ``value`` in every lane."""
    vt = _vector_of(arr)
    if not isinstance(value, (types.Float, types.Integer)):
        raise TypingError("simd.splat: expected a number")

    def codegen(context, builder, sig, args):
        lane = context.cast(builder, args[1], sig.args[1], vt.dtype)
        return _splatted(context, builder, vt, lane)
    return vt(arr, value), codegen


@intrinsic
def broadcast(typingctx, arr, row, col):
    """``arr[row, col]`` in every lane, read in place like :func:`load` (no negative
    index wrap-around: ``col`` is taken as it is; past the row's end it reads on into
    the next rows of a C-contiguous ``arr``)."""
    vt = _vector_of(arr)
    _check_2d("broadcast", arr, row, col)

    def codegen(context, builder, sig, args):
        row_, col_ = _intp_args(context, builder, sig, args)
        address = _address(context, builder, sig.args[0], args[0], row_, col_)
        lane_ty = context.get_value_type(vt.dtype)
        value = builder.load(builder.inttoptr(address, lane_ty.as_pointer()))
        return _splatted(context, builder, vt, value)
    return vt(arr, row, col), codegen


@intrinsic
def fma(typingctx, x, y, acc):
    """``x * y + acc``, lane by lane, one fused multiply-add."""
    if not (isinstance(acc, Vector) and x == acc and y == acc):
        raise TypingError("simd.fma: expected three vectors of one type")

    def codegen(context, builder, sig, args):
        lltype = args[2].type
        name = f"llvm.fma.v{lltype.count}{lltype.element.intrinsic_name}"
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(lltype, [lltype] * 3), name)
        return builder.call(fn, list(args))
    return acc(x, y, acc), codegen


def _joint_tree(builder, vectors, width):
    """The horizontal sums of ``vectors`` (a power of two of them) as few vectors:
    ``[(vector, ids)]`` and ``seg``, where lanes ``s*seg .. s*seg+seg-1`` of a vector
    add up to the sum of ``vectors[ids[s]]``.

    Each level adds pairs of vectors into one: ``u`` and ``v`` hold segments of
    ``seg`` lanes (one partial sum each); the result holds ``u``'s segments, then
    ``v``'s, each halved (its lower half plus its upper half).  It stops when one
    vector is left or the segments are single lanes; the ids stay in order."""
    items = [(vec, [i]) for i, vec in enumerate(vectors)]  # (vector, ids of its segments)
    seg = width
    while len(items) > 1 and seg > 1:
        half, merged = seg // 2, []
        for (u, u_ids), (v, v_ids) in zip(items[::2], items[1::2]):
            lower, upper = [], []
            for origin in (0, width):  # u's lanes are 0.., v's width..
                for s in range(len(u_ids)):
                    start = origin + s * seg
                    lower += range(start, start + half)
                    upper += range(start + half, start + seg)
            total = builder.fadd(builder.shuffle_vector(u, v, _int_vector(lower)),
                                 builder.shuffle_vector(u, v, _int_vector(upper)))
            merged.append((total, u_ids + v_ids))
        items, seg = merged, half
    return items, seg


@intrinsic
def total(typingctx, vec):
    """The sum of ``vec``'s lanes (halving tree)."""
    if not isinstance(vec, Vector):
        raise TypingError("simd.total: expected a vector")

    def codegen(context, builder, sig, args):
        value, width = args[0], vec.width
        while width > 1:
            half = width // 2
            value = builder.fadd(builder.shuffle_vector(value, value, _int_vector(range(half))),
                                 builder.shuffle_vector(value, value,
                                                        _int_vector(range(half, width))))
            width = half
        return builder.extract_element(value, ir.Constant(ir.IntType(32), 0))
    return vec.dtype(vec), codegen


@intrinsic
def add_sums_4x4(typingctx, c, row, col, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11,
                 v12, v13, v14, v15):
    """``c[row + i, col + j] += sum(v[4 * i + j])`` for a 2-D array ``c`` with unit-stride
    rows: one joint tree of sums (:func:`_joint_tree`), whose lanes come out in the
    block's row-major order, so each row of 4 is one short vector added to ``c`` in
    place (no lane extracted)."""
    vectors = (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)
    if not isinstance(v0, Vector) or any(v != v0 for v in vectors) or not 4 <= v0.width <= 16:
        raise TypingError("simd.add_sums_4x4: expected 16 vectors of one type, 4-16 lanes")
    if not isinstance(c, types.Array) or c.dtype != v0.dtype:
        raise TypingError("simd.add_sums_4x4: expected an array of the vectors' dtype")
    _check_2d("add_sums_4x4", c, row, col)

    def codegen(context, builder, sig, args):
        row_, col_ = [context.cast(builder, v, t, types.intp)
                      for v, t in zip(args[1:3], sig.args[1:3])]
        items, seg = _joint_tree(builder, args[3:], v0.width)
        assert seg == 1
        lltype = ir.VectorType(context.get_value_type(v0.dtype), 4)
        intp = context.get_value_type(types.intp)
        for vec, ids in items:
            for q in range(len(ids) // 4):  # ids 4q.. of this vector: one row of the block
                four = builder.shuffle_vector(vec, vec, _int_vector(range(4 * q, 4 * q + 4)))
                r = builder.add(row_, ir.Constant(intp, ids[4 * q] // 4))
                ptr = builder.inttoptr(_address(context, builder, sig.args[0], args[0], r, col_),
                                       lltype.as_pointer())
                align = v0.dtype.bitwidth // 8
                builder.store(builder.fadd(builder.load(ptr, align=align), four), ptr,
                              align=align)
        return context.get_dummy_value()
    return types.none(c, row, col, *vectors), codegen


@intrinsic
def deinterleave(typingctx, u, v):
    """The even and the odd lanes of ``u`` followed by ``v``: ``(evens, odds)``, each
    a vector (two shuffles; a row's split into its stride-2 column phases)."""
    if not isinstance(u, Vector) or v != u:
        raise TypingError("simd.deinterleave: expected two vectors of one type")
    pair = types.UniTuple(u, 2)

    def codegen(context, builder, sig, args):
        evens = builder.shuffle_vector(args[0], args[1], _int_vector(range(0, 2 * u.width, 2)))
        odds = builder.shuffle_vector(args[0], args[1], _int_vector(range(1, 2 * u.width, 2)))
        return context.make_tuple(builder, sig.return_type, [evens, odds])
    return pair(u, v), codegen


def _lane_range(builder, width, lo, hi):
    """The mask of lanes ``lo <= l < hi`` (``lo``, ``hi``: intp values)."""
    lane_ids = _int_vector(range(width), lo.type.width)

    def splat(value):
        one = builder.insert_element(ir.Constant(lane_ids.type, None), value,
                                     ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, one, _int_vector([0] * width))
    return builder.and_(builder.icmp_signed(">=", lane_ids, splat(lo)),
                        builder.icmp_signed("<", lane_ids, splat(hi)))


def _masked(context, builder, vt, aryty, ary, row, col, lo, hi):
    """What a masked load or store of ``vt`` at ``ary[row, col]`` needs: the vector's
    LLVM type, a pointer to it, the alignment, the mask of lanes ``lo <= l < hi`` and the
    intrinsic's type suffix.  The suffix names a typed pointer (``.p0v16f32``), which
    LLVM's auto-upgrade rewrites for its opaque pointers (checked on numba 0.68's)."""
    lltype = context.get_value_type(vt)
    ptr = builder.inttoptr(_address(context, builder, aryty, ary, row, col),
                           lltype.as_pointer())
    align = ir.Constant(ir.IntType(32), vt.dtype.bitwidth // 8)
    kind = f"v{vt.width}{lltype.element.intrinsic_name}"
    return lltype, ptr, align, _lane_range(builder, vt.width, lo, hi), f"{kind}.p0{kind}"


@intrinsic
def load_range(typingctx, arr, row, col, lo, hi):
    """``arr[row, col + l]`` in the lanes ``lo <= l < hi``, 0 in the others, whose
    memory is never read (a masked load: ``col`` may lie before the row's start, or
    ``col + width`` past its end, where those lanes are masked)."""
    vt = _vector_of(arr)
    _check_2d("load_range", arr, row, col, lo, hi)

    def codegen(context, builder, sig, args):
        row_, col_, lo_, hi_ = _intp_args(context, builder, sig, args)
        lltype, ptr, align, mask, kind = _masked(context, builder, vt, sig.args[0], args[0],
                                                 row_, col_, lo_, hi_)
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(lltype, [ptr.type, align.type, mask.type, lltype]),
            f"llvm.masked.load.{kind}")
        return builder.call(fn, [ptr, align, mask, ir.Constant(lltype, None)])
    return vt(arr, row, col, lo, hi), codegen


@intrinsic
def interleave(typingctx, u, v):
    """The lanes of ``u`` and ``v`` alternating, ``u[0], v[0], u[1], v[1], ...``, as two
    vectors (the first half, the second): :func:`deinterleave` undone."""
    if not isinstance(u, Vector) or v != u:
        raise TypingError("simd.interleave: expected two vectors of one type")
    pair = types.UniTuple(u, 2)

    def codegen(context, builder, sig, args):
        order = [i // 2 + (i % 2) * u.width for i in range(2 * u.width)]
        low = builder.shuffle_vector(args[0], args[1], _int_vector(order[:u.width]))
        high = builder.shuffle_vector(args[0], args[1], _int_vector(order[u.width:]))
        return context.make_tuple(builder, sig.return_type, [low, high])
    return pair(u, v), codegen


@intrinsic
def store_range(typingctx, arr, row, col, vec, lo, hi):
    """``arr[row, col + l] = vec[l]`` in the lanes ``lo <= l < hi`` only (a masked
    store: the memory of the other lanes is neither read nor written)."""
    vt = _vector_of(arr)
    _check_2d("store_range", arr, row, col, lo, hi)
    if vec != vt:
        raise TypingError(f"simd.store_range: expected a {vt}, got {vec}")

    def codegen(context, builder, sig, args):
        row_, col_, lo_, hi_ = [context.cast(builder, args[i], sig.args[i], types.intp)
                                for i in (1, 2, 4, 5)]
        lltype, ptr, align, mask, kind = _masked(context, builder, vt, sig.args[0], args[0],
                                                 row_, col_, lo_, hi_)
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [lltype, ptr.type, align.type, mask.type]),
            f"llvm.masked.store.{kind}")
        builder.call(fn, [args[3], ptr, align, mask])
        return context.get_dummy_value()
    return types.none(arr, row, col, vec, lo, hi), codegen
