"""conv1d / conv2d and their backward on the CPU, against the NumPy oracle, finite
differences and PyTorch; every error path; inputs never mutated."""

import threading

import numpy as np
import pytest
from conftest import numeric_grad, tolerance, torch

import numbaconv as nc
from numbaconv import reference as ref

# (input shape, weight shape, params): every parameter and combinations of them.
CASES_2D = [
    ((2, 3, 6, 7), (4, 3, 3, 3), {}),
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(stride=2, padding=1)),
    ((1, 4, 7, 6), (6, 2, 3, 3), dict(groups=2, padding=(1, 2), dilation=(2, 1))),
    ((2, 4, 6, 6), (4, 1, 3, 3), dict(groups=4, padding=1)),                # depthwise
    ((2, 4, 5, 5), (8, 1, 3, 3), dict(groups=4, stride=(1, 2))),            # depthwise x2
    ((2, 5, 5, 4), (3, 5, 1, 1), {}),                                        # 1x1
    ((2, 4, 3, 5), (6, 2, 1, 1), dict(groups=2)),                            # grouped 1x1
    ((1, 4, 6, 6), (4, 4, 1, 1), dict(stride=2, padding=1)),                 # strided 1x1
    ((1, 2, 7, 7), (3, 2, 3, 3), dict(dilation=2, padding="same")),
    ((2, 2, 6, 5), (3, 2, 4, 2), dict(padding="same")),                      # even kernel
    ((1, 2, 6, 7), (3, 2, 3, 3), dict(padding="valid", stride=(2, 3))),
    ((2, 3, 5, 6), (2, 3, 3, 3), dict(padding=((0, 2), (1, 0)))),            # per-side
    ((2, 3, 5, 6), (4, 3, 3, 3), dict(padding=2, padding_mode="reflect")),
    ((1, 2, 5, 6), (3, 2, 3, 3), dict(padding=(1, 3), padding_mode="replicate", stride=2)),
    ((1, 2, 4, 5), (3, 2, 3, 2), dict(padding=((2, 1), (0, 3)), padding_mode="circular")),
    ((2, 4, 6, 6), (4, 2, 3, 3), dict(groups=2, padding=1, padding_mode="reflect",
                                      dilation=2, flip=True)),
    ((2, 3, 5, 5), (2, 3, 2, 3), dict(flip=True, padding=1, stride=(2, 1))),
    ((1, 1, 3, 3), (1, 1, 5, 5), dict(padding=1)),                           # kernel > input
    ((3, 2, 1, 9), (2, 2, 1, 3), dict(dilation=3)),
]

CASES_1D = [
    ((2, 3, 9), (4, 3, 3), {}),
    ((2, 4, 10), (6, 2, 3), dict(groups=2, stride=2, padding=2, dilation=2)),
    ((1, 3, 8), (3, 1, 5), dict(groups=3, padding="same")),
    ((2, 2, 7), (3, 2, 4), dict(padding=((1, 2),), padding_mode="reflect", flip=True)),
    ((1, 2, 6), (2, 2, 3), dict(padding=3, padding_mode="circular")),
    ((1, 2, 6), (2, 2, 2), dict(padding=2, padding_mode="replicate", stride=3)),
]

ALL_CASES = [("conv2d", *c) for c in CASES_2D] + [("conv1d", *c) for c in CASES_1D]
IDS = [f"{op}-{i}" for i, (op, *_) in enumerate(ALL_CASES)]


def _arrays(rng, x_shape, w_shape, dtype, bias=True):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, x_shape, w_shape, params", ALL_CASES, ids=IDS)
def test_forward_and_backward_match_oracle(op, x_shape, w_shape, params, dtype, rng, device):
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    forward, backward = getattr(nc, op), getattr(nc, op + "_backward")
    y = device.get(forward(*device.put(x, w, b), **params))
    expected = ref.conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                        **params)
    assert y.dtype == dtype and y.shape == expected.shape
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)

    gy = rng.standard_normal(y.shape).astype(dtype)
    grads = device.get(*backward(*device.put(gy, x, w, b), **params))
    expected_grads = ref.conv_backward(gy.astype(np.float64), x.astype(np.float64),
                                       w.astype(np.float64), b.astype(np.float64), **params)
    for got, want, name in zip(grads, expected_grads, ("input", "weight", "bias")):
        assert got.dtype == dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * 10, err_msg=name)


FD_CASES = [ALL_CASES[i] for i in (1, 2, 4, 6, 8, 11, 13, 14, 16, 18, 19, 21, 22)]


@pytest.mark.parametrize("op, x_shape, w_shape, params", FD_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(FD_CASES)])
def test_backward_matches_finite_differences(op, x_shape, w_shape, params, rng,
                                             conv_algorithm):
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    forward, backward = getattr(nc, op), getattr(nc, op + "_backward")
    gy = rng.standard_normal(forward(x, w, b, **params).shape)

    def loss():
        return float(np.sum(forward(x, w, b, **params) * gy))

    grads = backward(gy, x, w, b, **params)
    for got, arr in zip(grads, (x, w, b)):
        np.testing.assert_allclose(got, numeric_grad(loss, arr), rtol=1e-6, atol=1e-7)


def test_no_bias_gives_none_grad(rng):
    x, w, _ = _arrays(rng, (1, 2, 5, 5), (3, 2, 3, 3), np.float64, bias=False)
    y = nc.conv2d(x, w)
    np.testing.assert_allclose(y, ref.conv(x, w), atol=1e-12)
    gx, gw, gb = nc.conv2d_backward(np.ones_like(y), x, w)
    assert gb is None and gx.shape == x.shape and gw.shape == w.shape


@pytest.mark.parametrize("per_image_from", [0, 10**9])
def test_algorithms_agree_on_a_larger_shape(per_image_from, rng, monkeypatch):
    """The chooser's CPU paths give the same answer (and the GEMM path chunks, its
    columns laid out per image or side by side)."""
    from numbaconv import config

    x, w, b = _arrays(rng, (5, 16, 12, 11), (24, 8, 3, 3), np.float32)
    params = dict(stride=(1, 2), padding=1, groups=2, dilation=(1, 2))
    monkeypatch.setattr(config, "GEMM_IMAGE_MIN_PIXELS", per_image_from)
    monkeypatch.setattr(config, "GEMM_GRAD_WEIGHT_IMAGE_MIN_PIXELS", per_image_from)
    results = {}
    for algorithm in ("direct", "gemm", "tiled"):
        monkeypatch.setattr(config, "CONV_ALGORITHM", algorithm)
        monkeypatch.setattr(config, "IM2COL_CHUNK_BYTES", 40_000)  # forces several chunks
        y = nc.conv2d(x, w, b, **params)
        results[algorithm] = (y,) + nc.conv2d_backward(np.ones_like(y), x, w, b, **params)
    for algorithm in ("gemm", "tiled"):
        for direct, other in zip(results["direct"], results[algorithm]):
            np.testing.assert_allclose(direct, other, rtol=1e-4, atol=1e-3)


def _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng):
    """conv2d and conv2d_backward (as the chooser now runs them) against the oracle."""
    y = nc.conv2d(x, w, b, **params)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = (y,) + nc.conv2d_backward(gy, x, w, b, **params)
    want = (ref.conv2d(x, w, b, **params),) + ref.conv2d_backward(gy, x, w, b, **params)
    rtol, atol = tolerance(dtype)
    for g, e in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((3, 8, 9, 7), (10, 8, 3, 3), dict(padding=(1, 2))),  # K_g % 4 != 0, uneven pads
    ((2, 24, 8, 9), (9, 8, 2, 3), dict(groups=3, dilation=(2, 1), padding=1)),
    ((2, 8, 11, 10), (8, 8, 3, 3), dict(stride=2, padding=1)),  # grad input: 4 phases
    ((1, 8, 9, 13), (8, 8, 1, 1), dict(stride=2)),  # ... of which 3 get no tap
    ((1, 8, 5, 37), (8, 8, 3, 3), dict(stride=2, padding=1)),  # merged rows > a vector
    ((1, 8, 6, 5), (5, 8, 5, 5), dict(padding=(5, 1))),  # grad input: a negative pad
    ((2, 16, 7, 9), (8, 8, 3, 4),
     dict(groups=2, stride=(3, 2), dilation=(2, 3), padding=(2, 1))),
])
def test_tiled_matches_the_oracle_across_tiles(x_shape, w_shape, params, dtype, rng,
                                                monkeypatch):
    """The tiled kernels against the oracle with tiles smaller than an image (6 pixels:
    partial 4-pixel blocks at every tile's end; grad weight jobs of 1-2 output rows, a
    short last one), forward and both gradients."""
    from numbaconv import config

    monkeypatch.setattr(config, "TILED_PIXELS", 6)
    monkeypatch.setattr(config, "TILED_GRAD_PIXELS", 12)  # grad weight: 1-2 rows per job
    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")  # stride 1 would run 'blocked'
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 8, 13, 11), (10, 8, 3, 3), dict(padding=(1, 2))),  # K_g % 4 != 0, uneven pads
    ((2, 12, 9, 17), (12, 4, 2, 3), dict(groups=3, dilation=(3, 2), padding=((2, 0), (1, 3)))),
    ((1, 8, 6, 5), (5, 8, 5, 5), dict(padding=(5, 1))),  # grad input: a negative pad
    ((1, 4, 3, 40), (8, 4, 1, 3), dict(padding=(0, 1))),  # rows longer than a job
    ((2, 2, 9, 13), (3, 2, 3, 3), dict(padding=1)),  # thin: 3 rows out, 2 in the grad input
    ((1, 8, 7, 9), (4, 2, 3, 3), dict(groups=4, padding=(1, 0))),  # one output channel a group
    ((2, 1, 10, 12), (5, 1, 5, 5), dict(padding=2, dilation=(1, 2))),  # one input channel
    # strided forwards on frames of stride phases (their gradients run tiled)
    ((2, 8, 11, 10), (8, 8, 3, 3), dict(stride=2, padding=1)),
    ((1, 3, 20, 37), (8, 3, 7, 7), dict(stride=2, padding=3)),  # a stem: rows > a vector
    ((2, 4, 13, 12), (6, 4, 3, 3), dict(stride=(3, 2), dilation=(1, 2), padding=(2, 0))),
    ((1, 4, 9, 11), (4, 4, 2, 3), dict(stride=(1, 3), padding=(0, 2))),  # 3 column phases
    ((1, 4, 7, 21), (4, 4, 3, 3), dict(stride=(1, 2), padding=1)),  # one row phase
    ((1, 4, 11, 9), (4, 4, 3, 2), dict(stride=(2, 1), padding=(1, 0))),  # one column phase
])
def test_blocked_matches_the_oracle_across_jobs(x_shape, w_shape, params, dtype, rng,
                                                 monkeypatch):
    """The blocked kernels against the oracle with jobs of one register block (64
    pixels in float32, 32 in float64): jobs that start and end inside an output row,
    dropped columns inside a job, partial blocks of 4 output channels, crops, strided
    frames; forward and gradients (stride 1: all blocked; strided: forward)."""
    from numbaconv import config

    monkeypatch.setattr(config, "BLOCKED_BLOCKS", 1)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "blocked")
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((1, 8, 22, 22), (16, 8, 3, 3), dict(padding=1)),  # 528 positions: 3 spans of 192
    ((2, 4, 9, 61), (10, 4, 5, 5), dict(padding=2)),  # spans across rows, 2 images
    ((1, 4, 23, 45), (8, 4, 3, 3), dict(stride=2, padding=1)),  # a strided frame
])
def test_blocked_spans_split_evenly_and_match_the_oracle(x_shape, w_shape, params, dtype,
                                                         threads, rng, monkeypatch):
    """The blocked kernel with its default spans (4 register blocks, cut near-equal so
    that each thread's contiguous run of jobs holds an even share of every image): spans
    that end inside rows and past the image, on one thread and two, against the oracle,
    forward and gradients."""
    import numba

    from numbaconv import config

    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"{threads} threads: this host has {numba.config.NUMBA_NUM_THREADS}")
    monkeypatch.setattr(config, "CONV_ALGORITHM", "blocked")
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_ch", [32, 40, 64])
def test_pointwise_grad_weights_of_many_channels_match_the_oracle(out_ch, dtype, rng):
    """Pointwise grad weights into 32+ output channels per group, which the chooser sends
    to the tiled kernel on AVX-512 hosts (outer products on the input up to 48 output
    channels, dot products over column tiles above), against the oracle."""
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm
    from numbaconv.kernels.cpu import simd

    x, w, b = _arrays(rng, (3, 20, 9, 11), (out_ch, 20, 1, 1), dtype)
    spec = conv_spec("conv2d", 2, x, w, b, 1, 0, 1, 1, "zeros", False)
    assert choose_conv_algorithm("cpu", spec, "conv2d_grad_weight") == (
        "tiled" if simd.WIDE else "gemm")
    _assert_forward_and_backward_match_oracle(x, w, b, {}, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 8, 13, 11), (10, 8, 3, 3), dict(padding=(1, 2))),  # K_g below one block
    ((3, 6, 7, 5), (40, 6, 3, 3), dict(padding=1)),  # two blocks, the second partial
    ((2, 12, 9, 17), (12, 4, 2, 3), dict(groups=3, dilation=(3, 2), padding=((2, 0), (1, 3)))),
    ((1, 8, 6, 5), (5, 8, 5, 5), dict(padding=(5, 1))),  # grad input: a negative pad
    ((2, 5, 11, 10), (33, 5, 3, 3), dict(stride=2, padding=1)),  # strided forward
    ((1, 4, 13, 12), (6, 4, 3, 3), dict(stride=(3, 2), dilation=(1, 2), padding=(2, 0))),
    ((1, 3, 9, 11), (8, 3, 1, 1), {}),  # 1x1
    ((2, 4, 3, 2), (7, 4, 3, 3), dict(padding=1)),  # fewer pixels than a block
    # small maps mostly padding: blocks sorted by the taps they read, some blocks
    # reading padding only, grad input with the flipped weights
    ((3, 40, 6, 5), (34, 40, 5, 3), dict(padding=(6, 4), dilation=(3, 2))),
    ((2, 36, 4, 7), (12, 18, 3, 5), dict(padding=(5, 3), groups=2)),
])
def test_channel_blocked_matches_the_oracle_across_jobs(x_shape, w_shape, params, dtype, rng,
                                                         monkeypatch):
    """The channel-blocked kernels against the oracle with every job split small: spans
    of one 12-pixel block (ending inside rows, images and past the last pixel),
    reduction chunks of one input channel (partial sums kept in the tile), each job
    packing its own weights, partial blocks of output channels, groups, crops, strides,
    dilation, taps skipped; forward and stride-1 grad input (the grad weight, and a
    strided grad input, run tiled).  Then whole jobs, from one packed copy."""
    from numbaconv import config
    from numbaconv.kernels.cpu.conv import channel_blocked

    monkeypatch.setattr(channel_blocked, "_SPAN", channel_blocked.PIXELS)
    monkeypatch.setattr(channel_blocked, "_TILE_BYTES", 1)
    monkeypatch.setattr(channel_blocked, "_WEIGHT_BYTES", 1)
    monkeypatch.setattr(channel_blocked, "_FUSE_MOST_SPANS", 10 ** 9)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "channel_blocked")
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)
    monkeypatch.undo()  # whole jobs: the default spans and chunks
    monkeypatch.setattr(channel_blocked, "_FUSE_MOST_SPANS", 0)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "channel_blocked")
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


