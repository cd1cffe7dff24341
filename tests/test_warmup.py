"""``numbaconv warmup``: parallel worker processes fill an empty JIT cache, each kernel
compiled once, by whichever worker claims it; a fresh process then compiles nothing."""

import os

import pytest

from numbaconv import warmup as W


def test_workers_share_the_kernels_and_leave_nothing_to_compile(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    # max-pool's forward compiles for ~4 s: the other worker meanwhile takes the rest
    names = ["max_pool2d", "channel_shuffle", "pad reflect"]
    result = W.warmup("ops", dtype="float32", jobs=2, names=names, stream=None, env=env)
    assert result["check_compiled"] == []  # the last, fresh pass loaded everything
    owners = result["owners"]
    assert {"numbaconv.kernels.cpu.shuffle.channel_shuffle",
            "numbaconv.kernels.cpu.pad.pad2d_forward",
            "numbaconv.kernels.cpu.pool.max_pool2d_forward"} <= set(owners)
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
