"""A first look at numbaconv: a conv layer forward and backward, checked against the
NumPy reference, then timed on a realistic shape.

    python examples/quickstart.py
"""

import time

import numpy as np

import numbaconv as nc
from numbaconv import reference

rng = np.random.default_rng(0)

# 1. Correctness on a small case: every parameter at once, against the oracle.
x = rng.standard_normal((2, 4, 9, 9))
w = rng.standard_normal((6, 2, 3, 3))
b = rng.standard_normal(6)
params = dict(stride=2, padding=1, dilation=2, groups=2, padding_mode="reflect")
y = nc.conv2d(x, w, b, **params)
gy = rng.standard_normal(y.shape)
grads = nc.conv2d_backward(gy, x, w, b, **params)
ref_y = reference.conv(x, w, b, **params)
ref_grads = reference.conv_backward(gy, x, w, b, **params)
err = max([np.abs(y - ref_y).max()] + [np.abs(g - r).max() for g, r in zip(grads, ref_grads)])
print(f"conv2d {x.shape} * {w.shape} {params} -> {y.shape}; max error vs reference {err:.1e}")
assert err < 1e-10

# 2. Speed on a ResNet-style layer (float32).
x = rng.standard_normal((8, 64, 56, 56)).astype(np.float32)
w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
start = time.perf_counter()
y = nc.conv2d(x, w, padding=1)
first = time.perf_counter() - start
times = []
for _ in range(3):
    start = time.perf_counter()
    y = nc.conv2d(x, w, padding=1)
    times.append(time.perf_counter() - start)
flops = 2 * y.size * 64 * 9
best = min(times)
print(f"conv2d {x.shape} 3x3 -> {y.shape}: first call {first:.2f} s (JIT + cache), "
      f"then {best * 1e3:.1f} ms ({flops / best / 1e9:.0f} GFLOP/s)")
