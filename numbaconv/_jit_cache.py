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


def install():
    """Put numbaconv's locators first in numba's list (before any kernel is defined)."""
    classes = _numba("CacheImpl")._locator_classes
    for cls in (InTreeKernelsLocator, UserProvidedKernelsLocator):  # user-provided first
        if cls not in classes:
            classes.insert(0, cls)
