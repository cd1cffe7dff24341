"""``configure(client)``: numba set up right on every worker of a ``distributed`` cluster.

* **Threads.**  A worker process runs ``threads_per_worker`` dask tasks at once, and each
  numba kernel would start one thread per core: workers sharing a machine then run
  (workers x tasks x cores) threads on its cores.  The default gives each task
  ``cores // (tasks at once on that host)`` numba threads, at least 1: one per worker
  when workers already fill the cores.  More numba threads per task pay when a host has
  fewer concurrent tasks than cores (few, large chunks); fewer, when many small chunks
  keep every worker busy and parallel regions would only add wake-up costs.
* **Threading layer.**  Several tasks at once in one worker need a thread-safe layer
  (``'threadsafe'``: TBB or OpenMP; numba's workqueue aborts on concurrent launches);
  one task at a time keeps numba's default.  Set before the worker's pool starts.
* **JIT cache.**  Workers load kernels from numbaconv's on-disk cache and save the ones
  they compile into it.  Saves hold an exclusive ``flock`` on the kernel's index
  (``numbaconv._jit_cache``), so workers compiling one kernel at once cannot corrupt it
  (numba#4807, #10128); ``numbaconv warmup --ops`` before starting the cluster spares
  each worker the compile.
* Kernels are never pickled: tasks name module-level functions, and each worker imports
  numbaconv itself (numba#3026: a pickled dispatcher recompiles everywhere).
"""

from __future__ import annotations

from collections import Counter

from . import _worker


def configure(client, threads=None, threading_layer=None):
    """Set numba's threads (per task; default: see above) and threading layer on every
    worker of ``client`` (a ``distributed.Client``); returns the client.  Workers that
    join later need another call.  ``client=None`` sets this process, for dask's local
    threaded scheduler (default threads: cores // dask's thread count)."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"configure: threads must be a positive int; got {threads!r}")
    if client is None:
        import dask

        tasks = dask.config.get("num_workers", None) or _worker.usable_cores()
        _worker.setup(threads or max(1, _worker.usable_cores() // tasks),
                      threading_layer or ("threadsafe" if tasks > 1 else None))
        return None
    workers = client.scheduler_info(n_workers=-1)["workers"] \
        if _takes_n_workers(client) else client.scheduler_info()["workers"]
    if not workers:
        raise ValueError("configure: the client has no workers yet; start them first "
                         "(or client.wait_for_workers(n))")
    cores = client.run(_worker.usable_cores)
    busy = Counter()
    for addr, info in workers.items():
        busy[info["host"]] += info["nthreads"]
    for addr, info in workers.items():
        n = threads or max(1, cores[addr] // busy[info["host"]])
        layer = threading_layer or ("threadsafe" if info["nthreads"] > 1 else None)
        client.run(_worker.setup, n, layer, workers=[addr])
    return client


def _takes_n_workers(client):
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def report(client):
    """``{worker address: settings}`` as each worker sees them (``_worker.report``)."""
    return client.run(_worker.report)
