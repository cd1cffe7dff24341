"""Static report of numbaconv's CUDA kernels for Hopper (sm_90), no GPU needed.

1. Records every kernel launch of a workload (each functional op forward and backward,
   each conv algorithm and tile, depthwise at the common kernel sizes and strides, a
   training step of each ``numbaconv train`` model), float32 and float64, in a
   subprocess under numba's CUDA simulator: the kernel (by module and name, or by the
   factory and key it was built from) and its argument types.
2. Compiles each (kernel, signature) to PTX for sm_90 with ``numba.cuda.compile_ptx``
   and assembles it with ``ptxas -arch=sm_90 -v``: registers, spills, stack frame,
   shared memory; theoretical occupancy on an H100 / H200 (65,536 registers, 2,048
   threads, 228 KiB shared memory per SM, registers allocated per warp in 256s).
3. Lints the PTX: ``.f64`` instructions in a kernel whose arrays are all float32,
   local-memory traffic (``ld.local`` / ``st.local``), atomics (``atom.`` / ``red.``) in
   a backward kernel, and FMAs per shared-memory load in the tiled kernels.
4. Rooflines the conv kernels of the benchmark layers (``numbaconv.bench.SUITE``):
   FLOPs, the fewest bytes a call must move, and the floor time on an H200
   (67 TFLOP/s FP32, ~4.3 TB/s measured copy bandwidth).

Writes ``docs/benchmarks/gpu-static.md``; the last line reads
``kernels: K, spills: S, f64 in float32 kernels: F, local memory: L``.

Needs the CUDA compiler wheels (no driver, no GPU)::

    python3 -m pip install 'cuda-toolkit[nvrtc,nvvm,nvcc]==13.*'
    python3 docs/benchmarks/gpu_static.py
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "benchmarks" / "gpu-static.md"

# sm_90 (H100 SXM / H200)
SMS, REGS_PER_SM, THREADS_PER_SM, BLOCKS_PER_SM = 132, 65536, 2048, 32
SHARED_PER_SM, SHARED_RESERVED = 228 * 1024, 1024
FP32_FLOPS, BANDWIDTH = 67e12, 4.3e12


# --------------------------------------------------------------------------- 1. record
def _workload():
    """Run under the simulator: every launch the library makes on small shapes."""
    import numpy as np

    import numbaconv as nc
    from numbaconv import config, nn, optim
    from numbaconv.kernels.cuda.tiled import TILES
    from numbaconv.models import MODELS

    config.CUDA_AUTOTUNE = False
    put = nc.to_device
    rng = np.random.default_rng(0)

    def arr(*shape, dtype):
        return put(rng.standard_normal(shape).astype(dtype))

    for dtype in (np.float32, np.float64):
        def conv_both(x_shape, w_shape, **params):
            x, w = arr(*x_shape, dtype=dtype), arr(*w_shape, dtype=dtype)
            for b in (arr(w_shape[0], dtype=dtype), None):
                y = nc.conv2d(x, w, b, **params)
                nc.conv2d_backward(y, x, w, b, **params)

        config.CUDA_DIRECT_MAX_MACS = 0
        for tile in TILES:
            config.CUDA_CONV_TILES = (tile,)
            conv_both((1, 3, 5, 6), (4, 3, 3, 3), padding=1, stride=2)
            conv_both((1, 5, 4, 3), (3, 5, 1, 1))  # the plain-GEMM forward
        config.CUDA_CONV_TILES = None
        config.CONV_ALGORITHM = "direct"
        conv_both((1, 3, 5, 6), (4, 3, 3, 3), padding=1)
        config.CONV_ALGORITHM = "auto"
        for k, s in ((3, 1), (3, 2), (5, 1), (5, 2)):   # depthwise, the common sizes
            conv_both((1, 2, 9, 9), (2, 1, k, k), padding=k // 2, stride=s, groups=2)
        conv_both((1, 2, 5, 6), (3, 2, 3, 3), padding=1, padding_mode="reflect", flip=True)
        x = arr(1, 2, 4, 5, dtype=dtype)
        w = arr(2, 3, 3, 3, dtype=dtype)
        b = arr(3, dtype=dtype)
        y = nc.conv_transpose2d(x, w, b, stride=2)
        nc.conv_transpose2d_backward(y, x, w, b, stride=2)
        x = arr(1, 2, 6, 6, dtype=dtype)
        y, idx = nc.max_pool2d(x, 2, return_indices=True)
        nc.max_pool2d_backward(y, x, 2, indices=idx)
        for op, kw in [("avg_pool2d", dict(kernel_size=2)),
                       ("adaptive_avg_pool2d", dict(output_size=1)),
                       ("interpolate", dict(scale_factor=2)),
                       ("interpolate", dict(scale_factor=2, mode="bilinear",
                                            align_corners=False)),
                       ("unfold", dict(kernel_size=3, padding=1)),
                       ("channel_shuffle", dict(groups=2)),
                       ("pad", dict(pad=(1, 1, 1, 1), mode="reflect"))]:
            y = getattr(nc, op)(x, **kw)
            getattr(nc, op + "_backward")(y, x, **kw)
        cols = arr(1, 18, 36, dtype=dtype)
        nc.fold_backward(nc.fold(cols, 6, 3, padding=1), cols, 6, 3, padding=1)
        # a training step of each model (layers, loss, optimizers): convs on the direct
        # kernels, reductions in small blocks (the simulator runs every thread in
        # Python; which kernels compile, and their signatures, depend on neither)
        config.CUDA_DIRECT_MAX_MACS = 1 << 60   # (the tiled kernels are recorded above)
        threads = config.CUDA_REDUCE_THREADS
        config.CUDA_REDUCE_THREADS = 32
        for name in MODELS:
            nn.manual_seed(0)
            model = MODELS[name]().to("cuda", dtype)
            loss_fn = nn.CrossEntropyLoss()
            for opt in (optim.Adam(model.parameters()),
                        optim.SGD(model.parameters(), lr=0.1, momentum=0.9)):
                opt.zero_grad()
                loss_fn(model(arr(2, 1, 4, 4, dtype=dtype)), put(np.array([1, 2])))
                model.backward(loss_fn.backward())
                opt.step()
        config.CUDA_REDUCE_THREADS = threads
        config.CUDA_DIRECT_MAX_MACS = 1 << 18
        drop = nn.Dropout(0.5)
        drop.backward(drop(x))


def _type_of(a):
    import numba
    import numpy as np
    from numba import types

    if hasattr(a, "shape") and hasattr(a, "dtype") and not np.isscalar(a):
        return types.Array(numba.from_dtype(a.dtype), len(a.shape), "C")
    return numba.typeof(a)


def record(path):
    """Subprocess body: run the workload under the simulator, pickle the launches."""
    from numbaconv.kernels.cuda import _launch

    seen = {}

    def recording(kernel, grid, threads, args):
        fn = kernel.fn
        origin = getattr(kernel, "numbaconv_origin", None) or (fn.__module__, fn.__name__,
                                                               None)
        sig = tuple(_type_of(a) for a in args)
        count = math.prod(threads) if isinstance(threads, tuple) else threads
        seen.setdefault((origin, sig), count)
        run(kernel, grid, threads, args)

    run = _launch._run
    _launch._run = recording
    _workload()
    Path(path).write_bytes(pickle.dumps(seen))


# --------------------------------------------------------------------------- 2. compile
def _patch_for_no_driver():
    """numba-cuda asks the driver for the compute capability when it compiles a device
    function or a kernel with a signature; here there is none, so say sm_90, and keep
    kernels lazy (``compile_ptx`` compiles them for the recorded signatures)."""
    from types import SimpleNamespace

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))
    jit = cuda.jit

    def lazy_jit(*args, **kwargs):
        if args and not callable(args[0]):  # a signature: compile on demand instead
            def decorate(fn):
                kernel = jit(**kwargs)(fn)
                kernel.numbaconv_signature = args[0].args
                return kernel
            return decorate
        return jit(*args, **kwargs)

    cuda.jit = lazy_jit


def _kernel(origin):
    module, name, key = origin
    found = getattr(importlib.import_module(module), name)
    return found(*key) if key is not None else found


def ptxas() -> str:
    """The ``ptxas`` matching numba-cuda's NVVM (the wheel's), else the one on PATH."""
    try:
        import nvidia.cu13 as cu13
        candidate = Path(cu13.__path__[0]) / "bin" / "ptxas"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("ptxas")
    if not found:
        sys.exit("ptxas not found: python3 -m pip install 'cuda-toolkit[nvrtc,nvvm,nvcc]==13.*'")
    return found


def assemble(ptx: str, tool: str, max_registers=None) -> dict:
    """ptxas's report; ``max_registers`` as numba passes it when it links the kernel."""
    limit = [f"-maxrregcount={max_registers}"] if max_registers else []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        done = subprocess.run([tool, "-arch=sm_90", "-v", *limit, str(src),
                               "-o", str(Path(tmp) / "k")],
                              capture_output=True, text=True, check=True)
    info = done.stderr + done.stdout
    number = lambda pattern: int(re.search(pattern, info).group(1)) if re.search(pattern, info) else 0  # noqa
    return {"registers": number(r"Used (\d+) registers"),
            "stack": number(r"(\d+) bytes stack frame"),
            "spill_stores": number(r"(\d+) bytes spill stores"),
            "spill_loads": number(r"(\d+) bytes spill loads"),
            "shared": number(r"(\d+) bytes smem")}


