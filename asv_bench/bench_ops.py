"""Benchmarks of every non-convolution op (and the conv fast paths), the table of
``numbaconv bench`` (``numbaconv.bench.OPS``, one realistic float32 shape each): time
forward and backward per device, and the speed ratio against PyTorch on the CPU (same
thread count; backward timed alone, with max-pool indices kept from the forward)."""

import numbaconv as nc
from numbaconv.bench import OPS, make_inputs, measure

from .common import DEVICES, require_device, require_torch, sync


class Ops:
    params = (list(OPS), DEVICES)
    param_names = ["op", "device"]
    timeout = 180

    def setup(self, name, device):
        require_device(device)
        op, shapes, self.kw = OPS[name]
        self.device = device
        self.forward, self.backward = getattr(nc, op), getattr(nc, op + "_backward")
        self.arrays = [nc.to_device(a) if device == "cuda" else a for a in make_inputs(shapes)]
        self.saved = {}
        if op == "max_pool2d":
            self.y, self.saved["indices"] = self.forward(*self.arrays, return_indices=True,
                                                         **self.kw)
        else:
            self.y = self.forward(*self.arrays, **self.kw)
        sync(device)

    def time_forward(self, name, device):
        self.forward(*self.arrays, **self.kw)
        sync(self.device)

    def time_backward(self, name, device):
        self.backward(self.y, *self.arrays, **self.kw, **self.saved)
        sync(self.device)

class OpsVersusTorch:
    """PyTorch time / numbaconv time (above 1: numbaconv is faster), CPU, float32."""

    params = (list(OPS), ["forward", "backward"])
    param_names = ["op", "pass"]
    unit = "ratio"
    timeout = 240

    def setup(self, name, which):
        self.torch = require_torch()

    def track_speedup(self, name, which):
        ours_f, ours_b, theirs_f, theirs_b = measure(name, repeat=5, torch=self.torch)
        return theirs_f / ours_f if which == "forward" else theirs_b / ours_b

