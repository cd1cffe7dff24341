"""Launch geometry shared by the CUDA kernels: one thread per output element, with a
grid-stride loop so any size works with any grid.  Settings are read at call time."""

from ... import config

MAX_BLOCKS = 65535


def launch_1d(kernel, total, *args):
    """Launch ``kernel[blocks, threads, stream](total, *args)`` over ``total`` elements."""
    threads = config.CUDA_THREADS_PER_BLOCK
    blocks = max(1, min(MAX_BLOCKS, -(-total // threads)))
    kernel[blocks, threads, config.CUDA_STREAM](total, *args)
