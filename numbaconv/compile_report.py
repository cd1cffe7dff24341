"""Compile time per kernel, measured: behind ``numbaconv bench --compile``.

A workload of ``numbaconv.warmup`` (one training step and an evaluation of a named
model, the functional ops' forwards and backwards, or one ``conv2d``) runs in a fresh
Python process with an empty numba cache, while a listener on numba's
``numba:compile`` events times each compile.  A kernel's seconds are its *top-level* compile: a helper compiled while its caller
compiles counts to the caller (that is the time a user waits for on that call), so the
column adds up to the workload's compile time.  ``python -m numbaconv.compile_report
WORKLOAD`` is the child; ``table(workload)`` runs it and formats the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .warmup import WORKLOADS


def _label(dispatcher, args):
    py = getattr(dispatcher, "py_func", None)
    module = getattr(py, "__module__", "?").replace("numbaconv.kernels.", "")
    name = getattr(py, "__name__", type(dispatcher).__name__)
    kind = "cuda" if "cuda" in type(dispatcher).__module__ else "cpu"
    dtypes = sorted({str(getattr(a, "dtype", a)) for a in args
                     if hasattr(a, "dtype") and hasattr(a, "ndim")})
    return f"{module}.{name}", kind, ",".join(dtypes)


def record(fn):
    """Run ``fn()``; return ``(rows, wall)``: one ``{kernel, device, dtypes, seconds}`` per
    top-level compile, and the wall seconds of the whole call."""
    from numba.core import event

    rows, stack = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append(time.perf_counter())

        def on_end(self, ev):
            start = stack.pop()
            if not stack:  # a helper compiled inside its caller counts to the caller
                name, kind, dtypes = _label(ev.data["dispatcher"], ev.data["args"])
                rows.append({"kernel": name, "device": kind, "dtypes": dtypes,
                             "seconds": time.perf_counter() - start})

    start = time.perf_counter()
    with event.install_listener("numba:compile", Listener()):
        fn()
    return rows, time.perf_counter() - start


def child(workload, model="cnn"):
    """In this (fresh) process: run the workload and print its rows as JSON."""
    from .warmup import run_workload

    rows, wall = record(lambda: run_workload(workload, model))
    print(json.dumps({"rows": rows, "wall": wall}))


def run(workload="train", model="cnn", cache_dir=None):
    """Run ``workload`` in a fresh process with an empty cache (or ``cache_dir``)."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload: expected one of {WORKLOADS}; got {workload!r}")
    with tempfile.TemporaryDirectory() as empty:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir or empty)
        env.pop("NUMBA_ENABLE_CUDASIM", None)
        out = subprocess.run([sys.executable, "-m", "numbaconv.compile_report", workload,
                              model], env=env, capture_output=True, text=True,
                             check=False)
    if out.returncode:
        raise RuntimeError(f"compile report of {workload!r} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(workload="train", model="cnn"):
    """The per-kernel compile table of one workload, slowest first, with its total."""
    result = run(workload, model)
    merged = {}
    for r in result["rows"]:
        key = (r["kernel"], r["device"])
        seconds, count = merged.get(key, (0.0, 0))
        merged[key] = (seconds + r["seconds"], count + 1)
    rows = sorted(merged.items(), key=lambda kv: -kv[1][0])
    total = sum(s for s, _ in merged.values())
    what = f"one training step of {model!r}" if workload == "train" else workload
    width = max([len(k) for (k, _), _ in rows] + [6])
    lines = [f"compile seconds with an empty cache: {what}",
             f"{'kernel':<{width}}  device  variants  seconds"]
    lines += [f"{k:<{width}}  {d:<6}  {n:>8}  {s:7.2f}" for (k, d), (s, n) in rows]
    lines.append(f"{'total compile':<{width}}  {'':6}  {len(result['rows']):>8}  {total:7.2f}")
    lines.append(f"{'workload wall':<{width}}  {'':6}  {'':>8}  {result['wall']:7.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    child(*sys.argv[1:])
