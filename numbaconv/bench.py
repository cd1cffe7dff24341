"""``numbaconv bench``: a quick side-by-side timing table of the main ops on the CPU
(float32, one realistic shape each, best of ``repeat`` after a warm-up), against
PyTorch with the same thread count when it is installed.  The asv suite
(``asv_bench/``) tracks the same table over time."""

from __future__ import annotations

import time

import numpy as np

from . import functional as F

# name -> (numbaconv op, input shapes, params); shapes from the classic architectures
OPS = {
    "conv2d 3x3": ("conv2d", [(8, 64, 56, 56), (64, 64, 3, 3)], dict(padding=1)),
    "conv2d 1x1": ("conv2d", [(8, 64, 56, 56), (128, 64, 1, 1)], {}),
    "conv2d depthwise": ("conv2d", [(8, 64, 56, 56), (64, 1, 3, 3)], dict(padding=1, groups=64)),
    "conv_transpose2d": ("conv_transpose2d", [(8, 64, 28, 28), (64, 32, 4, 4)],
                         dict(stride=2, padding=1)),
    "max_pool2d": ("max_pool2d", [(8, 64, 112, 112)], dict(kernel_size=3, stride=2, padding=1)),
    "avg_pool2d": ("avg_pool2d", [(8, 64, 56, 56)], dict(kernel_size=3, stride=2, padding=1)),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d", [(8, 512, 7, 7)], dict(output_size=1)),
    "unfold": ("unfold", [(8, 64, 28, 28)], dict(kernel_size=3, padding=1)),
    "fold": ("fold", [(8, 576, 784)], dict(output_size=28, kernel_size=3, padding=1)),
    "interpolate nearest": ("interpolate", [(8, 64, 28, 28)], dict(scale_factor=2)),
    "interpolate bilinear": ("interpolate", [(8, 64, 28, 28)],
                             dict(scale_factor=2, mode="bilinear")),
    "channel_shuffle": ("channel_shuffle", [(8, 240, 28, 28)], dict(groups=3)),
    "pad reflect": ("pad", [(8, 64, 56, 56)], dict(pad=(1, 1, 1, 1), mode="reflect")),
}


def make_inputs(shapes, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) / (np.sqrt(np.prod(s[1:])) if i else 1)).astype(dtype)
            for i, s in enumerate(shapes)]


def best_of(fn, repeat=5, sync=None):
    """Best wall time of ``fn()`` over ``repeat`` calls after one warm-up; ``sync`` (a
    device synchronize) runs before the clock starts and before it stops."""
    sync = sync or (lambda: None)
    fn()
    best = float("inf")
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def torch_function(torch, op, params):
    """The ``torch.nn.functional`` call equivalent to numbaconv's ``op(**params)``."""
    tf = torch.nn.functional
    if op == "pad":
        return lambda x: tf.pad(x, params["pad"], params.get("mode", "constant"))
    return lambda *t: getattr(tf, op)(*t, **params)


def measure(name, repeat=5, torch=None):
    """(numbaconv forward s, numbaconv backward s, torch forward s, torch backward s);
    torch entries None without PyTorch.  Backward times exclude the forward."""
    op, shapes, params = OPS[name]
    arrays = make_inputs(shapes)
    forward, backward = getattr(F, op), getattr(F, op + "_backward")
    saved = {}
    if op == "max_pool2d":
        y, saved["indices"] = forward(*arrays, return_indices=True, **params)
    else:
        y = forward(*arrays, **params)
    ours = (best_of(lambda: forward(*arrays, **params), repeat),
            best_of(lambda: backward(y, *arrays, **params, **saved), repeat))
    if torch is None:
        return ours + (None, None)
    fn = torch_function(torch, op, params)
    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
    gy = torch.from_numpy(np.ascontiguousarray(y))
    with torch.no_grad():
        fwd = best_of(lambda: fn(*tensors), repeat)
    bwd = float("inf")
    for _ in range(repeat + 1):
        out = fn(*tensors)
        start = time.perf_counter()
        out.backward(gy)
        bwd = min(bwd, time.perf_counter() - start)
    return ours + (fwd, bwd)


def table(repeat=5, names=None):
    """The printable comparison table."""
    import numba

    try:
        import torch

        torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    except ImportError:
        torch = None
    head = f"{'op':<22}{'fwd ms':>9}{'bwd ms':>9}"
    if torch is not None:
        head += f"{'torch fwd':>11}{'torch bwd':>11}{'fwd x':>8}{'bwd x':>8}"
    lines = [f"CPU float32, {numba.config.NUMBA_NUM_THREADS} threads, best of {repeat}; "
             f"'x' = torch time / numbaconv time (above 1: numbaconv faster)", head]
    for name in names or OPS:
        f, b, tf, tb = measure(name, repeat, torch)
        line = f"{name:<22}{f * 1e3:>9.2f}{b * 1e3:>9.2f}"
        if torch is not None:
            line += f"{tf * 1e3:>11.2f}{tb * 1e3:>11.2f}{tf / f:>8.2f}{tb / b:>8.2f}"
        lines.append(line)
    if torch is None:
        lines.append("(PyTorch not installed: no comparison)")
    return "\n".join(lines)
