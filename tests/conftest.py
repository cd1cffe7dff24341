"""Test set-up shared by every test module.

CUDA kernels run under numba's simulator unless NUMBACONV_REAL_GPU=1 asks for the real
device: the switch must be set before numba is first imported, hence here, at the top.
"""

import os

if os.environ.get("NUMBACONV_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:  # PyTorch is optional: parity tests skip without it
    import torch  # noqa: E402

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype):
    """(rtol, atol) for comparing a kernel with the float64 oracle."""
    return (1e-4, 1e-4) if np.dtype(dtype) == np.float32 else (1e-10, 1e-10)


@pytest.fixture(params=["direct", "gemm"])
def conv_algorithm(request, monkeypatch):
    """Run a test once per CPU convolution algorithm (the chooser forced each way)."""
    from numbaconv import config

    monkeypatch.setattr(config, "CONV_ALGORITHM", request.param)
    return request.param
