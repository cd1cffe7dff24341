"""Library-wide settings, read at call time so tests and benchmarks can patch them.

Compile-time flags (``CPU_FASTMATH``) are read when a kernel is first compiled; the rest
is read on every call.
"""

import os

# LLVM flags for the CPU kernels: contraction into FMA and reassociation (so reductions
# vectorize).  No 'nnan' / 'ninf': NaN and inf must propagate as they do in PyTorch.
CPU_FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

# CUDA launch geometry: threads per block of the 1-D elementwise-style kernels.
CUDA_THREADS_PER_BLOCK = int(os.environ.get("NUMBACONV_CUDA_THREADS", "128"))

# CUDA conv kernels (kernels/cuda/tuner.py picks among them per shape).  Autotune: the
# first call of a new (kernel, shapes, dtype) on a real GPU times each candidate with CUDA
# events and keeps the fastest, saved in CUDA_TUNING_FILE (None: beside the JIT cache).
# Off: a fixed rule (direct below CUDA_DIRECT_MAX_MACS multiply-adds, else a tile).
CUDA_AUTOTUNE = True
CUDA_TUNING_FILE = None
CUDA_DIRECT_MAX_MACS = 1 << 18
# Tile configurations (bm, bn, bk, tm, tn) of the tiled kernels; None: the named
# constants of kernels/cuda/tiled.py (TILE_LARGE, TILE_SMALL).  Tests patch tiny ones.
CUDA_CONV_TILES = None
# Split-K grad weights: at least this many pixels per split, and enough splits for this
# many blocks per SM (CUDA_SM_COUNT: None asks the device).
CUDA_SPLIT_MIN_PIXELS = 256
CUDA_BLOCKS_PER_SM = 4
CUDA_SM_COUNT = None
# Depthwise kernels: (thread rows, thread columns, outputs per thread down a column) of a
# block, whose input tile and halo must fit this many bytes of shared memory.
CUDA_DEPTHWISE_TILE = (4, 32, 4)
CUDA_DEPTHWISE_MAX_SHARED = 40 * 1024

# CUDA stream every launch goes to (0: the default stream).  Set it to a numba stream
# (``numba.cuda.stream()`` or ``cuda.external_stream(ptr)`` for a CuPy / PyTorch stream)
# to order numbaconv's kernels with other work; see ``numbaconv.dispatch.use_stream``.
CUDA_STREAM = 0

