"""Parallel CPU kernels as serial per-thread shares run by one parallel driver.

A kernel is written serial, decorated :func:`share`: ``kernel(t, threads, args)`` does
thread ``t``'s share of the work, ``args`` a flat tuple of arrays and scalars (numba's
parallel lowering rejects nested tuples).  :func:`run_shares` runs it once per numba
thread through one parallel driver, :func:`_drive`, whose loop body is a single call
through a function pointer to the share's compiled code; with one thread (a Dask worker's,
``NUMBA_NUM_THREADS=1``) it calls the share itself, starting no parallel region.

Why: numba compiles a ``parallel=True`` kernel several times slower than the same code
serial.  Its parallel passes deep-copy and rewrite the whole body, every inlined helper
included, and LLVM optimizes the loop body again as a separate function; a serial kernel
called from a parallel driver the usual way is linked into it and optimized again too.
Here the parallel passes see a loop of one call, and a call through a pointer is neither
inlined nor re-optimized; the driver compiles once per tuple of argument types.  One
step of the parallel pipeline does matter for run time: its IR clean-up
(``ir_utils.simplify``: copy propagation, dead code, merged blocks), without which some
kernels (depthwise) ran much slower; :func:`share` adds it to the serial pipeline.
Measurements: ``docs/benchmarks/cpu.md``, "Compile time", round 6.

The rule: a share splits its work by ``t`` alone (:func:`share_of` for a contiguous
range of items, or a per-thread buffer indexed by ``t``), so results do not depend on
which OS thread runs which share; the caller validates the arguments, as for every
kernel; a share that fails anyway (out of memory) makes :func:`run_shares` raise.
Threads write apart: a share's jobs that write the output go in a contiguous run (dealt
in turn, two threads wrote neighbouring outputs at the same moment; runs meet at one
boundary), a buffer a share allocates is :func:`private`, per-thread rows of scratch
start on a cache line (``workspace.scratch``); and numba's parallel driver passes a share
its arrays without their meminfo, so the views a share takes change no reference count
that all threads write.
Measurements: ``docs/benchmarks/cpu.md``, "Session 17".
``RECORDER`` lets ``numbaconv warmup`` list a share and its driver without compiling or
running them.
"""

import numpy as np
from numba import njit, prange, typeof, types
from numba._dispatcher import compute_fingerprint
from numba.core import ir_utils
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.extending import intrinsic
from numba.core.typed_passes import NopythonRewrites

from .simd import LINE_BYTES

# set by numbaconv warmup's recording pass: called instead of compiling and running
RECORDER = None


@intrinsic
def _call(typingctx, address, t, threads, args):
    """Call the compiled share at ``address`` (numba's own calling convention, as
    ``share(t, threads, args)`` is compiled) with ``t``, ``threads`` and ``args``;
    true where the share raised (its exception itself is dropped: see run_shares)."""
    sig = types.boolean(address, t, threads, args)

    def codegen(context, builder, signature, values):
        argtys = (types.int64, types.int64, args)
        fnty = context.call_conv.get_function_type(types.void, argtys)
        fn = builder.inttoptr(values[0], fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.void, argtys,
                                                    values[1:])
        return status.is_error

    return sig, codegen


@njit(parallel=True, cache=True, nogil=True)
def _drive(address, threads, args, failed):
    for t in prange(threads):
        failed[t] = _call(address, np.int64(t), threads, args)


@register_pass(mutates_CFG=True, analysis_only=False)
class _SimplifyIR(FunctionPass):
    """numba's IR clean-up of its parallel pipeline (``ir_utils.simplify``: copy
    propagation, dead code, merged blocks), which a serial compile skips.  Its dead-code
    step keeps a store into an array only where the array aliases a function argument,
    and a share's arrays come unpacked from its ``args`` tuple, which numba's alias
    analysis does not follow: so every variable of a mutable type counts as an
    argument's alias here, and no store into an array is ever dropped."""

    _name = "numbaconv_simplify_ir"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        func_ir, typemap = state.func_ir, state.typemap
        copies, _ = ir_utils.copy_propagate(func_ir.blocks, typemap)
        names = ir_utils.get_name_var_table(func_ir.blocks)
        saved = ir_utils.apply_copy_propagate(func_ir.blocks, copies, names, typemap,
                                              state.calltypes)
        ir_utils.restore_copy_var_names(func_ir.blocks, saved, typemap)
        func_ir._definitions = ir_utils.build_definitions(func_ir.blocks)
        mutable = {v for v in typemap if not ir_utils.is_immutable_type(v, typemap)}
        ir_utils.remove_dead(func_ir.blocks, func_ir.arg_names, func_ir, typemap,
                             alias_map={}, arg_aliases=mutable)
        func_ir.blocks = ir_utils.simplify_CFG(func_ir.blocks)
        return True


