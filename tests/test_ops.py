"""Every non-convolution op (and the transposed convolution), table-driven: forward and
backward against the NumPy oracle on every device, backward against finite differences
(float64), PyTorch parity (forward and autograd), and inputs never mutated."""

import numpy as np
import pytest
from conftest import numeric_grad, tolerance, torch

import numbaconv as nc
from numbaconv import reference as ref

X2 = (2, 3, 7, 6)
X1 = (2, 3, 9)

# (op, shapes of the array arguments (None: that argument is None), keyword params)
CASES = [
    ("conv_transpose2d", [(2, 4, 3, 4), (4, 3, 3, 3), (3,)], {}),
    ("conv_transpose2d", [(1, 4, 3, 3), (4, 2, 3, 2), (4,)],
     dict(groups=2, stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d", [(2, 2, 3, 2), (2, 3, 2, 3), None],
     dict(stride=(2, 3), dilation=(2, 1), output_padding=(1, 2))),
    ("conv_transpose2d", [(1, 3, 2, 3), (3, 2, 3, 3), (6,)], dict(groups=3, padding=2, dilation=2)),
    ("conv_transpose2d", [(1, 5, 2, 2), (5, 4, 1, 1), (4,)], dict(stride=2)),         # 1x1
    ("conv_transpose1d", [(2, 3, 5), (3, 2, 4), (2,)], dict(stride=3, padding=1, output_padding=2)),
    ("conv_transpose1d", [(1, 4, 4), (4, 1, 3), None], dict(groups=2, dilation=2)),
    ("max_pool2d", [X2], dict(kernel_size=3)),
    ("max_pool2d", [X2], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              return_indices=True)),
    ("max_pool2d", [X2], dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1),
                              padding=(1, 1))),
    ("max_pool2d", [X2], dict(kernel_size=2, stride=1)),
    ("max_pool1d", [X1], dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ("max_pool1d", [X1], dict(kernel_size=2, dilation=3, return_indices=True)),
    ("avg_pool2d", [X2], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", [X2], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False)),
    ("avg_pool2d", [X2], dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0),
                              divisor_override=4)),
    ("avg_pool1d", [X1], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False)),
    ("avg_pool1d", [X1], dict(kernel_size=4)),
    ("adaptive_avg_pool2d", [X2], dict(output_size=1)),
    ("adaptive_avg_pool2d", [X2], dict(output_size=(3, 4))),
    ("adaptive_avg_pool2d", [X2], dict(output_size=(9, None))),                      # upsampling
    ("adaptive_max_pool2d", [X2], dict(output_size=(4, 5), return_indices=True)),
    ("adaptive_max_pool2d", [X2], dict(output_size=1)),
    ("adaptive_avg_pool1d", [X1], dict(output_size=4)),
    ("adaptive_avg_pool1d", [X1], dict(output_size=1)),                              # global
    ("avg_pool2d", [X2], dict(kernel_size=X2[2:])),                    # one window: global
    ("adaptive_max_pool1d", [X1], dict(output_size=5)),
    ("unfold", [(2, 3, 6, 5)], dict(kernel_size=(2, 3), dilation=(1, 2), padding=1,
                                    stride=(2, 1))),
    ("unfold", [(1, 2, 4, 4)], dict(kernel_size=3)),
    ("fold", [(2, 18, 12)], dict(output_size=(6, 5), kernel_size=(2, 3), dilation=(1, 2),
                                 padding=1, stride=(2, 1))),
    ("fold", [(1, 8, 9)], dict(output_size=4, kernel_size=2, stride=1)),
    ("interpolate", [(2, 3, 4, 5)], dict(scale_factor=2)),
    ("interpolate", [(2, 3, 4, 5)], dict(size=(7, 3))),
    ("interpolate", [(2, 3, 4, 5)], dict(size=(7, 9), mode="bilinear")),
    ("interpolate", [(2, 3, 4, 5)], dict(scale_factor=(1.5, 0.5), mode="bilinear",
                                         align_corners=True)),
    ("interpolate", [(1, 2, 6, 5)], dict(scale_factor=0.75, mode="bilinear")),
    ("interpolate", [(2, 3, 6)], dict(size=11, mode="linear")),
    ("interpolate", [(2, 3, 6)], dict(scale_factor=0.5, mode="linear", align_corners=True)),
    ("interpolate", [(2, 3, 6)], dict(scale_factor=2.5)),
    ("channel_shuffle", [(2, 6, 3, 2)], dict(groups=3)),
    ("channel_shuffle", [(2, 4, 5)], dict(groups=2)),
    ("pad", [(2, 3, 4, 5)], dict(pad=(1, 2, 3, 0), value=1.5)),
    ("pad", [(2, 3, 4, 5)], dict(pad=(2, 1, 1, 3), mode="reflect")),
    ("pad", [(2, 3, 4, 5)], dict(pad=(1, 2, 3, 0), mode="replicate")),
    ("pad", [(2, 3, 4, 5)], dict(pad=(3, 2, 1, 4), mode="circular")),
    ("pad", [(2, 3, 4, 5)], dict(pad=(-1, 2, 0, -1))),                               # crop
    ("pad", [(2, 3, 6)], dict(pad=(2, 3), mode="reflect")),
]
IDS = [f"{op}-{i}" for i, (op, _, _) in enumerate(CASES)]

