"""The argument boundary: normalization, formulas, and the errors it raises."""

import numpy as np
import pytest

from numbaconv import analysis
from numbaconv._args import int_tuple, padding_pairs


def test_int_tuple_normalizes():
    assert int_tuple(3, 2, "stride", "op", 1) == (3, 3)
    assert int_tuple((1, 2), 2, "stride", "op", 1) == (1, 2)
    assert int_tuple([4], 1, "stride", "op", 1) == (4,)
    assert int_tuple(np.int64(2), 2, "stride", "op", 1) == (2, 2)
    assert int_tuple((3,), 2, "stride", "op", 1) == (3, 3)  # one value for every dim


@pytest.mark.parametrize("bad", [(), (1, 2, 3), 1.5, "2", None, True, (1, 2.0), (2.0,)])
def test_int_tuple_rejects_wrong_form(bad):
    with pytest.raises(ValueError, match=r"op: stride must be an int or a tuple of 2 ints"):
        int_tuple(bad, 2, "stride", "op", 1)


def test_int_tuple_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"stride must be positive.*got \(0, 1\)"):
        int_tuple((0, 1), 2, "stride", "op", 1)
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        int_tuple(-1, 2, "padding", "op", 0)


def test_padding_forms():
    assert padding_pairs(1, 2, "op") == ((1, 1), (1, 1))
    assert padding_pairs((1, 2), 2, "op") == ((1, 1), (2, 2))
    assert padding_pairs(((0, 1), (2, 3)), 2, "op") == ((0, 1), (2, 3))
    assert padding_pairs("valid", 2, "op") == ((0, 0), (0, 0))
    # 'same': total d*(k-1), the odd element goes at the end (PyTorch's choice)
    assert padding_pairs("same", 2, "op", (3, 4), (1, 2), (1, 1)) == ((1, 1), (3, 3))
    assert padding_pairs("same", 1, "op", (4,), (1,), (1,)) == ((1, 2),)


@pytest.mark.parametrize("bad, msg", [
    ("full", "padding must be an int, a tuple, per-side pairs"),
    (((1, -1), (0, 0)), "padding must be >= 0"),
    (((1,), (0, 0)), "per-side padding must be 2 pairs"),
])
def test_padding_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        padding_pairs(bad, 2, "op", (3, 3), (1, 1), (1, 1))


def test_same_padding_needs_stride_one():
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        padding_pairs("same", 2, "op", (3, 3), (1, 1), (2, 1))


@pytest.mark.parametrize("size, k, s, p, d, expected", [
    (7, 3, 1, 0, 1, 5), (7, 3, 2, 1, 1, 4), (8, 3, 2, 1, 2, 3), (5, 5, 1, 2, 1, 5),
    ((7, 9), (3, 1), (2, 3), ((1, 0), (0, 2)), 1, (3, 4)),
])
def test_conv_output_size(size, k, s, p, d, expected):
    assert analysis.conv_output_size(size, k, s, p, d) == expected


def test_conv_output_size_matches_brute_force():
    # count the window positions that fit, by enumeration
    for n in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, 3):
                    for d in range(1, 3):
                        span = d * (k - 1) + 1
                        fits = sum(1 for start in range(0, n + 2 * p, s) if start + span <= n + 2 * p)
                        assert max(analysis.conv_output_size(n, k, s, p, d), 0) == fits


@pytest.mark.parametrize("size, k, s, p, op, d, expected", [
    (4, 3, 2, 1, 1, 1, 8), (5, 4, 2, 1, 0, 1, 10), (3, 3, 1, 0, 0, 2, 7),
])
def test_conv_transpose_output_size(size, k, s, p, op, d, expected):
    assert analysis.conv_transpose_output_size(size, k, s, p, op, d) == expected


@pytest.mark.parametrize("size, k, s, p, d, ceil, expected", [
    (7, 2, 2, 0, 1, False, 3), (7, 2, 2, 0, 1, True, 4), (6, 3, 2, 1, 1, True, 4),
    (5, 2, None, 0, 1, False, 2), (10, 3, 3, 1, 2, True, 4),
])
def test_pool_output_size(size, k, s, p, d, ceil, expected):
    assert analysis.pool_output_size(size, k, s, p, d, ceil) == expected


def test_pool_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    for n in range(2, 10):
        for k in range(1, 4):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for ceil in (False, True):
                        if k > n + 2 * p:
                            continue
                        t = torch.nn.functional.max_pool1d(
                            torch.zeros(1, 1, n), k, s, p, ceil_mode=ceil)
                        assert analysis.pool_output_size(n, k, s, p, 1, ceil) == t.shape[-1]


@pytest.mark.xdist_group("guard")
def test_xdist_groups_take_effect(request):
    """Under ``--dist loadgroup`` a grouped test's node id carries its group: the
    suite's worker groups (``conftest.py``) rely on it, and with pytest 9.2 and
    pytest-xdist 3.8 they silently stopped working."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@guard")
