"""kernels/cpu/shares.py: a serial kernel run once per thread through one parallel
driver (a call through a function pointer), compiled with numba's IR clean-up."""

import sys

import numpy as np
import pytest
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from numbaconv.kernels.cpu import shares
from numbaconv.kernels.cpu.workspace import scratch


@shares.share()
def _squares(t, threads, args):
    # out[i] = x[i]**2 + c over thread t's span; fail != 0 makes the last share divide
    # by zero, an error numba raises
    x, out, c, fail = args
    lo, hi = shares.share_of(t, threads, x.shape[0])
    if fail and t == threads - 1:
        out[0] = 1 // (fail - fail)
    for i in range(lo, hi):
        out[i] = x[i] * x[i] + c


@shares.share()
def _spans(t, threads, args):
    # what the clean-up's dead-code step once dropped (stores into unpacked arrays that
    # nothing reads afterwards): a per-thread result after the loop, a slice store and
    # an in-place op at the end
    x, partials, out, seen = args
    lo, hi = shares.share_of(t, threads, x.shape[0])
    total = 0.0
    for i in range(lo, hi):
        total += x[i]
    seen[t] += 1
    out[lo:hi] = x[lo:hi]
    out[lo:hi] *= 2.0
    partials[t] = total


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_each_share_runs_once_over_its_own_span(threads):
    x = np.arange(10, dtype=np.float64)
    partials, out, seen = np.zeros(threads), np.zeros(10), np.zeros(threads, np.int64)
    shares.run_shares(_spans, threads, (x, partials, out, seen))
    np.testing.assert_array_equal(seen, np.ones(threads))
    np.testing.assert_array_equal(out, 2 * x)
    spans = [shares.share_of(t, threads, 10) for t in range(threads)]
    assert spans[0][0] == 0 and spans[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    np.testing.assert_array_equal(partials, [x[lo:hi].sum() for lo, hi in spans])


def test_new_argument_types_compile_a_new_share_not_a_wrong_call():
    for x in (np.arange(6, dtype=np.float32), np.arange(12.0)[::2]):  # dtype, layout 'A'
        out = np.empty(6, x.dtype)
        shares.run_shares(_squares, 2, (x, out, 2.0, 0))
        np.testing.assert_array_equal(out, x * x + 2)


def test_a_non_native_byte_order_is_refused_not_read_as_native():
    x = np.arange(4.0)
    shares.run_shares(_squares, 2, (x, np.empty(4), 0.0, 0))  # the native key is cached
    swapped = x.astype(">f8")
    with pytest.raises(Exception, match="(?i)dtype"):
        shares.run_shares(_squares, 2, (swapped, np.empty(4), 0.0, 0))


def test_a_failing_share_raises_instead_of_returning_half_an_output():
    x = np.arange(4, dtype=np.float64)
    with pytest.raises(RuntimeError, match="failed in 1 of 2 threads"):
        shares.run_shares(_squares, 2, (x, np.empty(4), 0.0, 1))


def test_one_thread_runs_the_share_on_the_caller_and_raises_its_error():
    """One thread starts no parallel region: the share runs through its dispatcher, so
    its own error reaches the caller."""
    x = np.arange(4, dtype=np.float64)
    out = np.empty(4)
    shares.run_shares(_squares, 1, (x, out, 1.0, 0))
    np.testing.assert_array_equal(out, x * x + 1)
    with pytest.raises(ZeroDivisionError):
        shares.run_shares(_squares, 1, (x, np.empty(4), 0.0, 1))


@intrinsic
def _unmanaged(typingctx, arr):
    """Whether ``arr`` carries no meminfo (numba then skips its reference counts)."""
    def codegen(context, builder, signature, values):
        array = context.make_array(arr)(context, builder, value=values[0])
        return builder.icmp_unsigned("==", array.meminfo,
                                     cgutils.get_null_value(array.meminfo.type))
    return types.boolean(arr), codegen


@shares.share()
def _views(t, threads, args):
    # each row a view of x taken in the loop (a view adds to the count of the array it
    # views, where the array has one); seen[t] = whether x came without a meminfo
    x, out, seen = args
    lo, hi = shares.share_of(t, threads, x.shape[0])
    for i in range(lo, hi):
        row = x[i]
        out[i] = row.sum()
    seen[t] = _unmanaged(x)


@pytest.mark.parametrize("threads", [2, 3])
def test_shares_see_their_arrays_without_reference_counts(threads):
    """Run in parallel, a share's arrays arrive without a meminfo (numba's parallel
    driver passes them borrowed): the views a share takes touch no reference count that
    every thread would write, and the arrays come back with the references they had."""
    x = np.arange(24.0).reshape(8, 3)
    out, seen = np.zeros(8), np.zeros(threads, np.bool_)
    before = sys.getrefcount(x), sys.getrefcount(out)
    shares.run_shares(_views, threads, (x, out, seen))
    assert seen.all()
    np.testing.assert_array_equal(out, x.sum(axis=1))
    assert (sys.getrefcount(x), sys.getrefcount(out)) == before


@intrinsic
def _allocation_start(typingctx, arr):
    """Where the allocation that ``arr`` views starts (its meminfo's data pointer)."""
    def codegen(context, builder, signature, values):
        array = context.make_array(arr)(context, builder, value=values[0])
        data = context.nrt.meminfo_data(builder, array.meminfo)
        return builder.ptrtoint(data, cgutils.intp_t)
    return types.intp(arr), codegen


@shares.share()
def _private(t, threads, args):
    # per thread: each buffer's address modulo a line, its bytes after the start of its
    # allocation (the header's line), and its size and sum after filling it
    counts, report = args
    for j in range(counts.shape[0]):
        a, b = shares.private(counts[j], np.float32), shares.private(counts[j], np.int64)
        a[:] = t
        b[:] = t
        report[t, j, 0] = a.ctypes.data % shares.LINE_BYTES
        report[t, j, 1] = b.ctypes.data % shares.LINE_BYTES
        report[t, j, 2] = min(a.ctypes.data - _allocation_start(a),
                              b.ctypes.data - _allocation_start(b))
        report[t, j, 3] = a.size + b.size
        report[t, j, 4] = a.sum() + b.sum()


def test_private_buffers_start_on_a_cache_line_of_their_own():
    """A line-aligned buffer with a whole line between it and the start of its
    allocation (the line of the allocation's header, and of whatever lies before)."""
    counts = np.array([0, 1, 5, 16, 17, 1000])
    report = np.zeros((2, len(counts), 5), np.int64)
    shares.run_shares(_private, 2, (counts, report))
    np.testing.assert_array_equal(report[..., :2], 0)
    assert (report[..., 2] >= shares.LINE_BYTES).all()
    np.testing.assert_array_equal(report[..., 3], [2 * counts] * 2)
    np.testing.assert_array_equal(report[1, :, 4], 2 * counts)


def test_scratch_starts_on_a_cache_line():
    """Every buffer, new or grown, whatever its size and dtype (NumPy's own
    allocations are 16-byte aligned: a quarter of them would start on a line)."""
    for i in range(40):
        for dtype in (np.float32, np.float64):
            shape = (3, 5 + 7 * i) if i % 2 else (11 * i + 1,)
            buf = scratch(f"test_line_{i % 10}_{np.dtype(dtype).char}", shape, dtype)
            assert buf.shape == shape and buf.dtype == dtype and buf.flags.c_contiguous
            assert buf.ctypes.data % shares.LINE_BYTES == 0
