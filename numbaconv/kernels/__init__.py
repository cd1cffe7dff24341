"""Raw array kernels: ``cpu`` (numba.njit, parallel) and its twin ``cuda`` (numba.cuda.jit).

Both export the same names with the same signatures (see ``cpu.KERNELS``): contiguous
arrays in, a preallocated output, already-normalized integers.  No checks, defaults or
allocation happen inside a kernel; that is the functional layer's job.

Kernels are cached on disk by numba, stamped with a hash of this whole package
(``numbaconv/_jit_cache.py``): an edit to a helper inlined from another file recompiles.
"""

from .._jit_cache import install as _install_cache_locators

_install_cache_locators()