class _Simplified(CompilerBase):
    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(_SimplifyIR, NopythonRewrites)
        pm.finalize()
        return [pm]


def share(**options):
    """The decorator of a share: ``numba.njit(cache=True, nogil=True, **options)``, with
    numba's IR clean-up (:class:`_SimplifyIR`) in its pipeline."""
    return njit(cache=True, nogil=True, pipeline_class=_Simplified, **options)


@njit(inline="always")
def share_of(t, threads, items):
    """Share ``t`` of ``items`` in ``threads`` contiguous near-equal runs: ``[lo, hi)``."""
    return t * items // threads, (t + 1) * items // threads


@njit(cache=True, nogil=True)
def private(count, dtype):
    """A buffer of ``count`` values of ``dtype`` that a share allocates for its own
    use: it starts on a cache line and has a line to spare either side, so no line of
    it holds another thread's data (or the allocation's own header, whose reference
    count numba changes).  Two threads' buffers allocated side by side otherwise could
    share a line, which slowed the kernels that write theirs in their inner loops in
    the processes whose heap put them there (docs/benchmarks/cpu.md, "Session 17").
    Compiled once per dtype and called, not inlined: inlined in every share it added
    compile time."""
    raw = np.empty(count + 3 * LINE_BYTES, dtype)  # 3 lines to spare, or more
    start = (LINE_BYTES + (-raw.ctypes.data) % LINE_BYTES) // raw.itemsize
    return raw[start:start + count]


_addresses = {}


def _key(args):
    """What numba's types of ``args`` depend on, cheaply: numba's own fingerprint of the
    tuple (what its dispatcher caches types by: one C call for the whole tuple).  It
    leaves out byte order, so a non-native array keys by its numba type (``typeof``
    refuses it, as numba's dispatcher would), and a value it cannot fingerprint keys by
    its type too.  A share compiled for one key is only called with arguments of it."""
    for value in args:
        if type(value) is np.ndarray and not value.dtype.isnative:
            return typeof(args)
    try:
        return compute_fingerprint(args)
    except NotImplementedError:
        return typeof(args)


def signature(args):
    """The argument types a share is compiled for, given its ``args`` tuple."""
    return types.int64, types.int64, typeof(args)


def driver_signature(args):
    """The argument types :func:`_drive` is compiled for, given a share's ``args``."""
    return types.int64, types.int64, typeof(args), types.Array(types.boolean, 1, "C")


def run_shares(share, threads, args):
    """Run ``share(t, threads, args)`` for ``t`` in ``range(threads)``, one per numba
    thread, and return when all have; one thread runs the share itself on the calling
    thread, through its dispatcher (a share that raises then raises here).  The share
    is compiled (or loaded from the cache) on its first call with these argument
    types."""
    if RECORDER is not None:
        RECORDER(share, args)
        return
    if threads == 1:  # no parallel region to start (~3 us): the share on this thread
        share(0, 1, args)
        return
    key = (share, _key(args))
    address = _addresses.get(key)
    if address is None:
        sig = signature(args)
        share.compile(sig)
        result = share.overloads[sig]
        if result.signature.return_type != types.none:
            raise TypeError(f"{share.__name__}: a share returns nothing; it returns "
                            f"{result.signature.return_type}")
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"{share.__name__}: no compiled code for {sig}")
        _addresses[key] = address
    failed = np.zeros(threads, np.bool_)
    _drive(address, np.int64(threads), args, failed)
    if any(failed.tolist()):  # arguments are validated before: out of memory, mostly
        raise RuntimeError(f"{share.__name__} failed in {int(failed.sum())} of {threads} "
                           f"threads (out of memory?); its output is incomplete")
