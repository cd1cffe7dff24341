"""conv2d / conv1d forward and backward: dense, 1x1, grouped, depthwise, dilated,
strided, padding modes; float32 / float64; CPU / CUDA.  Plus achieved GFLOP/s, peak
memory, and the ratio to PyTorch CPU at the same thread count."""

import numpy as np

import numbaconv as nc

from .common import DEVICES, make, require_device, skip_without_torch, sync, torch_ratios
from .common import best_of as _best_of

# name: (input shape, weight shape, params); realistic layer shapes, small enough that a
# quick CI pass stays short.
LAYERS = {
    "resnet3x3": ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    "resnet3x3_s2": ((8, 64, 56, 56), (128, 64, 3, 3), dict(stride=2, padding=1)),
    "pointwise": ((8, 128, 28, 28), (256, 128, 1, 1), {}),
    "depthwise": ((8, 128, 56, 56), (128, 1, 3, 3), dict(padding=1, groups=128)),
    "grouped": ((8, 128, 28, 28), (128, 16, 3, 3), dict(padding=1, groups=8)),
    "dilated": ((4, 64, 64, 64), (64, 64, 3, 3), dict(padding=2, dilation=2)),
    "vgg5x5_b1": ((1, 64, 64, 64), (64, 64, 5, 5), dict(padding=2)),
    "reflect_pad": ((8, 32, 64, 64), (32, 32, 3, 3), dict(padding=1, padding_mode="reflect")),
}


def _macs(x_shape, w_shape, params):
    y = nc.analysis.conv_output_size(x_shape[2:], w_shape[2:], params.get("stride", 1),
                                     params.get("padding", 0), params.get("dilation", 1))
    return x_shape[0] * w_shape[0] * int(np.prod(y)) * int(np.prod(w_shape[1:]))


class Conv2d:
    params = (list(LAYERS), ["float32", "float64"], DEVICES)
    param_names = ["layer", "dtype", "device"]
    timeout = 120

    def setup(self, layer, dtype, device):
        require_device(device)
        x_shape, w_shape, self.kw = LAYERS[layer]
        self.x, self.w, self.b = make(device, dtype, x_shape, w_shape, (w_shape[0],))
        self.device = device
        y = nc.conv2d(self.x, self.w, self.b, **self.kw)  # warm-up: compile outside timing
        self.gy = y
        nc.conv2d_backward(self.gy, self.x, self.w, self.b, **self.kw)
        sync(device)

    def time_forward(self, layer, dtype, device):
        nc.conv2d(self.x, self.w, self.b, **self.kw)
        sync(self.device)

    def time_backward(self, layer, dtype, device):
        nc.conv2d_backward(self.gy, self.x, self.w, self.b, **self.kw)
        sync(self.device)

    def peakmem_forward_backward(self, layer, dtype, device):
        nc.conv2d_backward(self.gy, self.x, self.w, self.b, **self.kw)


class Conv1d:
    params = ([(16, 64, 1024, 64, 5, 1), (16, 64, 1024, 64, 3, 4), (16, 64, 1024, 64, 9, 64)],
              DEVICES)
    param_names = ["(N, C, L, C_out, k, groups)", "device"]

    def setup(self, shape, device):
        require_device(device)
        n, c, length, c_out, k, groups = shape
        self.x, self.w = make(device, "float32", (n, c, length), (c_out, c // groups, k))
        self.groups, self.device = groups, device
        nc.conv1d(self.x, self.w, padding="same", groups=groups)
        sync(device)

    def time_forward(self, shape, device):
        nc.conv1d(self.x, self.w, padding="same", groups=self.groups)
        sync(self.device)


class ConvThroughput:
    """Achieved GFLOP/s (2 x MACs / time) of the forward pass, float32, CPU."""

    params = (["resnet3x3", "pointwise", "vgg5x5_b1", "depthwise"],)
    param_names = ["layer"]
    unit = "GFLOP/s"
    timeout = 120

    def setup(self, layer):
        x_shape, w_shape, self.kw = LAYERS[layer]
        self.x, self.w = make("cpu", "float32", x_shape, w_shape)
        self.flops = 2 * _macs(x_shape, w_shape, self.kw)

    def track_forward_gflops(self, layer):
        seconds = _best_of(lambda: nc.conv2d(self.x, self.w, **self.kw))
        return self.flops / seconds / 1e9


class VersusTorch:
    """Speed ratio PyTorch time / numbaconv time (above 1: numbaconv is faster), CPU,
    same thread count, same process, best of repeats after warm-up.  Every layer is
    measured once, both passes, in ``setup_cache``; each result reads its ratio from
    there (not a process per layer and pass, each importing PyTorch)."""

    params = (list(LAYERS), ["forward", "forward_backward"])
    param_names = ["layer", "pass"]
    unit = "ratio"
    timeout = 60

    def setup_cache(self):
        return torch_ratios(_layer_ratios)

    setup_cache.timeout = 900

    def setup(self, ratios, layer, which):
        skip_without_torch(ratios)

    def track_speedup(self, ratios, layer, which):
        return ratios[layer, which]


def _layer_ratios(torch):
    ratios = {}
    for layer, (x_shape, w_shape, kw) in LAYERS.items():
        x, w, b = make("cpu", "float32", x_shape, w_shape, (w_shape[0],))
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        for which in VersusTorch.params[1]:
            ratios[layer, which] = (
                _best_of(lambda: _theirs(torch, tx, tw, tb, kw, which))
                / _best_of(lambda: _ours(x, w, b, kw, which)))
    return ratios


def _ours(x, w, b, kw, which):
    y = nc.conv2d(x, w, b, **kw)
    if which == "forward_backward":
        nc.conv2d_backward(y, x, w, b, **kw)


def _theirs(torch, x, w, b, kw, which):
    F = torch.nn.functional
    kw = dict(kw)
    mode = kw.pop("padding_mode", "zeros")
    if mode != "zeros":
        p = kw.pop("padding")
        x = F.pad(x, (p,) * 4, mode=mode)
    if which == "forward":
        with torch.no_grad():
            F.conv2d(x, w, b, **kw)
    else:
        y = F.conv2d(x, w, b, **kw)
        y.backward(y.detach())
