"""``numbaconv warmup``: compile into the on-disk cache, in N processes at once, the
kernels a model's training step (or the functional ops) will need, so that the first
real run only loads them.

How the work is shared: every worker first runs the workload with each numbaconv
kernel's first call skipped (its array arguments zero-filled: a warm-up computes nothing
anyone reads, zeros keep indices valid, and shapes are all the next calls need) and
records the kernel and its argument types.  A kernel whose result is used is compiled
then and there instead (or awaited, if another worker holds it).  Then each worker
compiles the recorded kernels, each under a claim (a lock file per kernel and signature,
created exclusively in a folder the workers share), skipping those another worker has
claimed, slowest first (a short list of the kernels known to compile slowest, then call
order): longest-first list scheduling, so no worker starts a long compile while the
others run out of work.  A worker reads each kernel it compiled back from the disk cache
(numba only warns when a save fails).  Where a worker stopped early or a kernel did not
read back (or when asked: ``check=True``, ``numbaconv warmup --check``), one more pass
in a fresh process runs the workload for real, loading everything from the cache, and
compiles whatever is missing, so the cache is complete whatever happened in the
workers.  Otherwise that pass (~1 s of a ~15 s warm-up on 2 cores) is skipped, and the
cache holds every kernel the recording met (a kernel called with keyword arguments is
compiled in the recording pass without a claim, and not read back).

Safe with several processes: numba writes each cache file to a temporary name and
renames it into place, and numbaconv saves into a kernel's index under an exclusive
``flock`` (``_jit_cache``).  Claims live in a temporary folder of this run only.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKLOADS = ("train", "ops", "conv2d")
POLL_SECONDS = 0.05


# --------------------------------------------------------------------------- workloads
def train_step(model="cnn", dtype="float32"):
    """One training step of a named model as ``numbaconv train`` runs it (batch 32 of
    8x8 digits-sized images, data that needs no gradient, Adam), then an evaluation."""
    import numpy as np

    from . import models, nn, optim

    nn.manual_seed(0)
    net = models.build(model).to(dtype=dtype).input_requires_grad(False)
    rng = np.random.default_rng(0)
    x = rng.random((32, 1, 8, 8)).astype(dtype)
    y = rng.integers(0, 10, 32)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(net.parameters(), lr=1e-3)
    opt.zero_grad()
    loss_fn(net(x), y)
    net.backward(loss_fn.backward())
    opt.step()
    net.eval()
    loss_fn(net(x), y)


def ops(dtype="float32", names=None):
    """Every functional op of ``numbaconv bench --ops`` (or those named), forward and
    backward, on its benchmark shape."""
    from .bench import OPS, op_calls

    for name in names or OPS:
        _, backward, _, _ = op_calls(name, dtype=dtype)  # runs the forward
        backward()


def first_conv2d(dtype="float32"):
    import numpy as np

    from . import conv2d

    conv2d(np.ones((1, 2, 6, 6), dtype), np.ones((3, 2, 3, 3), dtype), padding=1)


def run_workload(workload, model="cnn", dtype="float32", names=None):
    from . import config

    config.CPU_TIERING = False  # compile here, now: no NumPy tier 0, no background thread
    if workload == "train":
        train_step(model, dtype)
    elif workload == "ops":
        ops(dtype, names)
    elif workload == "conv2d":
        first_conv2d(dtype)
    else:
        raise ValueError(f"workload: expected one of {WORKLOADS}; got {workload!r}")


# --------------------------------------------------------------------------- claims
def _kernel_key(dispatcher):
    py = dispatcher.py_func
    return f"{py.__module__}.{py.__qualname__}"


def _returns_value(py_func) -> bool:
    """Whether a kernel's source has a ``return <value>`` (its result is used)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(py_func)))
    except (OSError, TypeError, SyntaxError):
        return True  # unknown: wait rather than skip
    body = tree.body[0]
    nested = {id(n) for fn in ast.walk(body) if fn is not body and isinstance(
        fn, (ast.FunctionDef, ast.Lambda)) for n in ast.walk(fn)}
    return any(isinstance(n, ast.Return) and n.value is not None and id(n) not in nested
               for n in ast.walk(body))


