"""Device dispatch: which kernels run a call, decided from where its arrays live.

* NumPy arrays (and anything NumPy can view without a copy, such as PyTorch CPU tensors)
  run on the CPU kernels (``numbaconv.kernels.cpu``).
* Anything exposing ``__cuda_array_interface__`` (numba device arrays, CuPy arrays,
  PyTorch CUDA tensors; numba's simulated device arrays too) runs on the CUDA kernels
  (``numbaconv.kernels.cuda``), imported only when the first such array arrives.
* Arrays from both devices in one call: ``ValueError``, never a silent copy.

A :class:`Backend` bundles a device's kernel module (the twin modules export the same
names, so an op calls ``backend.kernels.conv2d_forward(...)`` whatever the device) with
the few array helpers an op needs (allocate, make contiguous, reshape, flip).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from . import config
from ._args import live_taps

CPU = "cpu"
CUDA = "cuda"


# --------------------------------------------------------------------------- detection
def _is_cuda_array(a) -> bool:
    if hasattr(a, "__cuda_array_interface__"):
        return True
    # numba's simulator (NUMBA_ENABLE_CUDASIM=1) has device arrays without the interface
    return type(a).__name__ == "FakeCUDAArray"


def device_of(a) -> str:
    """``'cuda'`` for arrays on the GPU, ``'cpu'`` for host arrays."""
    if isinstance(a, np.ndarray):
        return CPU
    if _is_cuda_array(a):
        return CUDA
    if hasattr(a, "__array__") or hasattr(a, "__array_interface__"):
        return CPU
    raise TypeError(
        f"expected an array (NumPy, or a GPU array with __cuda_array_interface__); "
        f"got {type(a).__name__}"
    )


def device_for(op: str, **arrays) -> str:
    """The one device that all non-None ``arrays`` live on; ``ValueError`` if they differ."""
    devices = {name: device_of(a) for name, a in arrays.items() if a is not None}
    found = set(devices.values())
    if len(found) > 1:
        desc = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(
            f"{op}: all arrays must be on one device; got {desc}. "
            f"Move them first with numbaconv.to_device() or numbaconv.to_host()."
        )
    return found.pop() if found else CPU


# --------------------------------------------------------------------------- backends
class CPUBackend:
    """NumPy arrays, numba CPU kernels."""

    name = CPU

    def __init__(self):
        from ._threads import start_numba_threads
        from .kernels import cpu

        start_numba_threads()
        self.kernels = _ThreadSafeKernels(cpu)

    @staticmethod
    def asarray(a):
        """A C-contiguous NumPy view of ``a`` (a copy only when it is not contiguous)."""
        return np.ascontiguousarray(a)

    @staticmethod
    def from_host(a):
        """A host-built helper array (index tables) where the kernels can read it."""
        return np.ascontiguousarray(a)

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def full(shape, dtype, value):
        return np.full(shape, value, dtype=dtype)

    @staticmethod
    def flip_spatial(w, ndim: int):
        """A contiguous copy of ``w`` reversed along its last ``ndim`` axes."""
        index = (slice(None),) * (w.ndim - ndim) + (slice(None, None, -1),) * ndim
        return np.ascontiguousarray(w[index])


class _ThreadSafeKernels:
    """Forwards to the CPU kernel module; serializes calls if numba's threading layer is
    ``workqueue``, the one layer that aborts when two Python threads run parallel kernels
    at once.  With ``omp`` or ``tbb`` (the usual case) calls run concurrently."""

    def __init__(self, module):
        self._module = module
        self._lock = threading.Lock()
        self._layer = None

    def __getattr__(self, name):
        kernel = getattr(self._module, name)

        def call(*args):
            if self._layer is None:  # first call: the layer is chosen at first launch
                with self._lock:
                    kernel(*args)
                    self._layer = threading_layer()
                return
            if self._layer == "workqueue":
                with self._lock:
                    return kernel(*args)
            return kernel(*args)

        call.__name__ = name
        self.__dict__[name] = call  # found directly from now on: no closure per look-up
        return call


def threading_layer() -> str:
    """The numba threading layer in use (``'omp'``, ``'tbb'`` or ``'workqueue'``), or
    ``'not started'`` before the first parallel kernel ran."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return "not started"


_backends: dict = {}
_backends_lock = threading.Lock()


def get_backend(device: str):
    """The backend for ``device`` (created once).  CUDA without a usable GPU raises one
    ``RuntimeError`` that says why."""
    with _backends_lock:
        if device not in _backends:
            if device == CPU:
                _backends[device] = CPUBackend()
            else:
                from ._cuda_backend import CUDABackend

                _backends[device] = CUDABackend()
        return _backends[device]


def backend_for(op: str, **arrays):
    """The backend that runs ``op`` on ``arrays`` (see :func:`device_for`)."""
    return get_backend(device_for(op, **arrays))


# --------------------------------------------------------------------------- algorithms
# The algorithm a kernel falls back to when the chosen one has no variant of it.
CONV_FALLBACK = {"blocked": "tiled", "channel_blocked": "tiled", "tiled": "gemm",
                 "gemm": "direct", "depthwise": "direct", "serial": "direct"}
CPU_ALGORITHMS = ("direct", "serial", "blocked", "channel_blocked", "tiled", "gemm",
                  "depthwise")


_wide = None


def _wide_simd() -> bool:
    """Whether the host has AVX-512 (``kernels.cpu.simd.WIDE``; looked up on first use,
    so that importing numbaconv loads no numba)."""
    global _wide
    if _wide is None:
        from .kernels.cpu import simd

        _wide = simd.WIDE
    return _wide


