"""unfold (im2col) and fold (col2im): each is the other's backward.

``unfold`` lays each sliding block of a ``(N, C, H, W)`` input out as a column of a
``(N, C * kH * kW, L)`` array (``L`` blocks, row-major); ``fold`` sums such columns back
into an image, adding where blocks overlap.  ``fold(unfold(x))`` is ``x`` times the
number of blocks that cover each pixel.  They run on the ``im2col`` / ``col2im`` kernels
that the GEMM convolution uses.
"""

from __future__ import annotations

from .._args import check_float_dtypes, check_shape
from .._specs import fold_spec, unfold_spec
from ..dispatch import backend_for
from ._common import one_grad


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of ``x (N, C, H, W)`` as columns: ``(N, C * kH * kW, L)``, where
    row ``(c * kH + i) * kW + j`` holds tap ``(i, j)`` of channel ``c`` and
    ``L = OH * OW`` is the number of blocks (the conv output-size formula)."""
    spec = unfold_spec("unfold", x, kernel_size, dilation, padding, stride)
    be = backend_for(spec.op, input=x)
    return _im2col(be, spec, be.asarray(x))


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Columns ``(N, C * kH * kW, L)`` summed back into ``(N, C, *output_size)``: the
    adjoint of :func:`unfold` (overlapping blocks add)."""
    spec = fold_spec("fold", x, output_size, kernel_size, dilation, padding, stride)
    be = backend_for(spec.op, input=x)
    return _col2im(be, spec, be.asarray(x))


def unfold_backward(grad_output, x, kernel_size, dilation=1, padding=0, stride=1):
    """Gradient of :func:`unfold`: ``(fold(grad_output),)``."""
    spec = unfold_spec("unfold_backward", x, kernel_size, dilation, padding, stride)
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.cols_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x)
    return one_grad(_col2im(be, spec, be.asarray(grad_output)))


def fold_backward(grad_output, x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Gradient of :func:`fold`: ``(unfold(grad_output),)``."""
    spec = fold_spec("fold_backward", x, output_size, kernel_size, dilation, padding, stride)
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.image_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x)
    return one_grad(_im2col(be, spec, be.asarray(grad_output)))


def _im2col(be, spec, image):
    cols = be.empty(spec.cols_shape, spec.dtype)
    be.kernels.im2col(image, cols, spec.geometry)
    return cols


def _col2im(be, spec, cols):
    image = be.empty(spec.image_shape, spec.dtype)
    be.kernels.col2im(cols, image, spec.geometry)
    return image
