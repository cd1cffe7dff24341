"""CPU kernels.  Exports the same names, with the same signatures, as ``kernels.cuda``."""

from .conv import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from .gemm_conv import conv2d_forward_gemm, conv2d_grad_input_gemm, conv2d_grad_weight_gemm
from .im2col import col2im, im2col
from .pad import pad2d_backward, pad2d_forward

KERNELS = (
    "conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias",
    "pad2d_forward", "pad2d_backward", "im2col", "col2im",
)

# CPU-only algorithms (BLAS-backed), chosen by ``dispatch.choose_conv_algorithm``; same
# signatures as the direct kernels they replace.
GEMM_KERNELS = ("conv2d_forward_gemm", "conv2d_grad_input_gemm", "conv2d_grad_weight_gemm")
