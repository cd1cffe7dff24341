"""Parallel CPU kernels as serial per-thread shares run by one parallel driver.

A kernel here is written serial: ``share(t, threads, args)`` does thread ``t``'s share
of the work (of ``threads``), ``args`` a flat tuple of arrays and scalars (no nested
tuples: numba's parallel lowering rejects them).  :func:`run_shares` runs it on every
thread: one parallel driver, :func:`_drive`, whose loop body is a single call through
a function pointer to the share's compiled code.

Why: numba compiles a ``parallel=True`` kernel 2-3x slower than the same code serial.
Its parallel passes copy and rewrite the whole body, every inlined helper included,
and LLVM then optimizes the loop body again as a separate function.
``tiled._grad_weight_tiles`` compiled in 7.0-8.0 s parallel and 3.0 s serial.  Here the
parallel passes see a loop of one call, and LLVM never sees the share's body inside
the driver: a call through a pointer is not inlined, so it is not re-optimized there.
The driver compiles once per tuple of argument types (about 0.3 s).  Measured kernel
by kernel in ``docs/benchmarks/cpu.md``, "Compile time".

The rule: a share splits its work by ``t`` alone (:func:`share_of` for a contiguous range
of items, or a per-thread buffer indexed by ``t``), so results do not depend on which
OS thread runs which share; the arguments are validated by the caller, as for every
kernel.  ``RECORDER`` lets ``numbaconv warmup`` list a share and its driver without
compiling or running them.
"""

import numpy as np
from numba import njit, prange, typeof, types
from numba.core.extending import intrinsic

# set by numbaconv warmup's recording pass: called instead of compiling and running
RECORDER = None


@intrinsic
def _call(typingctx, address, t, threads, args):
    """Call the compiled share at ``address`` (numba's own calling convention, as
    ``share(t, threads, args)`` is compiled) with ``t``, ``threads`` and ``args``."""
    sig = types.void(address, t, threads, args)

    def codegen(context, builder, signature, values):
        argtys = (types.int64, types.int64, args)
        fnty = context.call_conv.get_function_type(types.void, argtys)
        fn = builder.inttoptr(values[0], fnty.as_pointer())
        # a share raises nothing (no bounds checks, validated arguments): no status read
        context.call_conv.call_function(builder, fn, types.void, argtys, values[1:])
        return context.get_dummy_value()

    return sig, codegen


@njit(parallel=True, cache=True, nogil=True)
def _drive(address, threads, args):
    for t in prange(threads):
        _call(address, np.int64(t), threads, args)


@njit(inline="always")
def share_of(t, threads, items):
    """Share ``t`` of ``items`` in ``threads`` contiguous near-equal runs: ``[lo, hi)``."""
    return t * items // threads, (t + 1) * items // threads


_addresses = {}


def _key(value):
    if isinstance(value, np.ndarray):
        f = value.flags
        return value.dtype.num, value.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned
    return type(value)


def signature(args):
    """The argument types a share is compiled for, given its ``args`` tuple."""
    return types.int64, types.int64, typeof(args)


def run_shares(share, threads, args):
    """Run ``share(t, threads, args)`` for ``t`` in ``range(threads)``, one per numba
    thread, and return when all have.  The share is compiled (or loaded from the cache)
    on its first call with these argument types."""
    if RECORDER is not None:
        RECORDER(share, args)
        return
    key = (share, *map(_key, args))
    address = _addresses.get(key)
    if address is None:
        sig = signature(args)
        share.compile(sig)
        result = share.overloads[sig]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        _addresses[key] = address
    _drive(address, np.int64(threads), args)