# The conv algorithms (the CPU devices of conftest's ``device``) change only the
# transposed convolutions' kernels; the other ops run one CPU kernel whatever the
# algorithm, so they run once on the CPU (the default chooser) and once on CUDA.
CPU_ALGORITHMS = ["cpu-direct", "cpu-gemm", "cpu-tiled", "cpu-blocked", "cpu-channel_blocked"]
ONE_CPU = ["cpu", "cuda"]


def _on_devices(cases, ids):
    """(case..., device) for each case and the devices its op's kernels depend on."""
    out = []
    for case, name in zip(cases, ids):
        devices = CPU_ALGORITHMS + ["cuda"] if case[0].startswith("conv") else ONE_CPU
        out += [pytest.param(*case, d, id=f"{d}-{name}") for d in devices]
    return out



def _arrays(rng, shapes, dtype):
    return [None if s is None else rng.standard_normal(s).astype(dtype) for s in shapes]


def _values(out):
    """The differentiable output (max pools may also return indices)."""
    return out[0] if isinstance(out, tuple) else out


def _f64(arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, shapes, params, device", _on_devices(CASES, IDS),
                         indirect=["device"])
def test_forward_and_backward_match_oracle(op, shapes, params, dtype, rng, device):
    arrays = _arrays(rng, shapes, dtype)
    keep = [None if a is None else a.copy() for a in arrays]
    forward, backward = getattr(nc, op), getattr(nc, op + "_backward")
    oracle, oracle_backward = getattr(ref, op), getattr(ref, op + "_backward")

    out = forward(*device.put(*arrays), **params)
    expected = oracle(*_f64(arrays), **params)
    rtol, atol = tolerance(dtype)
    if params.get("return_indices"):
        np.testing.assert_array_equal(device.get(out[1]), expected[1])
        out, expected = out[0], expected[0]
    y = device.get(out)
    assert y.dtype == dtype and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)

    gy = rng.standard_normal(y.shape).astype(dtype)
    grads = backward(*device.put(gy, *arrays), **params)
    want = oracle_backward(gy.astype(np.float64), *_f64(arrays), **params)
    assert isinstance(grads, tuple) and len(grads) == len(arrays)
    for got, w, a in zip(grads, want, arrays):
        if a is None:
            assert got is None
            continue
        got = device.get(got)
        assert got.dtype == dtype and got.shape == a.shape
        np.testing.assert_allclose(got, w, rtol=rtol, atol=atol * 10)
    for a, k in zip(arrays, keep):
        if a is not None:
            np.testing.assert_array_equal(a, k)  # inputs untouched


@pytest.mark.parametrize("op, shapes, params", CASES, ids=IDS)
def test_backward_matches_finite_differences(op, shapes, params, rng):
    arrays = _arrays(rng, shapes, np.float64)
    forward, backward = getattr(nc, op), getattr(nc, op + "_backward")
    gy = rng.standard_normal(_values(forward(*arrays, **params)).shape)

    def loss():
        return float(np.sum(_values(forward(*arrays, **params)) * gy))

    for got, a in zip(backward(gy, *arrays, **params), arrays):
        if a is not None:
            np.testing.assert_allclose(got, numeric_grad(loss, a), rtol=1e-6, atol=1e-7)


def _torch_call(op, tensors, params):
    F = torch.nn.functional
    if op == "pad":
        return F.pad(tensors[0], params["pad"], params.get("mode", "constant"),
                     params.get("value", 0.0))
    return getattr(F, op)(*tensors, **params)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, shapes, params", CASES, ids=IDS)