class Claims:
    """The shared folder: ``<key>.lock`` while a worker compiles a kernel, ``<key>.done``
    once one has, ``<key>.seen`` when any worker met it (the progress bar's total),
    ``<key>.unsaved`` when the compiled kernel did not read back from the disk cache."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def _path(self, key, kind):
        return self.folder / f"{key}.{kind}"

    def mark(self, key, kind):
        self._path(key, kind).touch()

    def has(self, key, kind):
        return self._path(key, kind).exists()

    def take(self, key) -> bool:
        try:
            os.close(os.open(self._path(key, "lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def release(self, key, compiled=True):
        """Unlock ``key``; ``.done`` names the process that compiled it (0: loaded from
        the cache), and a later load never overwrites a compiler's pid."""
        done = self._path(key, "done")
        if compiled or not done.exists():
            done.write_text(str(os.getpid() if compiled else 0))
        self._path(key, "lock").unlink(missing_ok=True)

    def owners(self):
        """Kernel key -> the pid of a worker that compiled it (0: none did; a kernel
        compiled for several signatures names one of their compilers)."""
        found = {}
        for p in self.folder.glob("*.done"):
            key = p.name[:-len(".done")].split("@")[0]
            found[key] = found.get(key) or int(p.read_text() or 0)
        return found

    def wait(self, key):
        while self.has(key, "lock"):
            time.sleep(POLL_SECONDS)

    def count(self, kind):
        return len(list(self.folder.glob(f"*.{kind}")))


def _zero_arrays(args):
    import numpy as np

    for a in args:
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a[...] = 0


def _skip(*args, **kws):
    return None


def _signature(dispatcher, args):
    """The argument types numba compiles a call for (as its own first-call path does;
    an omitted default types itself as ``Omitted``)."""
    return tuple(dispatcher.typeof_pyval(a) for a in args)


def _claim_name(dispatcher, sig):
    """``<kernel>@<signature hash>``: one claim per compiled variant."""
    import hashlib

    return f"{_kernel_key(dispatcher)}@{hashlib.sha1(str(sig).encode()).hexdigest()[:8]}"


def _saved(dispatcher, sig) -> bool:
    """Whether ``dispatcher``'s variant for argument types ``sig`` reads back from the
    disk cache (numba only warns when a save fails)."""
    try:
        return dispatcher._cache.load_overload(sig, dispatcher.targetctx) is not None
    except Exception:  # noqa: BLE001 - unreadable counts as unsaved: the check pass runs
        return False


def _compile(claims: Claims, name, dispatcher, sig, build):
    """Run ``build`` (a compile of ``dispatcher`` for ``sig``, or a call that compiles it)
    under the claim ``name``, which records whether it compiled or loaded from the cache;
    what it compiled is read back from the disk cache (``<name>.unsaved`` if not)."""
    misses = sum(dispatcher.stats.cache_misses.values())
    compiled = False
    try:
        result = build()
        compiled = sum(dispatcher.stats.cache_misses.values()) > misses
        if compiled and not _saved(dispatcher, sig):
            claims.mark(name, "unsaved")
        return result
    finally:
        claims.release(name, compiled or sum(dispatcher.stats.cache_misses.values()) > misses)


def recorded_compiles(claims: Claims, calls: list):
    """Patch numba's compile-on-first-call path for the recording pass: a numbaconv
    kernel's call is skipped (its array arguments zero-filled) and its signature appended
    to ``calls``; a kernel whose result is used is compiled (or awaited, then loaded) and
    run.  A share of :mod:`.kernels.cpu.shares` is recorded with its driver, neither
    compiled nor run.  Returns the undo."""
    from numba.core.dispatcher import Dispatcher

    original = Dispatcher._compile_for_args
    returns = {}

    def compile_for_args(self, *args, **kws):
        key = _kernel_key(self)
        if not key.startswith("numbaconv.") or kws:
            return original(self, *args, **kws)
        sig = _signature(self, args)
        name = _claim_name(self, sig)
        claims.mark(name, "seen")
        if key not in returns:
            returns[key] = _returns_value(self.py_func)
        if returns[key]:  # its result is used: compile it now, or wait for whoever does
            while not claims.take(name):
                claims.wait(name)
            return _compile(claims, name, self, sig, lambda: original(self, *args))
        if (self, sig) not in calls:
            calls.append((self, sig))
        _zero_arrays(args)
        return _skip  # numba calls what this returns: the compiled kernel, or here nothing

    from .kernels.cpu import shares

    def record_share(share, args):  # kernels.cpu.shares: the share and its driver
        for dispatcher, sig in ((share, shares.signature(args)),
                                (shares._drive, shares.driver_signature(args))):
            claims.mark(_claim_name(dispatcher, sig), "seen")
            if (dispatcher, sig) not in calls:
                calls.append((dispatcher, sig))
        _zero_arrays(args)

    Dispatcher._compile_for_args = compile_for_args
    shares.RECORDER = record_share

    def restore():
        Dispatcher._compile_for_args = original
        shares.RECORDER = None

    return restore


