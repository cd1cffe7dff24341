"""The CPU convolution algorithms: one family, six members with one signature.

Every member computes the same three kernels, ``conv2d_forward``, ``conv2d_grad_input``
and ``conv2d_grad_weight``, with the direct kernels' signatures and contract
(``direct.py``), so ``dispatch.choose_conv_algorithm`` swaps one for another per kernel
and per shape.  Where a member has no variant of a kernel, the kernel runs the next
member in ``dispatch.CONV_FALLBACK``.

* ``direct``: one output plane per job, loops along output rows.  Any geometry: the
  reference the others fall back to.  Its forward also comes on one thread
  (``conv2d_forward_serial``, algorithm ``'serial'``): the fastest for tiny products,
  and the quickest kernel to compile.
* ``blocked``: register-blocked direct conv on a flat frame, vectors along the output
  pixels, no horizontal sums, no im2col (AVX-512 hosts).
* ``channel_blocked``: register-blocked direct conv, vectors along the output
  channels, each block's pixels read at their own offsets: nothing computed and dropped
  on small maps (AVX-512 hosts; forward and stride-1 grad input).
* ``tiled``: im2col tiles built in cache and multiplied by numba's dot-product blocks
  (``..gemm``), never BLAS.
* ``gemm`` (``im2col_gemm.py``): im2col per chunk of images, then BLAS products
  (``..blas``), per image on larger maps, one per group on small ones; 1x1 layers need
  no im2col.
* ``depthwise``: per-channel kernels on stride-phase planes (``groups == C_in``).

The row primitives they share are in ``..rows``, the vector helpers in ``..simd``, the
per-thread buffers in ``..workspace``.
"""

from .blocked import conv2d_forward_blocked, conv2d_grad_input_blocked, conv2d_grad_weight_blocked
from .channel_blocked import conv2d_forward_channel_blocked, conv2d_grad_input_channel_blocked
from .depthwise import (conv2d_forward_depthwise, conv2d_grad_input_depthwise,
                        conv2d_grad_weight_depthwise)
from .direct import (add_channel_bias, conv2d_forward, conv2d_forward_serial, conv2d_grad_bias,
                     conv2d_grad_input, conv2d_grad_weight)
from .im2col_gemm import conv2d_forward_gemm, conv2d_grad_input_gemm, conv2d_grad_weight_gemm
from .tiled import conv2d_forward_tiled, conv2d_grad_input_tiled, conv2d_grad_weight_tiled
