"""numba's on-disk cache never serves a stale kernel: an edit to a helper that a kernel
inlines from another file (here ``kernels/_index.py``'s pad index, inlined into the CPU
pad kernel) makes the next process recompile (numbaconv/_jit_cache.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numbaconv

SCRIPT = """
import numpy as np, numbaconv as nc
from numbaconv.kernels.cpu import pad
x = np.arange(12.0).reshape(1, 1, 3, 4)
total = float(nc.pad(x, (2, 2, 2, 2), mode="replicate").sum())
stats = pad._pad2d_forward.stats  # the share behind pad2d_forward
print(total, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def _run(root):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, check=True)
    total, hits, misses = done.stdout.split()
    return float(total), int(hits), int(misses)


def test_an_edited_inlined_helper_recompiles(tmp_path):
    package = Path(numbaconv.__file__).parent
    shutil.copytree(package, tmp_path / "numbaconv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    first = _run(tmp_path)
    assert first[2] == 1                                   # compiled, and cached
    assert _run(tmp_path) == (first[0], 1, 0)              # loaded from the cache
    helper = tmp_path / "numbaconv" / "kernels" / "_index.py"
    text = helper.read_text()
    edited = text.replace("return 0 if i < 0 else size - 1", "return 0")
    assert edited != text
    helper.write_text(edited)                              # replicate now copies row 0
    total, hits, misses = _run(tmp_path)
    assert (hits, misses) == (0, 1) and total != first[0]  # recompiled: the new helper


def test_saves_into_numbaconvs_cache_take_the_index_lock(tmp_path):
    """Saving a kernel holds an exclusive flock on its index (``<index>.nbi.lock``), so
    processes sharing a cache (parallel test workers, ``numbaconv warmup``) take turns
    instead of racing numba's read-modify-write of the index."""
    from numba.core import caching

    import numbaconv.kernels  # noqa: F401  (installs the locators and the lock)

    save = getattr(caching, "IndexDataCacheFile", None) or caching._IndexDataCacheFile
    assert getattr(save.save, "numbaconv_locked", False)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True, capture_output=True)
    locks = [p.name for p in tmp_path.rglob("*.nbi.lock")]
    assert any(name.startswith("pad._pad2d_forward") for name in locks), locks
