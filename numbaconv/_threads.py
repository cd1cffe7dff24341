"""Thread pools that take turns on the same cores, set to sleep soon when idle.

A CPU op here alternates numba parallel kernels (numba's OpenMP pool) with OpenBLAS
matrix products (OpenBLAS's own pool).  Both pools busy-wait after their work by
default, so each steals the cores the other needs next: measured on 2 cores, the digits
CNN trained ~4x slower per epoch (2.9 s vs 0.7 s) and PyTorch timings in the same
process turned bimodal.  Both runtimes read their wait policy from the environment once,
when they load, so it is set just around those two loads and then restored: nothing
else in the process (PyTorch's own OpenMP copy, other BLAS copies) sees it, and a value
the user set is left alone.

* :func:`quiet_blas_import`: NumPy's OpenBLAS with ``OPENBLAS_THREAD_TIMEOUT=4`` (its
  threads sleep after 2**4 idle cycles).  Only effective when NumPy is first imported by
  numbaconv; ``numbaconv info`` says whether it took.
* :func:`start_numba_threads`: numba's threading layer started with a short spin:
  ``GOMP_SPINCOUNT=config.CPU_SPIN_COUNT`` for GNU OpenMP (idle threads spin that many
  rounds, then sleep: 10**4 rounds cost ~0.5 ms of CPU per region here, against ~4.3 ms
  at 10**5 and ~0.07 ms passive, measured with ``getrusage`` around one region and an
  idle pause; ``KMP_BLOCKTIME=0``, sleep at once, should numba load
  Intel's OpenMP instead; ``tbb`` and ``workqueue`` do not spin).  Called once, before
  the first CPU kernel.

  Why a short spin rather than none: waking a sleeping pool costs ~45 us per parallel
  region on this 2-core VM (an empty ``prange`` took 45 us with
  ``OMP_WAIT_POLICY=PASSIVE``, the first policy here, against 1.5 us with a spin), and
  one conv call runs 2-6 regions (frame copy, kernel, grad bias...): a (2,16,32,32)
  3x3 layer took 190-206 us forward and 470-490 backward asleep, 92 and 205-218
  spinning 10**4 rounds; training (``numbaconv train``, seconds per epoch, passive vs
  spin): the MobileNet-style model 0.35 -> 0.17, the ResNet 0.95 -> 0.47, the digits
  CNN 0.51 vs 0.52 (unchanged: the spin leaves OpenBLAS its cores).  The default spin
  (3*10**5 rounds, milliseconds) is what stole the cores from OpenBLAS and PyTorch.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_started = False
_lock = threading.Lock()
blas_quiet = None  # True / False once NumPy is imported: whether the timeout applied


@contextlib.contextmanager
def _environ(name, value):
    """``os.environ[name] = value`` inside the block, unless the user set it already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def quiet_blas_import():
    global blas_quiet
    fresh = "numpy" not in sys.modules
    with _environ("OPENBLAS_THREAD_TIMEOUT", "4"):
        import numpy  # noqa: F401  (loads OpenBLAS, which reads the timeout now)
    blas_quiet = fresh or "OPENBLAS_THREAD_TIMEOUT" in os.environ


def start_numba_threads():
    """Start numba's thread pool with idle threads sleeping (once per process)."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        from numba.np.ufunc import parallel

        from . import config

        if "OMP_WAIT_POLICY" in os.environ:  # the user's policy wins
            parallel._launch_threads()
        else:
            with _environ("GOMP_SPINCOUNT", str(config.CPU_SPIN_COUNT)), \
                    _environ("KMP_BLOCKTIME", "0"):
                parallel._launch_threads()
        _started = True