def test_channel_blocked_tables_recorded_by_warmup_are_not_kept(monkeypatch):
    """While ``numbaconv warmup`` records kernels (``shares.RECORDER``) no share runs and
    the slot tables are left zeroed: they must not be kept for the shape's next call."""
    from numbaconv.kernels.cpu import shares
    from numbaconv.kernels.cpu.conv import channel_blocked, direct

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 7, 6)).astype(np.float32)
    w = rng.standard_normal((33, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    geometry = (1, 1, 2, 1, 2, 1, 1)
    out = np.empty((2, 33, 7, 6), np.float32)
    monkeypatch.setattr(shares, "RECORDER", lambda share, args: None)
    channel_blocked.conv2d_forward_channel_blocked(x, w, b, out, geometry)
    monkeypatch.undo()
    channel_blocked.conv2d_forward_channel_blocked(x, w, b, out, geometry)
    want = np.empty_like(out)
    direct.conv2d_forward(x, w, b, want, geometry)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("out_n, in_n, lead, taps, dilation, stride", [
    (8, 8, 6, 5, 3, 1), (7, 12, 2, 3, 1, 2), (6, 9, -1, 4, 2, 1), (3, 4, 8, 3, 2, 3),
    (10, 10, 0, 1, 1, 1)])
def test_live_taps_match_a_loop(out_n, in_n, lead, taps, dilation, stride):
    """``_args.live_taps`` against the taps counted one by one: ``[lo, hi)`` holds
    exactly the taps whose input index lies inside the input."""
    from numbaconv._args import live_taps

    lo, hi = live_taps(out_n, in_n, lead, taps, dilation, stride)
    for o in range(out_n):
        inside = [t for t in range(taps) if 0 <= o * stride - lead + t * dilation < in_n]
        assert list(range(lo[o], hi[o])) == inside, o


def test_channel_blocked_skips_the_taps_that_read_padding():
    """On a small map mostly padding, the blocks' slots cover every (image, pixel) once
    (the rest repeat a slot of their block), each block runs at least the taps its
    slots read inside the input, and sorting the slots by the taps they read leaves
    fewer taps than row-major order; a thin layer's few steps saved do not sort.  The
    kernel's tables (:func:`_build_tables`, a share) agree with that NumPy layout."""
    from numbaconv._args import live_taps
    from numbaconv.kernels.cpu.conv import channel_blocked as cb

    batch, size, k, dil, pad = 2, 8, 5, 3, 6
    key = (batch, size, size, size, size, pad, pad, k, k, dil, dil, 1, 1)
    order, rects = cb._slots(*key, 243)
    assert sorted(set(order.tolist())) == list(range(batch * size * size))
    assert len(order) == len(rects) * cb.PIXELS
    lo, hi = live_taps(size, size, pad, k, dil, 1)
    for block, (r0, r1, s0, s1) in enumerate(rects):
        for slot in order[block * cb.PIXELS:(block + 1) * cb.PIXELS]:
            oh, ow = divmod(slot % (size * size), size)
            assert r0 <= lo[oh] and hi[oh] <= r1 and s0 <= lo[ow] and hi[ow] <= s1
    exact = int((hi - lo).sum()) ** 2 * batch
    assert exact <= cb._work(rects) * cb.PIXELS < 0.4 * len(order) * k * k
    natural, natural_rects = cb._slots(*key, 3)  # 3 input channels: not worth sorting
    assert (natural == np.arange(len(natural)).clip(max=batch * size * size - 1)).all()
    # the tables the kernel reads (a numba share) hold the same slots and rectangles
    frame_w, image_size, out_ch = size + 2 * pad, 40 * (size + 2 * pad) ** 2, 7
    for c_g, slots, want in ((243, order, rects), (3, natural, natural_rects)):
        offs, dest, got = cb._build_tables(*key, c_g, frame_w, image_size, out_ch)
        n, pixel = np.divmod(slots, size * size)
        oh, ow = np.divmod(pixel, size)
        assert (got == want).all()
        assert (offs == n * image_size + oh * frame_w + ow).all()
        assert (dest == n * out_ch * size * size + pixel).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, mult, params", [
    ((2, 3, 8, 8), 1, dict(stride=2, padding=1)),                   # even: whole pairs
    ((1, 2, 7, 9), 2, dict(stride=2, padding=(0, 2))),               # odd sizes, pad > 1
    ((2, 2, 9, 8), 1, dict(stride=(2, 1), dilation=(1, 2), padding=2)),
    ((1, 3, 9, 11), 1, dict(stride=(1, 3), padding=(1, 0))),         # 3 column phases
    ((1, 2, 10, 9), 1, dict(stride=(3, 2), dilation=(2, 3), padding=(2, 3))),
    ((1, 2, 4, 4), 1, dict(stride=2, padding=3)),                    # pads past the input
    ((2, 2, 5, 37), 1, dict(padding=1)),                  # rows of several vectors
    ((1, 2, 6, 40), 2, dict(stride=(1, 3), padding=(1, 2), dilation=(1, 2))),
    # many planes: each thread's share holds several, on buffers allocated once
    ((3, 48, 6, 5), 1, dict(padding=1)),
    ((3, 48, 7, 9), 1, dict(stride=(2, 3), padding=(1, 2))),
])
def test_depthwise_matches_the_oracle_across_stride_phases(x_shape, mult, params, dtype,
                                                            rng, monkeypatch):
    """The depthwise kernels' stride-phase split (row phases assembled by whole rows,
    then split into column phases by one flat pass) and its adjoint, on strides 1-3,
    dilations, pads that reach past the input, rows shorter and longer than a vector
    (whose passes run in whole vectors), and more planes than runs (each run reusing
    its buffers), forward and both gradients."""
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm

    from numbaconv import config

    monkeypatch.setattr(config, "DIRECT_MAX_MACS", 0)  # tiny layers: not the direct kernel
    ch = x_shape[1]
    x, w, b = _arrays(rng, x_shape, (ch * mult, 1, 3, 3), dtype)
    params = dict(params, groups=ch)
    spec = conv_spec("conv2d", 2, x, w, b, params.get("stride", 1), params["padding"],
                     params.get("dilation", 1), ch, "zeros", False)
    assert choose_conv_algorithm("cpu", spec) == "depthwise"
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simd_load_transposed_is_the_square_transposed(dtype):
    """``simd.load_transposed``: the square of ``lanes`` vectors at an offset, channel ``c``
    of each slot as vector ``c`` (how the channel-blocked kernel writes runs of slots)."""
    from numba import njit

    from numbaconv.kernels.cpu import simd

    @njit
    def columns(a, at, out, count):
        width = simd.lanes(a)
        square = simd.load_transposed(a, at)
        for c in range(count):
            simd.store_flat(out, c * width, square[c])

    lanes = simd.VECTOR_BYTES // np.dtype(dtype).itemsize
    a = np.arange(lanes * lanes + 3, dtype=dtype)
    out = np.zeros(lanes * lanes, dtype)
    columns(a, 3, out, lanes - 1)
    want = a[3:].reshape(lanes, lanes).T
    assert (out.reshape(lanes, lanes)[:-1] == want[:-1]).all()
    assert (out[-lanes:] == 0).all()  # only the columns asked for are stored


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, mult, params", [
    ((2, 3, 14, 14), (5, 5), 1, dict(padding=2)),          # 12 rows + a block ending at 14
    ((1, 2, 9, 9), (7, 7), 1, dict(padding=3)),
    ((2, 2, 8, 8), (5, 5), 1, dict(padding=4, dilation=2)),  # two chains of rows 2 apart
    ((1, 2, 11, 9), (5, 3), 1, dict(padding=(4, 1), dilation=(2, 1))),  # chains of 5, 6
    ((1, 2, 5, 37), (4, 2), 1, dict(padding=(2, 1))),       # rows of 3 vectors
    ((1, 2, 6, 6), (5, 5), 1, dict(padding=2)),             # few rows: the flat pass
    ((1, 2, 4, 4), (5, 5), 1, dict(padding=3)),             # pads past the input
    ((2, 2, 10, 10), (5, 5), 1, dict(stride=2, padding=4, dilation=2)),  # one row phase
    ((1, 2, 17, 17), (5, 5), 1, dict(stride=2, padding=2)),  # two row phases: flat
    ((1, 2, 40, 31), (5, 5), 1, dict(stride=2, padding=2)),  # two row phases, 20 rows
    ((1, 2, 12, 12), (5, 5), 2, dict(padding=2)),           # a multiplier: grad input adds
    ((1, 2, 8, 21), (1, 5), 1, dict(padding=(0, 2))),       # one kernel row
])
def test_depthwise_taps_down_columns_match_the_oracle(x_shape, kernel, mult, params, dtype,
                                                       rng, monkeypatch):
    """The depthwise kernels past 3x3, whose forward and stride-1 grad input run blocks of
    4 rows with a window of input vectors down each tap column (``_gather_rows``) where
    that pays, the flat pass elsewhere: chains of rows a dilation apart, a last block
    that overlaps the one before, rows of several vectors, strided layers of one row
    phase and of two, pads past the input and a channel multiplier, forward and both
    gradients."""
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm

    monkeypatch.setattr(config, "DIRECT_MAX_MACS", 0)  # tiny layers: not the direct kernel
    ch = x_shape[1]
    x, w, b = _arrays(rng, x_shape, (ch * mult, 1) + kernel, dtype)
    params = dict(params, groups=ch)
    spec = conv_spec("conv2d", 2, x, w, b, params.get("stride", 1), params["padding"],
                     params.get("dilation", 1), ch, "zeros", False)
    assert choose_conv_algorithm("cpu", spec) == "depthwise"
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


