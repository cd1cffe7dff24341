"""conv_transpose1d / conv_transpose2d and their backward.

A transposed convolution is the adjoint of a convolution, so it runs on the very
conv primitives (``kernels/*/conv``) with the roles of the arrays swapped (``spec`` below describes
the convolution whose *input* is the transposed conv's output):

* forward      y  = ``conv2d_grad_input``(x, w)        (a gather: no racing scatter)
* grad input   dx = ``conv2d_forward``(dy, w)          (an ordinary convolution)
* grad weight  dw = ``conv2d_grad_weight``(dy, x)      (input and output roles swapped)
* grad bias    db = ``conv2d_grad_bias``(dy)

The weight is ``(C_in, C_out // groups, kH, kW)`` (PyTorch's layout), which is exactly
the layout of the adjoint convolution's weight ``(C_out', C_in' // groups, ...)``.  The
algorithm chooser picks its kernels as for any convolution (on the CPU usually the tiled
grad input: one stride-1 convolution per stride phase of the output).
"""

from __future__ import annotations

from .._args import check_float_dtypes, check_shape
from .._specs import conv_transpose_spec
from ..dispatch import backend_for
from ._common import as_4d
from .conv import _kernel


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution ("deconvolution") over ``(N, C_in, L)`` data.

    ``weight`` is ``(C_in, C_out // groups, kL)``; the output is ``(N, C_out, L_out)`` with
    ``L_out = (L - 1) * stride - 2 * padding + dilation * (kL - 1) + output_padding + 1``.
    ``output_padding`` (< stride or dilation) picks among the input sizes a strided
    convolution maps to the same length.  Raises TypeError / ValueError as ``conv1d``.
    """
    spec = conv_transpose_spec("conv_transpose1d", 1, x, weight, bias, stride, padding,
                               output_padding, groups, dilation)
    return _forward(spec, x, weight, bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution over ``(N, C_in, H, W)`` data.

    ``weight`` is ``(C_in, C_out // groups, kH, kW)``; the output is ``(N, C_out, H_out,
    W_out)``, ``H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) +
    output_padding + 1`` (likewise W).  Each input pixel stamps the kernel, scaled, onto
    the output at ``stride`` spacing; overlapping stamps add (uneven overlap when the
    kernel size is not a multiple of the stride: see ``analysis.checkerboard``).
    """
    spec = conv_transpose_spec("conv_transpose2d", 2, x, weight, bias, stride, padding,
                               output_padding, groups, dilation)
    return _forward(spec, x, weight, bias)


def conv_transpose1d_backward(grad_output, x, weight, bias=None, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1):
    """Gradients of :func:`conv_transpose1d`: ``(grad_input, grad_weight, grad_bias)``."""
    spec = conv_transpose_spec("conv_transpose1d_backward", 1, x, weight, bias, stride,
                               padding, output_padding, groups, dilation)
    return _backward(spec, grad_output, x, weight, bias)


def conv_transpose2d_backward(grad_output, x, weight, bias=None, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1):
    """Gradients of :func:`conv_transpose2d`: ``(grad_input, grad_weight, grad_bias)``."""
    spec = conv_transpose_spec("conv_transpose2d_backward", 2, x, weight, bias, stride,
                               padding, output_padding, groups, dilation)
    return _backward(spec, grad_output, x, weight, bias)


def _output_shape(spec):
    """Shape of the transposed conv's output (the adjoint convolution's input)."""
    return (spec.batch, spec.in_channels) + spec.in_size[2 - spec.ndim:]


def _forward(spec, x, weight, bias):
    be = backend_for(spec.op, input=x, weight=weight, bias=bias)
    x4, w4 = as_4d(be, x), as_4d(be, weight)
    out = be.empty((spec.batch, spec.in_channels) + spec.in_size, spec.dtype)
    _kernel(be, spec, "conv2d_grad_input")(x4, w4, out, spec.kernel_geometry(False))
    if bias is not None:
        be.kernels.add_channel_bias(out, be.asarray(bias))
    return out.reshape(_output_shape(spec))


def _backward(spec, grad_output, x, weight, bias):
    check_float_dtypes(spec.op, grad_output=grad_output, input=x, weight=weight, bias=bias)
    check_shape(spec.op, "grad_output", grad_output, _output_shape(spec))
    be = backend_for(spec.op, grad_output=grad_output, input=x, weight=weight, bias=bias)
    go, x4, w4 = as_4d(be, grad_output), as_4d(be, x), as_4d(be, weight)
    geometry = spec.kernel_geometry(False)

    grad_x = be.empty(x4.shape, spec.dtype)
    zero_bias = be.zeros((spec.out_channels,), spec.dtype)
    _kernel(be, spec, "conv2d_forward")(go, w4, zero_bias, grad_x, geometry)
    grad_w = be.empty(w4.shape, spec.dtype)
    _kernel(be, spec, "conv2d_grad_weight")(go, x4, grad_w, geometry)
    grad_b = None
    if bias is not None:
        grad_b = be.empty((spec.in_channels,), spec.dtype)
        be.kernels.conv2d_grad_bias(go, grad_b)
    return grad_x.reshape(x.shape), grad_w.reshape(weight.shape), grad_b
