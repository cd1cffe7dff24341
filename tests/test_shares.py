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


def test_arguments_other_than_arrays_and_scalars_are_refused():
    with pytest.raises(TypeError, match="arrays and scalars"):
        shares.run_shares(_squares, 2, (np.zeros(2), np.zeros(2), [1.0], 1))