def _blocked_applies(spec, kernel: str) -> bool:
    """The register-blocked direct conv (``kernels/cpu/conv/blocked.py``) for ``kernel``, on
    an AVX-512 host (its 16 accumulators need 32 vector registers):

    * forward at stride 1: always, but on narrow maps (``OW < config.BLOCKED_NARROW``)
      with at least ``config.BLOCKED_NARROW_CHANNELS`` output channels per group (and
      the tiled kernel's ``config.TILED_MIN_CHANNELS`` input channels), or with at
      least ``config.BLOCKED_NARROW_DEEP_CHANNELS`` input channels per group on at most
      ``config.BLOCKED_NARROW_MAX_PIXELS`` output pixels (up to
      ``config.BLOCKED_NARROW_DEEP_GROUPS`` groups), where its dropped frame columns
      cost more than the tiled kernel's horizontal sums;
    * strided forward (on a frame of stride phases): at least 4 output channels per
      group, at most ``config.BLOCKED_MAX_REDUCTION`` products per output, and a 1x1
      kernel only up to ``config.BLOCKED_STRIDED_1X1_MAX_CHANNELS`` input channels per
      group (a short reduction, where the other paths' column copy or BLAS call cost
      more than the frame); but not, past 1x1, on small narrow maps (``OW <
      config.BLOCKED_NARROW``, at most ``config.BLOCKED_NARROW_MAX_PIXELS`` output
      pixels) of ``config.TILED_MIN_CHANNELS`` or more input channels per group, whose
      short phase rows the tiled kernel's pixel tiles do not waste;
    * grad input: stride 1 (a conv of ``grad_out``);
    * grad weight: stride 1, at least ``config.BLOCKED_GRAD_MIN_CHANNELS`` input and
      output channels per group, ``C_g*kH*kW`` at most
      ``config.BLOCKED_GRAD_MAX_REDUCTION``, not on narrow maps.

    The measurements behind each rule: ``docs/benchmarks/cpu.md``, "The chooser"."""
    if not _wide_simd():
        return False
    stride_1 = spec.stride == (1, 1)
    k_g = spec.out_channels // spec.groups
    c_g = spec.in_channels // spec.groups
    taps = spec.kernel[0] * spec.kernel[1]
    if kernel == "conv2d_grad_weight":
        least = config.BLOCKED_GRAD_MIN_CHANNELS
        return (stride_1 and k_g >= least and c_g >= least
                and c_g * taps <= config.BLOCKED_GRAD_MAX_REDUCTION
                and spec.out_size[1] >= config.BLOCKED_NARROW)
    if kernel == "conv2d_grad_input":
        return stride_1
    if not stride_1:
        return ((spec.kernel != (1, 1) or c_g <= config.BLOCKED_STRIDED_1X1_MAX_CHANNELS)
                and k_g >= 4 and c_g * taps <= config.BLOCKED_MAX_REDUCTION
                and not (c_g >= config.TILED_MIN_CHANNELS and spec.kernel != (1, 1)
                         and spec.out_size[1] < config.BLOCKED_NARROW
                         and spec.out_size[0] * spec.out_size[1]
                         <= config.BLOCKED_NARROW_MAX_PIXELS))
    if spec.out_size[1] >= config.BLOCKED_NARROW:
        return True
    return not ((c_g >= config.TILED_MIN_CHANNELS and k_g >= config.BLOCKED_NARROW_CHANNELS)
                or _narrow_deep(spec))


def _narrow_deep(spec) -> bool:
    """A stride-1 conv on a small narrow map (``OW < config.BLOCKED_NARROW``, at most
    ``config.BLOCKED_NARROW_MAX_PIXELS`` output pixels) with a deep input (at least
    ``config.BLOCKED_NARROW_DEEP_CHANNELS`` channels per group, at most
    ``config.BLOCKED_NARROW_DEEP_GROUPS`` groups): its forward runs tiled."""
    return (spec.stride == (1, 1) and spec.out_size[1] < config.BLOCKED_NARROW
            and spec.in_channels // spec.groups >= config.BLOCKED_NARROW_DEEP_CHANNELS
            and spec.groups <= config.BLOCKED_NARROW_DEEP_GROUPS
            and spec.out_size[0] * spec.out_size[1] <= config.BLOCKED_NARROW_MAX_PIXELS)


def _live_taps(spec, kernel: str = "conv2d_forward") -> float:
    """The share of the conv's (output pixel, tap) pairs whose tap reads inside the
    input, not zero padding: what a kernel that skips padded taps runs (the channel-
    blocked one) of what the others run.  The stride-1 grad input's adjoint conv has as
    many such pairs, over the input's pixels (at 'same' padding the same share); for it
    the larger of the two shares: padding past 'same' is read by the forward only, and
    the adjoint of an unpadded conv, which reads padding all around, kept the rules it
    was measured under (GEMM or blocked).  Another ``padding_mode`` pads with values:
    1."""
    if spec.padding_mode != "zeros":
        return 1.0
    live = _live_share(spec.out_size, spec.in_size, tuple(p[0] for p in spec.pads),
                       spec.kernel, spec.dilation, spec.stride)
    if kernel == "conv2d_grad_input":
        own = live * spec.out_size[0] * spec.out_size[1] / (spec.in_size[0] * spec.in_size[1])
        live = max(live, own)
    return min(1.0, live)


@functools.lru_cache(maxsize=1024)
def _live_share(out_size, in_size, leads, kernel, dilation, stride) -> float:
    live = 1
    for axis in zip(out_size, in_size, leads, kernel, dilation, stride):
        lo, hi = live_taps(*axis)
        live *= int((hi - lo).sum())
    return live / (out_size[0] * out_size[1] * kernel[0] * kernel[1])


_CHANNEL_BLOCK_BYTES = 64  # the channel-blocked kernel's block: one AVX-512 vector


