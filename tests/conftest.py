"""Test set-up shared by every test module.

CUDA kernels run under numba's simulator unless NUMBACONV_REAL_GPU=1 asks for the real
device: the switch must be set before numba is first imported, hence here, at the top.
"""

import os

# The tests check the kernels: no NumPy tier 0 answering first calls (tests/test_tier.py
# turns it on where it is the subject).
os.environ["NUMBACONV_TIERING"] = "0"

if os.environ.get("NUMBACONV_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402



def _simulator_shared_arrays_without_a_race():
    """numba-cuda's simulator (0.30) finds a block's shared array by the caller's source
    line in a dict, look-up then insert, unlocked: two threads that switch in between
    get two arrays, and each computes on its own copy (rare at Python's 5 ms switch
    interval, frequent at 0.1 ms).  Same look-up, under a lock, without building a
    traceback each call."""
    import threading

    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return original(self, shape, dtype, alignment)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            found = self._allocations.get(caller)
            if found is None:
                if not isinstance(dtype, np.dtype):
                    dtype = numpy_support.as_dtype(dtype)
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # The simulator runs a block's threads as Python threads and its scheduler polls them
    # while holding the GIL; at the default 5 ms switch interval a barrier costs
    # milliseconds.  At 0.1 ms the tiled kernels' tests run ~6x faster.
    sys.setswitchinterval(1e-4)
    _simulator_shared_arrays_without_a_race()

try:  # PyTorch is optional: parity tests skip without it
    import torch  # noqa: E402

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def numeric_grad(f, a, eps=1e-6, indices=None):
    """Central differences of the scalar f() w.r.t. the elements of a (perturbed in
    place) at the flat ``indices`` (all by default; the others stay 0)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return g


def tolerance(dtype):
    """(rtol, atol) for comparing a kernel with the float64 oracle."""
    return (1e-4, 1e-4) if np.dtype(dtype) == np.float32 else (1e-10, 1e-10)


@pytest.fixture(params=["direct", "gemm", "tiled", "blocked"])
def conv_algorithm(request, monkeypatch):
    """Run a test once per CPU convolution algorithm (the chooser forced each way)."""
    from numbaconv import config

    monkeypatch.setattr(config, "CONV_ALGORITHM", request.param)
    return request.param


class Device:
    """Moves test arrays to where a test body runs, and results back for comparison."""

    def __init__(self, name):
        self.name = name

    def put(self, *arrays):
        import numbaconv

        if self.name == "cpu":
            return arrays
        return tuple(None if a is None else numbaconv.to_device(a) for a in arrays)

    def get(self, *arrays):
        import numbaconv

        out = tuple(None if a is None else numbaconv.to_host(a) for a in arrays)
        return out if len(out) > 1 else out[0]


@pytest.fixture(params=["cpu-direct", "cpu-gemm", "cpu-tiled", "cpu-blocked", "cuda"])
def device(request, monkeypatch):
    """Run a test body on every device (and on the CPU, with each conv algorithm).

    CUDA runs under the simulator in CI, with launches and tiles patched small so tiny
    inputs still span several blocks and the grid-stride loops wrap; dense convs run
    the tiled kernels (the direct ones are tested in test_cuda_conv.py)."""
    from numbaconv import config

    name, _, algorithm = request.param.partition("-")
    if algorithm:
        monkeypatch.setattr(config, "CONV_ALGORITHM", algorithm)
    if name == "cuda":
        from numbaconv.dispatch import cuda_available

        ok, why = cuda_available()
        if not ok:
            pytest.skip(f"CUDA unavailable: {why}")
        small_cuda_launches(monkeypatch)
        monkeypatch.setattr(config, "CUDA_DIRECT_MAX_MACS", 0)
    return Device(name)


def small_cuda_launches(monkeypatch):
    """Launch geometry patched small, so tiny test inputs span several blocks, the
    grid-stride loops wrap, the reduction trees fold several levels and the matmul
    walks several tiles (and the simulator, one Python thread per CUDA thread, stays
    quick)."""
    from numbaconv import config

    monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 32)
    monkeypatch.setattr(config, "CUDA_REDUCE_THREADS", 8)
    monkeypatch.setattr(config, "CUDA_MATMUL_TILE", 4)
    # conv tiles of 8 pixels x 8 (or 4) channels x K-steps of 4, 16 threads each; split-K
    # grad weights in several splits; depthwise blocks of 4 x 4 outputs
    monkeypatch.setattr(config, "CUDA_CONV_TILES", SMALL_TILES)
    monkeypatch.setattr(config, "CUDA_SPLIT_MIN_PIXELS", 8)
    monkeypatch.setattr(config, "CUDA_SM_COUNT", 4)
    monkeypatch.setattr(config, "CUDA_DEPTHWISE_TILE", (2, 4, 2))
    monkeypatch.setattr(config, "CUDA_AUTOTUNE", False)


# (bm, bn, bk, tm, tn): tiled-kernel configurations small enough for tiny test shapes
SMALL_TILES = ((8, 8, 4, 2, 2), (8, 4, 4, 2, 1))


@pytest.fixture
def cuda(monkeypatch):
    """For tests that compare a CUDA run with a CPU run: skips without CUDA (or the
    simulator), small launches as in :func:`device`."""
    from numbaconv.dispatch import cuda_available

    ok, why = cuda_available()
    if not ok:
        pytest.skip(f"CUDA unavailable: {why}")
    small_cuda_launches(monkeypatch)


def pytest_itemcollected(item):
    """Tests that compile the same heavy kernels run in one pytest-xdist worker
    (``--dist loadgroup``): the CPU cases of one conv algorithm and dtype (and the op
    cases that run on the CPU without one, per dtype), and the depthwise cases of one
    dtype (a test may name its group itself, as the depthwise memory test does).
    Spread over two workers, the first two cases of a family started at once and both
    compiled its kernels (a tiled float64 family's first two cases took 20-21 s each);
    in one worker the second loads them from the cache.  CUDA cases stay spread: the
    simulator compiles nothing.

    Marked as each test is collected, before pytest-xdist reads the groups (in its
    ``pytest_collection_modifyitems``).  pytest-xdist 3.8 groups a test by rewriting
    its node id, which pytest 9.2 no longer reads: there the groups do nothing, hence
    the test extra's ``pytest<9.2`` and ``test_args.py``'s check that they group."""
    import numpy as np

    spec = getattr(item, "callspec", None)
    if spec is None or item.get_closest_marker("xdist_group"):
        return
    params = spec.params
    dtype = params.get("dtype")
    dtype = np.dtype(dtype).name if dtype is not None else "any"
    algorithm = str(params.get("device", params.get("conv_algorithm", "")))
    if algorithm.startswith("cuda"):
        return
    if algorithm:
        group = f"{algorithm.removeprefix('cpu-')}-{dtype}"
    elif "depthwise" in item.originalname:
        group = f"depthwise-{dtype}"
    else:
        return
    item.add_marker(pytest.mark.xdist_group(group))
