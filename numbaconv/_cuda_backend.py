"""The CUDA backend: numba device arrays and the ``kernels.cuda`` launchers.

Created by ``dispatch.get_backend('cuda')`` on the first GPU array, so the CUDA driver is
only touched when a GPU array is given.  Every helper stays on the device: no host
round trip in any op.  CuPy arrays and PyTorch CUDA tensors are viewed, without a copy,
as numba device arrays through ``__cuda_array_interface__``; results are numba device
arrays, which CuPy (``cupy.asarray``) and PyTorch (``torch.as_tensor(..., device='cuda')``)
take without a copy through the same interface.
"""

from __future__ import annotations

import numpy as np

from .dispatch import CUDA, require_cuda


class CUDABackend:
    name = CUDA

    def __init__(self):
        require_cuda("numbaconv")
        from numba import cuda

        from .kernels import cuda as kernels

        self._cuda = cuda
        self.kernels = kernels

    def asarray(self, a):
        """A numba device-array view of ``a`` (zero copy); must be C-contiguous."""
        if not hasattr(a, "copy_to_host"):  # CuPy, PyTorch: view through the interface
            a = self._cuda.as_cuda_array(a)
        if not a.is_c_contiguous():
            raise ValueError(
                "CUDA arrays must be C-contiguous; got strides "
                f"{tuple(a.strides)} for shape {tuple(a.shape)}. Make a contiguous copy first "
                "(e.g. cupy.ascontiguousarray or tensor.contiguous())."
            )
        return a

    def from_host(self, a):
        """A host-built helper array (index tables) copied to the device."""
        from . import config

        return self._cuda.to_device(np.ascontiguousarray(a), stream=config.CUDA_STREAM)

    def empty(self, shape, dtype):
        from . import config

        return self._cuda.device_array(shape, dtype=np.dtype(dtype), stream=config.CUDA_STREAM)

    def zeros(self, shape, dtype):
        return self.full(shape, dtype, 0.0)

    def full(self, shape, dtype, value):
        a = self.empty(shape, dtype)
        self.kernels.fill(a, value)
        return a

    def flip_spatial(self, w, ndim: int):
        if ndim != 2 or len(w.shape) != 4:
            raise NotImplementedError("flip_spatial on CUDA handles 4-D weights (2 spatial dims)")
        out = self.empty(w.shape, w.dtype)
        self.kernels.flip_spatial_2d(w, out)
        return out
