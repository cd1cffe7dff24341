"""Raw array kernels: ``cpu`` (numba.njit, parallel) and its twin ``cuda`` (numba.cuda.jit).

Both export the same names with the same signatures (see ``cpu.KERNELS``): contiguous
arrays in, a preallocated output, already-normalized integers.  No checks, defaults or
allocation happen inside a kernel; that is the functional layer's job.
"""
