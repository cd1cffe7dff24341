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

from ._threads import quiet_blas_import as _quiet_blas_import

_quiet_blas_import()

from . import analysis, functional, nn, optim, reference
from .dispatch import to_device, to_host, use_stream
from .functional import *  # noqa: F401,F403  (the ops, listed in functional.__all__)

__all__ = ["analysis", "functional", "nn", "optim", "reference", "to_device", "to_host", "use_stream",
           *functional.__all__]
