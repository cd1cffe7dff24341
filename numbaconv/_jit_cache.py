"""Keeps numba's on-disk cache of numbaconv's kernels from serving a stale kernel.

numba stamps a cached kernel with a hash of the one source file that defines it, but
numbaconv's kernels inline helpers from other files (``kernels/_index.py``,
``_elementwise.py``, ``cpu/simd.py``, ``cpu/gemm.py``...): edit one of those, and the
next process would load the old machine code.  The locators below stamp every kernel
under ``numbaconv/kernels`` with a hash of that file *and* of every source file of the
kernels package and ``config.py`` (compile-time flags), so any edit there invalidates
the cached kernels, which then recompile in place (the cache does not grow).  Where the
cache lives is numba's choice as before (``NUMBA_CACHE_DIR``, or ``__pycache__``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from numba.core import caching

PACKAGE = Path(__file__).resolve().parent
SOURCES = PACKAGE / "kernels"


@functools.lru_cache(maxsize=1)
def _sources() -> tuple[str, ...]:
    """The files whose content stamps every kernel (listed once per process)."""
    return tuple(map(str, sorted(SOURCES.rglob("*.py")) + [PACKAGE / "config.py"]))


@functools.lru_cache(maxsize=8)
def _hash(stats: tuple) -> bytes:
    digest = hashlib.sha256()
    for path, _, _ in stats:
        digest.update(Path(path).relative_to(PACKAGE).as_posix().encode())
        digest.update(Path(path).read_bytes())
    return digest.digest()


def kernels_stamp() -> bytes:
    """A hash of the kernels package's sources (re-read when a file's size or mtime
    changes, so an edit within a running process counts too)."""
    stats = []
    for path in _sources():
        st = os.stat(path)
        stats.append((path, st.st_mtime_ns, st.st_size))
    return _hash(tuple(stats))


def _is_kernel_source(py_file) -> bool:
    try:
        return Path(py_file).resolve().is_relative_to(SOURCES)
    except (OSError, ValueError):
        return False


class _PackageStamped:
    """Mixin: applies to kernels under ``numbaconv/kernels`` only, and adds the package
    hash to numba's per-file stamp."""

    def get_source_stamp(self):
        return (super().get_source_stamp(), kernels_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _is_kernel_source(py_file):
            return None
        return super().from_function(py_func, py_file)


def _numba(name):  # numba 0.68 dropped the leading underscore of these names
    return getattr(caching, name, None) or getattr(caching, "_" + name)


class UserProvidedKernelsLocator(_PackageStamped, _numba("UserProvidedCacheLocator")):
    """``NUMBA_CACHE_DIR`` set: numba's directory, numbaconv's stamp."""


class InTreeKernelsLocator(_PackageStamped, _numba("InTreeCacheLocator")):
    """The kernel's ``__pycache__``, numbaconv's stamp."""


def _locked_save(save):
    """numba's ``IndexDataCacheFile.save`` under an exclusive ``flock`` on the kernel's
    index (every numba cache in the process: a save cannot tell whose kernel it holds,
    and a lock costs microseconds).  numba reads the index, picks a free data-file name
    and writes both back unlocked: two processes saving two signatures of one kernel at
    once could leave the index pointing one signature at the other's machine code
    (numba/numba#10128).  Parallel test workers and ``numbaconv warmup`` do exactly
    that; with the lock they take turns.  Where ``fcntl`` or the lock file is not
    available the save runs as numba's."""
    @functools.wraps(save)
    def run(self, key, data):
        try:
            import fcntl

            fd = os.open(self._index_path + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except (ImportError, OSError):
            return save(self, key, data)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return save(self, key, data)
        finally:
            os.close(fd)  # closing releases the lock

    run.numbaconv_locked = True
    return run


def install():
    """Put numbaconv's locators first in numba's list (before any kernel is defined),
    and make saving into numbaconv's caches safe for several processes at once."""
    classes = _numba("CacheImpl")._locator_classes
    for cls in (InTreeKernelsLocator, UserProvidedKernelsLocator):  # user-provided first
        if cls not in classes:
            classes.insert(0, cls)
    index_file = _numba("IndexDataCacheFile")
    if not getattr(index_file.save, "numbaconv_locked", False):
        index_file.save = _locked_save(index_file.save)
