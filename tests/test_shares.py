"""kernels/cpu/shares.py: a serial kernel run once per thread through one parallel
driver (a call through a function pointer)."""

import numba
import numpy as np
import pytest

from numbaconv.kernels.cpu import shares


@numba.njit(nogil=True, cache=True)
def _squares(t, threads, args):
    # out[i] = x[i]**2 + c over thread t's span; an empty span at n == 0 divides by zero
    x, out, c, n = args
    lo, hi = shares.share_of(t, threads, x.shape[0])
    if n == 0 and t == threads - 1:
        out[0] = 1 // n
    for i in range(lo, hi):
        out[i] = x[i] * x[i] + c


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_every_share_runs_once_and_covers_its_span(threads):
    x = np.arange(10, dtype=np.float64)
    out = np.full(10, np.nan)
    shares.run_shares(_squares, threads, (x, out, 1.0, 1))
    np.testing.assert_array_equal(out, x * x + 1)
    assert [shares.share_of(t, threads, 10) for t in range(threads)][-1][1] == 10


def test_new_argument_types_compile_a_new_share_not_a_wrong_call():
    x32 = np.arange(6, dtype=np.float32)
    out32 = np.empty(6, np.float32)
    shares.run_shares(_squares, 2, (x32, out32, 2.0, 1))
    np.testing.assert_array_equal(out32, x32 * x32 + 2)
    strided = np.arange(12, dtype=np.float64)[::2]  # layout 'A', another compile
    out = np.empty(6)
    shares.run_shares(_squares, 2, (strided, out, 0.0, 1))
    np.testing.assert_array_equal(out, strided * strided)


def test_a_failing_share_raises_instead_of_returning_half_an_output():
    x = np.arange(4, dtype=np.float64)
    with pytest.raises(RuntimeError, match="failed in 1 of 2 threads"):
        shares.run_shares(_squares, 2, (x, np.empty(4), 0.0, 0))


def test_an_unaligned_array_gets_its_own_share():
    buf = np.zeros(8 * 6 + 1, np.uint8)
    x = buf[1:].view(np.float64)  # numba types it aligned=False: another compile
    assert not x.flags.aligned
    x[:] = np.arange(6)
    out = np.empty(6)
    shares.run_shares(_squares, 2, (x, out, 0.5, 1))
    np.testing.assert_array_equal(out, np.arange(6.0) ** 2 + 0.5)
    assert shares._key((x, out, 0.5, 1)) != shares._key((np.arange(6.0), out, 0.5, 1))
