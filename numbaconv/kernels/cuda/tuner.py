"""The GPU's conv chooser: which kernel runs a dense conv kernel call, per shape.

Candidates are the tiled implicit-GEMM kernels (``kernels/cuda/tiled.py``), one per tile
configuration, and the direct one-thread-per-output kernels (``kernels/cuda/conv.py``),
which need no shared memory and win only on tiny layers.

* ``config.CUDA_AUTOTUNE`` on (the default) and a real GPU: the first call of a new
  (kernel, shapes, geometry, dtype) times every candidate with CUDA events on the
  call's own arrays (each candidate overwrites the output whole, so the last one run
  leaves a correct result) and keeps the fastest.  Choices are saved in a small JSON
  file beside the JIT cache, under a key of GPU name, driver and numbaconv version, so
  later processes on the same machine do not tune again.
* Otherwise (tuning off, or the simulator, whose timings mean nothing) a fixed rule:
  direct below ``config.CUDA_DIRECT_MAX_MACS`` multiply-adds, else the large tile when
  it fills every SM at least once, else the small one.

The tuner is tested with a fake timer (``TIMER``); the rule is a guess until a GPU
has measured it, which is what the tuner is for.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import warnings
from pathlib import Path

from ... import config

# (kernel name, key) -> candidate name; filled from the file on first use.
_choices: dict = {}
_loaded = [False]
_sm = []


def sm_count() -> int:
    """Streaming multiprocessors of the current GPU (``config.CUDA_SM_COUNT`` if set)."""
    if config.CUDA_SM_COUNT:
        return int(config.CUDA_SM_COUNT)
    if not _sm:
        from numba import cuda

        _sm.append(int(getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", 1)))
    return _sm[0]


@functools.lru_cache(maxsize=None)
def _candidates(tiles, with_direct: bool) -> dict:
    from .tiled import TILES, Tile, check_tile

    found = {}
    for t in (check_tile(Tile(*t)) for t in tiles or TILES):
        found[f"tiled-{t.bm}x{t.bn}x{t.bk}-{t.tm}x{t.tn}"] = t
    if with_direct:
        found["direct"] = None
    return found


def candidates(kernel: str, with_direct: bool = True) -> dict:
    """Candidate name -> tile (None for the direct kernel), largest tile first: the
    tiles of ``config.CUDA_CONV_TILES`` (None: ``tiled.TILES``).  Built once per
    setting, so a call costs a dictionary look-up."""
    tiles = config.CUDA_CONV_TILES
    return _candidates(tuple(map(tuple, tiles)) if tiles else None, with_direct)


def problem(kernel: str, args) -> tuple[int, int, int, int]:
    """(M, N, K, groups) of the implicit GEMM that ``kernel`` computes on ``args``."""
    geometry = args[-1]
    groups = geometry[6]
    if kernel == "conv2d_forward":
        x, weight, _, out, _ = args
        _, c_g, kh, kw = weight.shape
        return (out.shape[0] * out.shape[2] * out.shape[3], weight.shape[0] // groups,
                c_g * kh * kw, groups)
    if kernel == "conv2d_grad_input":
        grad_out, weight, grad_in, _ = args
        out_ch, c_g, kh, kw = weight.shape
        return (grad_in.shape[0] * grad_in.shape[2] * grad_in.shape[3], c_g,
                out_ch // groups * kh * kw, groups)
    x, grad_out, grad_weight, _ = args
    out_ch, c_g, kh, kw = grad_weight.shape
    return (out_ch // groups, c_g * kh * kw,
            grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3], groups)


def rule(kernel: str, args, names: dict) -> str:
    """The fixed choice: direct for tiny problems, else the largest tile that gives
    every SM a block and computes at most ``WASTE`` times the useful outputs (edge tiles
    are computed whole); else the smallest.  Grad weight: always the smallest tile, as
    its split-K fills the GPU either way and few output channels waste less."""
    m, n, k, groups = problem(kernel, args)
    if "direct" in names and m * n * k * groups < config.CUDA_DIRECT_MAX_MACS:
        return "direct"
    tiled = [name for name in names if name != "direct"]
    if kernel == "conv2d_grad_weight":
        return tiled[-1]
    for name in tiled:
        t = names[name]
        blocks_m, blocks_n = -(-m // t.bm), -(-n // t.bn)
        waste = blocks_m * t.bm * blocks_n * t.bn / (m * n)
        if blocks_m * blocks_n * groups >= sm_count() and waste <= WASTE:
            return name
    return tiled[-1]


WASTE = 1.25
DIRECT_TUNED_MAX = 64   # the tuner times the direct kernel up to 64x the rule's limit


def _key(kernel: str, args, with_bias: bool) -> str:
    """What a choice holds for: the kernel, every array's shape, the geometry, dtype."""
    shapes = tuple(tuple(a.shape) for a in args[:-1] if hasattr(a, "shape"))
    return f"{kernel}|{shapes}|{tuple(args[-1])}|{args[0].dtype}|bias={with_bias}"


