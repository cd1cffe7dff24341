"""numbaconv: Numba-JIT convolution kernels for the CPU and CUDA, with PyTorch's
functional signatures.

    >>> import numpy as np, numbaconv
    >>> x = np.random.rand(1, 3, 8, 8).astype(np.float32)
    >>> w = np.random.rand(4, 3, 3, 3).astype(np.float32)
    >>> numbaconv.conv2d(x, w, padding=1).shape
    (1, 4, 8, 8)

Every forward op has an ``<op>_backward(grad_output, *arrays, **params)`` returning one
gradient per array argument.  Importing numbaconv compiles nothing: each kernel compiles
on its first call (and is cached on disk for the next process).
"""

__version__ = "0.1.0"

import os as _os

# numba's OpenMP threads and OpenBLAS's threads take turns on the same cores (a parallel
# kernel, a BLAS matrix product, the next kernel...).  Under libgomp's default wait
# policy an OpenMP thread that finished spins for a while, taking the core BLAS needs:
# measured here, the digits CNN trained 4x slower per epoch (2.9 s vs 0.66 s) and a 3x3
# conv ran 1.3x slower.  Idle OpenMP threads sleep at once instead, unless the user set
# the policy.  It must be set before the OpenMP runtime loads (numba loads it lazily, at
# the first parallel kernel), hence here.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same on OpenBLAS's side: its threads spin for about 2**28 cycles after each matrix
# product, slowing the numba kernel that follows (and any other library's threads).
# 2**4 cycles: they sleep at once.  OpenBLAS reads this when it loads, so it only takes
# effect when numbaconv is imported before NumPy (the command line does).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import analysis, functional, nn, optim, reference
from .dispatch import to_device, to_host, use_stream
from .functional import *  # noqa: F401,F403  (the ops, listed in functional.__all__)

__all__ = ["analysis", "functional", "nn", "optim", "reference", "to_device", "to_host", "use_stream",
           *functional.__all__]
