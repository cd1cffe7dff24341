"""Each conv kernel (forward, grad weight, grad input) of random dense, grouped and thin
layers timed under every CPU algorithm that can run it, the other kernels held fixed,
with the algorithm the chooser picks: one JSON line per layer.  The grad input is the
whole backward minus the grad weight (both with the grad weight tiled).  Summarised in
docs/benchmarks/cpu.md, "The chooser, re-derived from random shapes".

    python3 docs/benchmarks/chooser.py SEED [SEED ...] > chooser.jsonl
"""
import json
import sys
import time

import numpy as np
import torch

a = np.random.rand(256, 256).astype(np.float32); a @ a
torch.nn.functional.conv2d(torch.randn(8, 16, 32, 32), torch.randn(16, 16, 3, 3), padding=1)
import numbaconv as nc
from numbaconv.bench import random_cases
from numbaconv.functional import conv as fconv

orig = fconv.choose_conv_algorithm
force = {}
def chooser(device, spec, kernel="conv2d_forward"):
    auto = orig(device, spec, kernel)
    force.setdefault("auto_" + kernel, auto)
    return force.get(kernel, auto)
fconv.choose_conv_algorithm = chooser
def t(f, n=5):
    f(); ts = []
    for i in range(n):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    return float(np.median(ts) * 1e3)
cases = {}
for seed in map(int, sys.argv[1:]):
    for k, v in random_cases(24, seed).items():
        if k.split()[0] in ("dense", "grouped", "thin") and " 1x1 " not in k:
            cases[k] = v
results = []
for name, (op, (xs, ws), p, dt) in cases.items():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dt); w = rng.standard_normal(ws).astype(dt)
    y = nc.conv2d(x, w, **p)
    row = {"name": name, "x": xs, "w": ws, "p": p}
    for kernel, fn in (("conv2d_forward", lambda: nc.conv2d(x, w, **p)),
                       ("conv2d_grad_weight", lambda: fconv.conv_param_grads(2, y, x, w, **p)),
                       ("conv2d_grad_input", None)):
        force.clear(); orig_auto = None
        for algo in ("tiled", "blocked", "gemm", "direct"):
            if algo == "blocked" and (kernel != "conv2d_forward" and p["stride"] != 1):
                continue
            force.clear(); force[kernel] = algo
            if kernel == "conv2d_grad_input":
                # the whole backward with the grad weight held on tiled, minus that
                force["conv2d_grad_weight"] = "tiled"
                tt = t(lambda: nc.conv2d_backward(y, x, w, **p), 3) - t(lambda: fconv.conv_param_grads(2, y, x, w, **p), 3)
            else:
                tt = t(fn, 3)
            row[kernel[7:] + ":" + algo] = round(tt, 3)
        force.clear()
        orig_auto = orig("cpu", fconv.conv_spec("conv2d", 2, x, w, None, p["stride"], p["padding"], p["dilation"], p["groups"], "zeros", False), kernel)
        row[kernel[7:] + ":auto"] = orig_auto
    print(json.dumps(row), flush=True)
