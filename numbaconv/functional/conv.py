"""conv1d / conv2d and their backward, on whichever device the arrays live.

Both run through the 2-D kernels (1-D data is viewed with a height of 1).  The backward
is written once, here, from the three device-neutral primitives:

* grad input  = ``conv2d_grad_input``  (the transposed convolution of grad_output)
* grad weight = ``conv2d_grad_weight`` (input correlated with grad_output)
* grad bias   = ``conv2d_grad_bias``   (grad_output summed over batch and space)

``padding_mode`` other than ``'zeros'`` pads the input explicitly first (``pad2d_forward``)
and folds the gradient back through the same padding (``pad2d_backward``).  ``flip=True``
(true convolution) correlates with the spatially reversed kernel, and reverses the
weight gradient back.  A strided 1x1 forward without padding runs as the pointwise conv
of its input's subsample, where the chooser says so (``dispatch.subsampled_pointwise``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import config
from .._args import ConvSpec, check_float_dtypes, check_shape, conv_spec
from ..config import PAD_MODES
from ..dispatch import (CONV_FALLBACK, CPU, backend_for, choose_conv_algorithm,
                        subsampled_pointwise)
from . import _tier
from ._common import as_4d


# --------------------------------------------------------------------------- public API
def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", flip=False):
    """1-D convolution (cross-correlation unless ``flip``) over ``(N, C, L)`` data.

    Parameters
    ----------
    x : array, shape (N, C_in, L)
    weight : array, shape (C_out, C_in // groups, kL)
    bias : array, shape (C_out,), optional
    stride, dilation : int or (int,)
    padding : int, (int,), ((left, right),), 'same' or 'valid'
    groups : int
        ``C_in`` and ``C_out`` must both be divisible by it; ``groups == C_in`` is depthwise.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    flip : bool
        True convolution: the kernel reversed before sliding.

    Returns
    -------
    array, shape (N, C_out, L_out), on the input's device, in the input's dtype.
    ``L_out = floor((L + pad_left + pad_right - dilation * (kL - 1) - 1) / stride) + 1``

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Wrong ndim, channel / group mismatch, bad stride / padding / dilation, an output
        size below 1, arrays on different devices.
    """
    spec = conv_spec("conv1d", 1, x, weight, bias, stride, padding, dilation, groups,
                     padding_mode, flip)
    return _forward(spec, x, weight, bias)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", flip=False):
    """2-D convolution (cross-correlation unless ``flip``) over ``(N, C, H, W)`` data.

    Parameters
    ----------
    x : array, shape (N, C_in, H, W)
    weight : array, shape (C_out, C_in // groups, kH, kW)
    bias : array, shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), ((top, bottom), (left, right)), 'same' or 'valid'
    groups : int
        1x1, grouped and depthwise (``groups == C_in``) convolutions all go through here.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    flip : bool
        True convolution: the kernel reversed along both spatial axes.

    Returns
    -------
    array, shape (N, C_out, H_out, W_out), on the input's device, in the input's dtype.
    ``H_out = floor((H + pad_top + pad_bottom - dilation_h * (kH - 1) - 1) / stride_h) + 1``
    and likewise ``W_out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Wrong ndim, channel / group mismatch, bad stride / padding / dilation, an output
        size below 1, arrays on different devices.
    """
    spec = conv_spec("conv2d", 2, x, weight, bias, stride, padding, dilation, groups,
                     padding_mode, flip)
    return _forward(spec, x, weight, bias)


def conv1d_backward(grad_output, x, weight, bias=None, stride=1, padding=0, dilation=1,
                    groups=1, padding_mode="zeros", flip=False):
    """Gradients of :func:`conv1d`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_output`` has the forward output's shape ``(N, C_out, L_out)``; the other
    arguments are those of the forward call.  ``grad_bias`` is None when ``bias`` is None.
    """
    spec = conv_spec("conv1d_backward", 1, x, weight, bias, stride, padding, dilation,
                     groups, padding_mode, flip)
    return _backward(spec, grad_output, x, weight, bias)


def conv2d_backward(grad_output, x, weight, bias=None, stride=1, padding=0, dilation=1,
                    groups=1, padding_mode="zeros", flip=False):
    """Gradients of :func:`conv2d`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_output`` has the forward output's shape ``(N, C_out, H_out, W_out)``; the
    other arguments are those of the forward call.  ``grad_bias`` is None when ``bias``
    is None.
    """
    spec = conv_spec("conv2d_backward", 2, x, weight, bias, stride, padding, dilation,
                     groups, padding_mode, flip)
    return _backward(spec, grad_output, x, weight, bias)


def conv_param_grads(ndim, grad_output, x, weight, bias=None, stride=1, padding=0,
                     dilation=1, groups=1, padding_mode="zeros", flip=False):
    """``(grad_weight, grad_bias)`` of :func:`conv1d` (``ndim=1``) or :func:`conv2d`
    without the grad input: the backward of a layer whose input needs no gradient (a
    network's first layer, fed with data), which saves that product and its kernels'
    compile time.  Equal to the last two results of ``conv{ndim}d_backward``."""
    spec = conv_spec(f"conv{ndim}d_backward", ndim, x, weight, bias, stride, padding,
                     dilation, groups, padding_mode, flip)
    return _backward(spec, grad_output, x, weight, bias, input_grad=False)[1:]


# --------------------------------------------------------------------------- shared body
def _weight_4d(be, weight, spec: ConvSpec):
    w = as_4d(be, weight)
    return be.flip_spatial(w, 2) if spec.flip else w


def _explicit_pad(spec: ConvSpec) -> bool:
    return spec.padding_mode != "zeros" and any(p != (0, 0) for p in spec.pads)


def _kernel_input(be, spec: ConvSpec, x4):
    """The input the conv kernel reads: ``x4`` itself, or ``x4`` padded by ``padding_mode``."""
    if not _explicit_pad(spec):
        return x4
    padded = be.empty(x4.shape[:2] + spec.padded_size, spec.dtype)
    be.kernels.pad2d_forward(x4, padded, (spec.pads[0][0], spec.pads[1][0]),
                             PAD_MODES[spec.padding_mode], 0.0)
    return padded


def _kernel(be, spec: ConvSpec, name: str):
    """The kernel ``name`` in the variant the algorithm chooser picks for ``spec``, or
    in the first fallback that has one (``dispatch.CONV_FALLBACK``; direct last)."""
    algorithm = choose_conv_algorithm(be.name, spec, name)
    while algorithm != "direct":
        if hasattr(be.kernels, f"{name}_{algorithm}"):
            return getattr(be.kernels, f"{name}_{algorithm}")
        algorithm = CONV_FALLBACK[algorithm]
    return getattr(be.kernels, name)


def _macs(spec: ConvSpec) -> int:
    return (spec.batch * spec.out_channels * spec.out_size[0] * spec.out_size[1]
            * (spec.in_channels // spec.groups) * spec.kernel[0] * spec.kernel[1])


def _forward(spec: ConvSpec, x, weight, bias):
    be = backend_for(spec.op, input=x, weight=weight, bias=bias)
    return forward_plan(be, spec)(x, weight, bias)


def _subsampled(spec: ConvSpec) -> ConvSpec:
    """The pointwise conv of a strided 1x1 conv's subsampled input
    (:func:`dispatch.subsampled_pointwise`)."""
    return dataclasses.replace(spec, in_size=spec.out_size, stride=(1, 1), dilation=(1, 1))


def _subsample(be, x4, spec: ConvSpec):
    """The input pixels a strided 1x1 conv reads, ``(N, C, OH, OW)``: a NumPy copy up to
    ``config.SUBSAMPLE_NUMPY_BYTES``, where a kernel call costs more, else the conv's
    im2col (parallel)."""
    (sh, sw), (oh, ow) = spec.stride, spec.out_size
    if x4.shape[0] * x4.shape[1] * oh * ow * x4.itemsize <= config.SUBSAMPLE_NUMPY_BYTES:
        return np.ascontiguousarray(x4[:, :, :oh * sh:sh, :ow * sw:sw])
    cols = be.empty(x4.shape[:2] + (oh * ow,), spec.dtype)
    be.kernels.im2col(x4, cols, (1, 1, sh, sw, 0, 0, 1, 1, oh, ow))
    return cols.reshape(x4.shape[:2] + (oh, ow))


def forward_plan(be, spec: ConvSpec):
    """The forward of calls with ``spec``'s signature on ``be``, as a function of
    ``(x, weight, bias)``: the kernel chosen and the geometry worked out once (a repeated
    call runs it directly: ``_plans.py``)."""
    if subsampled_pointwise(be.name, spec):
        pointwise = forward_plan(be, _subsampled(spec))
        return lambda x, weight, bias: pointwise(_subsample(be, as_4d(be, x), spec), weight,
                                                 bias)
    kernel = _kernel(be, spec, "conv2d_forward")
    explicit = _explicit_pad(spec)
    geometry = spec.kernel_geometry(explicit)
    out_shape = (spec.batch, spec.out_channels) + spec.out_size
    tier_key = (kernel.__name__, spec.dtype)
    tiered = be.name == CPU and _macs(spec) <= config.TIER_MAX_MACS
    no_bias = []  # zeros for a call without a bias, made once: the kernels only read it

    def forward(x, weight, bias):
        x4 = as_4d(be, x)
        w4 = _weight_4d(be, weight, spec)
        if bias is None:
            if not no_bias:
                no_bias.append(be.zeros((spec.out_channels,), spec.dtype))
            b = no_bias[0]
        else:
            b = be.asarray(bias)
        out = be.empty(out_shape, spec.dtype)
        if tiered and not _tier.settled(tier_key):
            def run(into):
                kernel(_kernel_input(be, spec, x4), w4, b, into, geometry)

            def numpy_forward(into):
                xin = _tier.padded_input(x4, spec) if explicit else x4
                _tier.conv2d_forward(xin, w4, b, into, geometry)

            _tier.forward(tier_key, run, out, numpy_forward)
        else:
            kernel(_kernel_input(be, spec, x4) if explicit else x4, w4, b, out, geometry)
        return out.reshape(spec.output_shape)

    return forward


def _backward(spec: ConvSpec, grad_output, x, weight, bias, input_grad=True):
    check_float_dtypes(spec.op, grad_output=grad_output, input=x, weight=weight, bias=bias)
    check_shape(spec.op, "grad_output", grad_output, spec.output_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x, weight=weight, bias=bias)
    return backward_plan(be, spec, input_grad)(grad_output, x, weight, bias)


def backward_plan(be, spec: ConvSpec, input_grad=True):
    """The backward of calls with ``spec``'s signature on ``be`` (``grad_output`` already
    checked), as a function of ``(grad_output, x, weight, bias)``; see
    :func:`forward_plan`."""
    explicit = _explicit_pad(spec)
    geometry = spec.kernel_geometry(explicit)
    grad_input = _kernel(be, spec, "conv2d_grad_input") if input_grad else None
    grad_weight = _kernel(be, spec, "conv2d_grad_weight")

    def backward(grad_output, x, weight, bias):
        go = as_4d(be, grad_output)
        x4 = as_4d(be, x)
        w4 = _weight_4d(be, weight, spec)
        if grad_input is None:
            grad_x = None
        elif explicit:
            grad_padded = be.empty(x4.shape[:2] + spec.padded_size, spec.dtype)
            grad_input(go, w4, grad_padded, geometry)
            grad_x = be.empty(x4.shape, spec.dtype)
            be.kernels.pad2d_backward(grad_padded, grad_x, (spec.pads[0][0], spec.pads[1][0]),
                                      PAD_MODES[spec.padding_mode])
        else:
            grad_x = be.empty(x4.shape, spec.dtype)
            grad_input(go, w4, grad_x, geometry)

        grad_w = be.empty(w4.shape, spec.dtype)
        grad_b = None if bias is None else be.empty((spec.out_channels,), spec.dtype)
        weight_and_bias(be, grad_weight, _kernel_input(be, spec, x4), go, grad_w, grad_b,
                        geometry)
        if spec.flip:
            grad_w = be.flip_spatial(grad_w, 2)
        return (None if grad_x is None else grad_x.reshape(x.shape),
                grad_w.reshape(weight.shape), grad_b)

    return backward


def weight_and_bias(be, kernel, x4, go, grad_w, grad_b, geometry):
    """``grad_w`` by ``kernel`` and (unless None) ``grad_b``; a kernel that
    ``folds_grad_bias`` (the GPU's split-K reductions) computes the bias gradient in the
    same pass."""
    if grad_b is not None and getattr(kernel, "folds_grad_bias", False):
        kernel(x4, go, grad_w, geometry, grad_bias=grad_b)
        return
    kernel(x4, go, grad_w, geometry)
    if grad_b is not None:
        be.kernels.conv2d_grad_bias(go, grad_b)