def test_depthwise_rows_rule():
    """Where the forward takes blocks of rows: every chain of rows has a block of 4, and
    the blocks' vectors are at most 5/4 of the flat pass's; a tap step of whole rows only."""
    from numbaconv.kernels.cpu.conv import depthwise as dw

    assert dw._rows_pay(14, 14, 18, 1, 16)        # 16 vectors against the flat pass's 16
    assert dw._rows_pay(28, 28, 34, 1, 16)        # 56 against 60
    assert dw._rows_pay(56, 56, 62, 1, 16)        # 224 against 217: within 5/4
    assert not dw._rows_pay(6, 6, 10, 1, 16)      # 8 against 4
    assert not dw._rows_pay(7, 7, 15, 2, 16)      # a chain of 3 rows
    offsets = np.array([r * 20 + s for r in range(5) for s in range(5)])
    assert dw._row_step(offsets, 5, 5, 20) == 20
    assert dw._row_step(offsets, 5, 5, 7) == 0    # not whole rows
    offsets[7] += 1
    assert dw._row_step(offsets, 5, 5, 20) == 0   # not one step
    assert dw._row_step(offsets[:5], 1, 5, 20) == 0


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((3, 1, 8, 8), (32, 1, 3, 3), dict(padding=1)),  # the main job's first layer
    ((2, 1, 11, 9), (6, 1, 5, 5), dict(padding=2)),
    ((2, 1, 13, 10), (4, 1, 3, 3), dict(stride=2, padding=1)),
    ((1, 1, 12, 12), (5, 1, 3, 2), dict(dilation=(2, 3), padding=(1, 2))),
])
def test_single_input_channel_takes_the_dense_kernels(x_shape, w_shape, params, rng):
    """One input channel is depthwise by its groups, and runs the dense kernels (direct,
    blocked, tiled, GEMM) but for a stride-1 grad input up to 5x5 (the depthwise
    kernels, channel multiplier K); and the parameter-only
    backward of a layer fed with data equals the full one."""
    from numbaconv.functional.conv import conv_param_grads

    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    _assert_forward_and_backward_match_oracle(x, w, b, params, np.float64, rng)
    go = rng.standard_normal(nc.conv2d(x, w, b, **params).shape)
    full = nc.conv2d_backward(go, x, w, b, **params)
    for got, want in zip(conv_param_grads(2, go, x, w, b, **params), full[1:]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 16, 9, 8), (8, 16, 3, 3), dict(padding=1)),  # runs of 48 values (3 vectors)
    ((2, 8, 9, 8), (8, 8, 3, 3), dict(padding=1)),  # runs of 24: in place in float64 only
    ((2, 16, 7, 9), (8, 8, 3, 2),
     dict(groups=2, stride=(2, 1), dilation=(2, 1), padding=(2, 1))),  # runs of 16
    ((1, 8, 10, 10), (12, 8, 5, 5), dict(stride=2, padding=2)),  # a last tile of 1 pixel
    ((2, 8, 9, 18), (4, 8, 3, 3), dict(stride=(2, 1), dilation=(2, 1), padding=2)),
    # ragged runs of at least 4 vectors (66 values), 7 output channels padded to 8
    ((2, 22, 9, 8), (7, 22, 3, 3), dict(padding=1)),
    ((2, 44, 7, 9), (10, 22, 3, 3), dict(groups=2, stride=2, padding=1)),  # 5 per group
    ((1, 70, 6, 6), (9, 70, 1, 1), dict(stride=2)),  # a ragged 1x1: the tile
    # the grad input's convs: runs of 3*22 values over 7 padded input channels, at
    # stride 1 and per stride phase (phases of 2 taps a row read in place)
    ((2, 7, 9, 8), (22, 7, 3, 3), dict(padding=1)),
    ((1, 6, 11, 10), (44, 6, 3, 3), dict(stride=2, padding=1)),
    # dilated along W at stride 1: one conv of dilation 1 per column phase (the rule's
    # limits lowered in the test)
    ((2, 22, 9, 11), (6, 22, 3, 3), dict(dilation=2, padding=(2, 1))),
    ((1, 16, 6, 5), (8, 16, 3, 3), dict(dilation=(1, 3), padding=(1, 4))),
    ((1, 16, 5, 2), (4, 16, 2, 2), dict(dilation=3, padding=3)),  # a phase of no columns
])
@pytest.mark.parametrize("in_place", [True, False])
def test_tiled_reads_receptive_fields_in_place(x_shape, w_shape, params, dtype, in_place, rng,
                                               monkeypatch):
    """Convs whose kernel rows are runs of whole vectors, or long ragged runs, read
    their receptive fields straight from the frame (one run of kW*C_g values per kernel
    row, ``gemm.block_runs``; on AVX-512 hosts; a tile's last 1-3 pixels through a 4x4
    buffer; output channels padded to whole blocks of 4 into a scratch output), the
    others build the tile; against the oracle, over several tiles (and grad weight jobs
    of 2 output rows), and with the in-place reads switched off."""
    from numbaconv import config
    from numbaconv.kernels.cpu import simd
    from numbaconv.kernels.cpu.conv import tiled

    taps = w_shape[2] * w_shape[3]
    run = w_shape[3] * w_shape[1]
    lanes = 64 // np.dtype(dtype).itemsize
    dilation = params.get("dilation", 1)
    dw = dilation[1] if isinstance(dilation, tuple) else dilation
    monkeypatch.setattr(config, "TILED_IN_PLACE", True)
    expected = simd.WIDE and dw == 1 and (run % lanes == 0 or (taps > 1 and run >= config.TILED_RAGGED_VECTORS * lanes))
    assert tiled._in_place(run, np.dtype(dtype).itemsize, dw, taps) == expected
    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")  # stride 1 would run 'blocked'
    monkeypatch.setattr(config, "TILED_PIXELS", 8)
    monkeypatch.setattr(config, "TILED_PHASE_VECTORS", 1)
    monkeypatch.setattr(config, "TILED_PAD_MIN_REDUCTION", 1)
    monkeypatch.setattr(config, "TILED_GRAD_PIXELS", 40)
    monkeypatch.setattr(config, "TILED_IN_PLACE", in_place)
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((1, 3, 7, 8), (3, 1, 3, 3), dict(groups=3, padding=1)),  # fused taps, stride 1
    ((1, 2, 9, 8), (2, 1, 3, 3), dict(groups=2, stride=2, padding=1)),  # axpy grad input
    ((1, 2, 8, 7), (4, 1, 5, 3), dict(groups=2, padding=(2, 1), dilation=(1, 2))),  # not 3x3
    ((1, 8, 6, 6), (8, 8, 3, 3), dict(padding=1)),  # tiled, receptive fields in place
    ((1, 3, 9, 11), (8, 3, 3, 3), dict(stride=2, padding=1)),  # blocked on stride phases
    ((1, 8, 7, 9), (8, 8, 3, 3), dict(stride=2, padding=1)),  # grad input: phases merged
])
def test_simd_paths_match_finite_differences(x_shape, w_shape, params, rng):
    """The SIMD kernels under the chooser's own choice (depthwise taps in one pass and
    the stride-2 split into phases, the tiled block reading runs in place in float64:
    runs of 24 = 3 vectors, the blocked forward on a frame of stride phases, the strided
    grad input's column phases merged with vector shuffles) against central differences
    of the forward, at 40 picked entries of input and weight."""
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    gy = rng.standard_normal(nc.conv2d(x, w, b, **params).shape)

    def loss():
        return float(np.sum(nc.conv2d(x, w, b, **params) * gy))

    grads = nc.conv2d_backward(gy, x, w, b, **params)
    for got, arr in zip(grads, (x, w, b)):
        picked = rng.choice(arr.size, size=min(arr.size, 40), replace=False)
        want = numeric_grad(loss, arr, indices=picked).reshape(-1)[picked]
        np.testing.assert_allclose(got.reshape(-1)[picked], want, rtol=1e-6, atol=1e-7)


def test_tiled_grad_weight_is_deterministic_for_a_thread_count(rng, monkeypatch):
    """Per-thread partial sums added in thread order: repeated calls give the same bits,
    and one thread (one partial) agrees with the oracle too."""
    import numba

    from numbaconv import config

    monkeypatch.setattr(config, "TILED_GRAD_PIXELS", 16)  # many jobs per thread
    x, w, _ = _arrays(rng, (3, 8, 9, 7), (6, 8, 3, 3), np.float32, bias=False)
    gy = rng.standard_normal((3, 6, 9, 7)).astype(np.float32)
    runs = [nc.conv2d_backward(gy, x, w, None, padding=1)[1] for _ in range(3)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = nc.conv2d_backward(gy, x, w, None, padding=1)[1]
    finally:
        numba.set_num_threads(threads)
    want = ref.conv2d_backward(gy, x, w, None, padding=1)[1]
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(single, want, rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, m, n, k", [(1, 8, 12, 33), (3, 5, 7, 4), (2, 4, 1, 1),
                                             (1, 4, 8, 32), (2, 8, 4, 47)])
