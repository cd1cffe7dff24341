"""``numbaconv bench``: side-by-side timings against PyTorch CPU (same process, same
thread count, after a warm-up), as printable tables.

* :data:`SUITE` / :func:`suite_table`: the performance suite of the conv family (dense
  3x3 / 5x5 / 1x1 layers of ResNet / VGG shapes at several batch sizes, depthwise,
  grouped, dilated, transposed, pooling, float64, small layers): forward and
  forward + backward, median of repeats, and the geometric mean of the ratios.  This is
  ``numbaconv bench``; ``docs/benchmarks/cpu.md`` records a run.
* :data:`OPS` / :func:`table`: one realistic shape per functional op, best of
  ``repeat`` (``numbaconv bench --ops``); the asv suite (``asv_bench/``) tracks it.
"""

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


def warm(fn):
    """One warm-up call of ``fn``, and a second where NumPy's tier 0 answered the first
    (``functional/_tier.py``): the timed calls then run compiled kernels."""
    from .functional import _tier

    answered = _tier.answered
    fn()
    if _tier.answered != answered:
        _tier.wait()
        fn()


def best_of(fn, repeat=5, sync=None):
    """Best wall time of ``fn()`` over ``repeat`` calls after a warm-up (:func:`warm`);
    ``sync`` (a device synchronize) runs before the clock starts and before it stops."""
    sync = sync or (lambda: None)
    warm(fn)
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


def op_calls(name, put=None, dtype=np.float32):
    """(forward, backward, inputs, output) for :data:`OPS` entry ``name``: zero-argument
    calls of the op and of its backward (on the forward's output, with max-pool's
    indices), the inputs made by :func:`make_inputs` and moved with ``put`` (e.g.
    ``numbaconv.to_device``)."""
    op, shapes, params = OPS[name]
    arrays = make_inputs(shapes, dtype=np.dtype(dtype))
    arrays = [put(a) for a in arrays] if put else arrays
    forward, backward = getattr(F, op), getattr(F, op + "_backward")
    saved = {}
    if op == "max_pool2d":
        y, saved["indices"] = forward(*arrays, return_indices=True, **params)
    else:
        y = forward(*arrays, **params)
    return (lambda: forward(*arrays, **params),
            lambda: backward(y, *arrays, **params, **saved), arrays, y)


def measure(name, repeat=5, torch=None):
    """(numbaconv forward s, numbaconv backward s, torch forward s, torch backward s);
    torch entries None without PyTorch.  Backward times exclude the forward."""
    op, shapes, params = OPS[name]
    forward, backward, arrays, y = op_calls(name)
    ours = (best_of(forward, repeat), best_of(backward, repeat))
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


# --------------------------------------------------------------------------- the suite
# name -> (op, input shapes, params, dtype)
SUITE = {
    "3x3 64->64 56x56 b1": ("conv2d", [(1, 64, 56, 56), (64, 64, 3, 3)], dict(padding=1), "f4"),
    "3x3 64->64 56x56 b8": ("conv2d", [(8, 64, 56, 56), (64, 64, 3, 3)], dict(padding=1), "f4"),
    "3x3 128->128 28x28 b32": ("conv2d", [(32, 128, 28, 28), (128, 128, 3, 3)],
                               dict(padding=1), "f4"),
    "3x3 256->256 14x14 b8": ("conv2d", [(8, 256, 14, 14), (256, 256, 3, 3)],
                              dict(padding=1), "f4"),
    "3x3 s2 64->128 56x56 b8": ("conv2d", [(8, 64, 56, 56), (128, 64, 3, 3)],
                                dict(stride=2, padding=1), "f4"),
    "5x5 32->64 28x28 b8": ("conv2d", [(8, 32, 28, 28), (64, 32, 5, 5)], dict(padding=2), "f4"),
    "1x1 256->64 14x14 b8": ("conv2d", [(8, 256, 14, 14), (64, 256, 1, 1)], {}, "f4"),
    "1x1 64->256 28x28 b32": ("conv2d", [(32, 64, 28, 28), (256, 64, 1, 1)], {}, "f4"),
    "stem 7x7 s2 3->64 224 b1": ("conv2d", [(1, 3, 224, 224), (64, 3, 7, 7)],
                                 dict(stride=2, padding=3), "f4"),
    "small 3x3 16->16 32x32 b2": ("conv2d", [(2, 16, 32, 32), (16, 16, 3, 3)],
                                  dict(padding=1), "f4"),
    "depthwise 3x3 64 56x56 b8": ("conv2d", [(8, 64, 56, 56), (64, 1, 3, 3)],
                                  dict(padding=1, groups=64), "f4"),
    "depthwise 3x3 s2 128 28x28 b8": ("conv2d", [(8, 128, 28, 28), (128, 1, 3, 3)],
                                      dict(stride=2, padding=1, groups=128), "f4"),
    "grouped g8 3x3 128 28x28 b8": ("conv2d", [(8, 128, 28, 28), (128, 16, 3, 3)],
                                    dict(padding=1, groups=8), "f4"),
    "dilated d2 3x3 64 28x28 b8": ("conv2d", [(8, 64, 28, 28), (64, 64, 3, 3)],
                                   dict(padding=2, dilation=2), "f4"),
    "transposed k4 s2 64->32 28x28 b8": ("conv_transpose2d", [(8, 64, 28, 28), (64, 32, 4, 4)],
                                         dict(stride=2, padding=1), "f4"),
    "float64 3x3 32->32 28x28 b8": ("conv2d", [(8, 32, 28, 28), (32, 32, 3, 3)],
                                    dict(padding=1), "f8"),
    "max_pool 3x3 s2 64 112x112 b8": ("max_pool2d", [(8, 64, 112, 112)],
                                      dict(kernel_size=3, stride=2, padding=1), "f4"),
    "avg_pool 2x2 64 56x56 b8": ("avg_pool2d", [(8, 64, 56, 56)], dict(kernel_size=2), "f4"),
}


