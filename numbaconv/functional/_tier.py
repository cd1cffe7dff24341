"""Tier 0: the first CPU conv forward of each kernel in a process answers from NumPy
while the kernel compiles.

A numba kernel's first call compiles it: seconds on an empty cache (half a second or
more even from the cache, for numba's own start-up), while the NumPy below answers a
small layer in milliseconds.  The rule, per (kernel, dtype):

* the **first** call computes its result with :func:`conv2d_forward` below (NumPy, no
  compile), returns it, and starts one background thread that runs the chosen kernel on
  the same arguments into a scratch output (at the caller's numba thread count), so
  that it compiles (or loads from the disk cache) and is saved to the cache;
* **every later** call waits for that thread, then runs the kernel.  So the first
  result of each (kernel, dtype) comes from NumPy: equal to the kernel's within float
  rounding, not bit for bit.  A loop timed after two warm-up calls times the kernel
  (after one, its first pass waits out the compile).

Anything that goes wrong in tier 0 (NumPy out of memory, no thread to start) leaves
the call to the kernel, as without tier 0; an error of the background run is left to
the next call's own run of the kernel, which raises it.  Layers above
``config.TIER_MAX_MACS`` multiply-adds skip tier 0 (NumPy's copies and one-thread
products would cost more than the compile saves).  A fork waits for the background
compiles first (the child could not finish them, and numba's compiler lock would stay
held there).  The thread is not a daemon: a process that ends right after its first
call waits for the compile, as it did before tier 0, and the next process finds the
kernel cached.  ``config.CPU_TIERING`` (environment ``NUMBACONV_TIERING=0``) turns it
off; the tests, the benchmarks and ``numbaconv warmup`` run with it off, to test and
time the kernels themselves.  Only the conv forward has a tier 0: it is what a new user
calls first.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .. import config
from .._threads import blas_on_caller

_lock = threading.Lock()
_ready: set = set()  # keys whose kernel runs directly from now on
_pending: dict = {}  # key -> threading.Event, set when the background run ends
errors: dict = {}  # key -> message of a failed background run (for a look after the fact)
answered = 0  # calls answered from NumPy (the tests read it)


def settled(key) -> bool:
    """Whether calls for ``key`` run the kernel directly (tier 0 is over for it, or off)."""
    return key in _ready or not config.CPU_TIERING


def forward(key, run, out, numpy_forward):
    """``run(out)`` (the kernel), or on the first call for ``key`` with tiering on,
    ``numpy_forward(out)`` with ``run`` started in the background on a scratch output."""
    global answered
    if key in _ready or not config.CPU_TIERING:
        run(out)
        return
    with _lock:
        done = _pending.get(key)
        first = done is None and key not in _ready
        if first:
            done = _pending[key] = threading.Event()
    if not first:
        if done is not None:
            done.wait()
        _ready.add(key)
        run(out)
        return
    try:
        with blas_on_caller:  # numbaconv never wakes OpenBLAS's pool (_threads.py)
            numpy_forward(out)
        answered += 1
        import numba

        threading.Thread(target=_background,
                         args=(key, run, np.empty_like(out), done, numba.get_num_threads()),
                         name=f"numbaconv-compile-{key[0]}").start()
    except Exception:  # tier 0 failed: the kernel answers, here, as without tier 0
        _ready.add(key)
        done.set()
        run(out)
    except BaseException:  # KeyboardInterrupt: nothing left pending
        _ready.add(key)
        done.set()
        raise


def _background(key, run, scratch, done, threads):
    try:
        import numba

        numba.set_num_threads(threads)  # per thread in numba: the caller's count
        run(scratch)
    except BaseException as error:  # noqa: BLE001 - the next call's own run raises it
        errors[key] = f"{type(error).__name__}: {error}"
    finally:
        done.set()


def wait():
    """Wait for every background compile started so far (benchmarks, before a fork)."""
    for done in list(_pending.values()):
        done.wait()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=wait)


def padded_input(x4, spec):
    """``x4`` padded by ``spec.padding_mode`` (NumPy's modes of the same name)."""
    (top, bottom), (left, right) = spec.pads
    return np.pad(x4, ((0, 0), (0, 0), (top, bottom), (left, right)),
                  mode=config.NUMPY_PAD_MODES[spec.padding_mode])


def conv2d_forward(x, weight, bias, out, geometry):
    """The CPU kernels' ``conv2d_forward`` contract in NumPy: one strided view and one
    batched product (``matmul`` over the groups) per kernel tap, summed."""
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, channels, height, width = x.shape
    out_ch, ch_per_group, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    span_h = (out_h - 1) * sh + (kh - 1) * dh + 1
    span_w = (out_w - 1) * sw + (kw - 1) * dw + 1
    frame = np.zeros((batch, channels, span_h, span_w), x.dtype)
    rows, cols = min(height, span_h - ph), min(width, span_w - pw)
    if rows > 0 and cols > 0:
        frame[:, :, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols]
    w = weight.reshape(groups, out_ch // groups, ch_per_group, kh, kw)
    acc = np.zeros((batch, groups, out_ch // groups, out_h * out_w), x.dtype)
    for r in range(kh):
        for s in range(kw):
            taps = frame[:, :, r * dh:r * dh + (out_h - 1) * sh + 1:sh,
                         s * dw:s * dw + (out_w - 1) * sw + 1:sw]
            acc += np.matmul(w[:, :, :, r, s],
                             taps.reshape(batch, groups, ch_per_group, out_h * out_w))
    out[...] = acc.reshape(out.shape) + bias.reshape(1, out_ch, 1, 1)
