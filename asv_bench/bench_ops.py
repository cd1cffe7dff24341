"""Benchmarks of every non-convolution op (and the conv fast paths), the table of
``numbaconv bench`` (``numbaconv.bench.OPS``, one realistic float32 shape each): time
forward and backward per device, and the speed ratio against PyTorch on the CPU (same
thread count; backward timed alone, with max-pool indices kept from the forward)."""

import numbaconv as nc
from numbaconv.bench import OPS, measure, op_calls

from .common import DEVICES, require_device, skip_without_torch, sync, torch_ratios


class Ops:
    params = (list(OPS), DEVICES)
    param_names = ["op", "device"]
    timeout = 180

    def setup(self, name, device):
        require_device(device)
        self.device = device
        put = nc.to_device if device == "cuda" else None
        self.forward, self.backward, _, _ = op_calls(name, put=put)
        sync(device)

    def time_forward(self, name, device):
        self.forward()
        sync(self.device)

    def time_backward(self, name, device):
        self.backward()
        sync(self.device)


class OpsVersusTorch:
    """PyTorch time / numbaconv time (above 1: numbaconv is faster), CPU, float32.

    Every op is measured once, both passes (``numbaconv.bench.measure``: ours, then
    PyTorch's, in one process), in ``setup_cache``; each result reads its ratio from
    there, rather than a process per op and pass importing PyTorch and timing all four
    to keep one."""

    params = (list(OPS), ["forward", "backward"])
    param_names = ["op", "pass"]
    unit = "ratio"
    timeout = 60

    def setup_cache(self):
        return torch_ratios(_ratios)

    setup_cache.timeout = 600

    def setup(self, ratios, name, which):
        skip_without_torch(ratios)

    def track_speedup(self, ratios, name, which):
        return ratios[name, which]


def _ratios(torch):
    ratios = {}
    for name in OPS:
        ours_f, ours_b, theirs_f, theirs_b = measure(name, repeat=5, torch=torch)
        ratios[name, "forward"] = theirs_f / ours_f
        ratios[name, "backward"] = theirs_b / ours_b
    return ratios