# Pad codes shared by the CPU and CUDA pad kernels.
PAD_MODES = {"constant": 0, "zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}
# ... and NumPy's names for the non-zero ones (np.pad, dask.array.pad), for the paths
# that pad with NumPy: the dask graph and the NumPy tier 0 of a first conv forward.
NUMPY_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# Rounds an idle thread of numba's OpenMP pool spins before it sleeps (GOMP_SPINCOUNT,
# set only while the pool starts; see _threads.py): long enough to span the gaps between
# the parallel regions of one op, short enough to leave the cores to OpenBLAS and
# PyTorch soon after.  Read once, at the first CPU kernel.
CPU_SPIN_COUNT = 10000

# Tier 0 (``functional/_tier.py``): the first CPU conv forward of each kernel in a
# process answers from NumPy while the kernel compiles in a background thread; later
# calls wait for it.  Off (``NUMBACONV_TIERING=0``): the first call compiles, then runs.
CPU_TIERING = os.environ.get("NUMBACONV_TIERING", "1").lower() not in {"0", "false", "off"}
# ... for layers of at most this many multiply-adds (bigger ones compile, then run).
TIER_MAX_MACS = 10_000_000_000

# Convolution algorithm on the CPU: 'auto' (``dispatch.choose_conv_algorithm``), 'direct',
# 'serial' (the direct forward on one thread), 'blocked', 'channel_blocked', 'tiled',
# 'gemm' or 'depthwise'.  Tests patch it to run every path over the same grid.
CONV_ALGORITHM = "auto"

# Largest im2col buffer the GEMM path allocates; the batch is processed in chunks of
# images that fit (one image at least).
IM2COL_CHUNK_BYTES = 16 * 1024 * 1024

# The GEMM path lays a chunk's columns out per image (each image's product apart,
# grad_out and out read and written in place) from this many output pixels per image,
# and for a chunk of one image; below, side by side (one wide product, grad_out and out
# copied to and from it).
GEMM_IMAGE_MIN_PIXELS = 128
# ... and for the grad weight, whose per-image products sum over one image's pixels only.
GEMM_GRAD_WEIGHT_IMAGE_MIN_PIXELS = 256

# A pointwise grad weight runs on BLAS (the images' products summed) from this many input
# channels per group; thinner, the tiled kernel's rules (BLAS is slow at a few columns).
GEMM_POINTWISE_GRAD_MIN_CHANNELS = 16
# ... but into at most GEMM_POINTWISE_GRAD_MAX_OUT_CHANNELS output channels per group:
# with more, on AVX-512 hosts, the tiled kernel's explicit-vector blocks ran faster (outer
# products on the input in place, or dot products over column tiles: cpu.md, "Session 17")
GEMM_POINTWISE_GRAD_MAX_OUT_CHANNELS = 31

# A strided 1x1 forward copies its input's subsample with NumPy up to this many bytes,
# above with the (parallel) im2col kernel.
SUBSAMPLE_NUMPY_BYTES = 1 << 18

# A grad input of fewer multiply-adds runs on the GEMM path when strided (from 4 output
# channels per group) or, at stride 1, from this many output channels per group; a
# strided forward (not 1x1) of fewer, from GEMM_SMALL_FORWARD_MIN_OUT_CHANNELS.
GEMM_SMALL_MACS = 1_000_000
GEMM_SMALL_GRAD_INPUT_MIN_OUT_CHANNELS = 24
GEMM_SMALL_FORWARD_MIN_OUT_CHANNELS = 128

# A stride-1 grad input whose input planes (the padded ones under a padding_mode other
# than zeros) hold at least GEMM_GRAD_INPUT_SHRINK times the output's pixels (a large
# unpadded kernel), with at least GEMM_GRAD_INPUT_SHRINK_MIN_OUT_CHANNELS output
# channels per group, runs on the GEMM path: the adjoint conv of the direct kernels
# computes every input pixel over every tap, mostly over zeros, where the product does
# the layer's own work (cpu.md, "Session 12").
GEMM_GRAD_INPUT_SHRINK = 3
GEMM_GRAD_INPUT_SHRINK_MIN_OUT_CHANNELS = 8

# A strided grad input whose reduction has at least this many values per input pixel
# (K_g*kH*kW) runs on the GEMM path (dispatch.choose_conv_algorithm), where the tiled
# kernel's tiles outgrow the cache; so does a strided 1x1 one, whatever its reduction.
GEMM_GRAD_INPUT_MIN_REDUCTION = 4096
# ... and so does one of 4+ output channels per group and at most
# GEMM_GRAD_INPUT_MAX_PIXELS output pixels (below).

# A stride-1 grad input with at least GEMM_GRAD_INPUT_MIN_OUT_CHANNELS output channels per
# group runs on the GEMM path where its input is thin (under TILED_MIN_CHANNELS channels
# per group) or the output has at most GEMM_GRAD_INPUT_MAX_PIXELS pixels in all (batch
# included): the blocked kernel's blocks have too few outputs (cpu.md, "Session 8").
GEMM_GRAD_INPUT_MIN_OUT_CHANNELS = 128
GEMM_GRAD_INPUT_MAX_PIXELS = 512
# ... and, not thin, over at least GEMM_GRAD_INPUT_LIVE_MIN_REDUCTION products (K_g*kH*kW)
# where at most GEMM_GRAD_INPUT_MAX_LIVE of its (pixel, tap) pairs read inside grad_out
# (dispatch._live_taps; the channel-blocked rule first)
GEMM_GRAD_INPUT_MAX_LIVE = 0.6
GEMM_GRAD_INPUT_LIVE_MIN_REDUCTION = 1024

# A grad weight (not 1x1, not depthwise) of at most GEMM_GRAD_WEIGHT_MAX_PIXELS output
# pixels in all (batch included) and at least GEMM_GRAD_WEIGHT_MIN_OUT_CHANNELS output
# channels per group runs on the GEMM path: one product over the few pixels, where the
# tiled kernel's threads would each sum a partial copy of the many weights.
GEMM_GRAD_WEIGHT_MAX_PIXELS = 64
GEMM_GRAD_WEIGHT_MIN_OUT_CHANNELS = 64

# Floating-point operations from which a BLAS product is split across numba's thread
# count (kernels/cpu/blas.py): below it one thread finishes before a second wakes.
BLAS_SPLIT_FLOPS = 8_000_000

# OpenBLAS runs a product of at most this many multiply-adds (m*n*k, per matrix of a
# stack) on the calling thread by itself, whatever its thread count (its
# GEMM_MULTITHREAD_THRESHOLD, 4 * 65536): kernels/cpu/blas.py calls such products without
# setting BLAS's thread count to 1 and back, two ctypes round trips of ~7 us in all.
BLAS_ONE_THREAD_MNK = 1 << 18

# Output pixels per job of the 'tiled' convolution: the tile of their receptive fields
# (pixels x C_g*kH*kW values) is built and multiplied while it sits in the thread's cache.
TILED_PIXELS = 64

# ... and where the host has AVX-512 (``kernels.cpu.simd.WIDE``), a conv whose kernel
# rows are runs of whole SIMD vectors (kW*C_g values, at dilation 1 along W), or of at
# least TILED_RAGGED_VECTORS vectors, reads the receptive fields in place from the
# input's channels-last frame instead of copying them into a tile first
# (``kernels/cpu/conv/tiled.py``, ``_forward_runs``; output channels padded to whole
# blocks of 4).  False: always build the tile.
TILED_IN_PLACE = True
TILED_RAGGED_VECTORS = 4
# Output channels per group that are not whole blocks of 4 are padded (a scratch output
# and a copy) only where the reduction has at least this many values per output;
# shorter ones build the tile (``tiled._block_pad``).
TILED_PAD_MIN_REDUCTION = 256
# A forward dilated along W (stride 1 along W) runs as one conv of dilation 1 per
# column phase, in place, where its runs have at least this many vectors and each phase
# keeps TILED_PIXELS output pixels per image (``tiled._phases_pay``).
TILED_PHASE_VECTORS = 40

# Output pixels (whole output rows of the batch, at least one) per job of the tiled grad
# weight: the reduction length of its products (longer runs amortize each dot product's
# horizontal sum), whose im2col columns are built per job.
TILED_GRAD_PIXELS = 1024

# ... but fewer where a job's grad_out rows and columns ((K_g + C_g*kH*kW) values per
# pixel, each count padded to a multiple of 4) would pass this many bytes per thread
# (wide layers: 406 pixels at 256 channels).
TILED_GRAD_BYTES = 4 * 1024 * 1024

# ... but on AVX-512 hosts (with TILED_IN_PLACE), for at most this many output channels
# per group, it reads the input's channels-last frame in place instead
# (``kernels/cpu/conv/tiled.py``, ``_grad_weight_runs``; under 'auto' the chooser sends
# such grad weights to 'tiled' whatever its other rules say) wherever padding each run
# of kW*C_g values (C_g when dilated along W) to whole blocks of 4 vectors adds at most
# this fraction of its length.
TILED_GRAD_RUNS_MAX_CHANNELS = 48
# ... and, where the chooser picked 'tiled' anyway, for any number of output channels
# once a reduction has at least this many values per output (C_g*kH*kW).
TILED_GRAD_RUNS_MIN_REDUCTION = 2048
TILED_GRAD_RUN_WASTE = 0.4
# Output pixels (whole output rows, at least one) whose frame vectors it keeps in L1
# while every block of 4 output channels reads them.
TILED_GRAD_BAND = 64

# When 'auto' picks the register-blocked direct convolution (kernels/cpu/conv/blocked.py;
# the rules in dispatch._blocked_applies, the measurements in docs/benchmarks/cpu.md):
# stride-1 forwards but on maps narrower than BLOCKED_NARROW columns with at least
# BLOCKED_NARROW_CHANNELS output channels per group, or with at least
# BLOCKED_NARROW_DEEP_CHANNELS input channels per group on at most
# BLOCKED_NARROW_MAX_PIXELS output pixels in layers of at most BLOCKED_NARROW_DEEP_GROUPS
# groups (a small map, a long reduction, any number of output channels); strided
# forwards of at most BLOCKED_MAX_REDUCTION products per output (C_g*kH*kW), but not
# those of TILED_MIN_CHANNELS input channels per group on maps narrower than
# BLOCKED_NARROW of at most BLOCKED_NARROW_MAX_PIXELS pixels; stride-1 grad inputs; stride-1
# grad weights with at least BLOCKED_GRAD_MIN_CHANNELS input and output channels per
# group, C_g*kH*kW at most BLOCKED_GRAD_MAX_REDUCTION, and maps of BLOCKED_NARROW
# columns or more.
BLOCKED_NARROW = 20
BLOCKED_NARROW_CHANNELS = 32
BLOCKED_NARROW_DEEP_CHANNELS = 32
BLOCKED_NARROW_MAX_PIXELS = 400
BLOCKED_NARROW_DEEP_GROUPS = 2
BLOCKED_MAX_REDUCTION = 320
# a strided 1x1 forward runs blocked up to this many input channels per group (a short
# reduction; deeper inputs lost to the other paths: docs/benchmarks/cpu.md, round 6)
BLOCKED_STRIDED_1X1_MAX_CHANNELS = 32
BLOCKED_GRAD_MIN_CHANNELS = 16
BLOCKED_GRAD_MAX_REDUCTION = 800

# When 'auto' picks the channel-blocked direct convolution (vectors along the output
# channels: kernels/cpu/conv/channel_blocked.py; the rule in
# dispatch._channel_blocked_applies, the measurements in docs/benchmarks/cpu.md, "Session
# 11" to "Session 15"): stride 1 (strided forwards ran faster tiled, but thin ones on
# narrow maps: dispatch._channel_blocked_applies), the forward
# and the grad input whose output channels fill at least
# CHANNEL_BLOCKED_MIN_FILL of its blocks (a forward's: one vector of channels, as the
# kernel runs; a grad input's: 2 vectors, as measured), with a reduction of at least
# CHANNEL_BLOCKED_MIN_REDUCTION products per output, or of CHANNEL_BLOCKED_MIN_SHORT
# where the blocked kernel would drop at least CHANNEL_BLOCKED_MIN_WASTE of its frame
# columns (small maps); forwards also at a fill of CHANNEL_BLOCKED_MIN_FILL_LONG over
# CHANNEL_BLOCKED_LONG_REDUCTION products or more, and of CHANNEL_BLOCKED_MIN_TINY
# products where CHANNEL_BLOCKED_MIN_WASTE_HIGH of the columns would be dropped (layers
# of GEMM_SMALL_MACS or more).  A forward also needs CHANNEL_BLOCKED_FORWARD_MIN_WASTE
# of the blocked kernel's frame columns dropped (wider maps run blocked, or tiled by
# the narrow-map rules above), and not the deep inputs on small narrow maps that run
# tiled (BLOCKED_NARROW_DEEP_*).
CHANNEL_BLOCKED_MIN_FILL = 0.75
CHANNEL_BLOCKED_MIN_REDUCTION = 256
CHANNEL_BLOCKED_MIN_SHORT = 100
CHANNEL_BLOCKED_MIN_WASTE = 0.1
CHANNEL_BLOCKED_MIN_FILL_LONG = 0.65
CHANNEL_BLOCKED_LONG_REDUCTION = 1024
CHANNEL_BLOCKED_MIN_TINY = 32
CHANNEL_BLOCKED_MIN_WASTE_HIGH = 0.3
CHANNEL_BLOCKED_FORWARD_MIN_WASTE = 0.15
# a forward (any stride) or stride-1 grad input whose taps read inside the input on at
# most CHANNEL_BLOCKED_MAX_LIVE of its (pixel, tap) pairs (the rest read zero padding:
# small maps, wide or dilated kernels) runs channel-blocked, the one kernel that skips
# them, where its output channels fill CHANNEL_BLOCKED_MIN_FILL_LIVE of the blocks (the
# taps skipped make up for emptier blocks) over at least CHANNEL_BLOCKED_MIN_TINY products
# (CHANNEL_BLOCKED_MAX_LIVE_STRIDED for a strided forward: cpu.md, "Session 14")
CHANNEL_BLOCKED_MAX_LIVE = 0.7
CHANNEL_BLOCKED_MAX_LIVE_STRIDED = 0.5
CHANNEL_BLOCKED_MIN_FILL_LIVE = 0.6
# ... and any strided forward (not 1x1) filling CHANNEL_BLOCKED_MIN_FILL of the blocks
# over CHANNEL_BLOCKED_MIN_TINY products, with at most CHANNEL_BLOCKED_TINY_PIXELS output
# pixels in all (batch included), and any strided forward (not 1x1) of
# TILED_MIN_CHANNELS up to CHANNEL_BLOCKED_STRIDED_MAX_CHANNELS input channels per group
# filling CHANNEL_BLOCKED_MIN_FILL of the blocks (the tiled kernel's runs of kW*C_g
# values are short there: docs/benchmarks/cpu.md, "Session 15")
CHANNEL_BLOCKED_TINY_PIXELS = 64
CHANNEL_BLOCKED_STRIDED_MAX_CHANNELS = 48
# ... and thinner strided forwards (not 1x1, under TILED_MIN_CHANNELS input channels per
# group) of at least CHANNEL_BLOCKED_THIN_STRIDED_MIN_OUT_CHANNELS output channels per
# group (which fill 4/5 of the blocks or more): each broadcast input value feeds a
# vector of channels, where the blocked kernel's stride phases feed 4 ("Session 16")
CHANNEL_BLOCKED_THIN_STRIDED_MIN_OUT_CHANNELS = 64
# ... which may reduce over fewer than CHANNEL_BLOCKED_MIN_TINY products (a 3x3 kernel
# over 1-3 channels) on maps of at most CHANNEL_BLOCKED_THIN_MAX_PIXELS output pixels
# per image (on larger maps the blocked kernel's long rows won)
CHANNEL_BLOCKED_THIN_MAX_PIXELS = 1024
# ... and, at stride 1, forwards (not 1x1) of TILED_MIN_CHANNELS up to
# CHANNEL_BLOCKED_NARROW_MAX_CHANNELS input channels per group on maps under
# BLOCKED_NARROW output columns, filling CHANNEL_BLOCKED_MIN_FILL of the blocks, that
# the blocked kernel's rules leave to the tiled kernel
CHANNEL_BLOCKED_NARROW_MAX_CHANNELS = 16
# ... and, at stride 1, thin forwards (not 1x1) of 2 up to TILED_MIN_CHANNELS input
# channels per group into at least CHANNEL_BLOCKED_THIN_MIN_OUT_CHANNELS output channels
# per group, on maps of at most CHANNEL_BLOCKED_THIN_MAX_PIXELS output pixels per image
# (one input channel, and larger maps, ran faster blocked: "Session 16")
CHANNEL_BLOCKED_THIN_MIN_OUT_CHANNELS = 100

# Register blocks (4 output channels x 4 vectors of pixels) per job of the blocked conv.
BLOCKED_BLOCKS = 4

# A depthwise conv of at least this channel multiplier (K_g output channels per input
# channel) runs its grad weight, and its forward if strided or past 3x3, by the dense
# rules, whose kernels reuse each input vector across output channels; its grad input
# goes to GEMM where GEMM_GRAD_INPUT_SHRINK applies; the rest (and a 3x3 stride-1
# forward) stays depthwise (cpu.md, "Session 13").
DEPTHWISE_MAX_MULTIPLIER = 16

# 'auto' picks the tiled convolution when a group has at least this many input channels
# (thinner groups give short reductions, and the grad input's products few rows).
TILED_MIN_CHANNELS = 8

# 'auto' runs a forward of fewer multiply-accumulates than this (all outputs) with the
# direct kernel on one thread ('serial'): one kernel call, no frame or tile to build, no
# thread wake-up (measured in
# docs/benchmarks/cpu.md, "The chooser, re-derived from random shapes").
DIRECT_MAX_MACS = 32768

# 'auto' runs a thin pointwise forward (1x1, stride 1, no padding, under
# TILED_MIN_CHANNELS input channels per group) on the direct kernel, serial up to this
# many multiply-accumulates (cpu.md, "Session 8") ...
POINTWISE_SERIAL_MAX_MACS = 4096
# ... and above it, with at most POINTWISE_DIRECT_MAX_CHANNELS input channels per group
# on planes of at least POINTWISE_DIRECT_MIN_PIXELS, on numba's threads; the others run
# on the GEMM path, whose per-image products won there (cpu.md, "Session 11").
POINTWISE_DIRECT_MAX_CHANNELS = 2
POINTWISE_DIRECT_MIN_PIXELS = 800

# 'auto' runs thin groups (under TILED_MIN_CHANNELS input channels) whose product has
# fewer multiply-accumulates per output pixel than this (K_g * C_g * kH * kW) on the
# direct kernel, which reads the input once; not a stride-1 forward with several output
# channels per group, which the blocked kernel runs faster on AVX-512 hosts (cpu.md,
# "Thin layers").
GEMM_MIN_MACS_PER_PIXEL = 64

# Activation codes shared by the CPU and CUDA activation kernels (kernels/_elementwise.py).
ACTIVATIONS = {"leaky_relu": 0, "relu": 0, "sigmoid": 1, "tanh": 2}

# Threads per block of the CUDA reduction kernels (one block per channel / row: a tree
# reduction in shared memory, so a power of two, at most REDUCE_MAX_THREADS).
CUDA_REDUCE_THREADS = int(os.environ.get("NUMBACONV_CUDA_REDUCE_THREADS", "256"))
REDUCE_MAX_THREADS = 1024

# Number of partial sums a whole-array reduction (sum of squares) splits into: a fixed
# split, so the result does not depend on the thread count (one CUDA block per partial).
REDUCE_PARTIALS = 64

# Tile edge of the CUDA matrix product (Linear): a TILE x TILE block of threads, each
# computing one output from TILE-wide shared-memory strips.  A kernel is built per value.
CUDA_MATMUL_TILE = int(os.environ.get("NUMBACONV_CUDA_MATMUL_TILE", "16"))

# Counts assignments to these settings (``numbaconv.config.X = ...``, a test's
# monkeypatch) and deletions, so that what was derived from them is dropped when one
# changes: the conv plans of functional/_plans.py hold the algorithm the chooser picked.
# CUDA_STREAM (set around every launch by ``use_stream``) is state, not a setting.
generation = 0
_NOT_SETTINGS = ("generation", "CUDA_STREAM", "__class__")


class _Settings(type(os)):
    def __setattr__(self, name, value):
        ModuleType = type(os)
        ModuleType.__setattr__(self, name, value)
        if name not in _NOT_SETTINGS:
            ModuleType.__setattr__(self, "generation", self.generation + 1)

    def __delattr__(self, name):
        ModuleType = type(os)
        ModuleType.__delattr__(self, name)
        ModuleType.__setattr__(self, "generation", self.generation + 1)


import sys  # noqa: E402

sys.modules[__name__].__class__ = _Settings