def _channel_blocked_applies(spec, kernel: str) -> bool:
    """Whether the channel-blocked direct conv (``kernels/cpu/conv/channel_blocked.py``:
    a vector of output channels per block, each block's pixels read where they are)
    runs ``kernel``, a forward or a stride-1 grad input (a conv whose outputs are the
    layer's input channels), on an AVX-512 host.

    Terms: *fill*, the share of its channel lanes holding real output channels (a grad
    input counts blocks of 2 vectors, the stricter rule it was measured under);
    *products*, the reduction an output (a forward's ``C_g*kH*kW``, a grad input's
    ``K_g*kH*kW``); *waste*, the share of the blocked kernel's frame columns that
    kernel would compute and drop, ``reach / (width + reach)``, ``reach`` the last
    tap's shift along a frame row ``(kW-1)*dW // sW`` (in stride-phase columns) and
    ``width`` the map's (the output's; a grad input's, the input's); *thin*, under
    ``config.TILED_MIN_CHANNELS`` input channels per group; *narrow*, under
    ``config.BLOCKED_NARROW`` output columns; *small map*, at most
    ``config.CHANNEL_BLOCKED_THIN_MAX_PIXELS`` output pixels an image.  The config names
    in the rules drop their ``CHANNEL_BLOCKED_`` prefix; "from a to b" includes a,
    excludes b; "over n products" means n or more.  The first rule that decides wins:

    1. Taps mostly on padding: a forward or stride-1 grad input at fill
       ``MIN_FILL_LIVE`` over ``MIN_TINY`` products whose (pixel, tap) pairs read inside
       the input at most ``MAX_LIVE`` of the time (``MAX_LIVE_STRIDED`` strided;
       :func:`_live_taps`): yes, the one kernel that skips those taps.
    2. Strided: a forward only, never 1x1.  Yes where thin into
       ``THIN_STRIDED_MIN_OUT_CHANNELS`` output channels or more (over ``MIN_TINY``
       products, or on a small map); else, at fill ``MIN_FILL`` over ``MIN_TINY``
       products, yes where any of: thin on a narrow map with waste
       ``FORWARD_MIN_WASTE`` or more; at most ``TINY_PIXELS`` output pixels in all; from
       ``TILED_MIN_CHANNELS`` to ``STRIDED_MAX_CHANNELS`` input channels per group.
       Else no.
    3. A stride-1 forward, not 1x1, from 2 input channels per group to thin, into
       ``THIN_MIN_OUT_CHANNELS`` output channels or more, on a small map: yes.
    4. A stride-1 forward, not 1x1, from ``TILED_MIN_CHANNELS`` to
       ``NARROW_MAX_CHANNELS`` input channels per group on a narrow map at fill
       ``MIN_FILL``, which the blocked kernel's rules leave to the tiled kernel: yes.
    5. A forward with waste under ``FORWARD_MIN_WASTE`` (the blocked kernel ran wider
       maps faster), or one that :func:`_narrow_deep` sends to the tiled kernel (deep
       inputs on small narrow maps): no.
    6. Fill ``MIN_FILL`` over ``MIN_REDUCTION`` products, or over ``MIN_SHORT`` with
       waste ``MIN_WASTE`` or more: yes.
    7. A forward at fill ``MIN_FILL_LONG`` over ``LONG_REDUCTION`` products, or at fill
       ``MIN_FILL`` over ``MIN_TINY`` with waste ``MIN_WASTE_HIGH`` or more in a layer
       of ``config.GEMM_SMALL_MACS`` multiply-adds or more: yes; else no.

    Why: a block's lanes are output channels, so each broadcast input value feeds a
    vector of them (the blocked kernel's stride phases feed 4, the tiled kernel's runs
    of ``kW*C_g`` values are short in thin layers), and its pixels are read where they
    lie, so no frame column is computed and dropped.  The measurements behind each rule:
    ``docs/benchmarks/cpu.md``, "Session 11" to "Session 16"."""
    if not _wide_simd() or kernel == "conv2d_grad_weight":
        return False
    k_g = spec.out_channels // spec.groups
    c_g = spec.in_channels // spec.groups
    taps = spec.kernel[0] * spec.kernel[1]
    # the last tap's shift along a frame row (of a stride phase, strided)
    reach = (spec.kernel[1] - 1) * spec.dilation[1] // spec.stride[1]
    if kernel == "conv2d_forward":
        outputs, reduction, width = k_g, c_g * taps, spec.out_size[1]
    else:
        outputs, reduction, width = c_g, k_g * taps, spec.in_size[1]
    # the fill of the kernel's blocks (one vector of channels) for a forward; a grad
    # input keeps the fill of blocks of 2 vectors it was measured under, a stricter
    # rule: the blocked kernel ran most of the grad inputs a finer fill would add faster
    # (docs/benchmarks/cpu.md, "Session 15")
    block = (_CHANNEL_BLOCK_BYTES * (1 if kernel == "conv2d_forward" else 2)
             // np.dtype(spec.dtype).itemsize)
    fill = outputs / (-(-outputs // block) * block)
    waste = reach / (width + reach)
    # a small map per image: where the thin rules below send many output channels here
    small_map = spec.out_size[0] * spec.out_size[1] <= config.CHANNEL_BLOCKED_THIN_MAX_PIXELS
    if ((kernel == "conv2d_forward" or spec.stride == (1, 1))
            and fill >= config.CHANNEL_BLOCKED_MIN_FILL_LIVE
            and reduction >= config.CHANNEL_BLOCKED_MIN_TINY
            and _live_taps(spec, kernel) <= (config.CHANNEL_BLOCKED_MAX_LIVE
                                             if spec.stride == (1, 1)
                                             else config.CHANNEL_BLOCKED_MAX_LIVE_STRIDED)):
        return True  # mostly padding: the only kernel that skips the padded taps
    if spec.stride != (1, 1):
        if kernel != "conv2d_forward" or spec.kernel == (1, 1):
            return False
        pixels = spec.batch * spec.out_size[0] * spec.out_size[1]
        if (c_g < config.TILED_MIN_CHANNELS
                and k_g >= config.CHANNEL_BLOCKED_THIN_STRIDED_MIN_OUT_CHANNELS
                and (reduction >= config.CHANNEL_BLOCKED_MIN_TINY or small_map)):
            return True  # thin into many channels: a broadcast feeds a vector of them
        return (fill >= config.CHANNEL_BLOCKED_MIN_FILL
                and reduction >= config.CHANNEL_BLOCKED_MIN_TINY
                and ((c_g < config.TILED_MIN_CHANNELS and width < config.BLOCKED_NARROW
                      and waste >= config.CHANNEL_BLOCKED_FORWARD_MIN_WASTE)
                     or pixels <= config.CHANNEL_BLOCKED_TINY_PIXELS
                     or config.TILED_MIN_CHANNELS <= c_g
                     < config.CHANNEL_BLOCKED_STRIDED_MAX_CHANNELS))
    if (kernel == "conv2d_forward" and spec.kernel != (1, 1)
            and 2 <= c_g < config.TILED_MIN_CHANNELS
            and k_g >= config.CHANNEL_BLOCKED_THIN_MIN_OUT_CHANNELS and small_map):
        return True  # thin into many channels: a broadcast feeds a vector of them
    if (kernel == "conv2d_forward" and spec.kernel != (1, 1)
            and config.TILED_MIN_CHANNELS <= c_g < config.CHANNEL_BLOCKED_NARROW_MAX_CHANNELS
            and width < config.BLOCKED_NARROW and fill >= config.CHANNEL_BLOCKED_MIN_FILL
            and not _blocked_applies(spec, kernel)):
        return True  # few input channels on a narrow map: the tiled kernel's runs are short
    if kernel == "conv2d_forward" and (waste < config.CHANNEL_BLOCKED_FORWARD_MIN_WASTE
                                       or _narrow_deep(spec)):
        return False
    if fill >= config.CHANNEL_BLOCKED_MIN_FILL and (
            reduction >= config.CHANNEL_BLOCKED_MIN_REDUCTION
            or (reduction >= config.CHANNEL_BLOCKED_MIN_SHORT
                and waste >= config.CHANNEL_BLOCKED_MIN_WASTE)):
        return True
    if kernel != "conv2d_forward":
        return False
    macs = (spec.batch * spec.out_size[0] * spec.out_size[1] * spec.out_channels
            * reduction)
    return ((fill >= config.CHANNEL_BLOCKED_MIN_FILL_LONG
             and reduction >= config.CHANNEL_BLOCKED_LONG_REDUCTION)
            or (fill >= config.CHANNEL_BLOCKED_MIN_FILL
                and reduction >= config.CHANNEL_BLOCKED_MIN_TINY
                and waste >= config.CHANNEL_BLOCKED_MIN_WASTE_HIGH
                and macs >= config.GEMM_SMALL_MACS))


def _tiled_grad_in_place(spec) -> bool:
    """Whether the tiled grad weight reads the frame in place for ``spec`` with few
    output channels per group (``config.TILED_GRAD_RUNS_MAX_CHANNELS``; the other
    conditions are ``kernels/cpu/conv/tiled.py``'s ``_grad_runs``: AVX-512, runs that
    are not mostly padding)."""
    k_g = spec.out_channels // spec.groups
    if not _wide_simd() or k_g > config.TILED_GRAD_RUNS_MAX_CHANNELS:
        return False
    from .kernels.cpu.conv import tiled

    return tiled._grad_runs(k_g, spec.in_channels // spec.groups, spec.kernel[0],
                            spec.kernel[1], spec.dilation[1],
                            np.dtype(spec.dtype).itemsize) is not None


def subsampled_pointwise(device: str, spec) -> bool:
    """Whether the forward of a strided 1x1 conv without padding runs as the pointwise
    conv of its input's strided subsample (``x[:, :, ::sH, ::sW]``, copied): the
    pointwise kernels (a flat run per plane, or one product per image) then do what the
    strided kernels did with stride phases, tiles or columns.  Its backward keeps the
    strided kernels (through the subsample it ran no faster: the copy and the scatter
    back cost what the pointwise kernels saved).  CPU only, under
    ``config.CONV_ALGORITHM = 'auto'``; depthwise 1x1 convs of several channels keep
    their one pass (``'direct'``), one input channel is subsampled too.  Measured:
    ``docs/benchmarks/cpu.md``, "Strided 1x1 convs"."""
    return (device == CPU and config.CONV_ALGORITHM == "auto" and spec.kernel == (1, 1)
            and spec.stride != (1, 1) and all(p == (0, 0) for p in spec.pads)
            and not (spec.groups == spec.in_channels > 1))


def choose_conv_algorithm(device: str, spec, kernel: str = "conv2d_forward") -> str:
    """The one place that picks how a convolution runs: ``'direct'``, ``'serial'``,
    ``'blocked'``, ``'channel_blocked'``, ``'tiled'``, ``'gemm'`` or ``'depthwise'``, for
    one of its kernels (``kernel``: ``'conv2d_forward'``, ``'conv2d_grad_input'`` or
    ``'conv2d_grad_weight'``).

    Rules on the CPU (CUDA: :func:`_choose_cuda`), first match wins.  They were derived
    from random layer shapes (``numbaconv bench --random``), each kernel timed under
    every algorithm; the tables are in ``docs/benchmarks/cpu.md``, "The chooser".

    * ``config.CONV_ALGORITHM`` other than ``'auto'`` forces the choice (tests,
      benchmarks); ``'depthwise'`` forced on a non-depthwise conv means ``'direct'``,
      ``'blocked'`` forced on a strided grad input or grad weight, and
      ``'channel_blocked'`` on a strided grad input, means ``'tiled'`` (the
      channel-blocked grad weight falls back to it: :data:`CONV_FALLBACK`).
    * the forward of a thin pointwise conv (1x1, stride 1, no padding, under
      ``config.TILED_MIN_CHANNELS`` input channels per group): ``'serial'`` up to
      ``config.POINTWISE_SERIAL_MAX_MACS`` multiply-accumulates, where waking numba's
      threads costs more; ``'direct'`` (one flat axpy per input channel and output
      plane) for one input channel per group, or up to
      ``config.POINTWISE_DIRECT_MAX_CHANNELS`` on planes of
      ``config.POINTWISE_DIRECT_MIN_PIXELS`` or more, where BLAS runs a product of so
      short a reduction slowly; the others ``'gemm'``, one product per image.
    * a tiny forward (fewer than ``config.DIRECT_MAX_MACS`` multiply-accumulates in
      all): ``'serial'``, the direct kernel on the calling thread: one kernel call where
      the others add a frame or a tile, and no wake-up of numba's threads; but not a
      depthwise one that the depthwise rule below takes (a pass a plane, where the direct
      kernel makes a call a tap and row; cpu.md, "Session 16").
    * the forward of a 1x1 kernel over a single input channel (any stride or padding,
      but an unpadded strided one runs on its subsample: :func:`subsampled_pointwise`):
      ``'direct'``, an outer product, where BLAS (K = 1) and the column copy of a
      strided input are slow.
    * the grad weight of a pointwise conv (1x1, stride 1, no padding) of at least
      ``config.GEMM_POINTWISE_GRAD_MIN_CHANNELS`` input channels per group: ``'gemm'``,
      the images' products ``dy @ x^T`` summed, split by images (along the pixels for
      a batch shorter than the threads; no columns to build); thinner, BLAS's products
      of a few columns run slowly, and the rules below apply.  But into more than
      ``config.GEMM_POINTWISE_GRAD_MAX_OUT_CHANNELS`` output channels per group, on an
      AVX-512 host: ``'tiled'``, whose explicit-vector blocks ran faster (outer products
      on the input in place up to ``config.TILED_GRAD_RUNS_MAX_CHANNELS`` output
      channels, :func:`_tiled_grad_in_place`; dot products over column tiles above).
    * the grad weight of a layer with few output channels per group whose kernel rows
      are long runs in the channels-last frame (:func:`_tiled_grad_in_place`):
      ``'tiled'``, which then sums outer products of ``grad_out`` values and frame
      vectors read in place; every other grad weight builds columns, whose copy costs
      more than the products when few output channels share it.  Before that, a grad
      weight (not 1x1, not depthwise) of at least
      ``config.GEMM_GRAD_WEIGHT_MIN_OUT_CHANNELS`` output channels per group from at
      most ``config.GEMM_GRAD_WEIGHT_MAX_PIXELS`` output pixels: ``'gemm'``, one product,
      where the tiled kernel's threads would each sum a partial copy of the weights.
    * a depthwise 1x1 conv (any stride, padding or channel multiplier): ``'direct'``,
      one pass over each plane, where the GEMM path made one tiny product per plane.
    * 1x1 at stride 1 without padding: ``'gemm'``, a plain matrix product per group (the
      input already is the column matrix), through :mod:`kernels.cpu.blas`.
    * a strided grad input whose reduction (``K_g*kH*kW`` values per input pixel) has at
      least ``config.GEMM_GRAD_INPUT_MIN_REDUCTION`` values, or of a 1x1 kernel, or of
      4+ output channels per group and at most ``config.GEMM_GRAD_INPUT_MAX_PIXELS``
      output pixels: ``'gemm'`` (BLAS, then col2im), where the tiled kernel's tiles of
      64 pixels outgrow the cache, or its stride phases cost more than one product and
      a scatter (1x1; few pixels, for which each phase streams the weights).
    * depthwise (``groups == C_in``) with more than one channel: ``'depthwise'``,
      per-channel kernels on stride-phase planes; but a channel multiplier of
      ``config.DEPTHWISE_MAX_MULTIPLIER`` or more (of at least
      ``config.GEMM_MIN_MACS_PER_PIXEL`` products per pixel) takes the dense rules below
      for its grad weight and for a forward strided or past 3x3 (their kernels reuse
      each input vector across the output channels), and its grad input the next rule
      where that applies.  A single input channel (an MNIST first layer) takes the dense rules
      below, where the depthwise kernels' one plane ran slower, but for its stride-1
      grad input of kernels up to 5x5, where they won (the 3x3 forward won too, by less
      than its compile costs the main job).
    * a stride-1 grad input whose input planes are at least
      ``config.GEMM_GRAD_INPUT_SHRINK`` times the output's (a large unpadded kernel,
      often dilated), of at least ``config.GEMM_GRAD_INPUT_SHRINK_MIN_OUT_CHANNELS``
      output channels per group (a depthwise conv's, from the multiplier above):
      ``'gemm'``, whose product is the layer's own work, where the adjoint conv of the
      other kernels computes every input pixel over every tap, mostly over zeros.
    * a small grad input (under ``config.GEMM_SMALL_MACS``
      multiply-accumulates) with at least 4 output channels per group if strided, at
      least ``config.GEMM_SMALL_GRAD_INPUT_MIN_OUT_CHANNELS`` at stride 1: ``'gemm'``,
      one product and a scatter, where the tiled and blocked kernels' frames, phases
      and tiles cost more than the work; and so a small strided forward (not 1x1) of at
      least ``config.GEMM_SMALL_FORWARD_MIN_OUT_CHANNELS`` output channels per group.
    * where :func:`_channel_blocked_applies` (a stride-1 forward or grad input whose
      output channels fill the blocks of a vector, over a long reduction or a small
      map, or of 8-15 input channels on a narrow map, or of 2-7 into 100+ output
      channels on a map of up to 1024 pixels; a strided forward of 8-47 input
      channels per group, a thin one on a narrow map or into 64+ output channels, or one
      of few pixels; and a layer whose taps mostly read padding, :func:`_live_taps`):
      ``'channel_blocked'``, vectors along the output channels, each block's pixels
      read where they are, so no frame column is computed and dropped, and the taps
      that read only padding are skipped.
    * thin groups (under ``config.TILED_MIN_CHANNELS`` input channels) whose product has
      fewer than ``config.GEMM_MIN_MACS_PER_PIXEL`` multiply-accumulates per output
      pixel: ``'direct'``, which reads the input once; but a stride-1 forward with more
      than one output channel per group runs blocked where that applies (AVX-512).
    * where :func:`_blocked_applies`: ``'blocked'``, the register-blocked direct conv:
      vectors along the output pixels, no horizontal sums, no im2col; but a grad input
      (not 1x1) of at least ``config.GEMM_GRAD_INPUT_MIN_OUT_CHANNELS`` output channels
      per group, thin (under ``config.TILED_MIN_CHANNELS`` input channels per group) or
      of at most ``config.GEMM_GRAD_INPUT_MAX_PIXELS`` output pixels in all, ``'gemm'``:
      the adjoint conv has few outputs there (channels or pixels) for long sums, and
      the blocked kernel's blocks run mostly empty; so does one not thin, over at least
      ``config.GEMM_GRAD_INPUT_LIVE_MIN_REDUCTION`` products, whose taps read padding
      on more than ``1 - config.GEMM_GRAD_INPUT_MAX_LIVE`` of their (pixel, tap) pairs
      (:func:`_live_taps`; the blocked kernel's frame would be mostly padding).
    * at least ``config.TILED_MIN_CHANNELS`` input channels per group: ``'tiled'``,
      im2col tiles multiplied in cache by numba's dot-product blocks; any kernel,
      stride, dilation, groups.
    * else ``'gemm'`` (a thin strided grad input, and every thin kernel on hosts
      without AVX-512), but the grad weight ``'tiled'``: its reduction runs over pixels,
      so thin inputs still give long rows.

    A kernel without a variant for the chosen algorithm runs the next one in
    :data:`CONV_FALLBACK` (blocked, channel_blocked -> tiled -> gemm -> direct;
    depthwise, serial -> direct).
    """
    if device != CPU:
        return _choose_cuda(spec)
    depthwise = spec.groups == spec.in_channels
    if config.CONV_ALGORITHM != "auto":
        if config.CONV_ALGORITHM not in CPU_ALGORITHMS:
            raise ValueError(
                f"config.CONV_ALGORITHM must be 'auto' or one of {CPU_ALGORITHMS}; got "
                f"{config.CONV_ALGORITHM!r} (Winograd was removed: it won no layer)")
        if config.CONV_ALGORITHM == "depthwise" and not depthwise:
            return "direct"
        if spec.stride != (1, 1) and (
                (config.CONV_ALGORITHM == "blocked" and kernel != "conv2d_forward")
                or (config.CONV_ALGORITHM == "channel_blocked"
                    and kernel == "conv2d_grad_input")):
            return "tiled"
        return config.CONV_ALGORITHM
    macs = (spec.batch * spec.out_channels * spec.out_size[0] * spec.out_size[1]
            * spec.in_channels // spec.groups * spec.kernel[0] * spec.kernel[1])
    pointwise = (spec.kernel == (1, 1) and spec.stride == (1, 1)
                 and all(p == (0, 0) for p in spec.pads) and spec.in_size == spec.out_size)
    if (kernel == "conv2d_forward" and pointwise
            and spec.in_channels // spec.groups < config.TILED_MIN_CHANNELS):
        # a thin pointwise forward: flat axpys on one thread, or on numba's threads
        # for the thinnest; else one BLAS product per image
        if macs <= config.POINTWISE_SERIAL_MAX_MACS:
            return "serial"
        c_g = spec.in_channels // spec.groups
        if c_g == 1 or (c_g <= config.POINTWISE_DIRECT_MAX_CHANNELS and spec.out_size[0]
                        * spec.out_size[1] >= config.POINTWISE_DIRECT_MIN_PIXELS):
            return "direct"  # one channel: an outer product, or a per-channel scale
        return "gemm"  # one product per image: its 3-7 rows beat the flat axpys
    if (kernel == "conv2d_forward" and macs < config.DIRECT_MAX_MACS
            and not (depthwise and spec.in_channels > 1
                     and spec.out_channels // spec.groups < config.DEPTHWISE_MAX_MULTIPLIER)):
        # one kernel call: the others' frames and tiles cost more; but a depthwise
        # conv's kernel, one pass a plane, beats the direct kernel's call a tap and row
        return "serial"
    if spec.kernel == (1, 1) and spec.in_channels == 1 and kernel == "conv2d_forward":
        return "direct"  # an outer product: BLAS is slow at K = 1
    if (kernel == "conv2d_grad_weight" and pointwise
            and spec.in_channels // spec.groups >= config.GEMM_POINTWISE_GRAD_MIN_CHANNELS):
        if (_wide_simd()
                and spec.out_channels // spec.groups > config.GEMM_POINTWISE_GRAD_MAX_OUT_CHANNELS):
            return "tiled"  # its explicit-vector blocks: outer products, or dot products
        return "gemm"  # the images' products summed (blas.matmul_sum): no columns to build
    if (kernel == "conv2d_grad_weight" and spec.kernel != (1, 1)
            and (spec.groups != spec.in_channels or spec.in_channels == 1)
            and spec.batch * spec.out_size[0] * spec.out_size[1]
            <= config.GEMM_GRAD_WEIGHT_MAX_PIXELS
            and spec.out_channels // spec.groups >= config.GEMM_GRAD_WEIGHT_MIN_OUT_CHANNELS):
        return "gemm"  # many weights from few pixels: one product, no per-thread partials
    if kernel == "conv2d_grad_weight" and _tiled_grad_in_place(spec):
        return "tiled"  # few output channels: outer products on the frame, no columns
    if depthwise and spec.in_channels > 1 and spec.kernel == (1, 1):
        return "direct"  # a per-channel scale: one pass over each plane
    if pointwise:
        return "gemm"
    k_g = spec.out_channels // spec.groups
    c_g = spec.in_channels // spec.groups
    # the planes the grad input computes: the padded input's under a padding_mode
    # other than zeros (its kernel runs on the padded input, then folds the pads back)
    plane = spec.padded_size if spec.padding_mode != "zeros" else spec.in_size
    shrink = (kernel == "conv2d_grad_input" and spec.stride == (1, 1)
              and plane[0] * plane[1]
              >= config.GEMM_GRAD_INPUT_SHRINK * spec.out_size[0] * spec.out_size[1]
              and k_g >= config.GEMM_GRAD_INPUT_SHRINK_MIN_OUT_CHANNELS)
    # a large channel multiplier (and enough products per pixel that the dense rules
    # do not send it to the direct kernel): its grad weight, its forward past 3x3 or
    # strided, and its grad input where the shrink rule applies take the dense rules
    multiplied = (k_g >= config.DEPTHWISE_MAX_MULTIPLIER
                  and k_g * spec.kernel[0] * spec.kernel[1] >= config.GEMM_MIN_MACS_PER_PIXEL
                  and (kernel == "conv2d_grad_weight"
                       or (kernel == "conv2d_grad_input" and shrink)
                       or (kernel == "conv2d_forward"
                           and (spec.stride != (1, 1) or max(spec.kernel) > 3))))
    if depthwise and spec.in_channels > 1 and not multiplied:
        return "depthwise"
    if (spec.in_channels == 1 and kernel == "conv2d_grad_input" and spec.stride == (1, 1)
            and spec.kernel != (1, 1) and max(spec.kernel) <= 5):
        return "depthwise"  # K planes summed into one: the depthwise kernels' loops
    if shrink:
        return "gemm"  # the adjoint conv would run mostly over zeros
    if (kernel == "conv2d_grad_input" and spec.stride != (1, 1)
            and (spec.kernel == (1, 1)
                 or k_g * spec.kernel[0] * spec.kernel[1]
                 >= config.GEMM_GRAD_INPUT_MIN_REDUCTION
                 or (k_g >= 4 and spec.batch * spec.out_size[0] * spec.out_size[1]
                     <= config.GEMM_GRAD_INPUT_MAX_PIXELS))):
        # 1x1: one product, then a scatter; long: the tiles outgrow the cache; few
        # pixels: the stride phases' convs would each stream the weights for a few
        return "gemm"
    if (kernel == "conv2d_grad_input" and macs < config.GEMM_SMALL_MACS
            and k_g >= (4 if spec.stride != (1, 1)
                        else config.GEMM_SMALL_GRAD_INPUT_MIN_OUT_CHANNELS)):
        return "gemm"  # a small adjoint conv: one product and a scatter cost least
    if (kernel == "conv2d_forward" and spec.stride != (1, 1) and spec.kernel != (1, 1)
            and macs < config.GEMM_SMALL_MACS
            and k_g >= config.GEMM_SMALL_FORWARD_MIN_OUT_CHANNELS):
        return "gemm"  # a small strided forward into many channels: one product
    if _channel_blocked_applies(spec, kernel):
        return "channel_blocked"  # vectors along the output channels: no dropped columns
    macs = k_g * c_g * spec.kernel[0] * spec.kernel[1]
    if c_g < config.TILED_MIN_CHANNELS and macs < config.GEMM_MIN_MACS_PER_PIXEL:
        several = kernel == "conv2d_forward" and spec.stride == (1, 1) and k_g > 1
        if not (several and _blocked_applies(spec, kernel)):
            return "direct"
    if _blocked_applies(spec, kernel):
        if (kernel == "conv2d_grad_input" and spec.kernel != (1, 1)
                and ((k_g >= config.GEMM_GRAD_INPUT_MIN_OUT_CHANNELS
                      and (c_g < config.TILED_MIN_CHANNELS
                           or spec.batch * spec.out_size[0] * spec.out_size[1]
                           <= config.GEMM_GRAD_INPUT_MAX_PIXELS))
                     or (c_g >= config.TILED_MIN_CHANNELS
                         and k_g * spec.kernel[0] * spec.kernel[1]
                         >= config.GEMM_GRAD_INPUT_LIVE_MIN_REDUCTION
                         and _live_taps(spec, kernel) <= config.GEMM_GRAD_INPUT_MAX_LIVE))):
            # the adjoint conv: few outputs (thin, or few pixels) for long sums, or
            # mostly padding, which the blocked kernel computes with every dropped column
            return "gemm"
        return "blocked"
    if c_g >= config.TILED_MIN_CHANNELS:
        return "tiled"
    return "tiled" if kernel == "conv2d_grad_weight" else "gemm"


def _choose_cuda(spec) -> str:
    """CUDA: ``'depthwise'`` for depthwise convs, ``'tiled'`` otherwise (whose launcher
    asks ``kernels/cuda/tuner.py`` for the tile, or the direct kernel on tiny layers).
    A forced ``config.CONV_ALGORITHM``: ``'direct'`` and ``'tiled'`` as named, ``'serial'``
    (the CPU's one-thread direct forward) ``'direct'``, ``'depthwise'`` on a non-depthwise
    conv ``'direct'``, the other CPU-only names ``'tiled'``."""
    depthwise = spec.groups == spec.in_channels
    forced = config.CONV_ALGORITHM
    if forced in ("direct", "serial") or (forced == "depthwise" and not depthwise):
        return "direct"
    if forced == "depthwise" or (forced == "auto" and depthwise):
        return "depthwise"
    return "tiled"


# --------------------------------------------------------------------------- moving data
def cuda_available() -> tuple[bool, str]:
    """(True, description) when a CUDA device (or the simulator) can run kernels, else
    (False, the reason)."""
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - numba-cuda is a dependency
        return False, f"numba-cuda could not be imported: {exc}"
    try:
        if cuda.is_available():
            return True, "simulator" if _simulator() else "gpu"
        return False, _cuda_unavailable_reason(cuda)
    except Exception as exc:  # pragma: no cover - driver errors vary
        return False, str(exc).strip()


def _simulator() -> bool:
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False))


def _cuda_unavailable_reason(cuda) -> str:
    try:
        cuda.detect()
    except Exception as exc:
        return " ".join(str(exc).split())
    return "no CUDA-capable device was found"


def require_cuda(op: str = "numbaconv"):
    ok, why = cuda_available()
    if not ok:
        raise RuntimeError(
            f"{op}: a CUDA array was given but CUDA is not available ({why}). "
            f"Use NumPy arrays to run on the CPU."
        )


def to_device(a, stream=0):
    """Copy a host array to the GPU (a numba device array); device arrays pass through."""
    if device_of(a) == CUDA:
        return a
    require_cuda("to_device")
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a), stream=stream)


def new_like(like, shape, dtype=None, zero=False):
    """A new array of ``like``'s kind (NumPy, CuPy, or a numba device array) and device,
    empty or zero-filled."""
    dtype = like.dtype if dtype is None else dtype
    library = type(like).__module__.partition(".")[0]
    if library in ("numpy", "cupy"):
        import importlib

        xp = importlib.import_module(library)
        return (xp.zeros if zero else xp.empty)(shape, dtype)
    be = get_backend(device_of(like))
    return be.zeros(shape, dtype) if zero else be.empty(shape, dtype)


def to_host(a):
    """Copy a GPU array to a NumPy array; NumPy arrays pass through."""
    if device_of(a) == CPU:
        return np.asarray(a)
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    from numba import cuda

    return cuda.as_cuda_array(a).copy_to_host()


@contextlib.contextmanager
def use_stream(stream):
    """Launch numbaconv's CUDA kernels on ``stream`` inside the ``with`` block.

    ``stream`` is a numba stream: ``numba.cuda.stream()``, or
    ``numba.cuda.external_stream(ptr)`` wrapping a CuPy (``cupy.cuda.Stream().ptr``) or
    PyTorch (``torch.cuda.current_stream().cuda_stream``) stream, so numbaconv's work is
    ordered with theirs.  Library-wide (not per thread)."""
    previous = config.CUDA_STREAM
    config.CUDA_STREAM = stream
    try:
        yield stream
    finally:
        config.CUDA_STREAM = previous


# --------------------------------------------------------------------------- result types
def _foreign_library(a):
    """``'cupy'`` or ``'torch'`` for a GPU array of that library, else None."""
    if hasattr(a, "copy_to_host") or not hasattr(a, "__cuda_array_interface__"):
        return None  # numba device arrays (and host arrays) stay as they are
    library = type(a).__module__.partition(".")[0]
    return library if library in ("cupy", "torch") else None


def like_caller(result, caller):
    """``result`` (a numba device array) as the GPU array type of ``caller``, without a
    copy: a CuPy array for CuPy input, a PyTorch CUDA tensor for a tensor; both view the
    same memory through ``__cuda_array_interface__`` and keep ``result`` alive."""
    library = _foreign_library(caller)
    if library is None or result is None:
        return result
    if library == "cupy":
        import cupy

        return cupy.asarray(result)
    import torch

    return torch.as_tensor(result, device=caller.device)


def _host_view(a):
    """``(array the kernels can take, whether it was a torch CPU tensor)``: a torch CPU
    tensor becomes its NumPy view (no copy), a non-native byte order a native copy (the
    caller's array is never changed); everything else passes as it is."""
    if isinstance(a, np.ndarray):
        if a.dtype.byteorder not in "=|" and not a.dtype.isnative:
            return a.astype(a.dtype.newbyteorder("=")), False
        return a, False
    if type(a).__module__.partition(".")[0] == "torch" and hasattr(a, "numpy") \
            and getattr(a, "device", None) is not None and a.device.type == "cpu":
        return _host_view(a.detach().numpy())[0], True
    return a, False


def returns_caller_type(op):
    """Decorate a functional op so that its array results come back as the caller's
    array type: CuPy in, CuPy out; PyTorch tensors in (CPU or CUDA), tensors out; NumPy
    and numba arrays as they are.  Torch CPU tensors reach the kernels as NumPy views and
    big-endian arrays as native copies (``_host_view``); the check is a type look-up per
    argument."""
    import functools

    @functools.wraps(op)
    def wrapper(*args, **kwargs):
        torch_cpu = False
        if not all(a is None or type(a) is np.ndarray and a.dtype.isnative
                   for a in (*args, *kwargs.values()) if not _plain(a)):
            views = [_host_view(a) for a in args]
            kviews = {k: _host_view(v) for k, v in kwargs.items()}
            torch_cpu = any(t for _, t in views) or any(t for _, t in kviews.values())
            args = tuple(v for v, _ in views)
            kwargs = {k: v for k, (v, _) in kviews.items()}
        result = op(*args, **kwargs)
        if torch_cpu:
            import torch

            if isinstance(result, tuple):
                return tuple(None if r is None else torch.from_numpy(r) for r in result)
            return torch.from_numpy(result)
        caller = next((a for a in (*args, *kwargs.values()) if _foreign_library(a)), None)
        if caller is None:
            return result
        if isinstance(result, tuple):
            return tuple(like_caller(r, caller) for r in result)
        return like_caller(result, caller)

    return wrapper


def _plain(a):
    """Arguments that are not arrays (ints, tuples, strings, None)."""
    return a is None or isinstance(a, (int, float, str, tuple, list, bool))
