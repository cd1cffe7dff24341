"""JIT latency: the first conv2d call in a fresh process, with an empty kernel cache
(compile) and with a warm one (load from disk); and the import time.  Each sample runs
in a subprocess, so the benchmark process's own compiled kernels do not count.

The first call is answered by NumPy (tier 0, ``numbaconv/functional/_tier.py``) while the
kernel compiles; the second call waits for it: ``*_kernel_ready`` is both calls, the
time until the kernel itself runs."""

import os
import subprocess
import sys
import tempfile

FIRST_CALL = (
    "import time, numpy as np\n"
    "t0 = time.perf_counter()\n"
    "import numbaconv\n"
    "t1 = time.perf_counter()\n"
    "x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)\n"
    "numbaconv.conv2d(x, w, padding=1)\n"
    "t2 = time.perf_counter()\n"
    "numbaconv.conv2d(x, w, padding=1)\n"
    "t3 = time.perf_counter()\n"
    "print(t1 - t0, t2 - t1, t3 - t1)\n"
)


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBACONV_TIERING", None)  # a user's process: tier 0 on
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


class FirstCall:
    unit = "seconds"
    timeout = 300
    number = 1
    repeat = 1

    def track_cold_first_conv2d(self):
        with tempfile.TemporaryDirectory() as cache:
            return _run(cache)[1]

    def track_cold_kernel_ready(self):
        with tempfile.TemporaryDirectory() as cache:
            return _run(cache)[2]

    def track_warm_first_conv2d(self):
        with tempfile.TemporaryDirectory() as cache:
            _run(cache)
            return _run(cache)[1]

    def track_import(self):
        with tempfile.TemporaryDirectory() as cache:
            return _run(cache)[0]


class CompileBudget:
    """Compile seconds of one training step of the main job's model (``numbaconv bench
    --compile``: a fresh process, an empty cache): the total, and the slowest kernel, so
    that a kernel whose compile time regresses shows on the dashboard."""

    unit = "seconds"
    timeout = 600
    number = 1
    repeat = 1

    def setup_cache(self):  # once for the three numbers (it takes ~35 s on 2 cores)
        from numbaconv.compile_report import run

        return run("train", "cnn")["rows"]

    def track_train_step_compile_total(self, rows):
        return sum(r["seconds"] for r in rows)

    def track_train_step_compile_slowest_kernel(self, rows):
        return max(r["seconds"] for r in rows)

    def track_train_step_kernels(self, rows):
        return len(rows)

    track_train_step_kernels.unit = "kernels"
