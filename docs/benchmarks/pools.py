"""Does numbaconv's speed depend on import order or on other thread pools?  (#23)

Runs itself in two fresh processes, numbaconv imported before NumPy and PyTorch, and
after them, and in each times a few layers three ways: alone (back to back), right
after a PyTorch conv, and right after a NumPy (BLAS) product.  Medians in ms.

    python3 docs/benchmarks/pools.py
"""
import subprocess
import sys
import time

LAYERS = {  # name: (x shape, weight shape, params)
    "tiny 3x3 (1,3,9,9)->5": ((1, 3, 9, 9), (5, 3, 3, 3), dict(padding=1)),
    "thin 5x5 s2 (33,3,16,16)->39": ((33, 3, 16, 16), (39, 3, 5, 5), dict(stride=2, padding=2)),
    "1x1 (32,256,14,14)->64": ((32, 256, 14, 14), (64, 256, 1, 1), {}),
    "3x3 (8,64,28,28)->64": ((8, 64, 28, 28), (64, 64, 3, 3), dict(padding=1)),
}


def child(order):
    if order == "numbaconv first":
        import numbaconv as nc
        import numpy as np
        import torch
    else:
        import numpy as np
        import torch

        import numbaconv as nc
    torch.set_num_threads(2)
    a = np.random.rand(300, 300).astype(np.float32)
    tx, tw = torch.randn(8, 32, 28, 28), torch.randn(32, 32, 3, 3)
    rows = []
    for name, (xs, ws, p) in LAYERS.items():
        rng = np.random.default_rng(0)
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        y = nc.conv2d(x, w, **p)
        nc.conv2d_backward(y, x, w, **p)
        for part, call in (("fwd", lambda: nc.conv2d(x, w, **p)),
                           ("bwd", lambda: nc.conv2d_backward(y, x, w, **p))):
            out = []
            for before in (None, lambda: torch.nn.functional.conv2d(tx, tw, padding=1),
                           lambda: a @ a):
                times = []
                for _ in range(15):
                    if before is not None:
                        before()
                    start = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - start)
                out.append(sorted(times)[len(times) // 2] * 1e3)
            rows.append(f"| {order} | {name} {part} | " + " | ".join(f"{t:.3f}" for t in out) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        print("| import order | layer | alone | after a PyTorch conv | after a NumPy product |")
        print("|---|---|---|---|---|")
        for order in ("numbaconv first", "NumPy and PyTorch first"):
            print(subprocess.run([sys.executable, __file__, order], capture_output=True,
                                 text=True, check=True).stdout, end="")