def test_matches_torch(op, shapes, params, dtype, rng):
    arrays = _arrays(rng, shapes, dtype)
    tensors = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out_t = _torch_call(op, tensors, params)
    out = nc.__dict__[op](*arrays, **params)
    rtol, atol = tolerance(dtype)
    if params.get("return_indices"):
        np.testing.assert_array_equal(out[1], out_t[1].numpy())
        out, out_t = out[0], out_t[0]
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=rtol, atol=atol)
    gy = rng.standard_normal(out.shape).astype(dtype)
    out_t.backward(torch.tensor(gy))
    grads = getattr(nc, op + "_backward")(gy, *arrays, **params)
    for got, t in zip(grads, tensors):
        if t is not None:
            np.testing.assert_allclose(got, t.grad.numpy(), rtol=rtol, atol=atol * 10)


# --------------------------------------------------------------------------- semantics
def test_max_pool_ties_take_the_first_maximum_and_nan_wins():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, np.nan, 1.0]]]])
    y, idx = nc.max_pool2d(x, 2, return_indices=True)
    assert idx.tolist() == [[[[1, 6]]]] and y[0, 0, 0, 0] == 3.0 and np.isnan(y[0, 0, 0, 1])
    (g,) = nc.max_pool2d_backward(np.ones_like(y), x, 2)
    assert g.tolist() == [[[[0, 1, 0, 0], [0, 0, 1, 0]]]]


@pytest.mark.parametrize("op, params", [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))),
    ("max_pool2d", dict(kernel_size=2, stride=1)),
    ("adaptive_max_pool2d", dict(output_size=(3, 4))),
])
@pytest.mark.parametrize("device", ONE_CPU, indirect=True)
def test_max_pool_indices_equal_a_row_major_scan_with_ties_and_nans(op, params, rng, device):
    """Small integers make ties everywhere and NaNs sit in many windows, some twice:
    values and indices must equal the oracle's row-major scan (first maximum, last NaN)
    on every device, whatever order a kernel reduces in (the CPU one is separable, in
    runs of planes sharing their row buffers: of 141 planes' 128 runs, 13 hold two; the
    CUDA simulator gets 6)."""
    shape = (3, 47, 7, 8) if device.name == "cpu" else (2, 3, 7, 8)
    x = rng.integers(0, 3, shape).astype(np.float64)
    x[rng.random(x.shape) < 0.08] = np.nan
    y, idx = getattr(nc, op)(*device.put(x), **params, return_indices=True)
    want_y, want_idx = getattr(ref, op)(x, **params, return_indices=True)
    np.testing.assert_array_equal(device.get(idx), want_idx)
    np.testing.assert_array_equal(device.get(y), want_y)  # NaN == NaN here


@pytest.mark.parametrize("device", ONE_CPU, indirect=True)
@pytest.mark.parametrize("shape", [(2, 3, 5, 1), (2, 3, 1, 5)])
def test_max_pool_window_without_a_tap_in_the_input_is_minus_inf(rng, device, shape):
    """Padding and dilation can leave a window whose every tap is padding (PyTorch gives
    -inf there): value -inf, index -1, and its gradient goes nowhere; along W and H."""
    x = rng.standard_normal(shape)
    params = dict(kernel_size=(2, 2), padding=(1, 1), dilation=(2, 2))  # taps at -1, 1
    y, idx = nc.max_pool2d(*device.put(x), **params, return_indices=True)
    want_y, want_idx = ref.max_pool2d(x, **params, return_indices=True)
    empty = (slice(None), slice(None)) + ((slice(None), 0) if shape[3] == 1 else (0,))
    assert np.isneginf(want_y[empty]).all() and (want_idx[empty] == -1).all()
    np.testing.assert_array_equal(device.get(y), want_y)
    np.testing.assert_array_equal(device.get(idx), want_idx)
    gy = rng.standard_normal(want_y.shape)
    (g,) = nc.max_pool2d_backward(*device.put(gy, x), **params)
    np.testing.assert_array_equal(device.get(g), ref.max_pool2d_backward(gy, x, **params)[0])


