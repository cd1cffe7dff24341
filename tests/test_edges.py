"""PyTorch's edge semantics, forward and backward, against PyTorch itself: unbatched
inputs, empty batches, zero output channels, cropping pads in every mode, interpolate's
nearest-exact / area / bicubic / recompute_scale_factor, one-element tuples and
``stride=()``."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numbaconv as nc  # noqa: E402

F = torch.nn.functional

# (name, torch call, numbaconv forward, numbaconv backward, input shapes)
CASES = [
    ("conv2d unbatched", lambda x, w: F.conv2d(x, w, padding=1),
     lambda x, w: nc.conv2d(x, w, padding=1),
     lambda g, x, w: nc.conv2d_backward(g, x, w, padding=1), [(3, 6, 5), (4, 3, 3, 3)]),
    ("conv1d unbatched", lambda x, w, b: F.conv1d(x, w, b, stride=2),
     lambda x, w, b: nc.conv1d(x, w, b, stride=2),
     lambda g, x, w, b: nc.conv1d_backward(g, x, w, b, stride=2), [(3, 9), (4, 3, 3), (4,)]),
    ("conv_transpose2d unbatched", lambda x, w: F.conv_transpose2d(x, w, stride=2),
     lambda x, w: nc.conv_transpose2d(x, w, stride=2),
     lambda g, x, w: nc.conv_transpose2d_backward(g, x, w, stride=2),
     [(3, 4, 5), (3, 2, 3, 3)]),
    ("max_pool2d unbatched", lambda x: F.max_pool2d(x, 2, ceil_mode=True),
     lambda x: nc.max_pool2d(x, 2, ceil_mode=True),
     lambda g, x: nc.max_pool2d_backward(g, x, 2, ceil_mode=True), [(3, 7, 5)]),
    ("avg_pool1d unbatched", lambda x: F.avg_pool1d(x, 3, 2, 1),
     lambda x: nc.avg_pool1d(x, 3, 2, 1),
     lambda g, x: nc.avg_pool1d_backward(g, x, 3, 2, 1), [(3, 8)]),
    ("adaptive_max_pool2d unbatched", lambda x: F.adaptive_max_pool2d(x, 2),
     lambda x: nc.adaptive_max_pool2d(x, 2),
     lambda g, x: nc.adaptive_max_pool2d_backward(g, x, 2), [(2, 5, 6)]),
    ("unfold unbatched", lambda x: F.unfold(x, 2, padding=1),
     lambda x: nc.unfold(x, 2, padding=1),
     lambda g, x: nc.unfold_backward(g, x, 2, padding=1), [(3, 5, 4)]),
    ("fold unbatched", lambda x: F.fold(x, (4, 5), 2), lambda x: nc.fold(x, (4, 5), 2),
     lambda g, x: nc.fold_backward(g, x, (4, 5), 2), [(12, 12)]),
    ("pad unbatched reflect", lambda x: F.pad(x, (1, 2), "reflect"),
     lambda x: nc.pad(x, (1, 2), "reflect"),
     lambda g, x: nc.pad_backward(g, x, (1, 2), "reflect"), [(3, 6)]),
    ("pad unbatched 2-D replicate", lambda x: F.pad(x, (1, 2, 2, 1), "replicate"),
     lambda x: nc.pad(x, (1, 2, 2, 1), "replicate"),
     lambda g, x: nc.pad_backward(g, x, (1, 2, 2, 1), "replicate"), [(3, 6, 5)]),
    ("conv2d N=0", lambda x, w, b: F.conv2d(x, w, b, padding=1),
     lambda x, w, b: nc.conv2d(x, w, b, padding=1),
     lambda g, x, w, b: nc.conv2d_backward(g, x, w, b, padding=1),
     [(0, 3, 6, 5), (4, 3, 3, 3), (4,)]),
    ("max_pool2d N=0", lambda x: F.max_pool2d(x, 2), lambda x: nc.max_pool2d(x, 2),
     lambda g, x: nc.max_pool2d_backward(g, x, 2), [(0, 3, 6, 5)]),
    ("unfold N=0", lambda x: F.unfold(x, 2), lambda x: nc.unfold(x, 2),
     lambda g, x: nc.unfold_backward(g, x, 2), [(0, 3, 6, 5)]),
    ("pad N=0", lambda x: F.pad(x, (1, 1), "reflect"),
     lambda x: nc.pad(x, (1, 1), "reflect"),
     lambda g, x: nc.pad_backward(g, x, (1, 1), "reflect"), [(0, 3, 6)]),
    *[(f"pad crop {mode}", lambda x, m=mode: F.pad(x, (-1, 2, 1, -2), m),
       lambda x, m=mode: nc.pad(x, (-1, 2, 1, -2), m),
       lambda g, x, m=mode: nc.pad_backward(g, x, (-1, 2, 1, -2), m), [(2, 3, 6, 5)])
      for mode in ("reflect", "replicate", "circular")],
    ("pad crop circular 1-D", lambda x: F.pad(x, (2, -3), "circular"),
     lambda x: nc.pad(x, (2, -3), "circular"),
     lambda g, x: nc.pad_backward(g, x, (2, -3), "circular"), [(2, 3, 7)]),
    *[(f"interpolate {mode} {kw}", lambda x, m=mode, k=kw: F.interpolate(x, mode=m, **k),
       lambda x, m=mode, k=kw: nc.interpolate(x, mode=m, **k),
       lambda g, x, m=mode, k=kw: nc.interpolate_backward(g, x, mode=m, **k), [(2, 2, 7, 9)])
      for mode in ("nearest-exact", "area", "bilinear", "bicubic", "nearest")
      for kw in ({"scale_factor": 1.7}, {"scale_factor": 0.45}, {"size": (11, 4)},
                 {"scale_factor": 2.3, "recompute_scale_factor": True})],
    ("interpolate bicubic align_corners", lambda x: F.interpolate(
        x, (9, 5), mode="bicubic", align_corners=True),
     lambda x: nc.interpolate(x, (9, 5), mode="bicubic", align_corners=True),
     lambda g, x: nc.interpolate_backward(g, x, (9, 5), mode="bicubic", align_corners=True),
     [(1, 2, 4, 6)]),
    ("interpolate nearest-exact 1-D", lambda x: F.interpolate(x, 13, mode="nearest-exact"),
     lambda x: nc.interpolate(x, 13, mode="nearest-exact"),
     lambda g, x: nc.interpolate_backward(g, x, 13, mode="nearest-exact"), [(2, 3, 6)]),
    # a 1x1 transposed conv whose output_padding makes the output larger than the input
    ("conv_transpose1d 1x1 output_padding", lambda x, w: F.conv_transpose1d(
        x, w, groups=2, dilation=3, output_padding=1),
     lambda x, w: nc.conv_transpose1d(x, w, groups=2, dilation=3, output_padding=1),
     lambda g, x, w: nc.conv_transpose1d_backward(g, x, w, groups=2, dilation=3,
                                                  output_padding=1), [(1, 4, 4), (4, 2, 1)]),
    ("max_pool2d stride=() padding=(1,)", lambda x: F.max_pool2d(x, 3, (), (1,)),
     lambda x: nc.max_pool2d(x, 3, (), (1,)),
     lambda g, x: nc.max_pool2d_backward(g, x, 3, (), (1,)), [(1, 2, 7, 7)]),
    ("avg_pool2d (3,) [2] (1,)", lambda x: F.avg_pool2d(x, (3,), [2], (1,)),
     lambda x: nc.avg_pool2d(x, (3,), [2], (1,)),
     lambda g, x: nc.avg_pool2d_backward(g, x, (3,), [2], (1,)), [(1, 2, 7, 6)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_forward_and_backward(case):
    _, torch_fn, forward, backward, shapes = case
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
    want = torch_fn(*tensors)
    got = forward(*arrays)
    assert got.shape == tuple(want.shape) and got.dtype == arrays[0].dtype
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(tuple(want.shape))
    want.backward(torch.from_numpy(g))
    grads = backward(g, *arrays)
    for mine, t in zip(grads, tensors):
        if mine is None:
            continue
        theirs = t.grad if t.grad is not None else torch.zeros_like(t)
        assert mine.shape == tuple(theirs.shape)
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_zero_output_channels_give_empty_results():
    """PyTorch's layers allow them (nn.Conv2d(3, 0, 3)); its functional call does not."""
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))
    y = nc.conv2d(x, np.zeros((0, 3, 3, 3)), np.zeros(0), padding=1)
    assert y.shape == (2, 0, 6, 5)
    gx, gw, gb = nc.conv2d_backward(np.zeros((2, 0, 6, 5)), x, np.zeros((0, 3, 3, 3)),
                                    np.zeros(0), padding=1)
    assert gx.shape == x.shape and not gx.any() and gw.shape == (0, 3, 3, 3)
    assert gb.shape == (0,)
    assert nc.conv_transpose2d(x, np.zeros((3, 0, 3, 3))).shape == (2, 0, 8, 7)


def test_bicubic_on_cuda_under_the_simulator():
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 4)).astype(np.float32)
    y = nc.interpolate(nc.to_device(x), scale_factor=1.5, mode="bicubic")
    np.testing.assert_allclose(nc.to_host(y), nc.interpolate(x, scale_factor=1.5,
                                                             mode="bicubic"), atol=1e-6)
    g = np.ones(y.shape, np.float32)
    (gd,) = nc.interpolate_backward(nc.to_device(g), nc.to_device(x), scale_factor=1.5,
                                    mode="bicubic")
    np.testing.assert_allclose(nc.to_host(gd), nc.interpolate_backward(
        g, x, scale_factor=1.5, mode="bicubic")[0], atol=1e-5)


def test_unbatched_on_cuda_under_the_simulator():
    x = np.random.default_rng(0).standard_normal((3, 6, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = nc.to_host(nc.conv2d(nc.to_device(x), nc.to_device(w), padding=1))
    np.testing.assert_allclose(y, nc.conv2d(x, w, padding=1), rtol=1e-5, atol=1e-5)
    v = nc.to_host(nc.max_pool2d(nc.to_device(x), 2))
    np.testing.assert_array_equal(v, nc.max_pool2d(x, 2))