# The kernels that compile slowest, slowest first (`numbaconv bench --compile`, the
# main job's model and the ops; docs/benchmarks/cpu.md, "Compile time"): started first,
# so no worker begins one of them while the others run out of work.  Only the order
# depends on this list; a kernel missing from it compiles in call order after these.
SLOW_FIRST = (
    "cpu.conv.tiled._grad_weight_tiles",
    "cpu.conv.tiled._forward_tiles",
    "cpu.conv.tiled._forward_runs",
    "cpu.conv.depthwise",
    "cpu.pool._max_pool2d_forward",
    "cpu.conv.blocked",
    "cpu.conv.channel_blocked",
    "cpu.pool",
)


def _order(calls):
    """The recorded calls, slowest kernels to compile first (:data:`SLOW_FIRST`), then
    in call order: every worker claims the next one no other worker holds, so the
    longest compiles start at once (longest-first list scheduling)."""
    def rank(item):
        key = _kernel_key(item[1][0]).removeprefix("numbaconv.kernels.")
        return next((i for i, slow in enumerate(SLOW_FIRST) if key.startswith(slow)),
                    len(SLOW_FIRST)), item[0]

    return [call for _, call in sorted(enumerate(calls), key=rank)]


# --------------------------------------------------------------------------- processes
def worker(claims_dir, workload, model, dtype, names):
    """One warm-up process: a recording pass over the workload (kernel calls skipped,
    their signatures kept), then each recorded kernel not yet claimed by another worker
    compiled, in :func:`_order`.  A recording pass that a skipped call broke still
    compiles what it recorded; the check pass completes the rest."""
    claims = Claims(claims_dir)
    calls = []
    restore = recorded_compiles(claims, calls)
    try:
        run_workload(workload, model, dtype, names or None)
    except Exception:  # noqa: BLE001 - reported, and the check pass finishes the job
        import traceback

        traceback.print_exc()
    finally:
        restore()
    for dispatcher, sig in _order(calls):
        name = _claim_name(dispatcher, sig)
        if not claims.has(name, "done") and claims.take(name):
            _compile(claims, name, dispatcher, sig, lambda: dispatcher.compile(sig))


def check(workload, model, dtype, names):
    """The last pass: the workload with nothing patched; prints how many kernels it
    still had to compile (0 when the workers left nothing out)."""
    from .compile_report import record

    rows, _ = record(lambda: run_workload(workload, model, dtype, names or None))
    print(json.dumps({"compiled": [r["kernel"] for r in rows]}))


def _stamp_path(workload, model, dtype, names, env):
    """A file beside the JIT cache that says this workload was warmed with these exact
    package sources (the kernels and what chooses them), numba, Python, CPU and
    ``NUMBA_*`` settings: the next warm-up returns at once.  It lives where the kernels
    do, so clearing the cache clears it too."""
    import hashlib
    import platform

    import numba
    from llvmlite import binding

    from ._jit_cache import PACKAGE, SOURCES

    folder = Path(env.get("NUMBA_CACHE_DIR") or SOURCES / "cpu" / "__pycache__")
    key = hashlib.sha256(repr((workload, model, dtype, names, numba.__version__,
                               platform.python_version(), binding.get_host_cpu_name(),
                               binding.get_host_cpu_features().flatten(),
                               sorted((k, v) for k, v in env.items()
                                      if k.startswith("NUMBA_")))).encode())
    for path in sorted(PACKAGE.rglob("*.py")):  # what picks the kernels, not only them
        key.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return folder / f"numbaconv-warmup-{key.hexdigest()[:16]}.done"


