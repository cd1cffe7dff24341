"""CPU kernels.  Exports the same names, with the same signatures, as ``kernels.cuda``."""

from .conv import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from .pad import pad2d_backward, pad2d_forward

KERNELS = (
    "conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias",
    "pad2d_forward", "pad2d_backward",
)
