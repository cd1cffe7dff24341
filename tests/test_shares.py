"""kernels/cpu/shares.py: a serial kernel run once per thread through one parallel
driver (a call through a function pointer), compiled with numba's IR clean-up."""

import numpy as np
import pytest

from numbaconv.kernels.cpu import shares


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
