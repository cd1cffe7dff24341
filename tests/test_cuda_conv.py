"""The CUDA conv kernels under the simulator (or the real GPU with NUMBACONV_REAL_GPU=1):
tiled implicit GEMM, depthwise and direct kernels against the NumPy oracle on shapes
that are no multiple of any tile; split-K determinism; the GPU chooser and its tuner
(with a fake timer); launches per op and per training step."""

import json

import numpy as np
import pytest
from conftest import SMALL_TILES

import numbaconv as nc
from numbaconv import config
from numbaconv import reference as ref

pytestmark = pytest.mark.usefixtures("cuda")

# (input shape, weight shape, params): K (C_g*kH*kW) never a multiple of the K-step,
# pixel counts never a multiple of a tile, one-pixel rows, groups, strides 1-3,
# dilation, padding past the input, 1x1 (the plain-GEMM variant).
DENSE = [
    ((2, 5, 6, 7), (6, 5, 3, 3), dict(padding=1)),
    ((1, 3, 1, 9), (5, 3, 1, 3), dict(stride=(1, 2))),
    ((2, 6, 7, 5), (9, 2, 3, 2), dict(groups=3, stride=(3, 2), padding=(2, 1))),
    ((1, 2, 5, 6), (3, 2, 3, 3), dict(dilation=(2, 3), padding=4)),
    ((2, 9, 4, 3), (10, 9, 1, 1), {}),
    ((1, 4, 7, 7), (5, 4, 4, 4), dict(stride=3, padding=2, dilation=2)),
]
DEPTHWISE = [  # (input shape, channel multiplier, kernel, params)
    ((2, 3, 7, 9), 1, (3, 3), dict(padding=1)),
    ((1, 2, 9, 6), 2, (3, 3), dict(stride=2, padding=1)),
    ((1, 3, 6, 7), 1, (5, 3), dict(padding=(2, 1), dilation=(1, 2))),
    ((2, 2, 5, 5), 3, (2, 2), dict(stride=(2, 1))),
]


def _arrays(rng, x_shape, w_shape, dtype=np.float64):
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


def _check_conv(rng, x_shape, w_shape, params, dtype=np.float64):
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    y = nc.to_host(nc.conv2d(*map(nc.to_device, (x, w, b)), **params))
    want = ref.conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **params)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = [nc.to_host(g) for g in nc.conv2d_backward(*map(nc.to_device, (gy, x, w, b)),
                                                     **params)]
    wants = ref.conv_backward(gy.astype(np.float64), x.astype(np.float64),
                              w.astype(np.float64), b.astype(np.float64), **params)
    for g, want, name in zip(got, wants, ("input", "weight", "bias")):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, want, rtol=tol, atol=10 * tol, err_msg=name)


@pytest.mark.parametrize("tile", SMALL_TILES, ids=["8x8x4", "8x4x4"])
@pytest.mark.parametrize("x_shape, w_shape, params", DENSE)
def test_tiled_kernels_match_the_oracle(x_shape, w_shape, params, tile, rng, monkeypatch):
    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")
    monkeypatch.setattr(config, "CUDA_CONV_TILES", (tile,))
    _check_conv(rng, x_shape, w_shape, params)


def test_tiled_kernels_in_float32(rng, monkeypatch):
    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")
    _check_conv(rng, (2, 5, 6, 7), (6, 5, 3, 3), dict(padding=1, stride=2), np.float32)


@pytest.mark.parametrize("x_shape, w_shape, params", DENSE[:3])
def test_direct_kernels_match_the_oracle(x_shape, w_shape, params, rng, monkeypatch):
    monkeypatch.setattr(config, "CONV_ALGORITHM", "direct")
    _check_conv(rng, x_shape, w_shape, params)


@pytest.mark.parametrize("x_shape, mult, kernel, params", DEPTHWISE)
def test_depthwise_kernels_match_the_oracle(x_shape, mult, kernel, params, rng):
    c = x_shape[1]
    _check_conv(rng, x_shape, (c * mult, 1) + kernel, dict(params, groups=c))


def test_depthwise_falls_back_to_direct_when_the_halo_does_not_fit(rng, monkeypatch):
    monkeypatch.setattr(config, "CUDA_DEPTHWISE_MAX_SHARED", 64)
    _check_conv(rng, (1, 2, 5, 6), (2, 1, 3, 3), dict(groups=2, padding=1))


def test_tiled_falls_back_to_direct_past_the_grid_z_limit(rng, monkeypatch):
    """groups x stride phases beyond gridDim.z (patched to 2 here): the direct kernels."""
    from numbaconv.kernels.cuda import tiled

    from numbaconv.kernels.cuda import _launch

    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")
    monkeypatch.setattr(tiled, "MAX_GRID_YZ", 2)
    ran, run = [], _launch._run

    def recording(kernel, grid, threads, args):
        ran.append(kernel.fn.__name__ if hasattr(kernel, "fn") else kernel.py_func.__name__)
        run(kernel, grid, threads, args)

    monkeypatch.setattr(_launch, "_run", recording)
    _check_conv(rng, (1, 6, 5, 6), (6, 2, 3, 3), dict(groups=3, stride=2, padding=1))
    # forward (z = 3 groups) and grad input (3 x 4 phases) fell back; grad weight did not
    assert {"_conv2d_forward", "_conv2d_grad_input"} <= set(ran) and "_sum_splits" in ran


