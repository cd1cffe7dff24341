"""Per-process settings of a dask worker, set by :func:`numbaconv.dask.configure` through
``client.run`` and applied by every task.

numba's thread count is per calling thread (``numba.set_num_threads`` is thread-local),
and dask runs tasks on its own executor threads, so the count set here is applied again
at the start of each task (:func:`enter`, a few hundred nanoseconds).  The threading
layer can only be chosen before numba's pool starts, so :func:`setup` sets it and starts
the pool at once.
"""

from __future__ import annotations

import os
import threading
import weakref

_threads = None  # numba threads per task on this worker, once configured


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def setup(threads, layer):
    """Run on each worker: remember the thread count, pick the layer, start the pool."""
    global _threads
    import numba
    from numba.np.ufunc import parallel

    from .._threads import start_numba_threads

    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    if layer and not parallel._is_initialized:
        numba.config.THREADING_LAYER = layer
    start_numba_threads()
    _threads = threads
    numba.set_num_threads(threads)
    return report()


def enter():
    """At the start of a task: this executor thread uses the configured count."""
    if _threads is not None:
        import numba

        numba.set_num_threads(_threads)


_moved = weakref.WeakSet()  # models this worker moved to its GPU
_moving = threading.Lock()


def model_on(model, piece):
    """Move a shipped (host) model to the GPU the first time a task of this worker
    gets a GPU piece (once per worker, not per task)."""
    from ..dispatch import device_of

    if device_of(piece) != "cuda" or model in _moved:
        return
    with _moving:
        if model not in _moved:
            model.to("cuda")
            _moved.add(model)


def report():
    """What this worker runs with (``client.run(report)``; inside a task after
    :func:`enter` it shows what the task's kernels see)."""
    import numba
    from numba.np.ufunc import parallel

    return {
        "pid": os.getpid(),
        "configured_threads": _threads,
        "numba_threads": numba.get_num_threads(),
        "launched_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": numba.threading_layer() if parallel._is_initialized else None,
        "cores": usable_cores(),
        "jit_cache": numba.config.CACHE_DIR or "__pycache__ beside each kernel",
    }
