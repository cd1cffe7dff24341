"""numbaconv.torch against plain PyTorch, in one process with the same threads: the
numbers of docs/benchmarks/torch.md.

    python docs/benchmarks/torch_bridge.py [--threads N] [--repeat 7] [--out FILE.md]

1. Whole models, forward and forward+backward, plain vs ``numbaconv.torch.patch``-ed:
   a MobileNet-style model (depthwise-separable blocks), a max-pool-heavy VGG-style
   model, and a float64 CNN.
2. One layer of each kind, patched alone (which layers are worth patching).
3. The bridge's own cost per call on a tiny layer (numbaconv.torch.conv2d minus
   numbaconv.conv2d on the same NumPy views), and the two thread pools taking turns: a
   tiny conv of each library alone and right after the other's.

Times are medians over ``--repeat`` runs, the two contenders alternating; ratios are
plain / patched (above 1: the patch is faster).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numba
import numpy as np
import torch

import numbaconv as nc
import numbaconv.torch as nt

nn = torch.nn


def mobile():
    def block(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
                nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         *block(32, 64, 1), *block(64, 128, 2), *block(128, 128, 1),
                         *block(128, 256, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(256, 10))


def vgg():
    def stage(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 1, 1),
                nn.MaxPool2d(2)]
    return nn.Sequential(*stage(3, 16), *stage(16, 32), *stage(32, 64), nn.Flatten(),
                         nn.Linear(64 * 8 * 8, 10))


def cnn64():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).double()


MODELS = {"MobileNet-style, float32, (16, 3, 64, 64)": (mobile, (16, 3, 64, 64), torch.float32),
          "VGG-style max-pool heavy, float32, (16, 3, 64, 64)": (vgg, (16, 3, 64, 64),
                                                                   torch.float32),
          "CNN float64, (16, 3, 32, 32)": (cnn64, (16, 3, 32, 32), torch.float64)}

LAYERS = {
    "Conv2d 3x3 64->64, 32x32, b8": (lambda: nn.Conv2d(64, 64, 3, padding=1), (8, 64, 32, 32)),
    "Conv2d depthwise 3x3 128, 32x32, b8": (lambda: nn.Conv2d(128, 128, 3, padding=1,
                                                              groups=128), (8, 128, 32, 32)),
    "Conv2d 1x1 128->128, 16x16, b8": (lambda: nn.Conv2d(128, 128, 1), (8, 128, 16, 16)),
    "Conv2d 3x3 s2 32->64, 64x64, b8": (lambda: nn.Conv2d(32, 64, 3, 2, 1), (8, 32, 64, 64)),
    "ConvTranspose2d 4x4 s2 64->32, 16x16, b8": (lambda: nn.ConvTranspose2d(64, 32, 4, 2, 1),
                                                 (8, 64, 16, 16)),
    "MaxPool2d 3x3 s2, 64ch 32x32, b8": (lambda: nn.MaxPool2d(3, 2, 1), (8, 64, 32, 32)),
    "AvgPool2d 2x2, 64ch 32x32, b8": (lambda: nn.AvgPool2d(2), (8, 64, 32, 32)),
    "Upsample bilinear x2, 32ch 32x32, b8": (lambda: nn.Upsample(scale_factor=2,
                                                                 mode="bilinear"),
                                             (8, 32, 32, 32)),
    "AdaptiveAvgPool2d 1, 256ch 8x8, b16": (lambda: nn.AdaptiveAvgPool2d(1), (16, 256, 8, 8)),
}


def _step(model, x, backward):
    if backward:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    else:
        with torch.no_grad():
            model(x)


def race(a, b, repeat, number=1):
    """Median seconds of ``a()`` and ``b()``, alternating, after one warm-up each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            out.append((time.perf_counter() - t0) / number)
    return statistics.median(ta), statistics.median(tb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    lines = [f"threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()} "
             f"({numba.threading_layer() if _started() else 'not started'}); torch "
             f"{torch.__version__}", ""]
    torch.manual_seed(0)

    lines += ["| model | pass | PyTorch ms | patched ms | ratio |", "|---|---|---|---|---|"]
    for name, (build, shape, dtype) in MODELS.items():
        plain = build()
        patched = nt.patch(copy.deepcopy(plain))
        x = torch.randn(*shape, dtype=dtype)
        for backward in (False, True):
            t_plain, t_ours = race(lambda m=plain: _step(m, x, backward),
                                   lambda m=patched: _step(m, x, backward), args.repeat)
            lines.append(f"| {name} | {'fwd+bwd' if backward else 'fwd'} | "
                         f"{t_plain * 1e3:.2f} | {t_ours * 1e3:.2f} | "
                         f"{t_plain / t_ours:.2f} |")
    lines += ["", "| layer | pass | PyTorch ms | patched ms | ratio |", "|---|---|---|---|---|"]
    for name, (build, shape) in LAYERS.items():
        plain = build()
        patched = nt.patch(copy.deepcopy(plain))
        x = torch.randn(*shape, requires_grad=True)
        for backward in (False, True):
            def run(m, backward=backward):
                if backward:
                    x.grad = None
                    m(x).sum().backward()
                else:
                    with torch.no_grad():
                        m(x)
            t_plain, t_ours = race(lambda m=plain: run(m), lambda m=patched: run(m),
                                   args.repeat)
            lines.append(f"| {name} | {'fwd+bwd' if backward else 'fwd'} | "
                         f"{t_plain * 1e3:.3f} | {t_ours * 1e3:.3f} | "
                         f"{t_plain / t_ours:.2f} |")

    # the bridge's cost per call, and the pools taking turns
    x = torch.randn(1, 2, 6, 6)
    w = torch.randn(2, 2, 1, 1)
    xa, wa = x.numpy(), w.numpy()
    t_bridge, t_kernel = race(lambda: nt.conv2d(x, w), lambda: nc.conv2d(xa, wa),
                              args.repeat, number=2000)
    lines += ["", f"bridge overhead per call (tiny conv, no grad): "
              f"{(t_bridge - t_kernel) * 1e6:.1f} us over numbaconv.conv2d's "
              f"{t_kernel * 1e6:.1f} us"]
    xg = x.clone().requires_grad_()
    t_bridge, t_kernel = race(lambda: nt.conv2d(xg, w), lambda: nc.conv2d(xa, wa),
                              args.repeat, number=2000)
    lines.append(f"bridge overhead per call (input requires grad): "
                 f"{(t_bridge - t_kernel) * 1e6:.1f} us")
    xs = torch.randn(2, 16, 32, 32)
    ws = torch.randn(16, 16, 3, 3)
    xsa, wsa = xs.numpy(), ws.numpy()
    torch_conv = lambda: torch.nn.functional.conv2d(xs, ws, padding=1)  # noqa: E731
    ours_conv = lambda: nc.conv2d(xsa, wsa, padding=1)  # noqa: E731

    def after(first, second):
        first()
        t0 = time.perf_counter()
        second()
        return time.perf_counter() - t0

    for _ in range(50):
        torch_conv(), ours_conv()
    alone_ours = statistics.median(after(lambda: None, ours_conv) for _ in range(201))
    after_torch = statistics.median(after(torch_conv, ours_conv) for _ in range(201))
    alone_torch = statistics.median(after(lambda: None, torch_conv) for _ in range(201))
    after_ours = statistics.median(after(ours_conv, torch_conv) for _ in range(201))
    lines += [f"numbaconv conv (2, 16, 32, 32) 3x3: alone {alone_ours * 1e3:.3f} ms, right "
              f"after a PyTorch conv {after_torch * 1e3:.3f} ms",
              f"PyTorch conv, same layer: alone {alone_torch * 1e3:.3f} ms, right after a "
              f"numbaconv conv {after_ours * 1e3:.3f} ms"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


def _started():
    from numba.np.ufunc import parallel

    return parallel._is_initialized


if __name__ == "__main__":
    main()
