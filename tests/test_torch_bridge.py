"""numbaconv.torch: every op through torch's autograd (gradcheck in float64 over a grid of
parameters), the layers and ``patch`` against plain PyTorch, and torch tensors in the
plain functional API."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numbaconv as nc  # noqa: E402
import numbaconv.torch as nt  # noqa: E402
from numbaconv.torch import nn as ntnn  # noqa: E402

F = torch.nn.functional


def t64(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)


# (op, tensors, params): each is gradchecked and compared with torch's own op
CASES = [
    ("conv1d", [(2, 4, 9), (6, 2, 3), (6,)], {"stride": 2, "padding": 1, "groups": 2}),
    ("conv1d", [(1, 2, 8), (3, 2, 3)], {"padding": 2, "dilation": 2,
                                         "padding_mode": "circular"}),
    ("conv2d", [(2, 3, 7, 6), (4, 3, 3, 2), (4,)], {"stride": (2, 1), "padding": 1}),
    ("conv2d", [(1, 4, 6, 6), (4, 1, 3, 3)], {"groups": 4, "padding": "same"}),
    ("conv2d", [(1, 2, 7, 7), (3, 2, 3, 3), (3,)], {"dilation": 2, "padding": 2,
                                                     "padding_mode": "reflect"}),
    ("conv_transpose1d", [(2, 4, 5), (4, 3, 3), (3,)], {"stride": 2, "padding": 1,
                                                         "output_padding": 1}),
    ("conv_transpose2d", [(1, 4, 4, 5), (4, 2, 3, 3), (4,)], {"stride": 2, "groups": 2,
                                                               "dilation": 2}),
    ("max_pool1d", [(2, 3, 9)], {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max_pool2d", [(2, 2, 7, 6)], {"kernel_size": 2, "ceil_mode": True}),
    ("max_pool2d", [(1, 2, 8, 8)], {"kernel_size": 3, "stride": 2, "padding": 1,
                                    "dilation": 2}),
    ("avg_pool1d", [(2, 3, 9)], {"kernel_size": 4, "stride": 3, "padding": 2,
                                 "ceil_mode": True}),
    ("avg_pool2d", [(2, 2, 7, 6)], {"kernel_size": 3, "stride": 2, "padding": 1,
                                    "count_include_pad": False}),
    ("avg_pool2d", [(1, 2, 6, 6)], {"kernel_size": 2, "divisor_override": 3}),
    ("adaptive_avg_pool1d", [(2, 3, 10)], {"output_size": 4}),
    ("adaptive_avg_pool2d", [(2, 2, 7, 5)], {"output_size": (3, 2)}),
    ("adaptive_max_pool1d", [(2, 3, 10)], {"output_size": 3}),
    ("adaptive_max_pool2d", [(1, 2, 7, 5)], {"output_size": (2, 3)}),
    ("unfold", [(2, 2, 6, 5)], {"kernel_size": (2, 3), "padding": 1, "stride": 2}),
    ("fold", [(2, 8, 12)], {"output_size": (4, 5), "kernel_size": 2}),
    ("interpolate", [(1, 2, 5, 4)], {"scale_factor": 2, "mode": "bilinear"}),
    ("interpolate", [(2, 2, 5)], {"size": 8, "mode": "linear", "align_corners": True}),
    ("interpolate", [(1, 2, 3, 4)], {"size": (7, 5), "mode": "nearest"}),
    ("interpolate", [(1, 2, 4, 5)], {"scale_factor": 1.6, "mode": "bicubic"}),
    ("interpolate", [(1, 1, 4, 3)], {"size": (6, 7), "mode": "bicubic",
                                     "align_corners": True}),
    ("channel_shuffle", [(2, 6, 3, 3)], {"groups": 3}),
    ("pad", [(1, 2, 5, 4)], {"pad": (1, 2, 2, 0), "mode": "reflect"}),
    ("pad", [(2, 2, 5)], {"pad": (3, 1), "mode": "circular"}),
    ("pad", [(1, 2, 3, 3)], {"pad": (1, 1, 2, 0), "value": 0.5}),
]


def _torch_op(name):
    return {"unfold": F.unfold, "fold": F.fold, "channel_shuffle": torch.channel_shuffle,
            "pad": F.pad}.get(name) or getattr(F, name)


def _torch_call(name, tensors, params):
    p = dict(params)
    if name in ("conv1d", "conv2d") and p.get("padding_mode", "zeros") != "zeros":
        # torch's functional conv has no padding_mode: pad first, as its layers do
        mode = p.pop("padding_mode")
        pad = p.pop("padding")
        if pad == "same":  # odd kernels here: (k - 1) * dilation / 2 on each side
            pad = [(k - 1) * p.get("dilation", 1) // 2 for k in tensors[1].shape[2:]]
        per = [pad] * (tensors[0].dim() - 2) if isinstance(pad, int) else list(pad)
        sides = [v for q in reversed(per) for v in (q, q)]
        return getattr(F, name)(F.pad(tensors[0], sides, mode), *tensors[1:], **p)
    if name == "channel_shuffle":
        return torch.channel_shuffle(tensors[0], p["groups"])
    if name == "pad":
        return F.pad(tensors[0], p["pad"], p.get("mode", "constant"), p.get("value", 0.0))
    return _torch_op(name)(*tensors, **p)


@pytest.mark.parametrize(("name", "shapes", "params"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gradcheck_and_torch_parity(name, shapes, params):
    tensors = [t64(*s, seed=i) for i, s in enumerate(shapes)]
    op = getattr(nt, name)
    assert torch.autograd.gradcheck(lambda *ts: op(*ts, **params), tensors)
    want = _torch_call(name, tensors, params)
    got = op(*tensors, **params)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    torch.testing.assert_close(got, want)


def test_max_pool_indices_are_not_differentiable_and_match_torch():
    x = t64(2, 3, 7, 6)
    y, i = nt.max_pool2d(x, 3, 2, 1, return_indices=True)
    ty, ti = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    torch.testing.assert_close(y, ty)
    assert torch.equal(i, ti) and not i.requires_grad and y.requires_grad
    assert torch.autograd.gradcheck(lambda t: nt.max_pool2d(t, 3, 2, 1, return_indices=True)[0],
                                    [x])


def test_strided_inputs_grads_on_some_arguments_and_zero_copy():
    base = t64(2, 6, 8, 9)
    x = base.detach()[:, ::2, 1:, ::2].requires_grad_()  # a strided view
    w = t64(4, 3, 3, 3, seed=1).detach()                 # no grad
    b = t64(4, seed=2)                                   # grad
    y = nt.conv2d(x, w, b, padding=1)
    y.square().sum().backward()
    xr = x.detach().clone().requires_grad_()
    br = b.detach().clone().requires_grad_()
    F.conv2d(xr, w, br, padding=1).square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(b.grad, br.grad)
    assert w.grad is None
    # CPU tensors reach the kernels as views of their memory
    t = torch.zeros(3, 4)
    assert np.shares_memory(nt.to_array(t), t.numpy())


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.ChannelShuffle(2), torch.nn.Conv2d(8, 6, 1),
        torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
        torch.nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.AvgPool2d(2),
        torch.nn.AdaptiveAvgPool2d(3), torch.nn.Flatten(), torch.nn.Linear(36, 5))


def test_patch_keeps_outputs_gradients_and_training():
    x = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 5, (4,), generator=torch.Generator().manual_seed(2))
    runs = []
    for patched in (False, True):
        model = _model()
        if patched:
            assert nt.patch(model) is model
            kinds = {type(m) for m in model.modules()}
            assert ntnn.Conv2d in kinds and torch.nn.Conv2d not in kinds
            assert ntnn.ConvTranspose2d in kinds and ntnn.Upsample in kinds
        # SGD: Adam would turn the conv bias's near-zero gradient (a BatchNorm follows)
        # into +-lr steps decided by rounding noise
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_patch_selects_layers_and_leaves_the_rest_to_torch():
    model = _model()
    nt.patch(model, ops=["MaxPool2d", torch.nn.AvgPool2d])
    kinds = {type(m) for m in model.modules()}
    assert ntnn.MaxPool2d in kinds and ntnn.AvgPool2d in kinds and torch.nn.Conv2d in kinds
    with pytest.raises(ValueError, match="Linear"):
        nt.patch(model, ops=["Linear"])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        nt.patch(object())
    # bicubic is numbaconv's; what numbaconv does not compute runs torch's own forward:
    # trilinear (5-D), half precision
    x = torch.randn(1, 2, 4, 4)
    up = nt.patch(torch.nn.Upsample(scale_factor=2, mode="bicubic"))
    torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode="bicubic"))
    up3 = nt.patch(torch.nn.Upsample(scale_factor=2, mode="trilinear"))
    x5 = torch.randn(1, 1, 2, 3, 3)
    torch.testing.assert_close(up3(x5), F.interpolate(x5, scale_factor=2, mode="trilinear"))
    conv = nt.patch(torch.nn.Conv2d(2, 3, 3)).to(torch.bfloat16)
    assert conv(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_state_dicts_load_both_ways():
    theirs = torch.nn.Conv2d(3, 4, 3, padding=1)
    ours = ntnn.Conv2d(3, 4, 3, padding=1)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x))
    theirs.load_state_dict(ours.state_dict())


def test_plain_functional_api_takes_torch_and_big_endian_arrays():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    want = nc.conv2d(x, w, padding=1)
    got = nc.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), want)
    gx, gw, gb = nc.conv2d_backward(torch.ones(2, 4, 6, 6), torch.from_numpy(x),
                                    torch.from_numpy(w), padding=1)
    assert isinstance(gx, torch.Tensor) and isinstance(gw, torch.Tensor) and gb is None
    big = x.astype(">f4")
    np.testing.assert_array_equal(nc.conv2d(big, w, padding=1), want)
    assert big.dtype == np.dtype(">f4")  # the caller's array is untouched
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(nc.conv2d(frozen, w, padding=1), want)
    with pytest.raises(TypeError, match="float16"):
        nc.conv2d(torch.from_numpy(x).half(), torch.from_numpy(w).half())


def test_importing_numbaconv_does_not_import_torch():
    code = "import sys, numbaconv; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
