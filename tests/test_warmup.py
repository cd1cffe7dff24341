"""``numbaconv warmup``: parallel worker processes fill an empty JIT cache, each kernel
compiled once, by whichever worker claims it; a fresh process then compiles nothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from numbaconv import warmup as W


def test_workers_share_the_kernels_and_leave_nothing_to_compile(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    # max-pool's forward compiles for ~2 s: the other worker meanwhile takes the rest
    names = ["max_pool2d", "channel_shuffle", "pad reflect"]
    result = W.warmup("ops", dtype="float32", jobs=2, names=names, stream=None, env=env)
    assert result["check_compiled"] is None  # every kernel read back: no fresh pass
    # a fresh process running the workload from the cache compiles nothing
    out = subprocess.run([sys.executable, "-m", "numbaconv.warmup", "check", "ops", "cnn",
                          "float32", ",".join(names)], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["compiled"] == []
    owners = result["owners"]
    assert {"numbaconv.kernels.cpu.shuffle._channel_shuffle",
            "numbaconv.kernels.cpu.pad._pad2d_forward",
            "numbaconv.kernels.cpu.pool._max_pool2d_forward",  # a share, and its driver
            "numbaconv.kernels.cpu.shares._drive"} <= set(owners)
    compilers = {pid for pid in owners.values() if pid}
    assert len(compilers) == 2  # both workers compiled some of them
    assert result["kernels"] == len(owners) and not result["already"]
    again = W.warmup("ops", jobs=2, names=names, stream=None, env=env)  # stamped: at once
    assert again["already"] and again["kernels"] == len(owners) and not again["owners"]


def test_a_kernel_whose_result_is_used_is_awaited_not_skipped():
    def writes(out):
        for i in range(3):
            out[i] = i
        return

    def returns(x):
        def helper():
            return 1
        return x + helper()

    def nested_only(x):
        f = lambda: 2  # noqa: E731, F841
        return

    assert not W._returns_value(writes)
    assert W._returns_value(returns)
    assert not W._returns_value(nested_only)


def test_a_compiled_kernel_is_read_back_from_the_disk_cache(tmp_path, monkeypatch):
    """What decides whether the fresh check pass runs: a kernel saved to the disk cache
    reads back; one that never reached it (numba only warns when a save fails) does
    not."""
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))

    def twice(a):
        return a * 2

    cached, uncached = numba.njit(cache=True)(twice), numba.njit(twice)
    x = np.ones(3)
    sig = (numba.typeof(x),)
    cached(x), uncached(x)
    assert W._saved(cached, sig)
    assert not W._saved(uncached, sig)


def test_a_kernel_whose_save_failed_is_marked_unsaved(tmp_path, monkeypatch):
    """A worker's compile whose save to the disk cache did not happen (numba only warns)
    leaves an ``.unsaved`` marker, which makes the warm-up run the fresh check pass; a
    saved one leaves none."""
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))

    def thrice(a):
        return a * 3

    def fourfold(a):
        return a * 4

    lost, kept = numba.njit(cache=True)(thrice), numba.njit(cache=True)(fourfold)
    monkeypatch.setattr(lost._cache, "save_overload", lambda sig, data: None)
    sig = (numba.typeof(np.ones(3)),)
    claims = W.Claims(tmp_path)
    for name, kernel in (("lost", lost), ("kept", kept)):
        assert claims.take(name)
        W._compile(claims, name, kernel, sig, lambda kernel=kernel: kernel.compile(sig))
    assert claims.has("lost", "unsaved") and claims.has("lost", "done")
    assert not claims.has("kept", "unsaved") and claims.has("kept", "done")


def test_the_fresh_check_pass_runs_when_asked(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    result = W.warmup("conv2d", jobs=1, stream=None, env=env, check=True)
    assert result["check_compiled"] == [] and result["kernels"] >= 1


def test_claims_are_exclusive(tmp_path):
    claims = W.Claims(tmp_path)
    assert claims.take("k") and not claims.take("k")
    claims.release("k")
    assert claims.owners() == {"k": os.getpid()} and claims.take("k")


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="workload"):
        W.warmup("everything")
    with pytest.raises(ValueError, match="dtype"):
        W.warmup("ops", dtype="float16")
    with pytest.raises(ValueError, match="jobs"):
        W.warmup("ops", jobs=-1)


def test_slowest_kernels_are_claimed_first_then_call_order():
    from types import SimpleNamespace

    def kernel(module, name):
        return SimpleNamespace(py_func=SimpleNamespace(
            __module__=f"numbaconv.kernels.{module}", __qualname__=name))

    calls = [(kernel("cpu.reduce", "channel_moments"), ("f4",)),
             (kernel("cpu.conv.blocked", "_forward_blocked"), ("f4",)),
             (kernel("cpu.elementwise", "axpby"), ("f4",)),
             (kernel("cpu.conv.tiled", "_forward_tiles"), ("f4",)),
             (kernel("cpu.conv.tiled", "_grad_weight_tiles"), ("f4",))]
    order = [d.py_func.__qualname__ for d, _ in W._order(calls)]
    assert order == ["_grad_weight_tiles", "_forward_tiles", "_forward_blocked",
                     "channel_moments", "axpby"]
