"""CUDA kernels (numba-cuda).  Exports the same names, with the same signatures, as
``kernels.cpu`` (see ``kernels.cpu.KERNELS``); each name is a launcher that picks its
grid at call time.  The conv algorithms are the twins of ``kernels/cpu/conv/``'s:
``conv.py`` (direct, one thread per output), ``tiled.py`` (implicit GEMM in shared-memory
tiles), ``depthwise.py`` (direct with shared-memory halo tiles), and ``tuner.py``, which
picks among the direct and tiled kernels per shape (the CPU-only members, blocked and
GEMM, have no twin: ``dispatch._choose_cuda``).  Every launch goes through ``_launch.launch`` (counted).

Imported only when a GPU array is given (``dispatch.get_backend``), so importing
numbaconv never touches the CUDA driver.
"""

from .conv import (add_channel_bias, conv2d_forward, conv2d_grad_bias, conv2d_grad_input,
                   conv2d_grad_weight)
from .depthwise import (conv2d_forward_depthwise, conv2d_grad_input_depthwise,
                        conv2d_grad_weight_depthwise)
from .tiled import conv2d_forward_tiled, conv2d_grad_input_tiled, conv2d_grad_weight_tiled
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
from .util import fill, flip_spatial_2d