def _run(kernel: str, name: str, tile, args, grad_bias):
    from . import conv, tiled

    if tile is None:
        getattr(conv, kernel)(*args)
        if grad_bias is not None:
            conv.conv2d_grad_bias(args[1], grad_bias)
        return
    if kernel == "conv2d_grad_weight":
        tiled.conv2d_grad_weight_tiled(*args, tile=tile, grad_bias=grad_bias)
    else:
        getattr(tiled, kernel + "_tiled")(*args, tile=tile)


def _event_timer(run, repeat: int = 3) -> float:
    """Milliseconds per call of ``run`` (after one untimed call: compile, caches)."""
    from numba import cuda

    stream = config.CUDA_STREAM or cuda.default_stream()
    run()
    start, end = cuda.event(), cuda.event()
    start.record(stream)
    for _ in range(repeat):
        run()
    end.record(stream)
    end.synchronize()
    return cuda.event_elapsed_time(start, end) / repeat


TIMER = _event_timer   # tests put a fake one here


def _simulated() -> bool:
    from numba import config as numba_config

    return bool(numba_config.ENABLE_CUDASIM)


def run_conv(kernel: str, args, grad_bias=None) -> str:
    """Run ``kernel`` (``'conv2d_forward'``, ``'conv2d_grad_input'`` or
    ``'conv2d_grad_weight'``) on ``args`` with the chosen candidate; return its name."""
    names = candidates(kernel, with_direct=config.CONV_ALGORITHM != "tiled")
    name = None
    if config.CUDA_AUTOTUNE and not _simulated():
        key = _key(kernel, args, grad_bias is not None)
        name = _choices.get(key) or _remembered(key)
        if name is None:
            m, n, k, groups = problem(kernel, args)
            if m * n * k * groups > DIRECT_TUNED_MAX * config.CUDA_DIRECT_MAX_MACS:
                # the direct kernel cannot win here, and timing it would take a while
                names = {c: t for c, t in names.items() if c != "direct"}
            name = tune(kernel, args, grad_bias, names)
            _remember(key, name)
    if name not in names:
        name = rule(kernel, args, names)
    _run(kernel, name, names[name], args, grad_bias)
    return name


def tune(kernel: str, args, grad_bias, names: dict) -> str:
    """Time each candidate with ``TIMER``; the fastest's name (ties: the first)."""
    times = {name: TIMER(lambda n=name: _run(kernel, n, names[n], args, grad_bias))
             for name in names}
    return min(times, key=times.get)


# --------------------------------------------------------------------------- the file
def tuning_file() -> Path:
    """``config.CUDA_TUNING_FILE``, or ``numbaconv-cuda-tuning.json`` in numba's cache
    directory (``NUMBA_CACHE_DIR``) or, without one, beside the kernels' cache."""
    if config.CUDA_TUNING_FILE:
        return Path(config.CUDA_TUNING_FILE)
    from numba import config as numba_config

    folder = numba_config.CACHE_DIR or Path(__file__).parent / "__pycache__"
    return Path(folder) / "numbaconv-cuda-tuning.json"


def device_key() -> str:
    """GPU name, driver version and numbaconv version: a tuning holds only for these."""
    from numba import cuda

    from ... import __version__

    name = cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else str(name)
    try:
        driver = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    except Exception:  # pragma: no cover - very old numba-cuda
        driver = "unknown"
    return f"{name}|driver {driver}|numbaconv {__version__}"


def _load() -> dict:
    try:
        return json.loads(tuning_file().read_text())
    except (OSError, ValueError):
        return {}


def _remembered(key: str):
    if not _loaded[0]:
        _loaded[0] = True
        _choices.update(_load().get(device_key(), {}))
    return _choices.get(key)


def _remember(key: str, name: str):
    """Keep ``name`` for ``key`` here and in the file (merged with what other processes
    wrote meanwhile; written to a temporary file and renamed, so never torn)."""
    _choices[key] = name
    path = tuning_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load()
        data.setdefault(device_key(), {})[key] = name
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tuning-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only install: tune again next process
        warnings.warn(f"numbaconv could not save its CUDA tuning to {path}: {exc}",
                      RuntimeWarning, stacklevel=3)


def forget():
    """Drop the choices held in this process (the file stays)."""
    _choices.clear()
    _loaded[0] = False