def test_gemm_nt_matches_numpy(groups, m, n, k, dtype, rng):
    """numba's dot-product GEMM (it accumulates into ``c``), full 4x4 blocks and edge
    rows / columns, on strided operands (only the last axis is unit-stride)."""
    from numbaconv.kernels.cpu.gemm import gemm_nt

    a = rng.standard_normal((groups, m, 2 * k)).astype(dtype)[:, :, ::2].copy()
    b = rng.standard_normal((groups, 2 * n, k)).astype(dtype)[:, ::2]
    c0 = rng.standard_normal((groups, m, n)).astype(dtype)
    c = c0.copy()
    gemm_nt(a, b, c)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(c, c0 + a @ b.transpose(0, 2, 1), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 7, 16, 23, 64, 100])
def test_both_register_blocks_match_numpy(k, dtype, rng):
    """The 4x4 block in explicit SIMD vectors (AVX-512 hosts: whole vectors, a masked
    tail, one joint tree of sums, the lanes in row-major order) and the scalar-reduction
    block other hosts run, each on one block of wider operands."""
    from numba import njit

    from numbaconv.kernels.cpu import gemm

    def run(impl):
        @njit
        def one_block(a, b, c):
            impl(a, 4, b, 2, c, 1, 3)
        return one_block

    a = rng.standard_normal((9, k)).astype(dtype)
    b = rng.standard_normal((7, k)).astype(dtype)
    c0 = rng.standard_normal((6, 8)).astype(dtype)
    want = c0.copy()
    want[1:5, 3:7] += a[4:8] @ b[2:6].T
    rtol, atol = tolerance(dtype)
    for impl in (gemm._block_vector, gemm._block_scalar):
        c = c0.copy()
        run(impl)(a, b, c)
        np.testing.assert_allclose(c, want, rtol=rtol, atol=atol)


