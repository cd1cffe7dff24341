"""Layer API: every layer's and block's backward against finite differences (float64),
layers against the functional ops, losses, optimizers against PyTorch's update rules,
state-dict round trips and a short training run whose loss falls."""

import numpy as np
import pytest
from conftest import numeric_grad, torch

import numbaconv as nc
from numbaconv import nn, optim
from numbaconv.dispatch import device_of


def _to64(model):
    return model.double()


def test_module_dtype_casts_and_moves():
    """``double()``, ``float()``, ``to(dtype)``, ``to(device, dtype)``: floating
    parameters, gradients and buffers change dtype; integer counters do not."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    assert model.double() is model
    bn = model[1]
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype.kind == "i"
    assert model.to(np.float32)[0].weight.data.dtype == np.float32
    y = model.to(dtype="float64")(np.ones((1, 2, 5, 5)))
    assert y.dtype == np.float64 and model.float()[0].bias.data.dtype == np.float32
    for bad in (np.int32, np.float16):
        with pytest.raises(TypeError, match="float type"):
            model.to(bad)
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")


LAYERS = [
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 6, 6)),
    (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=2, padding_mode="reflect"), (1, 4, 5, 5)),
    (lambda: nn.Conv1d(3, 2, 3, padding=1), (2, 3, 7)),
    (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (1, 3, 3, 3)),
    (lambda: nn.MaxPool2d(2), (2, 2, 4, 6)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 5)),
    (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 3, 3)),
    (lambda: nn.ReLU(), (2, 3, 4)),
    (lambda: nn.LeakyReLU(0.2), (2, 3, 4)),
    (lambda: nn.Sigmoid(), (2, 3, 4)),
    (lambda: nn.Tanh(), (2, 3, 4)),
    (lambda: nn.Linear(5, 3), (4, 5)),
    (lambda: nn.Flatten(), (2, 3, 2, 2)),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 3)),
    (lambda: nn.ChannelShuffle(2), (1, 4, 2, 2)),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4), (1, 3, 5, 5)),
    (lambda: nn.SpatiallySeparableConv2d(2, 3, 3), (1, 2, 5, 5)),
    (lambda: nn.FlattenedConv2d(2, 3, 3), (1, 2, 5, 5)),
    (lambda: nn.ResizeConv2d(2, 2, 3), (1, 2, 3, 3)),
    (lambda: nn.ShuffleUnit(6, 6, groups=3), (2, 6, 4, 4)),
    (lambda: nn.ShuffleUnit(6, 12, groups=3, stride=2), (2, 6, 4, 4)),
    (lambda: nn.InceptionBlock(3, 2, 2, 3, 1, 2, 2), (2, 3, 4, 4)),
    (lambda: nn.ResidualBlock(3, 3), (2, 3, 4, 4)),
    (lambda: nn.ResidualBlock(3, 8, stride=2, bottleneck=True), (2, 3, 4, 4)),
    (lambda: nn.HighwayBlock(2), (1, 2, 4, 4)),
]


@pytest.mark.parametrize("make, shape", LAYERS, ids=[f"layer-{i}" for i in range(len(LAYERS))])
def test_backward_matches_finite_differences(make, shape, rng):
    nn.manual_seed(0)
    model = _to64(make())
    x = rng.standard_normal(shape)
    gy = rng.standard_normal(model(x).shape)

    def loss():
        return float(np.sum(model(x) * gy))

    model.zero_grad()
    model(x)
    gx = model.backward(gy)
    for target, got in [(x, gx)] + [(p.data, p.grad) for p in model.parameters()]:
        picked = rng.choice(target.size, size=min(target.size, 12), replace=False)
        numeric = numeric_grad(loss, target, indices=picked).reshape(-1)[picked]
        np.testing.assert_allclose(got.reshape(-1)[picked], numeric, rtol=1e-5, atol=1e-6)


def test_layers_call_the_functional_ops(rng):
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1, groups=1)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(conv(x), nc.conv2d(x, conv.weight.data, conv.bias.data,
                                                  stride=2, padding=1), rtol=1e-6)
    assert conv.weight.shape == (4, 3, 3, 3) and conv.weight.data.dtype == np.float32
    assert abs(conv.weight.data).max() <= 1 / np.sqrt(27)  # PyTorch's default init bound


def test_batchnorm_running_statistics_and_eval(rng):
    bn = nn.BatchNorm2d(2, momentum=0.5)
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 3 + 1
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3), ddof=1),
                               rtol=1e-5)
    bn.eval()
    expected = (x - bn.running_mean[None, :, None, None]) / np.sqrt(
        bn.running_var[None, :, None, None] + bn.eps)
    np.testing.assert_allclose(bn(x), expected, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == 1


def test_losses(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    ce = nn.CrossEntropyLoss()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert ce(logits, labels) == pytest.approx(-np.log(p[np.arange(5), labels]).mean())
    onehot = np.eye(4)[labels]
    np.testing.assert_allclose(ce.backward(), (p - onehot) / 5, atol=1e-12)
    mse = nn.MSELoss()
    t = rng.standard_normal((5, 4))
    assert mse(logits, t) == pytest.approx(np.mean((logits - t) ** 2))
    np.testing.assert_allclose(mse.backward(), 2 * (logits - t) / 20)
    with pytest.raises(ValueError, match="labels must be in"):
        ce(logits, np.array([0, 4, 1, 1, 2]))


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("name, kw", [
    ("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
])
def test_optimizers_follow_torch_update_rules(name, kw, rng):
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    p = nn.Parameter(w0.copy())
    opt = getattr(optim, name)([p], **kw)
    t = torch.tensor(w0.copy(), requires_grad=True)
    topt = getattr(torch.optim, name)([t], **kw)
    for g in grads:
        p.grad[...] = g
        opt.step()
        t.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_state_dict_save_load_round_trip(tmp_path, rng):
    from numbaconv.models import build

    nn.manual_seed(1)
    model = build("resnet")
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    model(x)  # moves the BN running stats
    model.eval()
    before = model(x)
    path = tmp_path / "m.npz"
    model.save(path)
    nn.manual_seed(2)
    other = build("resnet").load(path).eval()
    np.testing.assert_array_equal(other(x), before)
    keys = list(model.state_dict())
    assert "0.weight" in keys and "3.body.0.1.running_mean" in keys
    with pytest.raises(KeyError, match="missing keys"):
        other.load_state_dict({"0.weight": np.zeros((32, 1, 3, 3))})
    with pytest.raises(ValueError, match="must have shape"):
        other.load_state_dict({**model.state_dict(), "0.weight": np.zeros((1, 1))})


def test_pickle_and_release_drop_the_forward_caches(rng):
    """A pickled model carries its parameters, buffers and settings, not the inputs its
    last forward kept for backward; release() drops those in place."""
    import pickle

    from numbaconv.models import build

    nn.manual_seed(1)
    model = build("resnet")
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    model(x)
    model.eval()
    want = model(x)
    cached = [m for _, m in model.named_modules() if "_x" in m.__dict__]
    assert cached
    copy = pickle.loads(pickle.dumps(model))
    assert not any("_x" in m.__dict__ for _, m in copy.named_modules())
    np.testing.assert_array_equal(copy(x), want)
    assert model.release() is model
    assert not any(k.startswith("_") and k not in nn.Module._STATE
                   for _, m in model.named_modules() for k in m.__dict__)
    np.testing.assert_array_equal(model(x), want)
    model.backward(np.ones_like(want))  # a forward again, then backward works


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
def test_torch_state_dict_maps_by_name(rng):
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                             torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64, 3))
    ours.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    tm.eval()
    ours.eval()
    with torch.no_grad():
        np.testing.assert_allclose(ours(x), tm(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first", [lambda: nn.Conv2d(2, 4, 3, padding=1),
                                   lambda: nn.Conv1d(2, 4, 3, padding=1, padding_mode="reflect")])
def test_a_model_fed_with_data_skips_its_first_grad_input(first, rng):
    """``input_requires_grad(False)``: the first conv computes only its parameters'
    gradients (equal to the full backward's) and the model's backward returns None."""
    grads, x = [], None
    for needs in (True, False):
        nn.manual_seed(3)
        model = _to64(nn.Sequential(nn.Sequential(first(), nn.ReLU()), nn.Flatten()))
        model.input_requires_grad(needs)
        if x is None:
            one_d = isinstance(model[0][0], nn.Conv1d)
            x = rng.standard_normal((2, 2, 5) if one_d else (2, 2, 5, 5))
        y = model(x)
        gx = model.backward(np.ones_like(y))
        assert (gx is None) == (not needs)
        grads.append([p.grad.copy() for p in model.parameters()])
    for with_input, without in zip(*grads):
        np.testing.assert_array_equal(with_input, without)


def test_short_training_run_lowers_the_loss():
    from numbaconv.data import digits
    from numbaconv.models import build
    from numbaconv.train import fit

    nn.manual_seed(0)
    x, y, xt, yt = digits()
    data = (x[:256], y[:256], xt[:128], yt[:128])
    model = build("cnn")
    loss_fn = nn.CrossEntropyLoss()
    first = loss_fn(model(data[0]), data[1])  # training mode: batch statistics
    seen = []
    backward = type(model[0]).backward

    def spy(layer, grad):
        seen.append(layer.input_grad)
        return backward(layer, grad)

    object.__setattr__(model[0], "backward", lambda grad: spy(model[0], grad))
    result = fit(model, data, epochs=3, batch_size=32, stream=None)
    assert seen and not any(seen)  # fit skipped the first layer's grad input...
    assert model[0].input_grad  # ...and restored the flag afterwards
    assert loss_fn(model(data[0]), data[1]) < 0.5 * first
    assert result["loss"] < 0.5 * first


# --------------------------------------------------------------------------- on CUDA
def _pair(make):
    """The same model (same seed) twice, float64: one on the CPU, one moved to CUDA."""
    models = []
    for _ in range(2):
        nn.manual_seed(0)
        models.append(_to64(make()))
    return models[0], models[1].to("cuda")


def _close(got, want, what):
    np.testing.assert_allclose(nc.to_host(got), want, rtol=1e-9, atol=1e-11, err_msg=what)


@pytest.mark.parametrize("make, shape", LAYERS, ids=[f"layer-{i}" for i in range(len(LAYERS))])
def test_layer_on_cuda_matches_cpu(make, shape, rng, cuda):
    """Forward, input gradient, parameter gradients and buffers of every layer and block
    moved with to('cuda') agree with the CPU model; no host array in between."""
    cpu, gpu = _pair(make)
    x = rng.standard_normal(shape)
    y = cpu(x)
    y_gpu = gpu(nc.to_device(x))
    assert device_of(y_gpu) == "cuda"
    gy = rng.standard_normal(y.shape)
    gx, gx_gpu = cpu.backward(gy), gpu.backward(nc.to_device(gy))
    assert device_of(gx_gpu) == "cuda"
    _close(y_gpu, y, "forward")
    _close(gx_gpu, gx, "grad input")
    for (name, p), (_, q) in zip(cpu.named_parameters(), gpu.named_parameters()):
        _close(q.grad, p.grad, name + ".grad")
    for (name, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items()):
        _close(b, a, name)
    cpu.eval(), gpu.eval()  # BatchNorm with running statistics
    _close(gpu(nc.to_device(x)), cpu(x), "eval forward")


def test_dropout_masks_agree_across_devices_and_keep_one_minus_p(rng, cuda):
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    outs = []
    for put in (lambda a: a, nc.to_device):
        nn.manual_seed(7)
        drop = nn.Dropout(0.3)
        outs.append(nc.to_host(drop(put(x))))
        g = nc.to_host(drop.backward(put(np.ones_like(x))))
        np.testing.assert_array_equal(g != 0, outs[-1] != 0)
    np.testing.assert_array_equal(outs[0], outs[1])
    kept = outs[0] != 0
    np.testing.assert_allclose(outs[0][kept], x[kept] / np.float32(0.7), rtol=1e-6)
    big = nn.Dropout(0.3)(np.ones(20000, np.float32))
    assert abs((big != 0).mean() - 0.7) < 0.02
    assert nn.Dropout(0.3).eval()(x) is x


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True,
                                                  weight_decay=0.01)),
                                      ("SGD", dict(lr=0.1)),
                                      ("Adam", dict(lr=0.01, weight_decay=0.1))])
def test_optimizers_on_cuda_match_cpu(name, kw, rng, cuda):
    params, start = [], rng.standard_normal((3, 5))
    for put in (lambda a: a, nc.to_device):
        p = nn.Parameter(put(start.copy()))
        params.append((p, getattr(optim, name)([p], **kw), put))
    grads = [rng.standard_normal((3, 5)) for _ in range(3)]
    for g in grads:
        for p, opt, put in params:
            opt.zero_grad()
            nn.layers._accumulate(p, put(g))
            opt.step()
    _close(params[1][0].data, params[0][0].data, name)


def test_losses_on_cuda_match_cpu(rng, cuda):
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 1, 2, 0])
    ce, ce_gpu = nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    assert ce_gpu(nc.to_device(logits), nc.to_device(labels)) == pytest.approx(
        ce(logits, labels), rel=1e-12)
    assert ce_gpu.correct == ce.correct == int((logits.argmax(1) == labels).sum())
    _close(ce_gpu.backward(), ce.backward(), "cross-entropy grad")
    t = rng.standard_normal((6, 4))
    mse, mse_gpu = nn.MSELoss(), nn.MSELoss()
    assert mse_gpu(nc.to_device(logits), nc.to_device(t)) == pytest.approx(mse(logits, t),
                                                                          rel=1e-12)
    _close(mse_gpu.backward(), mse.backward(), "mse grad")
    with pytest.raises(ValueError, match="labels must be in"):
        ce_gpu(nc.to_device(logits), nc.to_device(np.array([0, 4, 1, 1, 2, 0])))
    with pytest.raises(ValueError, match="one device"):
        ce_gpu(nc.to_device(logits), labels)


def test_training_on_cuda_follows_the_cpu_run(cuda):
    """``fit(device='cuda')`` (data moved once per epoch, every step on the device)
    reaches the CPU run's losses and accuracy: the whole path has CUDA kernels."""
    from numbaconv.train import fit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    data = (x, y, x[:6], y[:6])

    def make():
        # no conv bias before the batch norm: its gradient is rounding noise, which Adam
        # would blow up to full-size steps that differ between devices
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2),
                             nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 3))

    results = []
    for device in ("cpu", "cuda"):
        nn.manual_seed(0)
        model = make()
        if device == "cuda":
            model.to("cuda")
        results.append(fit(model, data, epochs=2, batch_size=4, device=device, stream=None))
        results[-1]["state"] = model.state_dict()
    assert results[1]["loss"] == pytest.approx(results[0]["loss"], rel=1e-4)
    assert results[1]["test_accuracy"] == results[0]["test_accuracy"]
    for key, value in results[0]["state"].items():
        np.testing.assert_allclose(results[1]["state"][key], value, rtol=1e-4, atol=1e-5,
                                   err_msg=key)
