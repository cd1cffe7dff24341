"""The functional ops: validate once (``numbaconv._args`` / ``numbaconv._specs``), pick
the device's kernels (``numbaconv.dispatch``), allocate, launch.  One module per op
family; every forward ``op`` has an ``op_backward``."""

from ..dispatch import returns_caller_type
from ._edges import edges
from ._plans import planned_conv, planned_conv_backward
from .conv import conv1d, conv1d_backward, conv2d, conv2d_backward
from .fold import fold, fold_backward, unfold, unfold_backward
from .interpolate import interpolate, interpolate_backward
from .layout import channel_shuffle, channel_shuffle_backward, pad, pad_backward
from .pool import (
    adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward, adaptive_max_pool1d, adaptive_max_pool1d_backward,
    adaptive_max_pool2d, adaptive_max_pool2d_backward, avg_pool1d, avg_pool1d_backward,
    avg_pool2d, avg_pool2d_backward, max_pool1d, max_pool1d_backward, max_pool2d,
    max_pool2d_backward,
)
from .transpose import (
    conv_transpose1d, conv_transpose1d_backward, conv_transpose2d, conv_transpose2d_backward,
)

FORWARD_OPS = (
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d",
    "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "unfold", "fold", "interpolate",
    "channel_shuffle", "pad",
)

__all__ = [name for op in FORWARD_OPS for name in (op, op + "_backward")]

# Every public op takes PyTorch's edge cases (``_edges``: unbatched input, empty batch,
# zero output channels, cropping pads) and returns its caller's array type: CuPy in,
# CuPy out; PyTorch tensors in, tensors out (``dispatch.returns_caller_type``).
for _name in __all__:
    globals()[_name] = returns_caller_type(edges(_name, globals()[_name]))
del _name
# A conv call that repeats an earlier call's signature runs its kernel directly (_plans).
conv1d, conv2d = planned_conv(1, conv1d), planned_conv(2, conv2d)
conv1d_backward = planned_conv_backward(1, conv1d_backward)
conv2d_backward = planned_conv_backward(2, conv2d_backward)
