"""Real-GPU check and timings: run on a machine with an NVIDIA GPU.

1. Runs the CUDA tests on the device (``NUMBACONV_REAL_GPU=1 pytest -k cuda``: the
   simulator off, so every CUDA test runs the compiled kernels, tiles at their real
   sizes where a test does not patch them).
2. Times every op of ``numbaconv.bench.OPS``, forward and backward, on the GPU against
   PyTorch on the same GPU, with cuDNN's TF32 off (the like-for-like float32 comparison)
   and with PyTorch's defaults; best of ``--repeat`` after a warm-up (which also runs
   the conv autotuner), synchronized.  Each op's GPU result is checked against the
   CPU's first (relative error in the table).
3. Times one training step (forward, loss, backward, Adam) of each ``numbaconv train``
   model at batch 64 on 28x28 inputs, on the GPU and on the CPU.
4. Writes the tables to ``docs/benchmarks/gpu.md`` (and prints them).

    python docs/benchmarks/gpu.py [--repeat 20] [--skip-tests]

Needs PyTorch with CUDA for the comparison columns (numbaconv's own timings run without).
"""

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def run_tests():
    env = dict(os.environ, NUMBACONV_REAL_GPU="1")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "cuda"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return done.returncode, tail


def time_ours(name, repeat):
    from numba import cuda

    import numbaconv as nc
    from numbaconv.bench import best_of, op_calls

    forward, backward, _, _ = op_calls(name, put=nc.to_device)
    cpu_forward, _, _, _ = op_calls(name)
    got, want = nc.to_host(_first(forward())), np.asarray(_first(cpu_forward()))
    error = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    return (best_of(forward, repeat, cuda.synchronize),
            best_of(backward, repeat, cuda.synchronize), error)


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def time_training_step(name, device, repeat):
    """Seconds per training step of model ``name`` (batch 64, 1x28x28) on ``device``."""
    import time

    from numba import cuda

    import numbaconv as nc
    from numbaconv import nn, optim
    from numbaconv.models import build

    nn.manual_seed(0)
    model = build(name)
    if device == "cuda":
        model.to("cuda")
    put = nc.to_device if device == "cuda" else (lambda a: a)
    rng = np.random.default_rng(0)
    x = put(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    y = put(rng.integers(0, 10, 64))
    loss_fn, opt = nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()

    sync = cuda.synchronize if device == "cuda" else (lambda: None)
    step()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_torch(torch, name, repeat, tf32):
    from numbaconv.bench import OPS, best_of, make_inputs, torch_function

    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    op, shapes, params = OPS[name]
    fn = torch_function(torch, op, params)
    tensors = [torch.from_numpy(a).cuda().requires_grad_() for a in make_inputs(shapes)]
    sync = torch.cuda.synchronize
    with torch.no_grad():
        fwd = best_of(lambda: fn(*tensors), repeat, sync)
    out = fn(*tensors)
    gy = torch.randn_like(out)

    def backward():
        for t in tensors:
            t.grad = None
        torch.autograd.grad(out, tensors, gy, retain_graph=True)

    return fwd, best_of(backward, repeat, sync)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "gpu.md"))
    args = ap.parse_args()
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
    from numba import cuda

    from numbaconv.bench import OPS

    if not cuda.is_available():
        sys.exit("no CUDA GPU here: this script needs one (numbaconv info says why)")
    device = cuda.get_current_device()
    lines = [f"# numbaconv on {device.name.decode() if isinstance(device.name, bytes) else device.name}",
             "", f"Python {platform.python_version()}, float32, best of {args.repeat} "
             "(synchronized). Ratio = PyTorch time / numbaconv time (above 1: numbaconv "
             "faster).", ""]
    if not args.skip_tests:
        code, tail = run_tests()
        lines += [f"Test suite on the real GPU (NUMBACONV_REAL_GPU=1): exit {code}, `{tail}`",
                  ""]
    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        torch, have_torch = None, False
    head = "| op | rel. error vs CPU | fwd ms | bwd ms |"
    rule = "|---|---|---|---|"
    if have_torch:
        head += (" torch fwd ms (TF32 off) | torch bwd ms (TF32 off) | fwd ratio | bwd ratio "
                 "| torch fwd ms (default) | torch bwd ms (default) |")
        rule += "---|---|---|---|---|---|"
    lines += [head, rule]
    ratios = []
    for name in OPS:
        f, b, error = time_ours(name, args.repeat)
        row = f"| {name} | {error:.1e} | {f * 1e3:.3f} | {b * 1e3:.3f} |"
        if have_torch:
            tf, tb = time_torch(torch, name, args.repeat, tf32=False)
            df, db = time_torch(torch, name, args.repeat, tf32=True)
            ratios += [tf / f, tb / b]
            row += (f" {tf * 1e3:.3f} | {tb * 1e3:.3f} | {tf / f:.2f} | {tb / b:.2f} | "
                    f"{df * 1e3:.3f} | {db * 1e3:.3f} |")
        lines.append(row)
    if ratios:
        lines += ["", f"Geometric mean ratio (TF32 off): {np.exp(np.mean(np.log(ratios))):.2f}"]
    from numbaconv.models import MODELS

    lines += ["", "Training step (forward, loss, backward, Adam), batch 64, 1x28x28, float32, "
              "median:", "", "| model | GPU ms | CPU ms | CPU / GPU |", "|---|---|---|---|"]
    for name in MODELS:
        gpu = time_training_step(name, "cuda", args.repeat)
        cpu = time_training_step(name, "cpu", max(3, args.repeat // 4))
        lines.append(f"| {name} | {gpu * 1e3:.2f} | {cpu * 1e3:.2f} | {cpu / gpu:.1f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
