"""Benchmarks of every non-convolution op (and the transposed conv), one realistic float32
shape each: time forward and backward per device, and the speed ratio against PyTorch
on the CPU (same thread count)."""

import time

import numpy as np

import numbaconv as nc

from .common import DEVICES, best_of, make, require_device, require_torch, sync

# op -> (input shapes, params); shapes from the classic architectures
OPS = {
    "conv_transpose2d": ([(8, 64, 28, 28), (64, 32, 4, 4)], dict(stride=2, padding=1)),
    "max_pool2d": ([(8, 64, 112, 112)], dict(kernel_size=3, stride=2, padding=1)),
    "avg_pool2d": ([(8, 64, 56, 56)], dict(kernel_size=3, stride=2, padding=1)),
    "adaptive_avg_pool2d": ([(8, 512, 7, 7)], dict(output_size=1)),
    "unfold": ([(8, 64, 28, 28)], dict(kernel_size=3, padding=1)),
    "fold": ([(8, 576, 784)], dict(output_size=28, kernel_size=3, padding=1)),
    "interpolate_nearest": ([(8, 64, 28, 28)], dict(scale_factor=2, mode="nearest")),
    "interpolate_bilinear": ([(8, 64, 28, 28)], dict(scale_factor=2, mode="bilinear")),
    "channel_shuffle": ([(8, 240, 28, 28)], dict(groups=3)),
    "pad_reflect": ([(8, 64, 56, 56)], dict(pad=(1, 1, 1, 1), mode="reflect")),
}


def _saved(forward, arrays, kw, op):
    """Forward output and what a training loop keeps for the backward (max-pool indices)."""
    if op.startswith("max_pool"):
        y, indices = forward(*arrays, return_indices=True, **kw)
        return y, {"indices": indices}
    return forward(*arrays, **kw), {}


def _function(op):
    """(numbaconv forward, numbaconv backward, torch.nn.functional name) of a bench op."""
    name = op.split("_")[0] if op.startswith(("interpolate", "pad")) else op
    return getattr(nc, name), getattr(nc, name + "_backward"), name


class Ops:
    params = (list(OPS), DEVICES)
    param_names = ["op", "device"]
    timeout = 180

    def setup(self, op, device):
        require_device(device)
        shapes, self.kw = OPS[op]
        self.device = device
        self.forward, self.backward, _ = _function(op)
        self.arrays = make(device, "float32", *shapes)
        self.y, self.saved = _saved(self.forward, self.arrays, self.kw, op)
        sync(device)

    def time_forward(self, op, device):
        self.forward(*self.arrays, **self.kw)
        sync(self.device)

    def time_backward(self, op, device):
        self.backward(self.y, *self.arrays, **self.kw, **self.saved)
        sync(self.device)


class OpsVersusTorch:
    """PyTorch time / numbaconv time (above 1: numbaconv is faster), CPU, float32.
    ``backward`` times the backward call alone (PyTorch's autograd graph is rebuilt
    outside the timed region)."""

    params = (list(OPS), ["forward", "backward"])
    param_names = ["op", "pass"]
    unit = "ratio"
    timeout = 240

    def setup(self, op, which):
        torch = require_torch()
        shapes, self.kw = OPS[op]
        self.forward, self.backward, name = _function(op)
        self.arrays = make("cpu", "float32", *shapes)
        self.y, self.saved = _saved(self.forward, self.arrays, self.kw, op)
        self.tensors = [torch.from_numpy(a).requires_grad_() for a in self.arrays]
        F, kw = torch.nn.functional, dict(self.kw)
        if name == "pad":
            self.torch_fn = lambda *t: F.pad(*t, kw["pad"], kw["mode"])
        else:
            self.torch_fn = lambda *t: getattr(F, name)(*t, **kw)
        self.torch = torch
        self.gy = torch.from_numpy(np.ascontiguousarray(self.y))

    def _torch_forward(self):
        with self.torch.no_grad():
            self.torch_fn(*self.tensors)

    def _torch_backward_seconds(self, repeat=5):
        best = float("inf")
        for _ in range(repeat + 1):  # the first is a warm-up
            y = self.torch_fn(*self.tensors)
            start = time.perf_counter()
            y.backward(self.gy)
            best = min(best, time.perf_counter() - start)
        return best

    def track_speedup(self, op, which):
        if which == "forward":
            return best_of(self._torch_forward) / best_of(
                lambda: self.forward(*self.arrays, **self.kw))
        return self._torch_backward_seconds() / best_of(
            lambda: self.backward(self.y, *self.arrays, **self.kw, **self.saved))
