"""Per-process settings of a dask worker, set by :func:`numbaconv.dask.configure` through
``client.run`` and applied by every task.

numba's thread count is per calling thread (``numba.set_num_threads`` is thread-local),
and dask runs tasks on its own executor threads, so the count set here is applied again
at the start of each task (:func:`enter`).  The threading
layer can only be chosen before numba's pool starts, so :func:`setup` sets it and starts
the pool at once.
"""

from __future__ import annotations

import os
import pickle
import threading

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
    elif layer and numba.threading_layer() == "workqueue":
        import warnings

        warnings.warn(f"numbaconv.dask.configure: numba's pool already runs the workqueue "
                      f"layer, which cannot run tasks of several threads at once; start "
                      f"the worker with NUMBA_THREADING_LAYER={layer}", stacklevel=2)
    start_numba_threads()
    _threads = threads
    numba.set_num_threads(threads)
    return report()


def enter():
    """At the start of a task: this executor thread uses the configured count."""
    if _threads is not None:
        import numba

        numba.set_num_threads(_threads)


_copies = threading.local()


def thread_copy(model, piece):
    """This executor thread's own copy of a shipped model (a forward writes the layers'
    caches, so two threads must not share one), on the piece's device: made once per
    thread and model, not per task."""
    from ..dispatch import device_of

    copies = getattr(_copies, "models", None)
    if copies is None:
        copies = _copies.models = {}
    device = device_of(piece)
    entry = copies.get((id(model), device))
    if entry is None or entry[0] is not model:
        copy = pickle.loads(pickle.dumps(model))
        if device == "cuda":
            copy.to("cuda")
        entry = copies[(id(model), device)] = (model, copy)
        while len(copies) > 4:  # the models of the last few predict calls
            copies.pop(next(iter(copies)))
    return entry[1]


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
