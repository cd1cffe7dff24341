"""The dispatch layer: device detection, the mixed-device error, moving arrays, the twin
kernel modules, and the error when CUDA is asked for and missing."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import torch

import numbaconv as nc
from numbaconv import config, dispatch


class FakeGPUArray:
    __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False),
                                "version": 3}


def test_device_of():
    assert dispatch.device_of(np.zeros(3)) == "cpu"
    assert dispatch.device_of(FakeGPUArray()) == "cuda"
    assert dispatch.device_of(nc.to_device(np.zeros(3))) == "cuda"  # simulator array
    if torch is not None:
        assert dispatch.device_of(torch.zeros(2)) == "cpu"
    with pytest.raises(TypeError, match="expected an array"):
        dispatch.device_of(object())


def test_mixed_devices_raise_before_any_work():
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: all arrays must be on one device; "
                                         r"got input on cpu, weight on cuda"):
        nc.conv2d(x, nc.to_device(w))
    with pytest.raises(ValueError, match=r"bias on cuda"):
        nc.conv2d_backward(np.zeros((1, 2, 2, 2), np.float32), x, w,
                           nc.to_device(np.zeros(2, np.float32)))


def test_to_device_and_back(rng):
    a = rng.standard_normal((2, 3, 4))
    d = nc.to_device(a)
    assert dispatch.device_of(d) == "cuda" and nc.to_device(d) is d
    np.testing.assert_array_equal(nc.to_host(d), a)
    assert nc.to_host(a) is a


def test_cuda_results_stay_on_device(rng):
    x = nc.to_device(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
    w = nc.to_device(rng.standard_normal((3, 2, 3, 3)).astype(np.float32))
    y = nc.conv2d(x, w, padding=1)
    assert dispatch.device_of(y) == "cuda" and y.shape == (1, 3, 4, 4)
    grads = nc.conv2d_backward(y, x, w, padding=1)
    assert all(dispatch.device_of(g) == "cuda" for g in grads[:2]) and grads[2] is None


def test_cuda_weight_gradient_is_deterministic(rng, monkeypatch):
    from numbaconv import config

    monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 16)
    x, w = (nc.to_device(rng.standard_normal(s).astype(np.float32))
            for s in ((2, 2, 5, 5), (2, 2, 3, 3)))
    gy = nc.to_device(rng.standard_normal((2, 2, 3, 3)).astype(np.float32))
    first = [nc.to_host(g) for g in nc.conv2d_backward(gy, x, w)[:2]]
    second = [nc.to_host(g) for g in nc.conv2d_backward(gy, x, w)[:2]]
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


def test_twin_kernel_modules_export_the_same_names():
    import inspect

    from numbaconv.kernels import cpu, cuda

    for name in cpu.KERNELS:
        cpu_fn, cuda_fn = getattr(cpu, name), getattr(cuda, name)
        cpu_params = list(inspect.signature(getattr(cpu_fn, "py_func", cpu_fn)).parameters)
        assert list(inspect.signature(cuda_fn).parameters) == cpu_params, name
    # conv algorithms on both devices: the CPU's arguments first; the GPU's launchers may
    # add optional ones (a tile, a grad_bias folded into the reduction)
    for name in cpu.TILED_KERNELS + cpu.DEPTHWISE_KERNELS:
        cpu_fn, cuda_fn = getattr(cpu, name), getattr(cuda, name)
        cpu_params = list(inspect.signature(getattr(cpu_fn, "py_func", cpu_fn)).parameters)
        cuda_params = inspect.signature(cuda_fn).parameters
        assert list(cuda_params)[:len(cpu_params)] == cpu_params, name
        extra = list(cuda_params.values())[len(cpu_params):]
        assert all(p.default is None for p in extra), name


def test_cuda_unavailable_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(dispatch, "cuda_available", lambda: (False, "no driver found"))
    monkeypatch.setattr(dispatch, "_backends", {})
    x = FakeGPUArray()
    with pytest.raises(RuntimeError, match=r"CUDA is not available \(no driver found\)"):
        dispatch.get_backend("cuda")
    with pytest.raises(RuntimeError, match="to_device: a CUDA array was given"):
        nc.to_device(np.zeros(2))
    assert dispatch.device_of(x) == "cuda"


def test_import_compiles_nothing_and_skips_cuda():
    # every numba kernel of the CPU modules, the shares behind the public names included
    code = ("import sys, numbaconv\n"
            "from numba.core.registry import CPUDispatcher\n"
            "from numbaconv.kernels import cpu\n"
            "mods = [m for n, m in sys.modules.items() if n.startswith('numbaconv.kernels.cpu')]\n"
            "kernels = [v for m in mods for v in vars(m).values()\n"
            "           if isinstance(v, CPUDispatcher)]\n"
            "assert len(kernels) > 40 and not any(k.signatures for k in kernels)\n"
            "assert 'numbaconv.kernels.cuda' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_use_stream_routes_launches(rng):
    from numba import cuda

    from numbaconv import config

    stream = cuda.stream()
    x = nc.to_device(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    w = nc.to_device(rng.standard_normal((1, 1, 3, 3)).astype(np.float32))
    with nc.use_stream(stream):
        assert config.CUDA_STREAM is stream
        y = nc.conv2d(x, w)
    stream.synchronize()
    assert config.CUDA_STREAM == 0
    np.testing.assert_allclose(nc.to_host(y), nc.conv2d(nc.to_host(x), nc.to_host(w)),
                               rtol=1e-5)


def test_results_come_back_as_the_callers_gpu_array_type(monkeypatch, rng):
    """CuPy in -> CuPy out, torch in -> torch out (zero copy through the interface);
    numba and NumPy inputs are returned as they are.  Fake libraries stand in for CuPy
    and PyTorch CUDA, which CI does not have."""
    import sys
    import types

    seen = []
    for library in ("cupy", "torch"):
        fake = types.ModuleType(library)
        fake.asarray = lambda a: ("cupy array of", a)
        fake.as_tensor = lambda a, device: ("tensor of", a, device)
        monkeypatch.setitem(sys.modules, library, fake)
        cls = type("GPUArray", (), {"__module__": f"{library}._core",
                                    "__cuda_array_interface__": {}, "device": "cuda:0"})
        seen.append(cls())

    def op(x, weight=None):
        return "result", ("grad", x)

    wrapped = dispatch.returns_caller_type(op)
    assert wrapped(seen[0]) == (("cupy array of", "result"), ("cupy array of", ("grad", seen[0])))
    assert wrapped(np.zeros(2), weight=seen[1])[0] == ("tensor of", "result", "cuda:0")
    x = nc.to_device(np.zeros(2))
    assert wrapped(x) == ("result", ("grad", x))
    assert dispatch.like_caller("r", FakeGPUArray()) == "r"
    assert nc.conv2d.__wrapped__ is not None  # every public op goes through it


def test_thread_wait_policies_are_scoped_to_the_two_runtime_loads():
    """numbaconv sets OPENBLAS_THREAD_TIMEOUT / GOMP_SPINCOUNT / KMP_BLOCKTIME only
    around loading NumPy's OpenBLAS and numba's OpenMP pool: nothing is left in the
    environment for other libraries, and a policy the user set is kept."""
    code = ("import os\n"
            "os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'\n"
            "import numbaconv, numpy as np\n"
            "numbaconv.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32))\n"
            "print(os.environ['OMP_WAIT_POLICY'], numbaconv._threads.blas_quiet, *(name in\n"
            "      os.environ for name in ('GOMP_SPINCOUNT', 'KMP_BLOCKTIME',\n"
            "                              'OPENBLAS_THREAD_TIMEOUT')))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == ["ACTIVE", "True", "False", "False", "False"]
    code = "import numpy, numbaconv\nprint(numbaconv._threads.blas_quiet)\n"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == ["False"]


def test_blas_products_run_at_one_thread_and_restore_the_users_count(monkeypatch):
    """Every BLAS call of the GEMM path sees BLAS at one thread (its pool never wakes),
    whatever the user set; the user's count is back after the op; a product split
    across threads equals NumPy's."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from numbaconv.kernels.cpu import blas

    seen = []
    real = np.matmul

    def spy(*args, **kwargs):
        seen.append({lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                     if lib["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(blas, "np", type("NP", (), {"matmul": staticmethod(spy)}))
    monkeypatch.setattr(config, "CONV_ALGORITHM", "gemm")
    monkeypatch.setattr(config, "BLAS_SPLIT_FLOPS", 1000)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((8, 3, 3, 3)).astype(np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        y = nc.conv2d(x, w, padding=1)
        nc.conv2d_backward(y, x, w, padding=1)
        after = {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                 if lib["user_api"] == "blas"}
    assert seen and all(counts <= {1} for counts in seen)
    assert after == {2}
    # from several threads at once (dask workers), then the main thread: every product
    # at one thread, the user's count back at the end
    import threading

    seen.clear()
    a_ = np.random.default_rng(5).standard_normal((3, 40, 70))
    b_ = np.random.default_rng(6).standard_normal((3, 70, 90))

    def work():
        for _ in range(3):
            blas.matmul(a_, b_, np.empty((3, 40, 90)))

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        workers = [threading.Thread(target=work) for _ in range(3)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        work()
        after = {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                 if lib["user_api"] == "blas"}
    assert len(seen) >= 24 and all(counts <= {1} for counts in seen)
    assert after == {2}
    np.testing.assert_allclose(y, nc.reference.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(blas, "np", np)
    a = np.random.default_rng(2).standard_normal((3, 40, 70)).astype(np.float32)
    for b in (np.random.default_rng(3).standard_normal((3, 70, 90)).astype(np.float32),
              np.random.default_rng(4).standard_normal((70, 5)).astype(np.float32)):
        out = np.empty((3, 40, b.shape[-1]), np.float32)
        blas.matmul(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