def median_of(fn, repeat=7, sync=None):
    """Median wall time of ``fn()`` over ``repeat`` calls after a warm-up (:func:`warm`)."""
    sync = sync or (lambda: None)
    warm(fn)
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def paired_medians(first, second, repeat=7, blocks=3):
    """Median times of two callables, measured in alternating blocks (``repeat`` calls
    of each in all, split into ``blocks`` blocks: first x k, second x k, first x k, ...),
    so that drift on a noisy machine hits both alike while each library still runs
    back to back, as in real use.  Each block starts with an untimed call: it absorbs
    the other library's thread pool still spinning on the cores (PyTorch's OpenMP
    threads busy-wait after each op by default) and wakes this library's pool."""
    per_block = max(1, -(-repeat // blocks))
    times = ([], [])
    for _ in range(blocks):
        for fn, out in zip((first, second), times):
            warm(fn)
            for _ in range(per_block):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def measure_case(name, repeat=7, torch=None, cases=None):
    """(ours forward s, ours forward+backward s, torch forward s, torch forward+backward
    s) for :data:`SUITE` entry ``name`` (or ``cases[name]``), ours and PyTorch timed
    alternately; the torch entries None without PyTorch."""
    op, shapes, params, dtype = (cases or SUITE)[name]
    arrays = make_inputs(shapes, dtype=np.dtype(dtype))
    forward, backward = getattr(F, op), getattr(F, op + "_backward")
    kw = dict(return_indices=True) if op == "max_pool2d" else {}

    def ours_forward():
        forward(*arrays, **params)

    def ours_step():
        out = forward(*arrays, **params, **kw)
        y, saved = (out[0], dict(indices=out[1])) if kw else (out, {})
        backward(y, *arrays, **params, **saved)

    if torch is None:
        return median_of(ours_forward, repeat), median_of(ours_step, repeat), None, None
    fn = torch_function(torch, op, params)
    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]

    def torch_forward():
        with torch.no_grad():
            fn(*tensors)

    def torch_step():
        out = fn(*tensors)
        out.backward(torch.ones_like(out))

    f, tf = paired_medians(ours_forward, torch_forward, repeat)
    fb, tfb = paired_medians(ours_step, torch_step, repeat)
    return f, fb, tf, tfb


def peak_memory_ratio(name, cases=None):
    """Peak memory NumPy allocates during one forward + backward of :data:`SUITE` entry
    ``name`` (outputs, gradients, workspaces; ``tracemalloc`` sees NumPy's allocations),
    divided by the bytes of its inputs + output."""
    import tracemalloc

    op, shapes, params, dtype = (cases or SUITE)[name]
    arrays = make_inputs(shapes, dtype=np.dtype(dtype))
    forward, backward = getattr(F, op), getattr(F, op + "_backward")
    kw = dict(return_indices=True) if op == "max_pool2d" else {}
    out = forward(*arrays, **params, **kw)  # compiled (numba's compiler allocates too),
    y, saved = (out[0], dict(indices=out[1])) if kw else (out, {})  # workspaces warm
    backward(y, *arrays, **params, **saved)
    io_bytes = sum(a.nbytes for a in arrays) + y.nbytes
    del out, y, saved
    tracemalloc.start()
    out = forward(*arrays, **params, **kw)
    y, saved = (out[0], dict(indices=out[1])) if kw else (out, {})
    grads = backward(y, *arrays, **params, **saved)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del grads
    return peak / io_bytes


def geometric_mean(values):
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def random_cases(n, seed):
    """``n`` conv layers drawn from realistic ranges, as :data:`SUITE` entries: batch
    1-64, channels 1-512 (thin inputs, depthwise, grouped and 1x1 layers among them),
    kernels 1-7, stride 1-2, dilation 1-3, sizes 7-224 with odd ones, float32 and some
    float64.  The work is capped (~1.5 GMAC forward) by shrinking batch, then size, so
    a table of 24 stays a few minutes on 2 cores.  The same seed draws the same cases."""
    rng = np.random.default_rng(seed)
    cases = {}
    while len(cases) < n:
        kind = rng.choice(["dense", "depthwise", "grouped", "pointwise", "thin"],
                          p=[0.45, 0.15, 0.1, 0.15, 0.15])
        batch = int(np.exp(rng.uniform(0, np.log(64.99))))
        size = int(np.exp(rng.uniform(np.log(7), np.log(224.99))))
        width = size if rng.random() < 0.7 else int(rng.integers(7, 225))
        k = 1 if kind == "pointwise" else int(rng.choice([1, 3, 3, 3, 5, 5, 7]))
        stride = int(rng.choice([1, 1, 1, 2]))
        dilation = int(rng.choice([1, 1, 1, 2, 3])) if k > 1 else 1
        cin = int(np.exp(rng.uniform(0, np.log(512.99))))
        cin = int(rng.integers(1, 4)) if kind == "thin" else max(cin, 2)
        if kind == "depthwise":
            cout, groups = cin, cin
        else:
            cout = int(np.exp(rng.uniform(np.log(4), np.log(512.99))))
            groups = int(rng.choice([2, 4, 8])) if kind == "grouped" else 1
            cin, cout = max(groups, cin // groups * groups), max(groups, cout // groups * groups)
        span = dilation * (k - 1) + 1
        padding = span // 2 if (rng.random() < 0.8 or min(size, width) < span) else 0
        out_h = (size + 2 * padding - span) // stride + 1
        out_w = (width + 2 * padding - span) // stride + 1
        macs = batch * cout * out_h * out_w * (cin // groups) * k * k
        while macs > 1.5e9 and batch > 1:
            batch = max(1, batch // 2)
            macs = batch * cout * out_h * out_w * (cin // groups) * k * k
        if macs > 1.5e9 or out_h < 1 or out_w < 1:
            continue  # too big even at batch 1: draw again
        dtype = "f8" if rng.random() < 0.15 else "f4"
        params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        name = (f"{kind} {k}x{k} s{stride} d{dilation} g{groups} {cin}->{cout} {size}x{width} "
                f"b{batch} {'float64' if dtype == 'f8' else 'float32'}")
        cases[name] = ("conv2d", [(batch, cin, size, width), (cout, cin // groups, k, k)],
                       params, dtype)
    return cases


def suite_table(repeat=7, names=None, cases=None, memory=True):
    """The printable suite table (Markdown) with the geometric means of the ratios and
    the worst case; ``cases`` instead of :data:`SUITE` (e.g. :func:`random_cases`)."""
    import numba

    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())
    except ImportError:
        torch = None
    lines = [f"CPU, {numba.get_num_threads()} threads, median of {repeat}+, numbaconv and "
             f"PyTorch timed in alternating blocks; ratio = PyTorch time / numbaconv time (above 1: "
             f"numbaconv faster)", "",
             "| case | fwd ms | fwd+bwd ms | torch fwd ms | torch fwd+bwd ms | fwd ratio | "
             "fwd+bwd ratio | peak mem / (in+out) |", "|---|---|---|---|---|---|---|---|"]
    ratios, forward, both = [], [], []
    for name in names or (cases or SUITE):
        f, fb, tf, tfb = measure_case(name, repeat, torch, cases)
        mem = f"{peak_memory_ratio(name, cases):.2f}" if memory else ""
        if torch is None:
            lines.append(f"| {name} | {f * 1e3:.2f} | {fb * 1e3:.2f} | | | | | {mem} |")
            continue
        forward.append((tf / f, name))
        both.append((tfb / fb, name))
        ratios += [tf / f, tfb / fb]
        lines.append(f"| {name} | {f * 1e3:.2f} | {fb * 1e3:.2f} | {tf * 1e3:.2f} | "
                     f"{tfb * 1e3:.2f} | {tf / f:.2f} | {tfb / fb:.2f} | {mem} |")
    lines.append("")
    if not ratios:
        lines.append("(PyTorch not installed: no comparison)")
        return "\n".join(lines)
    lines.append(f"geometric mean of the ratios: {geometric_mean(ratios):.2f} (forward "
                 f"{geometric_mean([r for r, _ in forward]):.2f}, forward+backward "
                 f"{geometric_mean([r for r, _ in both]):.2f})")
    for label, rows in (("forward", forward), ("forward+backward", both)):
        worst = min(rows)
        lines.append(f"worst {label}: {worst[0]:.2f} ({worst[1]})")
    return "\n".join(lines)
