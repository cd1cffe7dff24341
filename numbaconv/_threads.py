"""Thread pools that take turns on the same cores, set to sleep soon when idle.

A CPU op here runs numba parallel kernels (numba's OpenMP pool) and, on the GEMM path,
matrix products through NumPy's BLAS (OpenBLAS, with a pool of its own).  A pool that
busy-waits after its work steals the cores the next one needs: with OpenBLAS's default
wait, a GEMM-path backward ran many times slower (measured: ``docs/benchmarks/cpu.md``,
"Kernel measurements").  The rules:

* :func:`start_numba_threads`: numba's threading layer starts with a short spin,
  ``GOMP_SPINCOUNT=config.CPU_SPIN_COUNT`` for GNU OpenMP (``KMP_BLOCKTIME=0`` should
  numba load Intel's OpenMP; ``tbb`` and ``workqueue`` do not spin).  Short, not none:
  one conv call runs several parallel regions back to back, and waking a sleeping pool
  costs time in every region (measured: same place).  Set only while the pool starts,
  so nothing else in the process sees it; a value the user set wins.  Called once,
  before the first CPU kernel.
* :func:`blas_on_caller`: numbaconv never runs OpenBLAS's pool.  While a product of ours
  runs, the BLAS libraries NumPy loaded are held at one thread (found with
  ``threadpoolctl``), so none of our products wakes OpenBLAS's threads (threads the
  user's own products woke still spin out their timeout, see below); the user's count
  is restored after.  Large products are split across a few plain
  threads instead (``kernels/cpu/blas.py``), which block, never spin.  This holds
  whatever was imported first, for numbaconv's own products.
* :func:`quiet_blas_import`: the user's own NumPy products still wake OpenBLAS's pool,
  whose threads then spin (2**28 cycles by default) on the cores every library needs
  next (measured in ``docs/benchmarks/cpu.md``, "Import order and the other pools").
  Where numbaconv is imported before NumPy, NumPy's OpenBLAS is loaded with
  ``OPENBLAS_THREAD_TIMEOUT=4`` (sleep after 2**4 idle cycles), set only around that
  load.  Imported after NumPy, the timeout was read already: ``numbaconv info`` says
  so, and setting it in the environment does the same.
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


class _BlasOnCaller:
    """Context manager: BLAS at one thread inside.

    A process-wide pool (pthreads OpenBLAS, NumPy's wheels) has one count for the
    process: the first thread in sets it to 1, the last one out restores it, so callers
    may overlap (dask workers).  The library's own setter is called: threadpoolctl's
    acts only from the first thread that ever used it, and would leave every other
    thread's products on BLAS's pool.  A per-thread pool (OpenMP builds) is limited in
    the calling thread only, and restored there.  The count is process-wide for the
    first kind, so a limit the user sets from another thread meanwhile is overwritten
    on the way out."""

    def __init__(self):
        self.libs = None
        self.depth = 0
        self.saved = []
        self.small_on_caller = False
        self.lock = threading.Lock()
        self.local = threading.local()

    def _find(self):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # a core dependency; without it, BLAS keeps its count
            return []
        found, kinds = [], []
        for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
            setter = getattr(lib, "_real_set_num_threads", lib.set_num_threads)
            layer = getattr(lib, "threading_layer", None)
            found.append((lib.get_num_threads, setter, layer == "openmp"))
            kinds.append((lib.internal_api, layer))
        # OpenBLAS with its own pthreads pool (NumPy's wheels) runs small products on
        # the caller by itself (config.BLAS_ONE_THREAD_MNK); other builds may not
        self.small_on_caller = bool(kinds) and all(
            api == "openblas" and layer in ("pthreads", "disabled") for api, layer in kinds)
        return found

    def _libraries(self):
        if self.libs is None:
            with self.lock:
                if self.libs is None:
                    self.libs = self._find()
        return self.libs

    def keeps_small_products(self) -> bool:
        """Whether BLAS runs products under ``config.BLAS_ONE_THREAD_MNK`` on the calling
        thread whatever its thread count (pthreads OpenBLAS), so that they need no
        switch."""
        self._libraries()
        return self.small_on_caller

    def limit_this_thread(self):
        """Per-thread pools at one thread for good in this thread (the product pool's
        own threads, which run nothing else)."""
        for get, setter, per_thread in self._libraries():
            if per_thread:
                setter(1)

    def __enter__(self):
        libs = self._libraries()
        mine = [get() if per_thread else None for get, _, per_thread in libs]
        self.local.__dict__.setdefault("stack", []).append(mine)
        for (get, setter, per_thread), n in zip(libs, mine):
            if per_thread and n != 1:
                setter(1)
        with self.lock:
            if self.depth == 0:
                self.saved = [None if per_thread else get() for get, _, per_thread in libs]
                for (get, setter, per_thread), n in zip(libs, self.saved):
                    if n is not None and n != 1:
                        setter(1)
            self.depth += 1
        return self

    def __exit__(self, *exc):
        libs = self._libraries()
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                for (get, setter, per_thread), n in zip(libs, self.saved):
                    if n is not None and n != 1:
                        setter(n)
        for (get, setter, per_thread), n in zip(libs, self.local.stack.pop()):
            if n is not None and n != 1:
                setter(n)
        return False


blas_on_caller = _BlasOnCaller()