@pytest.mark.parametrize("device", ONE_CPU, indirect=True)
def test_max_pool_backward_sends_nothing_through_indices_outside_the_plane(rng, device):
    """The layer's path skips the range check: whatever the indices, neither kernel
    writes outside the plane, and both send an outside index's gradient nowhere."""
    from numbaconv.functional.pool import max_pool2d_backward_of_forward

    x = rng.standard_normal((2, 3, 4, 6))
    _, idx = nc.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 0, 0, 0], bad[1, 2, 1, 2], bad[0, 1, 1, 1] = -1, 24, -7
    gy = rng.standard_normal(idx.shape)
    want = nc.max_pool2d_backward(gy, x, 2, indices=idx)[0]
    for n, c, h, w in ((0, 0, 0, 0), (1, 2, 1, 2), (0, 1, 1, 1)):
        want[n, c].reshape(-1)[idx[n, c, h, w]] -= gy[n, c, h, w]
    (got,) = max_pool2d_backward_of_forward(*device.put(gy, x, bad), 2)
    np.testing.assert_allclose(device.get(got), want, atol=1e-12)


def test_max_pool_backward_accepts_forward_indices(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    y, idx = nc.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(
        nc.max_pool2d_backward(gy, x, 3, stride=2, padding=1, indices=idx)[0],
        nc.max_pool2d_backward(gy, x, 3, stride=2, padding=1)[0])


def test_fold_is_the_adjoint_of_unfold(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    kw = dict(kernel_size=(3, 2), dilation=(1, 2), padding=(1, 2), stride=(2, 1))
    cols = nc.unfold(x, **kw)
    c = rng.standard_normal(cols.shape)
    # <unfold x, c> == <x, fold c>
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * nc.fold(c, (7, 6), **kw)))


def test_channel_shuffle_backward_is_the_inverse(rng):
    x = rng.standard_normal((1, 12, 2, 2))
    (back,) = nc.channel_shuffle_backward(nc.channel_shuffle(x, 3), x, 3)
    np.testing.assert_array_equal(back, x)
    assert nc.channel_shuffle(x, 3)[0, 1, 0, 0] == x[0, 4, 0, 0]


def test_conv_transpose_is_the_adjoint_of_conv(rng):
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 6, 3, 3))  # conv: 6 -> 4, transposed: 4 -> 6
    y = rng.standard_normal((2, 6, 10, 12))
    kw = dict(stride=2, padding=1)
    up = nc.conv_transpose2d(x, w, output_padding=1, **kw)
    down = nc.conv2d(y, w, **kw)
    np.testing.assert_allclose(np.sum(up * y), np.sum(x * down))