@pytest.mark.parametrize("stride, output_padding, groups", [(2, 1, 1), (3, 0, 2)])
def test_transposed_conv_runs_the_phase_split_grad_input(stride, output_padding, groups,
                                                         rng, monkeypatch):
    """conv_transpose2d's forward is the tiled grad input: one launch over the phases."""
    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 6 // groups, 3, 2))
    b = rng.standard_normal(6)
    params = dict(stride=stride, padding=1, output_padding=output_padding, groups=groups)
    y = nc.to_host(nc.conv_transpose2d(*map(nc.to_device, (x, w, b)), **params))
    np.testing.assert_allclose(y, ref.conv_transpose(x, w, b, **params), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("algorithm, w_shape, groups", [("tiled", (6, 5, 3, 3), 1),
                                                        ("auto", (10, 1, 3, 3), 5)])
def test_split_k_grad_weight_is_bit_identical_run_after_run(algorithm, w_shape, groups, rng,
                                                            monkeypatch):
    """Several splits (patched small), reduced in a fixed order: the same bits every run,
    and (to rounding) the same sums as one split."""
    monkeypatch.setattr(config, "CONV_ALGORITHM", algorithm)
    x, w, b = _arrays(rng, (2, 5, 6, 5), w_shape, np.float32)
    gy = rng.standard_normal((2, w_shape[0], 6, 5)).astype(np.float32)
    args = [nc.to_device(a) for a in (gy, x, w, b)]

    def grads():
        return [nc.to_host(g) for g in nc.conv2d_backward(*args, padding=1, groups=groups)[1:]]

    first = grads()
    for a, b_ in zip(first, grads()):
        np.testing.assert_array_equal(a, b_)
    monkeypatch.setattr(config, "CUDA_SPLIT_MIN_PIXELS", 10**9)  # one split
    for a, b_ in zip(first, grads()):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-4)


