"""The ``numbaconv`` command (also ``python -m numbaconv``)."""

from __future__ import annotations

import argparse
import os
import sys


def info() -> dict:
    """Versions, CPU threads and threading layer, CUDA devices (or why none), JIT cache."""
    import numba
    import numpy

    from . import __version__
    from .dispatch import cuda_available, threading_layer

    try:
        from importlib.metadata import version

        numba_cuda = version("numba-cuda")
    except Exception:  # pragma: no cover
        numba_cuda = "not installed"
    ok, why = cuda_available()
    devices = why
    if ok and why == "gpu":
        from numba import cuda

        devices = ", ".join(f"{i}: {d.name.decode() if isinstance(d.name, bytes) else d.name}"
                            for i, d in enumerate(cuda.gpus))
    elif ok:
        devices = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    return {
        "numbaconv": __version__,
        "numba": numba.__version__,
        "numba-cuda": numba_cuda,
        "numpy": numpy.__version__,
        "cpu threads": numba.config.NUMBA_NUM_THREADS,
        "threading layer": threading_layer(),
        "cuda": devices if ok else f"unavailable ({why})",
        "jit cache": numba.config.CACHE_DIR or "beside each kernel's source (__pycache__)",
    }


def _run_probe():
    """Run one tiny parallel kernel so that the threading layer is chosen and reportable."""
    import numpy as np

    from . import conv2d

    conv2d(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="numbaconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, threads, CUDA devices, JIT cache")
    args = parser.parse_args(argv)
    if args.command == "info":
        _run_probe()
        for key, value in info().items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