def warmup(workload="train", model="cnn", dtype="float32", jobs=None, names=None,
           stream=sys.stderr, env=None, force=False, check=False):
    """Compile the kernels of ``workload`` into the cache with ``jobs`` processes (default:
    the CPU count, at most 4).  Returns ``{"kernels", "seconds", "check_compiled",
    "owners", "already"}``: how many kernels are cached, the wall time, what the fresh
    check pass still had to compile (None where it did not run: every worker finished
    and every kernel read back, and ``check`` is false), which worker (pid) compiled
    each kernel (0: a worker loaded it from the cache), and whether a stamp from an
    earlier warm-up of the same sources made it return at once (unless ``force``)."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload: expected one of {WORKLOADS}; got {workload!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64'; got {dtype!r}")
    jobs = min(os.cpu_count() or 1, 4) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs: expected a positive number of processes; got {jobs}")
    names = ",".join(names or ())
    env = dict(os.environ if env is None else env)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    # each worker's numba threads would only fight the other compiling workers
    worker_env = dict(env)
    worker_env.setdefault("NUMBA_NUM_THREADS", "1")
    start = time.perf_counter()
    stamp = _stamp_path(workload, model, dtype, names, env)
    if stamp.exists() and not force:
        return {"kernels": int(stamp.read_text() or 0), "seconds": time.perf_counter() - start,
                "check_compiled": None, "owners": {}, "already": True}
    with tempfile.TemporaryDirectory(prefix="numbaconv-warmup-") as folder:
        claims = Claims(folder)
        cmd = [sys.executable, "-m", "numbaconv.warmup", "worker", folder, workload, model,
               dtype, names]
        logs = [open(Path(folder) / f"worker{i}.log", "w+") for i in range(jobs)]
        procs = [subprocess.Popen(cmd, env=worker_env, stdout=subprocess.DEVNULL,
                                  stderr=log) for log in logs]
        while any(p.poll() is None for p in procs):
            _progress(stream, claims, start)
            time.sleep(POLL_SECONDS)
        _progress(stream, claims, start)
        failed = []
        for p, log in zip(procs, logs):
            log.seek(0)
            text = log.read()
            if p.returncode or "Traceback" in text:
                failed.append(text[-2000:])
            log.close()
        owners = claims.owners()
        unsaved = claims.count("unsaved")
    if stream is not None:
        stream.write("\n")
    for tail in failed:  # a skipped call broke a worker: the check pass still completes it
        print(f"numbaconv warmup: a worker stopped early:\n{tail}", file=sys.stderr)
    compiled = None
    if check or failed or unsaved:
        out = subprocess.run([sys.executable, "-m", "numbaconv.warmup", "check", workload,
                              model, dtype, names], env=env, capture_output=True,
                             text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"numbaconv warmup: the workload failed:\n{out.stderr[-2000:]}")
        compiled = json.loads(out.stdout.strip().splitlines()[-1])["compiled"]
    kernels = len(set(owners) | {f"numbaconv.kernels.{name}" for name in compiled or ()})
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(str(kernels))
    except OSError:  # a read-only cache: warm-ups just rerun their (fast) check
        pass
    return {"kernels": kernels, "seconds": time.perf_counter() - start,
            "check_compiled": compiled, "owners": owners, "already": False}


def _progress(stream, claims, start):
    from .train import _bar

    if stream is None or (not getattr(stream, "isatty", lambda: False)()
                          and claims.count("lock")):
        return  # into a log file: only the last line
    done, seen, busy = claims.count("done"), claims.count("seen"), claims.count("lock")
    stream.write(f"\rcompiling {_bar(done, max(seen, 1))} {done}/{seen} kernels, {busy} now, "
                 f"{time.perf_counter() - start:.0f} s ")
    stream.flush()


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "worker":
        folder, workload, model, dtype, names = rest
        worker(folder, workload, model, dtype, names.split(",") if names else None)
    else:
        workload, model, dtype, names = rest
        check(workload, model, dtype, names.split(",") if names else None)
