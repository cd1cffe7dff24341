"""Every CUDA launch of numbaconv goes through here: the grid of a one-thread-per-element
kernel (a grid-stride loop, so any size works with any grid), the launch itself, and a
counter of launches that tests read to hold each op to its launch budget.  Settings are
read at call time."""

import functools

from ... import config

MAX_BLOCKS = 65535      # grid-stride kernels: no more blocks than this
MAX_GRID_YZ = 65535     # CUDA's limit on gridDim.y and gridDim.z

# Launches since the process started (``count_launches`` reads differences of it).
LAUNCHES = [0]


def launch(kernel, grid, threads, *args):
    """``kernel[grid, threads, stream](*args)`` on ``config.CUDA_STREAM``, counted."""
    LAUNCHES[0] += 1
    _run(kernel, grid, threads, args)


def _run(kernel, grid, threads, args):
    kernel[grid, threads, config.CUDA_STREAM](*args)


def launch_1d(kernel, total, *args):
    """Launch ``kernel(total, *args)`` over ``total`` elements, one thread each."""
    threads = config.CUDA_THREADS_PER_BLOCK
    blocks = max(1, min(MAX_BLOCKS, -(-total // threads)))
    launch(kernel, blocks, threads, total, *args)


def launches() -> int:
    """Kernels launched by numbaconv so far in this process."""
    return LAUNCHES[0]


def kernel_factory(build):
    """Cache for a function that builds a kernel per key (tile sizes, dtype, kernel
    size...: compile-time constants).  Each kernel it builds remembers
    ``(module, factory name, key)`` as ``numbaconv_origin``, so a tool can build the
    same kernel again elsewhere (``docs/benchmarks/gpu_static.py`` compiles every
    launched kernel for sm_90 from these)."""

    @functools.lru_cache(maxsize=None)
    @functools.wraps(build)
    def cached(*key):
        kernel = build(*key)
        kernel.numbaconv_origin = (build.__module__, build.__name__, key)
        return kernel

    return cached