def test_cuda_chooser_rules(monkeypatch):
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm

    def spec(c_in, c_out, groups):
        x = np.zeros((1, c_in, 8, 8), np.float32)
        w = np.zeros((c_out, c_in // groups, 3, 3), np.float32)
        return conv_spec("conv2d", 2, x, w, None, 1, 0, 1, groups, "zeros", False)

    assert choose_conv_algorithm("cuda", spec(16, 32, 1)) == "tiled"
    assert choose_conv_algorithm("cuda", spec(16, 32, 16)) == "depthwise"
    for forced, dense, depthwise in [("direct", "direct", "direct"),
                                     ("serial", "direct", "direct"),
                                     ("depthwise", "direct", "depthwise"),
                                     ("tiled", "tiled", "tiled"), ("gemm", "tiled", "tiled")]:
        monkeypatch.setattr(config, "CONV_ALGORITHM", forced)
        assert choose_conv_algorithm("cuda", spec(16, 32, 1)) == dense, forced
        assert choose_conv_algorithm("cuda", spec(16, 32, 16)) == depthwise, forced


# --------------------------------------------------------------------------- the tuner
def _forward_args(n, c, hw, k):
    """NumPy stand-ins for a forward's arrays: the rule reads shapes only."""
    x = np.zeros((n, c, hw, hw), np.float32)
    w = np.zeros((k, c, 3, 3), np.float32)
    return (x, w, np.zeros(k, np.float32), np.zeros((n, k, hw, hw), np.float32),
            (1, 1, 1, 1, 1, 1, 1))


def test_tuner_rule_without_autotune(monkeypatch):
    from numbaconv.kernels.cuda import tuner

    monkeypatch.setattr(config, "CUDA_CONV_TILES", None)  # the real tiles
    monkeypatch.setattr(config, "CUDA_SM_COUNT", 132)
    names = tuner.candidates("conv2d_forward")
    assert list(names) == ["tiled-128x128x8-8x8", "tiled-64x64x8-4x4", "direct"]
    rule = lambda *shape: tuner.rule("conv2d_forward", _forward_args(*shape), names)  # noqa
    assert rule(1, 3, 8, 4) == "direct"                          # tiny
    assert rule(64, 64, 56, 64) == "tiled-64x64x8-4x4"    # 64 channels: half a tile idle
    assert rule(256, 64, 56, 256) == "tiled-128x128x8-8x8"  # 6272 x 2 whole tiles
    assert rule(1, 64, 7, 256) == "tiled-64x64x8-4x4"     # 1 x 2 tiles: 130 SMs idle
    assert tuner.rule("conv2d_grad_weight", _forward_args(256, 64, 56, 256)[:2] + (
        np.zeros((256, 64, 3, 3)), (1, 1, 1, 1, 1, 1, 1)), names) == "tiled-64x64x8-4x4"


def test_autotuner_keeps_the_fastest_and_remembers_it_across_processes(tmp_path, rng,
                                                                      monkeypatch):
    from numbaconv.kernels.cuda import tuner

    monkeypatch.setattr(config, "CUDA_AUTOTUNE", True)
    monkeypatch.setattr(config, "CUDA_TUNING_FILE", str(tmp_path / "tuning.json"))
    monkeypatch.setattr(tuner, "_simulated", lambda: False)
    monkeypatch.setattr(tuner, "device_key", lambda: "Fake GPU|driver 1.0|numbaconv 0")
    monkeypatch.setattr(tuner, "_choices", {})
    monkeypatch.setattr(tuner, "_loaded", [False])
    timed = []
    fake_times = {0: 3.0, 1: 1.0, 2: 2.0}   # by candidate order: the second is fastest

    def fake_timer(run):
        timed.append(len(timed))
        run()  # the candidate really runs: its result must be right
        return fake_times[(len(timed) - 1) % 3]

    monkeypatch.setattr(tuner, "TIMER", fake_timer)
    x, w, b = _arrays(rng, (2, 3, 5, 6), (4, 3, 3, 3))
    want = ref.conv(x, w, b, padding=1)
    y = nc.to_host(nc.conv2d(*map(nc.to_device, (x, w, b)), padding=1))
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
    assert len(timed) == 3
    names = list(tuner.candidates("conv2d_forward"))
    saved = json.loads((tmp_path / "tuning.json").read_text())
    assert list(saved) == ["Fake GPU|driver 1.0|numbaconv 0"]
    assert list(saved["Fake GPU|driver 1.0|numbaconv 0"].values()) == [names[1]]

    tuner.forget()  # a new process: the choice comes from the file, nothing is timed
    nc.conv2d(*map(nc.to_device, (x, w, b)), padding=1)
    assert len(timed) == 3
    monkeypatch.setattr(tuner, "device_key", lambda: "Another GPU|driver 1.0|numbaconv 0")
    tuner.forget()  # another GPU tunes again
    nc.conv2d(*map(nc.to_device, (x, w, b)), padding=1)
    assert len(timed) == 6


# --------------------------------------------------------------------------- launches
def _count(fn):
    from numbaconv.kernels.cuda import _launch

    before = _launch.launches()
    fn()
    return _launch.launches() - before


@pytest.mark.parametrize("w_shape, groups", [((6, 4, 3, 3), 1), ((8, 1, 3, 3), 4)])
def test_launches_per_conv(w_shape, groups, rng, monkeypatch):
    """Tiled / depthwise path: forward 2 at most (a zero bias filled when there is none,
    the conv with its bias in the epilogue), backward 3 (grad input; split-K partials and
    their sum, which also yields the bias gradient)."""
    x, w, b = (nc.to_device(a) for a in _arrays(rng, (2, 4, 7, 6), w_shape))
    monkeypatch.setattr(config, "CUDA_DIRECT_MAX_MACS", 0)
    y = nc.conv2d(x, w, b, padding=1, groups=groups)
    assert _count(lambda: nc.conv2d(x, w, b, padding=1, groups=groups)) == 1
    assert _count(lambda: nc.conv2d(x, w, None, padding=1, groups=groups)) == 2
    assert _count(lambda: nc.conv2d_backward(y, x, w, b, padding=1, groups=groups)) == 3
    assert _count(lambda: nc.conv2d_backward(y, x, w, None, padding=1, groups=groups)) == 3


# Launches of one training step (forward, loss, backward, Adam) of each model, batch 2:
# a ceiling; fewer is progress (lower it), more fails.
STEP_LAUNCHES = {"cnn": 90, "resnet": 220, "mobile": 110, "inception": 186}


@pytest.mark.parametrize("name", sorted(STEP_LAUNCHES))
def test_launches_per_training_step(name, rng, monkeypatch):
    """Counted with every kernel skipped, buffers zeroed on allocation (the count does
    not depend on values; the simulator would take minutes): forward, loss, backward, Adam."""
    from numba import cuda

    from numbaconv import nn, optim
    from numbaconv.dispatch import get_backend
    from numbaconv.kernels.cuda import _launch
    from numbaconv.models import build

    monkeypatch.setattr(_launch, "_run", lambda *args: None)
    monkeypatch.setattr(get_backend("cuda"), "empty",
                        lambda shape, dtype: cuda.to_device(np.zeros(shape, dtype)))
    nn.manual_seed(0)
    model = build(name).to("cuda")
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = nc.to_device(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    y = nc.to_device(np.array([3, 7]))

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()

    step()
    launches = _count(step)
    print(f"{name}: {launches} launches per training step")
    assert launches <= STEP_LAUNCHES[name]