def test_chooser_rules(monkeypatch):
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm
    from numbaconv.kernels.cpu import simd

    def spec(c_in, c_out, groups, k=3, stride=1, size=8):
        x = np.zeros((1, c_in, size, size), np.float32)
        w = np.zeros((c_out, c_in // groups, k, k), np.float32)
        return conv_spec("conv2d", 2, x, w, None, stride, 0, 1, groups, "zeros", False)

    def choose(s, kernel="conv2d_forward"):
        return choose_conv_algorithm("cpu", s, kernel)

    # a tiny forward runs direct on one thread (one kernel call), whatever else would apply
    assert choose(spec(16, 32, 1)) not in ("direct", "serial")  # 1*32*6*6*144 = 165888
    assert choose(spec(3, 5, 1, size=5)) == "serial"  # 1215 products
    assert choose(spec(8, 8, 8, size=5)) == "depthwise"  # 648: one pass a plane
    assert choose(spec(1, 5, 1, size=5)) == "serial"  # one input channel: dense rules
    assert choose(spec(3, 5, 1, size=5), "conv2d_grad_input") != "direct"
    # a small grad input: the GEMM path, strided from 4 output channels per group, at
    # stride 1 from GEMM_SMALL_GRAD_INPUT_MIN_OUT_CHANNELS
    assert choose(spec(16, 24, 1, size=10), "conv2d_grad_input") == "gemm"  # 221184
    assert choose(spec(16, 16, 1, size=10), "conv2d_grad_input") != "gemm"
    assert choose(spec(16, 4, 1, stride=2), "conv2d_grad_input") == "gemm"
    assert choose(spec(16, 3, 1, stride=2), "conv2d_grad_input") != "gemm"
    assert choose(spec(16, 24, 1, size=10)) != "gemm"  # the forward: not this rule
    # ... but a small strided forward of GEMM_SMALL_FORWARD_MIN_OUT_CHANNELS: GEMM
    assert choose(spec(2, 128, 1, stride=2, size=16)) == "gemm"  # 112896 products
    assert choose(spec(2, 127, 1, stride=2, size=16)) != "gemm"
    assert choose(spec(2, 128, 1, k=1, stride=2, size=16)) != "gemm"  # 1x1: its subsample
    monkeypatch.setattr(config, "GEMM_SMALL_MACS", 0)
    monkeypatch.setattr(config, "DIRECT_MAX_MACS", 0)  # the rules below, on tiny specs
    # the channel-blocked rule (tested apart: test_channel_blocked_rule) off, so that
    # these specs show the rules it comes before
    monkeypatch.setattr(config, "CHANNEL_BLOCKED_MIN_FILL", 2.0)
    monkeypatch.setattr(config, "CHANNEL_BLOCKED_MIN_FILL_LONG", 2.0)
    # the blocked conv needs AVX-512's 32 registers; elsewhere its cases run tiled / gemm
    blocked = (lambda other: "blocked") if simd.WIDE else (lambda other: other)
    assert choose(spec(32, 32, 32)) == "depthwise"
    for kernel in ("conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight"):
        assert choose(spec(32, 64, 32, k=1, size=16), kernel) == "direct"  # a per-channel scale
        assert choose(spec(32, 32, 32, k=1, stride=2), kernel) == "direct"
    assert choose(spec(8, 16, 8)) == "depthwise"  # multiplier 2
    # a stride-1 grad input whose input planes are 3x+ the output's, from 8 output
    # channels per group: the GEMM path (the adjoint conv would run mostly over zeros)
    assert choose(spec(16, 8, 1, k=5), "conv2d_grad_input") == "gemm"  # 64 px in, 16 out
    assert choose(spec(16, 7, 1, k=5), "conv2d_grad_input") == blocked("tiled")
    assert choose(spec(16, 8, 1, size=12), "conv2d_grad_input") == blocked("tiled")  # 144, 100
    # ... a depthwise one too, of a channel multiplier of DEPTHWISE_MAX_MULTIPLIER or more
    assert choose(spec(8, 128, 8, k=5), "conv2d_grad_input") == "gemm"
    assert choose(spec(8, 120, 8, k=5), "conv2d_grad_input") == "depthwise"
    assert choose(spec(8, 64, 8, k=5), "conv2d_grad_input") == "depthwise"
    # a channel multiplier of DEPTHWISE_MAX_MULTIPLIER or more: its grad weight, and its
    # forward if strided or past 3x3, take the dense rules
    assert choose(spec(8, 128, 8, k=5)) == blocked("gemm")
    assert choose(spec(8, 120, 8, k=5)) == "depthwise"
    assert choose(spec(8, 128, 8, stride=2)) == blocked("gemm")
    assert choose(spec(8, 128, 8)) == "depthwise"  # 3x3, stride 1
    assert choose(spec(8, 128, 8), "conv2d_grad_weight") == "tiled"
    assert choose(spec(8, 120, 8), "conv2d_grad_weight") == "depthwise"
    assert choose(spec(8, 128, 8, size=12), "conv2d_grad_input") == "depthwise"

    def rect(h, w, kh, kw, padding_mode="zeros", padding=0):
        x = np.zeros((1, 16, h, w), np.float32)
        return conv_spec("conv2d", 2, x, np.zeros((8, 16, kh, kw), np.float32), None, 1,
                         padding, 1, 1, padding_mode, False)

    assert choose(rect(5, 9, 3, 5), "conv2d_grad_input") == "gemm"  # 45 pixels in, 15 out
    assert choose(rect(7, 8, 3, 5), "conv2d_grad_input") == blocked("tiled")  # 56, 20
    # under a padding mode the grad input runs on the padded planes: 13x13 against 7x7
    assert choose(rect(9, 9, 7, 7, "circular", 2), "conv2d_grad_input") == "gemm"
    assert choose(rect(9, 9, 7, 7, "zeros", 2), "conv2d_grad_input") != "gemm"  # 81, 49
    # one input channel (an MNIST first layer): the dense rules, but the depthwise
    # kernels for a stride-1 grad input up to 5x5
    assert choose(spec(1, 32, 1)) == blocked("gemm")
    assert choose(spec(1, 32, 1), "conv2d_grad_input") == "depthwise"
    assert choose(spec(1, 32, 1, k=5)) == blocked("gemm")
    assert choose(spec(1, 32, 1, k=5), "conv2d_grad_input") == "depthwise"
    assert choose(spec(1, 32, 1, k=7, size=30), "conv2d_grad_input") == blocked("gemm")
    assert choose(spec(1, 32, 1), "conv2d_grad_weight") == "tiled"
    assert choose(spec(1, 32, 1, stride=2)) == blocked("gemm")
    assert choose(spec(1, 32, 1, stride=2), "conv2d_grad_input") == "gemm"
    assert choose(spec(1, 32, 1, stride=2), "conv2d_grad_weight") == "tiled"
    # thin groups with few products per pixel: direct, but a stride-1 forward with
    # several outputs per group runs blocked
    assert choose(spec(1, 2, 1, k=5)) == blocked("direct")  # 50 products per pixel
    assert choose(spec(1, 1, 1, k=7), "conv2d_grad_input") == "direct"
    assert choose(spec(1, 5, 1, stride=2)) == "direct"
    assert choose(spec(4, 1, 1)) == "direct"  # one output channel
    assert choose(spec(32, 32, 16)) == blocked("direct")  # 2 in, 2 out per group
    assert choose(spec(32, 32, 16), "conv2d_grad_weight") == "direct"
    assert choose(spec(3, 2, 1)) == blocked("direct")
    # stride 1: forward and grad input blocked, however long the reduction or thin the
    # layer, but the forward of narrow maps (OW < 20) with many output channels
    for c_in, c_out, groups, k in ((16, 32, 1, 3), (4, 32, 1, 3), (64, 64, 16, 3),
                                   (16, 32, 1, 5), (256, 256, 1, 3), (72, 4, 4, 3)):
        want = "tiled" if c_in // groups >= 8 else "gemm"
        for kernel in ("conv2d_forward", "conv2d_grad_input"):
            wide_map = conv_spec("conv2d", 2, np.zeros((1, c_in, 30, 30), np.float32),
                                 np.zeros((c_out, c_in // groups, k, k), np.float32), None,
                                 1, 0, 1, groups, "zeros", False)
            assert choose(wide_map, kernel) == blocked(want), (c_in, c_out, groups, k)
    assert choose(spec(256, 256, 1)) == "tiled"  # 6 columns out, 256 channels
    # ... or a deep input (32+ channels per group, up to 2 groups) on at most 400 pixels
    assert choose(spec(256, 16, 1)) == "tiled"  # 36 pixels
    assert choose(spec(64, 16, 2)) == "tiled"
    assert choose(spec(31, 16, 1)) == blocked("tiled")
    assert choose(spec(256, 16, 4)) == blocked("tiled")  # 4 groups
    tall = conv_spec("conv2d", 2, np.zeros((1, 256, 43, 12), np.float32),
                     np.zeros((16, 256, 3, 3), np.float32), None, 1, 0, 1, 1, "zeros", False)
    assert choose(tall) == blocked("tiled")  # 41x10: 410 pixels
    # ... but a grad input of 128+ output channels, thin or on few pixels: GEMM (AVX-512)
    gemm_gi = "gemm" if simd.WIDE else "tiled"
    assert choose(spec(256, 256, 1), "conv2d_grad_input") == gemm_gi  # 36 pixels
    assert choose(spec(64, 128, 1), "conv2d_grad_input") == gemm_gi
    assert choose(spec(64, 127, 1), "conv2d_grad_input") == blocked("tiled")
    thin = conv_spec("conv2d", 2, np.zeros((2, 3, 30, 30), np.float32),
                     np.zeros((128, 3, 3, 3), np.float32), None, 1, 1, 1, 1, "zeros", False)
    assert choose(thin, "conv2d_grad_input") == "gemm"  # thin: the rules below elsewhere
    many = conv_spec("conv2d", 2, np.zeros((8, 64, 30, 30), np.float32),
                     np.zeros((128, 64, 3, 3), np.float32), None, 1, 1, 1, 1, "zeros", False)
    assert choose(many, "conv2d_grad_input") == blocked("tiled")  # 7200 pixels, 64 in
    # grad weight at stride 1: blocked from 16 channels in and out per group, up to a
    # reduction of 800, on maps from 20 columns
    assert choose(spec(16, 64, 1, size=30), "conv2d_grad_weight") == blocked("tiled")
    assert choose(spec(16, 32, 1), "conv2d_grad_weight") == "tiled"  # 6 columns
    assert choose(spec(16, 8, 1), "conv2d_grad_weight") == "tiled"
    assert choose(spec(8, 32, 1), "conv2d_grad_weight") == "tiled"
    assert choose(spec(128, 32, 1), "conv2d_grad_weight") == "tiled"  # 1152
    assert choose(spec(4, 32, 1), "conv2d_grad_weight") == "tiled"
    # strided forwards with short reductions run blocked on a frame of stride phases,
    # even with few input channels (the RGB stem); their grad input and grad weight,
    # and strided 1x1 convs, do not
    assert choose(spec(16, 32, 1, stride=2, size=48)) == blocked("tiled")  # 23 columns
    assert choose(spec(4, 32, 1, stride=2)) == blocked("gemm")
    assert choose(spec(64, 64, 1, stride=2, size=48)) == "tiled"  # 576
    assert choose(spec(16, 32, 1, stride=2, size=48), "conv2d_grad_input") == "tiled"
    assert choose(spec(16, 32, 1, stride=2), "conv2d_grad_input") == "gemm"  # 9 pixels
    assert choose(spec(16, 32, 1, stride=2), "conv2d_grad_weight") == "tiled"
    # a grad weight of 64+ output channels per group from at most 64 pixels: one product
    assert choose(spec(16, 64, 1, stride=2), "conv2d_grad_weight") == "gemm"
    assert choose(spec(16, 64, 1, stride=2, size=20), "conv2d_grad_weight") != "gemm"  # 81
    # ... but those of 8+ input channels per group on small narrow maps (under 20
    # columns, at most 400 pixels) run tiled
    assert choose(spec(16, 32, 1, stride=2, size=38)) == "tiled"  # 18x18
    assert choose(spec(16, 32, 1, stride=2, size=42)) == blocked("tiled")  # 20x20
    assert choose(spec(7, 32, 1, stride=2, size=38)) == blocked("gemm")  # thin
    x = np.zeros((1, 16, 60, 30), np.float32)
    tall = conv_spec("conv2d", 2, x, np.zeros((32, 16, 3, 3), np.float32), None, 2, 0, 1,
                     1, "zeros", False)  # 29x14: 406 pixels
    assert choose(tall) == blocked("tiled")
    # a strided 1x1 forward: blocked up to BLOCKED_STRIDED_1X1_MAX_CHANNELS input channels
    assert choose(spec(16, 32, 1, k=1, stride=2, size=48)) == blocked("tiled")
    assert choose(spec(64, 32, 1, k=1, stride=2, size=48)) == "tiled"
    # few input channels: the grad weight (a reduction over pixels) runs tiled, the
    # strided grad input on the GEMM path
    assert choose(spec(4, 32, 1, stride=2), "conv2d_grad_weight") == "tiled"
    assert choose(spec(4, 32, 1, stride=2), "conv2d_grad_input") == "gemm"
    # a strided grad input of a long reduction (K_g*kH*kW >= 4096), or of at most 512
    # output pixels: the GEMM path
    assert choose(spec(16, 512, 1, stride=2, size=48), "conv2d_grad_input") == "gemm"  # 4608
    assert choose(spec(16, 256, 1, stride=2, size=48), "conv2d_grad_input") == "tiled"  # 2304
    assert choose(spec(16, 256, 1, stride=2, size=46), "conv2d_grad_input") == "gemm"  # 22x22
    assert choose(spec(16, 512, 1, stride=2)) != "gemm"  # the forward: not this rule
    # ... and a strided 1x1 grad input, whatever its reduction
    assert choose(spec(64, 32, 1, k=1, stride=2), "conv2d_grad_input") == "gemm"
    assert choose(spec(3, 2, 1), "conv2d_grad_weight") == "direct"
    # few output channels per group (at most 48) and runs of kW*C_g values that padding
    # to whole blocks of 4 vectors lengthens by at most 40%: the grad weight runs tiled
    # (outer products on the frame, AVX-512), whatever the rules above would pick
    assert choose(spec(16, 32, 1, size=30), "conv2d_grad_weight") == "tiled"  # not blocked
    assert choose(spec(136, 14, 1, k=7, size=20), "conv2d_grad_weight") == "tiled"
    pointwise = conv_spec("conv2d", 2, np.zeros((2, 347, 10, 10), np.float32),
                          np.zeros((36, 347, 1, 1), np.float32), None, 1, 0, 1, 1, "zeros",
                          False)
    # ... but a pointwise grad weight into at most 31 output channels is the images'
    # products summed: no columns either; into more, tiled (AVX-512: its vector blocks)
    avx512 = (lambda yes, no: yes) if simd.WIDE else (lambda yes, no: no)
    assert choose(pointwise, "conv2d_grad_weight") == avx512("tiled", "gemm")  # 36
    assert choose(pointwise) == "gemm"
    for out_ch, wide in ((31, "gemm"), (32, "tiled")):
        edge = conv_spec("conv2d", 2, np.zeros((2, 347, 10, 10), np.float32),
                         np.zeros((out_ch, 347, 1, 1), np.float32), None, 1, 0, 1, 1, "zeros",
                         False)
        assert choose(edge, "conv2d_grad_weight") == avx512(wide, "gemm")
    assert choose(spec(32, 64, 1, size=30), "conv2d_grad_weight") == blocked("tiled")
    assert choose(spec(1, 32, 1), "conv2d_grad_weight") == "tiled"  # runs of 3: tiles
    # ... and within 'tiled', long reductions (at least 2048 values) read in place too
    from numbaconv.kernels.cpu.conv import tiled
    assert (tiled._grad_runs(68, 338, 7, 7, 1, 4) is not None) == simd.WIDE
    assert tiled._grad_runs(64, 64, 3, 3, 1, 4) is None  # 576 values: the tiles
    assert tiled._grad_runs(48, 64, 3, 3, 1, 4) == ((1, 192, 192) if simd.WIDE else None)
    assert choose(spec(64, 64, 1, k=1), "conv2d_grad_weight") == avx512("tiled", "gemm")
    assert choose(spec(64, 16, 1, k=1), "conv2d_grad_weight") == "gemm"
    assert choose(spec(64, 64, 1, k=1)) == "gemm"  # 1x1
    assert choose(spec(8, 64, 1, k=1)) == "gemm"  # 1x1 from TILED_MIN_CHANNELS
    # a thin pointwise forward: flat axpys on one thread up to 4096 products; past them,
    # on numba's threads for 1-2 channels per group on planes of 800+ pixels, else GEMM
    assert choose(spec(2, 2, 1, k=1)) == "serial"  # 256 products
    assert choose(spec(2, 64, 1, k=1, size=30)) == "direct"  # 900 pixels
    assert choose(spec(4, 64, 2, k=1, size=30)) == "direct"  # 2 channels per group
    assert choose(spec(2, 64, 1, k=1, size=28)) == "gemm"  # 784 pixels
    assert choose(spec(3, 64, 1, k=1, size=30)) == "gemm"  # 3 channels
    assert choose(spec(7, 64, 1, k=1, size=16)) == "gemm"
    assert choose(spec(1, 64, 1, k=1, size=16)) == "direct"  # one channel, a small plane
    assert choose(spec(7, 64, 1, k=1, size=16), "conv2d_grad_input") == "gemm"
    assert choose(spec(1, 64, 1, k=1, size=12)) == "direct"  # one channel: an outer product
    assert choose(spec(1, 64, 1, k=1, stride=2)) == "direct"  # ... at any stride
    # two channels: the rules below (a thin strided 1x1 forward runs blocked)
    assert choose(spec(2, 64, 1, k=1, stride=2)) == blocked("gemm")
    assert choose(spec(8, 64, 8, k=1, size=12)) == "direct"  # depthwise 1x1, multiplier 8
    assert choose(spec(1, 64, 1, k=1), "conv2d_grad_weight") == "gemm"
    monkeypatch.setattr(config, "CONV_ALGORITHM", "winograd")  # removed: a clear error
    with pytest.raises(ValueError, match="CONV_ALGORITHM.*winograd"):
        choose(spec(16, 16, 1))


# --------------------------------------------------------------------------- drop-in
def _torch_conv(op, x, w, b, params):
    """PyTorch's answer: padding_mode / flip / per-side padding as API.md defines them."""
    F = torch.nn.functional
    nd = x.ndim - 2
    params = dict(params)
    mode = params.pop("padding_mode", "zeros")
    flip = params.pop("flip", False)
    padding = params.pop("padding", 0)
    per_side = isinstance(padding, tuple) and isinstance(padding[0], tuple)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    if flip:
        tw = torch.flip(tw, dims=list(range(2, 2 + nd)))
    if mode != "zeros" or per_side:
        if isinstance(padding, str):
            pairs = padding  # only 'same' here: let a module compute it
            conv = getattr(torch.nn, f"Conv{nd}d")(x.shape[1], w.shape[0], w.shape[2:],
                                                   padding=pairs, padding_mode=mode,
                                                   bias=b is not None, **params)
            with torch.no_grad():
                conv.weight.copy_(tw)
                if b is not None:
                    conv.bias.copy_(tb)
            return conv(tx).detach().numpy()
        if not per_side:
            padding = (padding,) * nd if isinstance(padding, int) else padding
            padding = tuple((p, p) for p in padding)
        flat = [v for pair in reversed(padding) for v in pair]  # last dim first
        tx = F.pad(tx, flat, mode={"zeros": "constant"}.get(mode, mode))
        padding = 0
    return getattr(F, op)(tx, tw, tb, padding=padding, **params).numpy()


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("op, x_shape, w_shape, params", ALL_CASES, ids=IDS)
def test_matches_torch(op, x_shape, w_shape, params, rng):
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    np.testing.assert_allclose(getattr(nc, op)(x, w, b, **params),
                               _torch_conv(op, x, w, b, params), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("case", [1, 2, 3, 5, 7, 9, 18, 19], ids=str)
def test_backward_matches_torch_autograd(case, rng):
    op, x_shape, w_shape, params = ALL_CASES[case]
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = getattr(torch.nn.functional, op)(tx, tw, tb, **params)
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    grads = getattr(nc, op + "_backward")(gy, x, w, b, **params)
    for got, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- inputs
def test_inputs_are_not_mutated(rng):
    x, w, b = _arrays(rng, (2, 4, 6, 6), (4, 2, 3, 3), np.float64)
    params = dict(groups=2, padding=2, padding_mode="reflect", flip=True)
    copies = [a.copy() for a in (x, w, b)]
    y = nc.conv2d(x, w, b, **params)
    gy = np.ones_like(y)
    gy_copy = gy.copy()
    nc.conv2d_backward(gy, x, w, b, **params)
    for a, c in zip((x, w, b, gy), copies + [gy_copy]):
        np.testing.assert_array_equal(a, c)


def test_channel_blocked_writes_a_non_contiguous_out():
    """The kernel called directly on an ``out`` whose pixels are not one flat run (a
    transposed view): the answer lands in ``out``, as the direct kernel's does."""
    from numbaconv.kernels.cpu.conv import channel_blocked, direct

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((33, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    geometry = (1, 1, 1, 1, 1, 1, 1)
    out = np.empty((2, 33, 7, 6), np.float32).transpose(0, 1, 3, 2)
    channel_blocked.conv2d_forward_channel_blocked(x, w, b, out, geometry)
    want = np.empty((2, 33, 6, 7), np.float32)
    direct.conv2d_forward(x, w, b, want, geometry)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_tiled_jobs_divide_among_the_threads():
    """Few tiled jobs that do not divide among the threads become more, smaller tiles
    of an image (every tile holding pixels); many, or evenly dividing, stay as they
    are; and the forward gives the direct kernel's answer either way."""
    import numba

    from numbaconv.kernels.cpu.conv import direct, tiled

    def jobs(batch, h, w, threads):
        return tiled._jobs(np.empty((batch, 4, h, w), np.float32), 1, 64, threads)

    assert jobs(1, 12, 12, 2) == (4, 4, 36)  # 3 tiles of 48 -> 4 of 36
    assert jobs(1, 7, 7, 2) == (2, 2, 28)
    assert jobs(1, 1, 5, 2) == (2, 2, 4)
    assert jobs(3, 9, 9, 2) == (6, 2, 44)  # divides already
    assert jobs(1, 12, 12, 3) == (3, 3, 48)
    assert jobs(9, 7, 7, 2) == (9, 1, 52)  # many jobs: as they were
    rng = np.random.default_rng(5)
    for shape in [(1, 9, 12, 12), (1, 9, 7, 7), (3, 9, 5, 3)]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((6, 9, 3, 3))
        b = rng.standard_normal(6)
        geometry = (1, 1, 1, 1, 1, 1, 1)
        out, want = np.empty((shape[0], 6) + shape[2:]), np.empty((shape[0], 6) + shape[2:])
        direct.conv2d_forward(x, w, b, want, geometry)
        saved = numba.get_num_threads()
        try:
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            tiled.conv2d_forward_tiled(x, w, b, out, geometry)
        finally:
            numba.set_num_threads(saved)
        np.testing.assert_allclose(out, want, atol=1e-12)


@pytest.mark.parametrize("stride, width, dtype", [(1, 11, np.float32), (2, 11, np.float32),
                                                  (1, 3, np.float64)])
def test_blocked_writes_a_non_contiguous_out(stride, width, dtype):
    """The blocked kernel stores its vectors straight into ``out``'s rows: called
    directly on an ``out`` whose rows are not unit-stride (a transposed view), or are
    spaced apart (a slice of wider rows), the answer lands in ``out`` and nothing past
    its columns is written."""
    from numbaconv.kernels.cpu.conv import blocked, direct

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, width)).astype(dtype)
    w = rng.standard_normal((6, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    geometry = (stride, stride, 1, 1, 1, 1, 1)
    oh, ow = (9 - 1) // stride + 1, (width - 1) // stride + 1
    want = np.empty((2, 6, oh, ow), dtype)
    direct.conv2d_forward(x, w, b, want, geometry)
    transposed = np.empty((2, 6, ow, oh), dtype).transpose(0, 1, 3, 2)
    blocked.conv2d_forward_blocked(x, w, b, transposed, geometry)
    np.testing.assert_allclose(transposed, want, rtol=1e-5, atol=1e-5)
    wide = np.full((2, 6, oh, ow + 5), 7.0, dtype)
    blocked.conv2d_forward_blocked(x, w, b, wide[..., 2:2 + ow], geometry)
    np.testing.assert_allclose(wide[..., 2:2 + ow], want, rtol=1e-5, atol=1e-5)
    assert (wide[..., :2] == 7).all() and (wide[..., 2 + ow:] == 7).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((3, 1, 16, 13), (64, 1, 3, 3), dict(stride=2, padding=1)),  # 9 products: a short run
    ((2, 3, 15, 15), (70, 3, 3, 3), dict(stride=2, dilation=3, padding=2)),  # 27 products
    ((2, 2, 19, 17), (66, 2, 5, 5), dict(stride=2, padding=2)),  # 50 products
    ((2, 3, 10, 12), (100, 3, 3, 3), dict(padding=1)),  # stride 1: 100 out, 120 pixels
    ((1, 6, 9, 23), (240, 3, 5, 5), dict(groups=2, padding=(2, 0))),  # 120 a group
])
def test_thin_layers_into_many_channels_run_channel_blocked_and_match_the_oracle(
        x_shape, w_shape, params, dtype, rng, monkeypatch):
    """The thin forwards the chooser sends to the channel-blocked kernel (under 8 input
    channels per group: strided into 64+ output channels, over fewer than 32 products on
    small maps too; stride 1 into 100+ on small maps): runs of slots written through
    the in-register transpose and shorter ones, short reductions, groups, crops, against
    the oracle, with both gradients."""
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm
    from numbaconv.kernels.cpu import simd

    monkeypatch.setattr(config, "GEMM_SMALL_MACS", 0)  # small layers: not the GEMM path
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    spec = conv_spec("conv2d", 2, x, w, b, params.get("stride", 1), params["padding"],
                     params.get("dilation", 1), params.get("groups", 1), "zeros", False)
    if simd.WIDE:
        assert choose_conv_algorithm("cpu", spec) == "channel_blocked"
    _assert_forward_and_backward_match_oracle(x, w, b, params, dtype, rng)


def test_channel_blocked_rule(monkeypatch):
    """Where the channel-blocked kernel runs (AVX-512): forwards and stride-1 grad inputs
    whose output channels fill 3/4 of its blocks (forwards: one vector, 16 channels in
    float32, 8 in float64; grad inputs: twice that), over a reduction of 256+
    products, or 100+ on maps where the blocked kernel drops 10%+ of its columns;
    forwards also 65% full over 1024+ products, and over 32+ where 30%+ of the columns
    would drop; a forward only where 15%+ of the columns would drop, and not on a deep
    input on a small narrow map, but forwards of 8-15 input channels per group on maps
    under 20 columns that the blocked kernel leaves to tiled, and of 2-7 into 100+
    output channels on maps of up to 1024 pixels; never a grad weight;
    strided, only forwards: thin ones on narrow maps or of 64+ output channels (over a
    short reduction only on maps of up to 1024 pixels), those of 8-47 input channels per
    group, and those of few pixels."""
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import choose_conv_algorithm
    from numbaconv.kernels.cpu import simd

    monkeypatch.setattr(config, "GEMM_SMALL_MACS", 0)
    monkeypatch.setattr(config, "DIRECT_MAX_MACS", 0)

    def choose(c_in, c_out, k=3, size=8, stride=1, dtype=np.float32, kernel="conv2d_forward",
               groups=1, dilation=1, batch=1):
        x = np.zeros((batch, c_in, size, size), dtype)
        w = np.zeros((c_out, c_in // groups, k, k), dtype)
        spec = conv_spec("conv2d", 2, x, w, None, stride, k // 2 * dilation, dilation, groups,
                         "zeros", False)
        return choose_conv_algorithm("cpu", spec, kernel)

    if not simd.WIDE:
        assert "channel_blocked" not in {choose(256, 256), choose(64, 64, stride=2)}
        return
    # forwards: only where the blocked kernel drops 15%+ of its columns (3x3: up to 11
    # columns), and not deep inputs on small narrow maps (tiled)
    assert choose(31, 32, size=10) == "channel_blocked"  # 279 products
    assert choose(31, 32, size=14) != "channel_blocked"  # 2 of 16 columns
    assert choose(32, 32, size=10) == "tiled"  # 32 channels in on 100 pixels
    assert choose(128, 128, size=10, groups=4) == "channel_blocked"  # ... but 4 groups
    assert choose(31, 24, size=10) == "channel_blocked"  # 24 of 32 lanes
    assert choose(31, 23, size=10) != "channel_blocked"  # 23 of 32 lanes
    assert choose(31, 12, size=10) == "channel_blocked"  # 12 of 16 lanes
    assert choose(31, 11, size=10) != "channel_blocked"  # 11 of 16 lanes
    assert choose(16, 31, size=10, kernel="conv2d_grad_input") != "channel_blocked"  # 16/32
    assert choose(24, 31, size=10, kernel="conv2d_grad_input") == "channel_blocked"
    assert choose(31, 12, size=10, dtype=np.float64) == "channel_blocked"  # 12 of 16
    assert choose(16, 32, size=10) == "channel_blocked"  # 144 products, 2 of 12 columns
    assert choose(4, 32, size=10) != "channel_blocked"  # 36 products
    assert choose(3, 64, k=5, size=12) != "channel_blocked"  # 75 products, 4 of 16 columns
    # forwards only: blocks 65% full over 1024+ products, 32+ products where 30%+ of
    # the columns would be dropped
    assert choose(48, 22, k=5, size=20) == "channel_blocked"  # 1200 products, 22 of 32
    assert choose(40, 22, k=5, size=20) != "channel_blocked"  # 1000
    assert choose(22, 256, size=56, kernel="conv2d_grad_input") != "channel_blocked"
    assert choose(2, 64, k=5, size=8) == "channel_blocked"  # 50 products, 4 of 12 columns
    assert choose(2, 64, k=5, size=10) != "channel_blocked"  # 4 of 14
    assert choose(2, 64, k=5, size=8, kernel="conv2d_grad_input") != "channel_blocked"
    assert choose(4, 32, k=7, size=14) == "channel_blocked"  # 196 products, 6 of 20 columns
    assert choose(32, 256, size=56, kernel="conv2d_grad_input") == "channel_blocked"
    assert choose(256, 16, size=56, kernel="conv2d_grad_input") != "channel_blocked"  # 144
    assert choose(256, 256, kernel="conv2d_grad_weight") != "channel_blocked"
    assert choose(256, 256, stride=2, kernel="conv2d_grad_input") != "channel_blocked"
    assert choose(64, 64, stride=2, size=30) != "channel_blocked"  # strided: tiled, blocked
    assert choose(256, 256, stride=2, size=30) != "channel_blocked"
    # ... but a thin strided forward (under 8 input channels per group) on a narrow map
    # (under 20 output columns) whose output channels fill 3/4 of the blocks, where the
    # blocked kernel would drop 15%+ of its phase frame's columns
    assert choose(3, 60, k=7, stride=2, size=30) == "channel_blocked"  # 3 of 18 columns
    assert choose(3, 60, k=5, stride=2, size=30) != "channel_blocked"  # 2 of 17
    assert choose(4, 60, stride=2, size=10) == "channel_blocked"  # 1 of 6 columns
    assert choose(4, 60, stride=2, size=12, batch=2) != "channel_blocked"  # 1 of 7
    assert choose(3, 60, stride=2, size=10, batch=3) != "channel_blocked"  # 27 products
    assert choose(3, 60, k=7, stride=2, size=40) != "channel_blocked"  # 20 columns
    assert choose(7, 60, k=7, stride=2, size=40) != "channel_blocked"
    assert choose(3, 36, k=7, stride=2, size=30) == "channel_blocked"  # 36 of 48 lanes
    assert choose(3, 35, k=7, stride=2, size=30) != "channel_blocked"  # 35 of 48 lanes
    # ... and any thin strided forward (not 1x1) of 64+ output channels per group (which
    # fill 4/5 of the blocks or more), whatever its map
    assert choose(3, 64, k=7, stride=2, size=224) == "channel_blocked"  # a ResNet stem
    assert choose(7, 97, k=5, stride=2, size=40, dtype=np.float64) == "channel_blocked"
    assert choose(3, 63, k=7, stride=2, size=224) != "channel_blocked"
    # ... over fewer than 32 products only on maps of up to 1024 output pixels
    assert choose(3, 64, stride=2, size=64) == "channel_blocked"  # 27 products, 32x32
    assert choose(3, 64, stride=2, size=66) != "channel_blocked"  # 33x33
    assert choose(6, 128, k=1, stride=2, size=40) != "channel_blocked"  # 1x1
    assert choose(3, 64, k=7, stride=2, size=224, kernel="conv2d_grad_input") != (
        "channel_blocked")
    # ... at stride 1, a forward of 8 up to 15 input channels per group on a map under
    # 20 columns, filling 3/4 of the blocks, that the blocked kernel leaves to tiled
    assert choose(8, 456, size=10, batch=6) == "channel_blocked"  # 72 products
    assert choose(15, 64, size=18) == "channel_blocked"
    assert choose(16, 64, size=18) != "channel_blocked"  # 16 channels in
    assert choose(8, 64, size=19) == "channel_blocked"
    assert choose(8, 64, size=20) != "channel_blocked"  # 20 columns
    assert choose(10, 36, size=14) == "channel_blocked"  # 36 of 48 lanes
    assert choose(10, 35, size=14) != "channel_blocked"  # 35 of 48
    assert choose(9, 24, size=18, batch=8) == "blocked"  # the blocked kernel's own rule
    # ... and a thin one (2-7 input channels per group) into 100+ output channels per
    # group on maps of up to 1024 output pixels
    assert choose(3, 128, size=32, batch=4) == "channel_blocked"  # 27 products
    assert choose(3, 128, size=33) != "channel_blocked"  # 1089 pixels
    assert choose(1, 128, size=16) != "channel_blocked"  # one input channel
    assert choose(3, 99, size=16) != "channel_blocked"
    # ... any strided forward (not 1x1) of 8 up to 47 input channels per group whose
    # output channels fill 3/4 of the blocks (the tiled kernel's runs are short there)
    assert choose(8, 64, k=7, stride=2, size=30) == "channel_blocked"
    assert choose(47, 24, stride=2, size=30) == "channel_blocked"  # 24 of 32 lanes
    assert choose(47, 23, stride=2, size=30) != "channel_blocked"  # 23 of 32
    assert choose(48, 64, stride=2, size=30) != "channel_blocked"  # 48 channels in
    assert choose(47, 64, k=1, stride=2, size=30) != "channel_blocked"
    assert choose(16, 64, stride=2, size=30,
                  kernel="conv2d_grad_input") != "channel_blocked"
    # ... and any strided forward (not 1x1) of at most 64 output pixels in all
    assert choose(74, 96, stride=2, size=10, batch=2) == "channel_blocked"  # 50 pixels
    assert choose(74, 96, stride=2, size=10, batch=3) != "channel_blocked"  # 75
    assert choose(3, 64, k=1, stride=2, size=10) != "channel_blocked"
    assert choose(3, 64, k=7, stride=2, size=30,
                  kernel="conv2d_grad_input") != "channel_blocked"
    assert choose(64, 128, size=14, groups=64) == "depthwise"  # not for depthwise convs
    # mostly padding (at most 70% of the (pixel, tap) pairs read inside the input), blocks
    # 60% full: the one kernel that skips padded taps, forwards at any stride, stride-1
    # grad inputs
    assert choose(243, 173, k=5, size=8, dilation=3) == "channel_blocked"  # 30% live
    assert choose(243, 173, k=5, size=8, dilation=3,
                  kernel="conv2d_grad_input") == "channel_blocked"
    assert choose(100, 64, k=7, size=16, stride=2, dilation=3) == "channel_blocked"  # 44%
    assert choose(100, 64, size=12, stride=2, dilation=3, batch=5) != "channel_blocked"  # 69%
    assert choose(243, 20, k=5, size=8, dilation=3) == "channel_blocked"  # 20 of 32 lanes
    assert choose(243, 19, k=5, size=8, dilation=3) != "channel_blocked"  # 19 of 32
    # ... whose grad input, where that does not fill the blocks, is one product (GEMM)
    # over 1024+ products, not the blocked kernel's frame of mostly padding
    assert choose(16, 100, k=5, size=10, dilation=3, kernel="conv2d_grad_input") == "gemm"
    assert choose(16, 40, k=5, size=10, dilation=3, kernel="conv2d_grad_input") != "gemm"
    assert choose(20, 100, k=5, size=30, kernel="conv2d_grad_input") != "gemm"  # 80% live
    # the grad input's share is over its own pixels: padding past 'same' is read by the
    # forward only
    from numbaconv.dispatch import _live_taps
    wide = conv_spec("conv2d", 2, np.zeros((1, 8, 4, 4)), np.zeros((8, 8, 3, 3)), None, 1, 2,
                     1, 1, "zeros", False)
    assert _live_taps(wide) == pytest.approx(16 * 9 / (36 * 9))
    assert _live_taps(wide, "conv2d_grad_input") == 1.0


def test_non_contiguous_and_fortran_inputs(rng):
    x, w, b = _arrays(rng, (2, 3, 8, 10), (4, 3, 3, 3), np.float64)
    expected = ref.conv(x, w, b, padding=1)
    np.testing.assert_allclose(nc.conv2d(np.asfortranarray(x), np.asfortranarray(w), b,
                                         padding=1), expected, atol=1e-12)
    big = np.zeros((2, 6, 16, 10))
    big[:, ::2, ::2, :] = x
    view = big[:, ::2, ::2, :]
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(nc.conv2d(view, w[:, :, ::-1, ::-1], b, padding=1),
                               ref.conv(x, w, b, padding=1, flip=True), atol=1e-12)


@pytest.mark.parametrize("algorithm", ["direct", "serial"])
def test_new_shapes_do_not_recompile(rng, monkeypatch, algorithm):
    from numbaconv import config
    from numbaconv.kernels.cpu.conv import direct

    monkeypatch.setattr(config, "CONV_ALGORITHM", algorithm)
    # the parallel direct forward runs as per-thread shares (kernels/cpu/shares.py)
    kernel = direct._conv2d_forward if algorithm == "direct" else direct.conv2d_forward_serial
    nc.conv2d(*_arrays(rng, (1, 2, 5, 5), (2, 2, 3, 3), np.float32))
    count = len(kernel.signatures)
    assert count >= 1
    for shape in [(3, 2, 9, 4), (1, 2, 17, 23)]:
        nc.conv2d(*_arrays(rng, shape, (5, 2, 2, 3), np.float32), stride=2, padding=1)
    assert len(kernel.signatures) == count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_forward_matches_the_oracle_over_a_grid(rng, dtype):
    """The one-thread direct forward (tiny layers) over strides, dilations, groups and
    pads, against the oracle."""
    from numbaconv.kernels import cpu

    for stride, dilation, groups, pad in [(1, 1, 1, 0), (2, 1, 1, 1), (1, 2, 2, 2),
                                          (3, 2, 4, 1), ((1, 2), (2, 1), 2, (0, 2))]:
        x, w, b = _arrays(rng, (2, 4, 9, 8), (8, 4 // groups, 3, 2), dtype)
        want = ref.conv(x, w, b, stride=stride, padding=pad, dilation=dilation, groups=groups)
        s2 = (stride, stride) if isinstance(stride, int) else stride
        d2 = (dilation, dilation) if isinstance(dilation, int) else dilation
        p2 = (pad, pad) if isinstance(pad, int) else pad
        out = np.empty_like(want)
        cpu.conv2d_forward_serial(x, w, b, out, s2 + p2 + d2 + (groups,))
        np.testing.assert_allclose(out, want, *tolerance(dtype))


def test_concurrent_calls_from_threads(rng):
    x, w, b = _arrays(rng, (2, 8, 12, 12), (8, 8, 3, 3), np.float32)
    expected = nc.conv2d(x, w, b, padding=1)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(nc.conv2d(x, w, b, padding=1))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)


# --------------------------------------------------------------------------- errors
X = np.zeros((2, 4, 6, 6), np.float32)
W = np.zeros((4, 4, 3, 3), np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda: nc.conv2d(X.astype(np.int32), W), TypeError, r"float32 or float64; got input=int32"),
    (lambda: nc.conv2d(X.astype(np.complex64), W), TypeError, r"got input=complex64"),
    (lambda: nc.conv2d(X, W.astype(np.float64)), TypeError, r"share one dtype.*input=float32, weight=float64"),
    (lambda: nc.conv2d(X, W, np.zeros(4, np.float16)), TypeError, r"bias=float16"),
    # (C, H, W) is an unbatched input, as in PyTorch; (H, W) is neither
    (lambda: nc.conv2d(X[0, 0], W), ValueError, r"input must be 4-D \(N, C, H, W\); got shape \(6, 6\)"),
    (lambda: nc.conv1d(X, W), ValueError, r"conv1d: input must be 3-D"),
    (lambda: nc.conv2d(X, W[:, :, 0]), ValueError, r"weight must be 4-D"),
    (lambda: nc.conv2d(X, W[:, :3]), ValueError, r"weight.shape\[1\] must be C_in // groups = 4 // 1 = 4"),
    (lambda: nc.conv2d(X, W, groups=3), ValueError, r"input channels \(4\) must be divisible by groups \(3\)"),
    (lambda: nc.conv2d(X, W[:3, :2], groups=2), ValueError, r"out channels, 3\) must be divisible by groups \(2\)"),
    (lambda: nc.conv2d(X, W, groups=0), ValueError, r"groups must be a positive int"),
    (lambda: nc.conv2d(X, W, np.zeros(3, np.float32)), ValueError, r"bias must have shape \(4,\); got \(3,\)"),
    (lambda: nc.conv2d(X, W, stride=0), ValueError, r"stride must be positive"),
    (lambda: nc.conv2d(X, W, stride=(1, 2, 3)), ValueError, r"stride must be an int or a tuple of 2 ints"),
    (lambda: nc.conv2d(X, W, dilation=-1), ValueError, r"dilation must be positive"),
    (lambda: nc.conv2d(X, W, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: nc.conv2d(X, W, padding="full"), ValueError, r"padding must be an int, a tuple"),
    (lambda: nc.conv2d(X, W, padding="same", stride=2), ValueError, r"padding='same' needs stride 1"),
    (lambda: nc.conv2d(X, W, padding_mode="mirror"), ValueError, r"padding_mode must be one of"),
    (lambda: nc.conv2d(X, W, padding=6, padding_mode="reflect"), ValueError, r"'reflect' needs padding < input size"),
    (lambda: nc.conv2d(X, W, padding=7, padding_mode="circular"), ValueError, r"'circular' needs padding <= input size"),
    (lambda: nc.conv2d(X, W, dilation=3), ValueError, r"output size would be \(0, 0\)"),
    (lambda: nc.conv2d(X, W, flip="yes"), ValueError, r"flip must be True or False"),
    (lambda: nc.conv2d(X[:, :0], W[:, :0]), ValueError, r"non-empty batch and channel"),
    (lambda: nc.conv2d_backward(np.zeros((2, 4, 3, 3), np.float32), X, W), ValueError,
     r"grad_output must have shape \(2, 4, 4, 4\); got \(2, 4, 3, 3\)"),
    (lambda: nc.conv2d_backward(np.zeros((2, 4, 4, 4)), X, W), TypeError, r"grad_output=float64"),
    (lambda: nc.conv2d([[1.0]], W), TypeError, r"input must be an array \(NumPy.*got list"),
    (lambda: nc.conv2d("x", W), TypeError, r"input must be an array"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_remembered_spec_skips_no_check():
    """``conv_spec`` remembers the specs of calls it has checked (by shapes, dtypes and
    the arguments' ``repr``): after a good call, calls that differ only where the check
    fails still raise, and the good call's answer is unchanged."""
    from numbaconv._args import conv_spec

    x = np.ones((1, 4, 6, 6), np.float32)
    w = np.ones((4, 4, 3, 3), np.float32)
    good = nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1)
    flipped = nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1, flip=True)
    args = ("conv2d", 2, x, w, None, 1, 1, 1, 1, "zeros", False)
    assert conv_spec(*args) is conv_spec(*args)  # remembered, not checked again
    for call, error, message in [
        (lambda: nc.conv2d(x, w, np.zeros(4, np.float32), stride=True, padding=1), ValueError,
         "stride must be an int"),
        (lambda: nc.conv2d(x, w, np.zeros(4, np.float64), stride=1, padding=1), TypeError,
         "share one dtype"),
        (lambda: nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1.0), ValueError,
         "padding must be"),
        (lambda: nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1, flip=1),
         ValueError, "flip must be True or False"),  # 1 == True: a plain key would match
        (lambda: nc.conv2d(x, w, [0.0] * 4, stride=1, padding=1), TypeError, "bias must be an array"),
    ]:
        with pytest.raises(error, match=message):
            call()
    np.testing.assert_array_equal(
        nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1), good)
    np.testing.assert_array_equal(
        nc.conv2d(x, w, np.zeros(4, np.float32), stride=1, padding=1, flip=True), flipped)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 16, 9, 8), (6, 16, 3, 3), dict(padding=1)),  # runs of 48: one padded block
    ((2, 40, 7, 9), (6, 20, 3, 3), dict(groups=2, stride=(2, 1), padding=(2, 1))),
    ((1, 24, 9, 13), (3, 24, 3, 3), dict(dilation=(1, 2), stride=(1, 2), padding=2)),
    ((2, 64, 6, 5), (9, 64, 1, 1), {}),  # runs of whole blocks in float32
    ((3, 12, 11, 7), (8, 12, 5, 3), dict(stride=2, padding=(2, 0), dilation=(2, 1))),
    ((1, 16, 10, 11), (5, 16, 3, 3), dict(stride=3)),  # the frame crops the input
    ((1, 240, 6, 5), (52, 240, 3, 3), dict(padding=1)),  # many outputs, long reduction
])
@pytest.mark.parametrize("in_place", [True, False])
def test_tiled_grad_weight_reads_the_frame_in_place(x_shape, w_shape, params, dtype,
                                                    in_place, rng, monkeypatch):
    """The grad weight from outer products on the channels-last frame (one run of
    kW*C_g values per kernel row, or of C_g per tap when dilated along W; output
    channels and runs padded to whole blocks; on AVX-512 hosts), here over several jobs
    of 2 output rows and bands of 1 row, against the oracle; and with it switched off."""
    from numbaconv import config
    from numbaconv.functional.conv import conv_param_grads
    from numbaconv.kernels.cpu.conv import tiled

    monkeypatch.setattr(config, "CONV_ALGORITHM", "tiled")
    monkeypatch.setattr(config, "TILED_GRAD_RUN_WASTE", 100.0)
    monkeypatch.setattr(config, "TILED_IN_PLACE", in_place)
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    y = nc.conv2d(x, w, b, **params)
    monkeypatch.setattr(config, "TILED_GRAD_PIXELS", 2 * y.shape[3])
    monkeypatch.setattr(config, "TILED_GRAD_BAND", 1)
    dilation = params.get("dilation", 1)
    runs = tiled._grad_runs(w_shape[0] // params.get("groups", 1), w_shape[1], w_shape[2],
                            w_shape[3],
                            dilation[1] if isinstance(dilation, tuple) else dilation,
                            np.dtype(dtype).itemsize)
    from numbaconv.kernels.cpu import simd
    assert (runs is not None) == (in_place and simd.WIDE)
    go = rng.standard_normal(y.shape).astype(dtype)
    want = ref.conv_backward(go.astype(np.float64), x.astype(np.float64),
                             w.astype(np.float64), b.astype(np.float64), **params)[1]
    x_before = x.copy()
    got, _ = conv_param_grads(2, go, x, w, b, **params)
    np.testing.assert_allclose(got, want, *tolerance(dtype))
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("numpy_bytes", [0, 1 << 30])  # the subsample by im2col, by NumPy
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 5, 9, 8), (7, 5, 1, 1), dict(stride=2)),
    ((2, 4, 10, 11), (6, 2, 1, 1), dict(stride=(3, 2), groups=2)),
    ((1, 20, 9, 9), (40, 20, 1, 1), dict(stride=2, dilation=3)),
])
def test_strided_1x1_runs_on_its_subsample(x_shape, w_shape, params, numpy_bytes, rng,
                                           monkeypatch):
    """A strided 1x1 forward without padding is the pointwise conv of the input's
    subsample (``dispatch.subsampled_pointwise``), from a non-contiguous input too."""
    from numbaconv import config
    from numbaconv._args import conv_spec
    from numbaconv.dispatch import subsampled_pointwise

    monkeypatch.setattr(config, "SUBSAMPLE_NUMPY_BYTES", numpy_bytes)
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    x = x[..., ::-1]
    spec = conv_spec("conv2d", 2, x, w, b, params["stride"], 0, params.get("dilation", 1),
                     params.get("groups", 1), "zeros", False)
    assert subsampled_pointwise("cpu", spec) and not subsampled_pointwise("cuda", spec)
    _assert_forward_and_backward_match_oracle(x, w, b, params, np.float64, rng)
    x1 = np.ascontiguousarray(x[:, :, 0])
    want = ref.conv1d(x1, w[..., 0], b, stride=2, groups=params.get("groups", 1))
    got = nc.conv1d(x1, w[..., 0], b, stride=2, groups=params.get("groups", 1))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # padded, depthwise or forced to an algorithm: the strided kernels
    groups = params.get("groups", 1)
    padded = conv_spec("conv2d", 2, x, w, b, 2, 1, 1, groups, "zeros", False)
    depthwise = conv_spec("conv2d", 2, x, np.ones((x_shape[1], 1, 1, 1)), None, 2, 0, 1,
                          x_shape[1], "zeros", False)
    assert not subsampled_pointwise("cpu", padded)
    assert not subsampled_pointwise("cpu", depthwise)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "gemm")
    assert not subsampled_pointwise("cpu", spec)


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 6, 5, 4), (12, 1, 1, 1), dict(groups=6)),  # multiplier 2
    ((1, 5, 7, 6), (5, 1, 1, 1), dict(groups=5, stride=2, padding=1)),
])
def test_depthwise_1x1_runs_direct(x_shape, w_shape, params, rng):
    """A depthwise 1x1 conv (a per-channel scale) under the chooser's own pick, the
    direct kernel, against the oracle."""
    x, w, b = _arrays(rng, x_shape, w_shape, np.float64)
    _assert_forward_and_backward_match_oracle(x, w, b, params, np.float64, rng)


