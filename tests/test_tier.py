"""Tier 0 (numbaconv/functional/_tier.py): the first CPU conv forward answers from NumPy
while its kernel compiles in the background; later calls wait and run the kernel."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import tolerance
from test_conv import ALL_CASES, IDS

import numbaconv as nc
from numbaconv import config
from numbaconv import reference as ref
from numbaconv.functional import _tier


@pytest.fixture
def fresh_tier(monkeypatch):
    """Tier 0 on, with no kernel marked ready or pending in this process."""
    monkeypatch.setattr(config, "CPU_TIERING", True)
    monkeypatch.setattr(_tier, "_ready", set())
    monkeypatch.setattr(_tier, "_pending", {})
    monkeypatch.setattr(_tier, "errors", {})
    return _tier


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, x_shape, w_shape, params", ALL_CASES, ids=IDS)
def test_numpy_forward_matches_oracle(op, x_shape, w_shape, params, dtype, rng, monkeypatch,
                                      fresh_tier):
    # every call answered by tier 0 alone (no kernel runs), over the conv tests' grid
    used = []

    def numpy_only(key, run, out, numpy_forward):
        used.append(key)
        numpy_forward(out)

    monkeypatch.setattr(_tier, "forward", numpy_only)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    for b in (rng.standard_normal(w_shape[0]).astype(dtype), None):
        x_before, w_before = x.copy(), w.copy()
        got = getattr(nc, op)(x, w, b, **params)
        want = ref.conv(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64), **params)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, *tolerance(dtype))
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(w, w_before)
    assert len(used) == 2


def test_first_call_numpy_then_kernel(fresh_tier):
    calls = []
    out = np.zeros(3)

    def run(into):
        calls.append("kernel")
        into[:] = 2

    def numpy_forward(into):
        calls.append("numpy")
        into[:] = 1

    fresh_tier.forward(("k", "f4"), run, out, numpy_forward)
    assert out.tolist() == [1, 1, 1] and fresh_tier.answered >= 1
    fresh_tier.forward(("k", "f4"), run, out, numpy_forward)  # waits for the background run
    assert out.tolist() == [2, 2, 2]
    assert calls == ["numpy", "kernel", "kernel"]  # the background run, then this call's
    fresh_tier.forward(("k", "f8"), run, out, numpy_forward)  # a new dtype: tier 0 again
    assert out.tolist() == [1, 1, 1]
    fresh_tier.wait()


def test_off_runs_the_kernel(fresh_tier, monkeypatch):
    monkeypatch.setattr(config, "CPU_TIERING", False)
    out = np.zeros(2)
    fresh_tier.forward(("k", "f4"), lambda o: o.fill(2), out, lambda o: o.fill(1))
    assert out.tolist() == [2, 2] and not fresh_tier._pending


def test_a_failed_numpy_answer_leaves_the_kernel_to_answer(fresh_tier):
    def boom(into):
        raise MemoryError("numpy")

    out = np.zeros(1)
    fresh_tier.forward(("k", "f4"), lambda o: o.fill(2), out, boom)
    assert out[0] == 2 and ("k", "f4") in fresh_tier._ready  # as without tier 0
    assert fresh_tier._pending[("k", "f4")].is_set()  # nothing to wait for
    out[0] = 0
    fresh_tier.forward(("k", "f4"), lambda o: o.fill(2), out, lambda o: o.fill(1))
    assert out[0] == 2


def test_no_thread_to_start_leaves_the_kernel_to_answer(fresh_tier, monkeypatch):
    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    out = np.zeros(1)
    fresh_tier.forward(("k", "f4"), lambda o: o.fill(2), out, lambda o: o.fill(1))
    assert out[0] == 2 and ("k", "f4") in fresh_tier._ready
    fresh_tier.forward(("k", "f4"), lambda o: o.fill(3), out, lambda o: o.fill(1))
    assert out[0] == 3  # nothing hangs


def test_big_layers_skip_tier_0(fresh_tier, monkeypatch, rng):
    monkeypatch.setattr(config, "TIER_MAX_MACS", 10)
    before = fresh_tier.answered
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    got = nc.conv2d(x, w)
    np.testing.assert_allclose(got, ref.conv(x.astype(np.float64), w.astype(np.float64)),
                               *tolerance(np.float32))
    assert fresh_tier.answered == before and not fresh_tier._pending


def test_the_suite_runs_the_kernels():
    assert not config.CPU_TIERING  # tests/conftest.py: every kernel test tests a kernel


def test_a_failed_background_run_fails_the_next_call(fresh_tier):
    def run(into):
        raise ValueError("kernel")

    out = np.zeros(1)
    fresh_tier.forward(("k", "f4"), run, out, lambda o: o.fill(1))
    with pytest.raises(ValueError, match="kernel"):
        fresh_tier.forward(("k", "f4"), run, out, lambda o: o.fill(1))
    assert fresh_tier.errors[("k", "f4")] == "ValueError: kernel"


def test_concurrent_first_calls(fresh_tier):
    # one thread answers from NumPy; the others wait for the background run
    started = threading.Event()

    def run(into):
        started.wait(5)
        into.fill(2)

    outs = [np.zeros(1) for _ in range(4)]
    threads = [threading.Thread(target=fresh_tier.forward,
                                args=(("k", "f4"), run, o, lambda o: o.fill(1)))
               for o in outs]
    for t in threads:
        t.start()
    started.set()
    for t in threads:
        t.join(10)
    assert sorted(o[0] for o in outs) == [1, 2, 2, 2]


FIRST_CALLS = """
import numpy as np, numbaconv as nc
from numbaconv import reference as ref
from numbaconv.functional import _tier
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
b = rng.standard_normal(5).astype(np.float32)
want = ref.conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
first = nc.conv2d(x, w, b, padding=1)
assert _tier.answered == 1 and len(_tier._pending) == 1, (_tier.answered, _tier._pending)
second = nc.conv2d(x, w, b, padding=1)
assert _tier.answered == 1 and len(_tier._ready) == 1 and not _tier.errors
np.testing.assert_allclose(first, want, 1e-4, 1e-4)
np.testing.assert_allclose(second, want, 1e-4, 1e-4)
print("ok")
"""


def test_a_users_process(tmp_path):
    # a fresh process with tier 0 on, as a user runs it: the first result from NumPy,
    # the second from the kernel the background thread compiled (into the shared cache)
    env = dict(os.environ, NUMBACONV_TIERING="1")
    out = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_benchmarks_warm_up_past_tier_0(fresh_tier):
    # numbaconv.bench's warm-up calls again once tier 0 answered, after the compile
    from numbaconv.bench import warm

    calls = []

    def fn():
        out = np.zeros(1)
        fresh_tier.forward(("k", "f4"), lambda o: calls.append("kernel"), out,
                           lambda o: calls.append("numpy"))

    warm(fn)
    assert calls == ["numpy", "kernel", "kernel"]  # tier 0, background, second warm-up
    warm(fn)
    assert calls[3:] == ["kernel"]  # warm already: one call