# --------------------------------------------------------------------------- fast paths
@pytest.mark.parametrize("x_shape, w_shape, params, algorithm", [
    ((2, 4, 7, 6), (4, 1, 3, 3), dict(groups=4, padding=1), "depthwise"),
    ((1, 3, 8, 9), (6, 1, 3, 2), dict(groups=3, stride=(2, 1), dilation=(1, 2), padding=2),
     "depthwise"),
    ((2, 3, 5, 7), (6, 1, 4, 2), dict(groups=3, padding="same"), "depthwise"),  # uneven pads
    ((1, 2, 6, 6), (2, 1, 3, 3), dict(groups=2, dilation=2, padding=(3, 1)), "depthwise"),
    ((1, 2, 3, 3), (2, 1, 5, 5), dict(groups=2, padding=1), "depthwise"),  # kernel > input
    ((2, 2, 5, 6), (2, 1, 3, 3), dict(groups=2, stride=2, padding=1), "depthwise"),
    ((1, 2, 9, 1), (4, 1, 3, 1), dict(groups=2, padding=(0, 0)), "depthwise"),  # a column
    ((2, 9, 6, 6), (7, 9, 1, 1), {}, "gemm"),
    ((2, 5, 12, 12), (9, 5, 1, 1), {}, "gemm"),  # thin, a small plane
    ((1, 16, 5, 4), (4, 8, 1, 1), dict(groups=2), "gemm"),
    ((2, 16, 7, 6), (16, 16, 3, 3), dict(padding=1), "channel_blocked"),  # 16 channels out
    ((1, 40, 4, 30), (5, 40, 3, 3), dict(padding=1), "blocked"),  # a long reduction, 5 rows
    ((1, 8, 5, 9), (8, 4, 2, 3), dict(groups=2, padding=((1, 0), (2, 1)), dilation=(2, 1)),
     "blocked"),
    ((2, 20, 7, 6), (32, 20, 3, 3), dict(padding=1), "channel_blocked"),  # narrow
    ((2, 40, 7, 6), (32, 40, 3, 3), dict(padding=1), "tiled"),  # ... and a deep input
    # its grad input on the GEMM path: 45 input pixels for 15 output pixels (9 channels
    # out: under 3/4 of the channel-blocked kernel's 2 blocks in float64)
    ((2, 16, 5, 9), (9, 16, 3, 5), {}, "blocked"),
    ((1, 16, 7, 11), (9, 16, 3, 3), dict(dilation=2), "blocked"),  # 77 for 21
    ((1, 16, 9, 5), (6, 8, 3, 2), dict(groups=2, stride=(1, 2), padding=(2, 0)), "tiled"),
    ((1, 3, 9, 9), (8, 3, 3, 3), dict(stride=2, padding=1), "blocked"),  # an RGB stem
    ((2, 8, 11, 10), (12, 4, 3, 2), dict(groups=2, stride=(2, 3), padding=(1, 2),
                                          dilation=(2, 1)), "blocked"),  # stride phases
    ((1, 3, 9, 9), (3, 3, 5, 5), dict(stride=2, padding=1), "gemm"),  # 3 output channels
    # a thin strided forward on a narrow map, its output channels filling the blocks
    ((2, 3, 11, 10), (16, 3, 5, 5), dict(stride=2, padding=2), "channel_blocked"),
    # a depthwise conv of channel multiplier 16, 5x5: the dense rules
    ((1, 2, 9, 9), (32, 1, 5, 5), dict(groups=2, padding=2), "blocked"),
])
def test_fast_paths_give_the_general_paths_answer(x_shape, w_shape, params, algorithm, rng,
                                                   monkeypatch):
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm
    from numbaconv.kernels.cpu import simd

    monkeypatch.setattr(config, "DIRECT_MAX_MACS", 0)  # these layers are all tiny
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    spec = conv_spec("conv2d", 2, x, w, b, params.get("stride", 1), params.get("padding", 0),
                     params.get("dilation", 1), params.get("groups", 1), "zeros", False)
    if algorithm in ("blocked", "channel_blocked") and not simd.WIDE:
        pytest.skip("the blocked convs are picked on AVX-512 hosts only")
    assert choose_conv_algorithm("cpu", spec) == algorithm
    fast = nc.conv2d(x, w, b, **params)
    gy = rng.standard_normal(fast.shape)
    fast_grads = nc.conv2d_backward(gy, x, w, b, **params)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "direct")
    np.testing.assert_allclose(fast, nc.conv2d(x, w, b, **params), rtol=1e-12, atol=1e-12)
    for f, g in zip(fast_grads, nc.conv2d_backward(gy, x, w, b, **params)):
        np.testing.assert_allclose(f, g, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- errors
X = np.zeros((1, 4, 6, 6), np.float32)
W_T = np.zeros((4, 2, 3, 3), np.float32)

ERRORS = [
    (lambda: nc.max_pool2d(X, 3, padding=2), ValueError, "padding must be at most half"),
    (lambda: nc.avg_pool2d(X, 2, padding=(0, 2)), ValueError, "at most half"),
    (lambda: nc.max_pool2d(X, 0), ValueError, "kernel_size must be positive"),
    (lambda: nc.max_pool2d(X, 7), ValueError, "output size would be"),
    (lambda: nc.max_pool2d(X, 2, stride=0), ValueError, "stride must be positive"),
    (lambda: nc.max_pool1d(X, 2), ValueError, "3-D"),
    (lambda: nc.max_pool2d(X.astype(np.int32), 2), TypeError, "float32 or float64"),
    (lambda: nc.max_pool2d(X, 2, return_indices=1), ValueError, "return_indices"),
    (lambda: nc.max_pool2d_backward(np.zeros((1, 4, 3, 3), np.float32), X, 2,
                                    indices=np.zeros((1, 4, 3, 3), np.int32)),
     TypeError, "indices must be int64"),
    (lambda: nc.max_pool2d_backward(np.zeros((1, 4, 2, 3), np.float32), X, 2),
     ValueError, "grad_output must have shape"),
    (lambda: nc.max_pool2d_backward(np.zeros((1, 4, 3, 3), np.float32), X, 2,
                                    indices=np.full((1, 4, 3, 3), 36, np.int64)),
     ValueError, r"indices must lie in \[-1, 36\)"),
    (lambda: nc.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: nc.avg_pool2d(X, 2, count_include_pad="yes"), ValueError, "count_include_pad"),
    (lambda: nc.adaptive_avg_pool2d(X, (0, 2)), ValueError, "output_size must be positive"),
    (lambda: nc.adaptive_max_pool2d(X, (1, 2, 3)), ValueError, "output_size"),
    (lambda: nc.conv_transpose2d(X, W_T, stride=2, output_padding=2), ValueError,
     "output_padding must be smaller than stride or dilation"),
    (lambda: nc.conv_transpose2d(X, W_T, output_padding=1), ValueError, "output_padding"),
    (lambda: nc.conv_transpose2d(X, np.zeros((3, 2, 3, 3), np.float32)), ValueError,
     r"weight.shape\[0\] must equal input channels \(4\)"),
    (lambda: nc.conv_transpose2d(X, W_T, groups=3), ValueError, "divisible by groups"),
    (lambda: nc.conv_transpose2d(X, W_T, bias=np.zeros(3, np.float32)), ValueError,
     r"bias must have shape \(2,\)"),
    (lambda: nc.conv_transpose2d(X, W_T, padding=5), ValueError, "output size would be"),
    (lambda: nc.conv_transpose2d(X, W_T.astype(np.float64)), TypeError, "share one dtype"),
    (lambda: nc.conv_transpose1d(X, W_T), ValueError, "3-D"),
    (lambda: nc.channel_shuffle(X, 3), ValueError, r"channels \(4\) must be divisible by groups \(3\)"),
    (lambda: nc.channel_shuffle(X, 0), ValueError, "groups must be a positive int"),
    (lambda: nc.channel_shuffle(X[0, 0], 1), ValueError, "at least 3-D"),
    (lambda: nc.interpolate(X), ValueError, "exactly one of size and scale_factor"),
    (lambda: nc.interpolate(X, size=4, scale_factor=2), ValueError, "exactly one"),
    (lambda: nc.interpolate(X, size=4, mode="trilinear"), ValueError, "mode must be one of"),
    (lambda: nc.interpolate(X, size=4, mode="linear"), ValueError, "needs 3-D"),
    (lambda: nc.interpolate(X[0], size=4, mode="bilinear"), ValueError, "needs 4-D"),
    (lambda: nc.interpolate(X, size=4, align_corners=True), ValueError, "align_corners"),
    (lambda: nc.interpolate(X, scale_factor=0.1), ValueError, "empty output"),
    (lambda: nc.interpolate(X, scale_factor=-2), ValueError, "positive and finite"),
    (lambda: nc.interpolate(X, scale_factor=(2, 2, 2)), ValueError, "one per spatial dim"),
    (lambda: nc.interpolate(X, size=(4, 0)), ValueError, "size must be positive"),
    (lambda: nc.unfold(X, 7), ValueError, "no sliding block fits"),
    (lambda: nc.unfold(X[0, 0], 2), ValueError, "4-D"),
    (lambda: nc.fold(np.zeros((1, 10, 25), np.float32), 6, 2), ValueError,
     "multiple of kH \\* kW = 4"),
    (lambda: nc.fold(np.zeros((1, 8, 24), np.float32), 6, 2), ValueError,
     "number of sliding blocks, 5 \\* 5 = 25"),
    (lambda: nc.fold(np.zeros(8, np.float32), 6, 2), ValueError, "3-D"),
    (lambda: nc.pad(X, (1, 1, 1)), ValueError, "pad must be a tuple of 2 ints"),
    (lambda: nc.pad(X, (1, 1), mode="reflect"), ValueError, "pads every spatial dim"),
    (lambda: nc.pad(X, (6, 0, 0, 0), mode="reflect"), ValueError, "padding < input size"),
    (lambda: nc.pad(X, (7, 0, 0, 0), mode="circular"), ValueError, "padding <= input size"),
    (lambda: nc.pad(X, (1, 1, 1, 1), mode="wrap"), ValueError, "mode must be one of"),
    (lambda: nc.pad(X, (-9, 0, 0, 0), mode="replicate"), ValueError, "leaves an empty output"),
    (lambda: nc.pad(X, (-3, -3, 0, 0)), ValueError, "empty output"),
    (lambda: nc.pad(X, (1, 1, 1, 1), mode="reflect", value=2), ValueError, "only used"),
    (lambda: nc.pad(X, (1, 1, 1, 1), value="x"), ValueError, "value must be a number"),
]


@pytest.mark.parametrize("call, exc, match", ERRORS, ids=[f"err-{i}" for i in range(len(ERRORS))])
def test_bad_arguments_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