def occupancy(registers: int, threads: int, shared: int) -> tuple[int, float]:
    """(resident blocks per SM, fraction of the SM's 2,048 threads) on sm_90."""
    warps = -(-threads // 32)
    regs_per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_regs = REGS_PER_SM // (warps * regs_per_warp)
    by_threads = THREADS_PER_SM // (warps * 32)
    by_shared = SHARED_PER_SM // (shared + SHARED_RESERVED) if shared else BLOCKS_PER_SM
    blocks = min(by_regs, by_threads, by_shared, BLOCKS_PER_SM)
    return blocks, blocks * warps * 32 / THREADS_PER_SM


def lint(ptx: str) -> dict:
    body = ptx[ptx.index(".entry"):]
    instructions = [ln.strip() for ln in body.splitlines()
                    if ln.strip() and not ln.strip().startswith((".", "//", "{", "}", "$"))]
    f64 = [i for i in instructions if ".f64" in i.split()[0]]
    return {"f64": len(f64),
            "local": sum(1 for i in instructions if i.startswith(("ld.local", "st.local"))),
            "atomics": sum(1 for i in instructions if i.startswith(("atom.", "red."))),
            "fma": sum(1 for i in instructions if i.startswith("fma.rn.f")),
            "ld_shared": sum(1 for i in instructions if i.startswith("ld.shared"))}


# --------------------------------------------------------------------------- 4. roofline
def roofline_rows():
    from numbaconv import analysis
    from numbaconv.bench import SUITE

    rows = []
    for name, (op, shapes, params, dtype) in SUITE.items():
        if not op.startswith("conv") or dtype != "f4":
            continue
        (n, c, h, w), (k0, k1, kh, kw) = shapes
        groups = params.get("groups", 1)
        if op == "conv2d":
            c_out = k0
            oh, ow = [analysis.conv_output_size(size, k, params.get("stride", 1),
                                                params.get("padding", 0),
                                                params.get("dilation", 1))
                      for size, k in ((h, kh), (w, kw))]
            out_elems, in_elems = n * c_out * oh * ow, n * c * h * w
            macs = out_elems * (c // groups) * kh * kw
        else:  # conv_transpose2d: the adjoint conv's grad input
            c_out = k1 * groups
            oh, ow = [analysis.conv_transpose_output_size(size, k, params.get("stride", 1),
                                                          params.get("padding", 0))
                      for size, k in ((h, kh), (w, kw))]
            out_elems, in_elems = n * c_out * oh * ow, n * c * h * w
            macs = in_elems * k1 * kh * kw
        weight_elems = k0 * k1 * kh * kw
        flops = 2 * macs
        fwd_bytes = 4 * (in_elems + weight_elems + out_elems)
        floor_fwd = max(flops / FP32_FLOPS, fwd_bytes / BANDWIDTH)
        # backward: grad input and grad weight, each the same FLOPs, reading two arrays
        floor_bwd = 2 * max(flops / FP32_FLOPS, fwd_bytes / BANDWIDTH)
        rows.append((name, flops / 1e9, fwd_bytes / 1e6, flops / fwd_bytes,
                     floor_fwd * 1e6, floor_bwd * 1e6,
                     "compute" if flops / FP32_FLOPS > fwd_bytes / BANDWIDTH else "memory"))
    return rows


# --------------------------------------------------------------------------- report
def _label(origin, sig) -> str:
    module, name, key = origin
    short = module.rsplit(".", 1)[-1]
    if key is None:
        return f"{short}.{name.lstrip('_')}"
    parts = []
    for part in key:
        if hasattr(part, "bm"):
            parts.append(f"{part.bm}x{part.bn}x{part.bk}/{part.tm}x{part.tn}")
        elif isinstance(part, tuple):
            parts.append("x".join(map(str, part)))
        elif isinstance(part, str) and part.startswith("float"):
            continue
        else:
            parts.append(str(part))
    return f"{short}.{name}[{', '.join(parts)}]"


def _float32_only(sig) -> bool:
    from numba import types

    arrays = [t for t in sig if isinstance(t, types.Array)]
    return bool(arrays) and all(t.dtype == types.float32 for t in arrays)


def _backward(origin) -> bool:
    text = (origin[1] + " " + origin[0]).lower()
    return any(w in text for w in ("grad", "backward", "col2im", "sum_splits", "dot_sums"))


def quick_launches():
    """The tiled and depthwise conv kernels (float32, the real tiles), from their own
    explicit signatures: no workload, no simulator (``--quick``, run by the tests)."""
    from numbaconv.kernels.cuda import depthwise, tiled

    builds = []
    for tile in tiled.TILES:
        builds += [(tiled.forward_kernel, (tile, "float32", False), tile.threads),
                   (tiled.forward_kernel, (tile, "float32", True), tile.threads),
                   (tiled.grad_input_kernel, (tile, "float32"), tile.threads),
                   (tiled.grad_weight_kernel, (tile, "float32"), tile.threads)]
    shape = (4, 32, 4, 128)
    for k, s in ((3, 1), (3, 2)):
        builds += [(depthwise.forward_kernel, (shape, k, k, s, s, 1, 1, "float32"), 128),
                   (depthwise.grad_input_kernel, (shape, k, k, s, s, 1, 1, "float32"), 128),
                   (depthwise.grad_weight_kernel, (256, k, k, s, s, 1, 1, "float32", True),
                    256)]
    launches = {}
    for factory, key, threads in builds:
        kernel = factory(*key)
        origin = kernel.numbaconv_origin
        launches[(origin, tuple(kernel.numbaconv_signature))] = threads
    return launches


def main():
    _patch_for_no_driver()
    if "--quick" in sys.argv:
        report(quick_launches(), None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "launches.pkl"
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
        # the tests' simulator set-up (a short GIL switch interval, its shared-array
        # look-up made thread-safe): tests/conftest.py does both on import
        code = ("import sys; sys.path[:0] = [%r, %r]; import conftest, gpu_static; "
                "gpu_static.record(%r)" % (str(Path(__file__).parent), str(ROOT / "tests"),
                                           str(path)))
        print("recording launches under the simulator (minutes) ...", flush=True)
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        launches = pickle.loads(path.read_bytes())
    report(launches, OUT)


def report(launches, out):
    """Compile, assemble and lint each launch; write the report to ``out`` (None: print
    the summary line only)."""
    from numba import cuda

    tool = ptxas()
    rows = []
    print(f"compiling {len(launches)} kernel signatures for sm_90 ...", flush=True)
    for (origin, sig), threads in sorted(launches.items(), key=lambda kv: _label(*kv[0])):
        kernel = _kernel(origin)
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        stats = assemble(ptx, tool, kernel.targetoptions.get("max_registers"))
        checks = lint(ptx)
        blocks, occ = occupancy(stats["registers"], threads, stats["shared"])
        f32 = _float32_only(sig)
        rows.append(dict(label=_label(origin, sig), dtype="f32" if f32 else "f64",
                         threads=threads, blocks=blocks, occupancy=occ,
                         f64_in_f32=checks["f64"] if f32 else 0,
                         backward_atomics=checks["atomics"] if _backward(origin) else 0,
                         **stats, **checks))
    write(rows, roofline_rows() if out else [], tool, out)


def write(rows, roofs, tool, out):
    import numba

    spills = sum(r["spill_stores"] + r["spill_loads"] > 0 for r in rows)
    f64 = sum(r["f64_in_f32"] > 0 for r in rows)
    local = sum(r["local"] > 0 for r in rows)
    atomics = sum(r["backward_atomics"] > 0 for r in rows)
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    version = version.strip().splitlines()[-1] if version.strip() else "?"
    lines = [
        "# CUDA kernels: static report for sm_90 (H100 / H200)",
        "",
        "Written by `python3 docs/benchmarks/gpu_static.py` (no GPU needed; see its "
        "docstring for the install). Every kernel numbaconv launches in a workload of all "
        "ops, conv algorithms and tiles, and a training step of each model, float32 and "
        "float64, compiled with `numba.cuda.compile_ptx(..., cc=(9, 0))` and assembled "
        f"with `ptxas -arch=sm_90 -v` ({version}; numba-cuda on numba {numba.__version__}).",
        "",
        "Columns: registers per thread; spill stores/loads and stack frame (bytes); "
        "static shared memory (bytes); threads per block as launched; resident blocks per "
        "SM and the theoretical occupancy they give; `f64`: float64 instructions in a "
        "kernel whose arrays are all float32 (should be 0); `local`: ld/st.local "
        "instructions; `atom`: atomics in a backward kernel; `fma/lds`: FMAs per "
        "shared-memory load in the PTX (the tiled kernels' register tiles: about "
        "TM*TN/(TM+TN) in the main loop).",
        "",
        "| kernel | dtype | regs | spill st/ld | stack | smem | threads | blocks/SM | "
        "occupancy | f64 | local | atom | fma/lds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['fma'] / r['ld_shared']:.1f}" if r["ld_shared"] else "-"
        lines.append(
            f"| `{r['label']}` | {r['dtype']} | {r['registers']} | {r['spill_stores']}/"
            f"{r['spill_loads']} | {r['stack']} | {r['shared']} | {r['threads']} | "
            f"{r['blocks']} | {r['occupancy']:.0%} | {r['f64_in_f32']} | {r['local']} | "
            f"{r['backward_atomics']} | {ratio} |")
    lines += [
        "",
        "## Roofline of the benchmark conv layers on an H200 (float32)",
        "",
        "The time below which no kernel can go: FLOPs at 67 TFLOP/s FP32 (no tensor cores "
        "in numba-cuda) or the fewest bytes (input, weight, output once each) at the "
        "~4.3 TB/s measured copy bandwidth, whichever is longer; backward = grad input + "
        "grad weight. Measured times come only from `docs/benchmarks/gpu.py` on a GPU.",
        "",
        "| layer | GFLOP | MB moved | FLOP/byte | floor fwd (us) | floor bwd (us) | bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, gflop, mb, intensity, fwd, bwd, bound in roofs:
        lines.append(f"| {name} | {gflop:.3f} | {mb:.2f} | {intensity:.1f} | {fwd:.1f} | "
                     f"{bwd:.1f} | {bound} |")
    lines += ["", f"backward kernels with atomics: {atomics}", "",
              f"kernels: {len(rows)}, spills: {spills}, f64 in float32 kernels: {f64}, "
              f"local memory: {local}"]
    if out is None:
        for r in rows:
            print(f"{r['label']}: {r['registers']} registers, {r['blocks']} blocks/SM, "
                  f"spills {r['spill_stores']}/{r['spill_loads']} bytes")
        print(lines[-1])
        return
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
