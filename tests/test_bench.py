"""The benchmark helpers behind ``numbaconv bench``: they run, report a geometric mean,
and the memory measurement holds the "small constant factor" rule (a property of the
code, not a timing: no whole-batch workspaces)."""

import numpy as np
import pytest

from numbaconv import bench
from numbaconv.cli import main


def test_suite_table_runs_one_case_and_reports_the_geometric_mean():
    text = bench.suite_table(repeat=1, names=["small 3x3 16->16 32x32 b2"])
    assert "| small 3x3 16->16 32x32 b2 |" in text
    assert "geometric mean" in text or "not installed" in text


def test_geometric_mean():
    assert bench.geometric_mean([2.0, 0.5, None]) == pytest.approx(1.0)
    assert np.isnan(bench.geometric_mean([]))


@pytest.mark.parametrize("name", [
    "small 3x3 16->16 32x32 b2",
    # the depthwise kernels compile for ~35 s: in the worker of the other depthwise cases
    pytest.param("depthwise 3x3 s2 128 28x28 b8",
                 marks=pytest.mark.xdist_group("depthwise-float32")),
])
def test_forward_backward_memory_is_a_small_multiple_of_inputs_and_outputs(name):
    assert bench.peak_memory_ratio(name) < 2.5


def test_paired_medians_alternate_blocks_each_led_by_an_untimed_call():
    calls = []
    bench.paired_medians(lambda: calls.append("a"), lambda: calls.append("b"), repeat=4,
                         blocks=2)
    assert "".join(calls) == "aaabbbaaabbb"


def test_bench_filter_without_match_is_an_error(capsys):
    assert main(["bench", "--filter", "no such case"]) == 2
    assert "no case matches" in capsys.readouterr().err


def test_compile_report_times_each_kernel_in_a_fresh_process():
    """``numbaconv bench --compile``: a fresh process, an empty cache, one row per
    top-level compile (helpers count to their caller), and a total that adds them up."""
    from numbaconv import compile_report

    result = compile_report.run("conv2d")
    names = [r["kernel"] for r in result["rows"]]
    assert names == ["cpu.conv.direct.conv2d_forward_serial"]  # nothing the call skips
    assert 0 < result["rows"][0]["seconds"] <= result["wall"]
    text = compile_report.table("conv2d")
    assert "cpu.conv.direct.conv2d_forward_serial" in text and "total compile" in text
    with pytest.raises(ValueError, match="workload"):
        compile_report.run("nope")


def test_random_cases_are_valid_varied_and_reproducible():
    from numbaconv._args import conv_spec
    from numbaconv.bench import random_cases

    cases = random_cases(40, seed=3)
    assert len(cases) == 40 and random_cases(40, seed=3) == cases
    assert random_cases(40, seed=4) != cases
    kinds = {name.split()[0] for name in cases}
    assert {"dense", "depthwise", "pointwise", "thin"} <= kinds
    sizes = set()
    for name, (op, shapes, params, dtype) in cases.items():
        assert op == "conv2d" and dtype in ("f4", "f8")
        x = np.broadcast_to(np.zeros((), dtype), shapes[0])
        w = np.broadcast_to(np.zeros((), dtype), shapes[1])
        spec = conv_spec("conv2d", 2, x, w, None, params["stride"], params["padding"],
                         params["dilation"], params["groups"], "zeros", False)
        macs = np.prod(spec.out_size) * spec.batch * spec.out_channels * np.prod(
            shapes[1][1:])
        assert macs <= 1.5e9, name
        sizes.update(shapes[0][2:])
    assert any(s % 2 for s in sizes) and min(sizes) >= 7 and max(sizes) <= 224


def test_bench_random_needs_a_positive_count(capsys):
    from numbaconv.cli import main

    assert main(["bench", "--random", "0"]) == 2
    assert "positive" in capsys.readouterr().err
