"""Plans (``numbaconv/functional/_plans.py``): a repeated conv call runs its kernel
directly, with the full path's result, and never where the full path would do
something else (another array type, an edge case, a bad argument, changed settings)."""

import numpy as np
import pytest
from conftest import torch

import numbaconv as nc
from numbaconv import config
from numbaconv import reference as ref

CASES = [
    # x shape, w shape, params
    ((2, 4, 7, 9), (6, 2, 3, 3), dict(padding=1, groups=2)),
    ((1, 3, 8, 8), (5, 3, 3, 2), dict(stride=2, dilation=(2, 1), padding=(2, 0), flip=True)),
    ((2, 2, 6, 7), (3, 2, 3, 3), dict(padding=2, padding_mode="reflect")),
    ((3, 2, 5, 5), (4, 2, 1, 1), dict()),
]


@pytest.mark.parametrize("x_shape, w_shape, params", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_repeated_calls_match_the_oracle_with_new_values(x_shape, w_shape, params, bias, rng):
    for _ in range(3):  # the first call builds the plan, the next ones run it
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        b = rng.standard_normal(w_shape[0]) if bias else None
        y = nc.conv2d(x, w, b, **params)
        np.testing.assert_allclose(y, ref.conv(x, w, b, **params), rtol=1e-10, atol=1e-10)
        gy = rng.standard_normal(y.shape)
        gx, gw, gb = nc.conv2d_backward(gy, x, w, b, **params)
        ex, ew, eb = ref.conv_backward(gy, x, w, b, **params)
        np.testing.assert_allclose(gx, ex, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gw, ew, rtol=1e-10, atol=1e-10)
        assert (gb is None) == (not bias)
        if bias:
            np.testing.assert_allclose(gb, eb, rtol=1e-10, atol=1e-10)
    assert any(p is not None for p in nc.conv2d.plans.values())
    assert any(p is not None for p in nc.conv2d_backward.plans.values())


def test_conv1d_repeats(rng):
    x, w = rng.standard_normal((2, 3, 11)), rng.standard_normal((4, 3, 3))
    first = nc.conv1d(x, w, stride=2, padding=1)
    again = nc.conv1d(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(again[:, :, None], ref.conv(x[:, :, None], w[:, :, None],
                                                          stride=(1, 2), padding=(0, 1)),
                               atol=1e-12)
    gx, gw, _ = nc.conv1d_backward(np.ones_like(first), x, w, stride=2, padding=1)
    gx2, gw2, _ = nc.conv1d_backward(np.ones_like(first), x, w, stride=2, padding=1)
    np.testing.assert_array_equal(gx, gx2)
    np.testing.assert_array_equal(gw, gw2)


def test_a_settings_change_drops_the_plans(rng, monkeypatch):
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    nc.conv2d(x, w, padding=1)
    assert nc.conv2d.plans
    monkeypatch.setattr(config, "CONV_ALGORITHM", "direct")
    y = nc.conv2d(x, w, padding=1)  # drops every plan, then plans the direct kernel
    assert len(nc.conv2d.plans) == 1
    plan = next(iter(nc.conv2d.plans.values()))
    assert plan.__closure__ is not None and any(
        getattr(c.cell_contents, "__name__", None) == "conv2d_forward"
        for c in plan.__closure__)
    np.testing.assert_allclose(y, ref.conv(x, w, padding=1), atol=1e-12)


def test_other_array_types_and_edge_cases_take_the_full_path(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    nc.conv2d(x, w)  # planned
    unbatched = nc.conv2d(x[0], w)
    assert unbatched.shape == (4, 4, 4)
    np.testing.assert_allclose(unbatched, nc.conv2d(x, w)[0], atol=1e-12)
    empty = nc.conv2d(x[:0], w)
    assert empty.shape == (0, 4, 4, 4)
    big_endian = x.astype(">f8")
    np.testing.assert_allclose(nc.conv2d(big_endian, w), nc.conv2d(x, w), atol=1e-12)
    if torch is not None:
        out = nc.conv2d(torch.from_numpy(x), torch.from_numpy(w))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), nc.conv2d(x, w), atol=1e-12)


def test_bad_arguments_still_raise_after_a_plan(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    nc.conv2d(x, w, stride=1)
    nc.conv2d(x, w, stride=1)
    with pytest.raises((TypeError, ValueError)):
        nc.conv2d(x, w, stride=True)
    with pytest.raises(TypeError):
        nc.conv2d(x.astype(np.float32), w)
    y = nc.conv2d(x, w)
    nc.conv2d_backward(np.ones_like(y), x, w)
    with pytest.raises(ValueError, match="grad_output"):
        nc.conv2d_backward(np.ones((2, 4, 3, 3)), x, w)
    with pytest.raises(TypeError):
        nc.conv2d_backward(np.ones_like(y, dtype=np.float32), x, w)


def test_non_contiguous_inputs_with_a_planned_signature(rng):
    x, w = rng.standard_normal((2, 3, 8, 10)), rng.standard_normal((4, 3, 3, 3))
    nc.conv2d(x, w, padding=1)
    np.testing.assert_allclose(nc.conv2d(np.asfortranarray(x), w, padding=1),
                               ref.conv(x, w, padding=1), atol=1e-12)
    big = np.zeros((2, 6, 16, 10))
    big[:, ::2, ::2, :] = x
    copy = big.copy()
    np.testing.assert_allclose(nc.conv2d(big[:, ::2, ::2, :], w, padding=1),
                               ref.conv(x, w, padding=1), atol=1e-12)
    np.testing.assert_array_equal(big, copy)


def test_settings_generation_counts_changes_not_stream_state(monkeypatch):
    before = config.generation
    monkeypatch.setattr(config, "DIRECT_MAX_MACS", config.DIRECT_MAX_MACS + 1)
    assert config.generation == before + 1
    monkeypatch.setattr(config, "SOME_NEW_SETTING", 1, raising=False)
    monkeypatch.delattr(config, "SOME_NEW_SETTING")
    assert config.generation == before + 3
    with nc.use_stream(0):  # set around every CUDA launch: plans stay
        pass
    assert config.generation == before + 3
