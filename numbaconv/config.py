"""Library-wide settings, read at call time so tests and benchmarks can patch them.

Compile-time flags (``CPU_FASTMATH``) are read when a kernel is first compiled; the rest
is read on every call.
"""

import os

# LLVM flags for the CPU kernels: contraction into FMA and reassociation (so reductions
# vectorize).  No 'nnan' / 'ninf': NaN and inf must propagate as they do in PyTorch.
CPU_FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

# CUDA launch geometry: threads per block of the 1-D elementwise-style kernels.
CUDA_THREADS_PER_BLOCK = int(os.environ.get("NUMBACONV_CUDA_THREADS", "128"))

# Pad codes shared by the CPU and CUDA pad kernels.
PAD_MODES = {"constant": 0, "zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}