def test_in_place_grad_weight_under_auto_through_conv1d(rng):
    """A 1-D layer with few output channels: the chooser's own pick (the in-place grad
    weight on AVX-512 hosts), against the oracle."""
    x = rng.standard_normal((2, 64, 30))
    w = rng.standard_normal((6, 64, 3))
    b = rng.standard_normal(6)
    go = rng.standard_normal(nc.conv1d(x, w, b, padding=1).shape)
    got = nc.conv1d_backward(go, x, w, b, padding=1)
    want = ref.conv_backward(go, x, w, b, padding=1)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, *tolerance(np.float64))


def test_strided_grad_input_of_a_long_reduction(rng):
    """A strided layer whose grad input reduces over K*kH*kW >= 4096 values: the chooser's
    own pick (the GEMM path), against the oracle."""
    x, w, b = _arrays(rng, (1, 2, 9, 8), (512, 2, 3, 3), np.float64)
    _assert_forward_and_backward_match_oracle(x, w, b, dict(stride=2, padding=1),
                                              np.float64, rng)


def test_dilated_forwards_run_as_column_phases_where_that_pays():
    """``tiled._phases_pay``: dilation along W at stride 1 along W, runs of at least
    ``config.TILED_PHASE_VECTORS`` vectors, a whole tile of pixels per image and phase."""
    from numbaconv.kernels.cpu import simd
    from numbaconv.kernels.cpu.conv import tiled

    def pays(c, k, out_hw, sw=1, dw=2, dtype=np.float32):
        w = np.zeros((8, c, k, k), dtype)
        out = np.zeros((1, 8) + out_hw, dtype)
        return tiled._phases_pay(w, np.dtype(dtype).itemsize, out, sw, dw)

    assert pays(480, 7, (14, 14)) == simd.WIDE  # 3360 values a run, 196 >= 2 * 64 pixels
    assert not pays(480, 7, (14, 14), dw=1)  # not dilated
    assert not pays(480, 7, (14, 14), sw=2)  # strided along W
    assert not pays(480, 7, (10, 10))  # 100 pixels: under a tile per phase
    assert not pays(64, 3, (30, 30))  # runs of 12 vectors


def test_output_channels_are_padded_to_blocks_only_for_long_reductions():
    """``tiled._block_pad``: in place, output channels that are not whole blocks of 4
    are padded where the reduction repays the scratch output's copy (at least
    ``config.TILED_PAD_MIN_REDUCTION`` values), else they build the tile."""
    from numbaconv.kernels.cpu import simd
    from numbaconv.kernels.cpu.conv import tiled

    wide = 4 if simd.WIDE else 1
    assert tiled._block_pad(107, 3 * 202, 3, 3, 4, 1) == wide  # 1818 values
    assert tiled._block_pad(108, 3 * 208, 3, 3, 4, 1) == wide  # whole blocks already
    assert tiled._block_pad(450, 48, 1, 1, 4, 1) == 1  # a 1x1 of 48 values: the tile
    assert tiled._block_pad(107, 3 * 202, 3, 3, 4, 2) == 1  # dilated: the tile
