"""CPU kernels.  Exports the same names, with the same signatures, as ``kernels.cuda``.

``conv/`` holds the convolution algorithms (direct, blocked, channel-blocked, tiled, GEMM,
depthwise); the other modules are the ops (pool, pad, im2col, shuffle, elementwise,
reduce) and the helpers the kernels share (``rows``, ``simd``, ``gemm``, ``blas``,
``workspace``, and ``shares``: how a parallel kernel runs as serial per-thread shares)."""

from .conv import (add_channel_bias, conv2d_forward, conv2d_forward_blocked,
                   conv2d_forward_channel_blocked, conv2d_grad_input_channel_blocked,
                   conv2d_forward_depthwise, conv2d_forward_gemm, conv2d_forward_serial,
                   conv2d_forward_tiled,
                   conv2d_grad_bias, conv2d_grad_input, conv2d_grad_input_blocked,
                   conv2d_grad_input_depthwise, conv2d_grad_input_gemm,
                   conv2d_grad_input_tiled, conv2d_grad_weight, conv2d_grad_weight_blocked,
                   conv2d_grad_weight_depthwise, conv2d_grad_weight_gemm,
                   conv2d_grad_weight_tiled)
from .elementwise import (activation_backward, activation_forward, adam_step, axpby,
                          copy_channels, dropout_mask, multiply, sgd_step)
from .im2col import col2im, im2col
from .pad import pad2d_backward, pad2d_forward
from .pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward,
                   global_avg_pool2d_forward, interpolate2d_backward,
                   interpolate2d_forward, max_pool2d_backward, max_pool2d_forward)
from .reduce import (batch_norm_backward, batch_norm_finish, batch_norm_forward,
                     channel_dot_sums, channel_moments, cross_entropy_rows, matmul,
                     sum_squares)
from .shuffle import channel_shuffle

KERNELS = (
    "conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias",
    "add_channel_bias", "pad2d_forward", "pad2d_backward", "im2col", "col2im",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward",
    "interpolate2d_forward", "interpolate2d_backward", "channel_shuffle",
    # the layer API's kernels (numbaconv.nn._ops): activations, arithmetic, dropout,
    # batch norm, cross-entropy, sums of squares, Linear's product, optimizer updates
    "activation_forward", "activation_backward", "axpby", "multiply", "dropout_mask",
    "copy_channels", "channel_moments", "channel_dot_sums", "batch_norm_finish",
    "batch_norm_forward", "batch_norm_backward", "cross_entropy_rows", "sum_squares",
    "matmul", "sgd_step", "adam_step",
)

# CPU-only algorithms, chosen by ``dispatch.choose_conv_algorithm``, with the signatures
# of the direct kernels they replace: the direct forward on one thread (tiny layers),
# register-blocked direct (vectors along the pixels, or along the output channels), im2col
# tiles with numba's GEMM, BLAS-backed GEMM, depthwise.  (Winograd F(2x2, 3x3) was removed: 2-6x
# slower than the chosen kernel on every random 3x3 layer, docs/benchmarks/cpu.md.)
SERIAL_KERNELS = ("conv2d_forward_serial",)
BLOCKED_KERNELS = ("conv2d_forward_blocked", "conv2d_grad_input_blocked",
                   "conv2d_grad_weight_blocked")
CHANNEL_BLOCKED_KERNELS = ("conv2d_forward_channel_blocked",
                           "conv2d_grad_input_channel_blocked")  # no grad weight
TILED_KERNELS = ("conv2d_forward_tiled", "conv2d_grad_input_tiled", "conv2d_grad_weight_tiled")
GEMM_KERNELS = ("conv2d_forward_gemm", "conv2d_grad_input_gemm", "conv2d_grad_weight_gemm")
DEPTHWISE_KERNELS = ("conv2d_forward_depthwise", "conv2d_grad_input_depthwise",
                     "conv2d_grad_weight_depthwise")
