"""Helpers shared by the benchmark modules: data on the right device, CUDA sync, skips.

asv skips a parameter combination whose ``setup`` raises ``NotImplementedError``: that is
how CUDA benchmarks skip on machines without a GPU, and PyTorch ones without PyTorch.
"""

import numpy as np

import numbaconv
from numbaconv import config

config.CPU_TIERING = False  # time the kernels, never a first call answered by NumPy
from numbaconv.bench import best_of  # noqa: F401  (one timing loop for both)
from numbaconv.dispatch import cuda_available

DEVICES = ["cpu", "cuda"]
DTYPES = ["float32", "float64"]


def require_device(device):
    if device == "cuda":
        ok, why = cuda_available()
        if not ok or why != "gpu":
            reason = why.splitlines()[0][:80] if why else "simulator"
            raise NotImplementedError(f"no GPU here ({reason})")


def make(device, dtype, *shapes, seed=0):
    """Random arrays of ``shapes`` on ``device``, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        a = rng.standard_normal(shape).astype(dtype)
        if len(shape) == 4 and shape is not shapes[0]:
            a /= np.sqrt(np.prod(shape[1:]))
        out.append(numbaconv.to_device(a) if device == "cuda" else a)
    return out


def sync(device):
    """Wait for queued CUDA work, so a timing covers the kernels, not their launch."""
    if device == "cuda":
        from numba import cuda

        cuda.synchronize()


def require_torch():
    try:
        import torch
    except ImportError as exc:
        raise NotImplementedError("PyTorch not installed") from exc
    torch.set_num_threads(numbaconv_threads())
    return torch


def numbaconv_threads():
    import numba

    return numba.config.NUMBA_NUM_THREADS


def torch_ratios(measure_all):
    """``measure_all(torch)`` (a dict of speed ratios), or ``{}`` without PyTorch: what a
    ratio benchmark's ``setup_cache`` returns (asv keys that cache by the function's
    source line, so each class keeps its own ``setup_cache`` calling this)."""
    try:
        torch = require_torch()
    except NotImplementedError:
        return {}
    return measure_all(torch)


def skip_without_torch(ratios):
    """A ratio benchmark's ``setup``: skip when ``setup_cache`` found no PyTorch."""
    if not ratios:
        raise NotImplementedError("PyTorch not installed")
