"""Ops that move data without arithmetic: ``pad`` and ``channel_shuffle``.

Both are linear, and their backward is their adjoint: ``pad``'s folds the gradient of
every padded position back onto the input element it copied (reflect / replicate /
circular copies add up); ``channel_shuffle``'s is the inverse permutation, itself a
channel shuffle with ``C / groups`` groups.
"""

from __future__ import annotations

from .._args import check_float_dtypes, check_shape
from .._specs import channel_shuffle_spec, pad_spec
from ..config import PAD_MODES
from ..dispatch import backend_for
from ._common import one_grad


def pad(x, pad, mode="constant", value=0.0):
    """Pad ``(N, C, L)`` or ``(N, C, H, W)`` data, PyTorch's ``F.pad`` convention: ``pad`` is
    ``(left, right)`` for the last dim, then ``(top, bottom)`` for the one before.

    ``mode``: ``'constant'`` (fills ``value``; negative pads crop), ``'reflect'`` (mirror,
    edge not repeated; pad < size), ``'replicate'`` (edge repeated), ``'circular'``
    (wrap around; pad <= size).
    """
    spec = pad_spec("pad", x, pad, mode, value)
    be = backend_for(spec.op, input=x)
    out = be.empty(spec.out_shape, spec.dtype)
    be.kernels.pad2d_forward(be.asarray(x).reshape(spec.in_shape), out, spec.leading,
                             PAD_MODES[spec.mode], spec.value)
    return out.reshape(spec.output_shape)


def pad_backward(grad_output, x, pad, mode="constant", value=0.0):
    """Gradient of :func:`pad`: ``(grad_input,)``."""
    spec = pad_spec("pad_backward", x, pad, mode, value)
    check_float_dtypes(spec.op, grad_output=grad_output, input=x)
    check_shape(spec.op, "grad_output", grad_output, spec.output_shape)
    be = backend_for(spec.op, grad_output=grad_output, input=x)
    grad = be.empty(spec.in_shape, spec.dtype)
    be.kernels.pad2d_backward(be.asarray(grad_output).reshape(spec.out_shape), grad,
                              spec.leading, PAD_MODES[spec.mode])
    return one_grad(grad.reshape(x.shape))


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle of ``(N, C, *spatial)`` data: the channels, seen as a
    ``(groups, C / groups)`` matrix, are transposed, so that the next grouped conv sees
    channels from every group.  Output channel ``i * groups + g`` is input channel
    ``g * (C / groups) + i``."""
    dtype, groups = channel_shuffle_spec("channel_shuffle", x, groups)
    return _shuffle("channel_shuffle", x, groups, dtype)


def channel_shuffle_backward(grad_output, x, groups):
    """Gradient of :func:`channel_shuffle`: ``(grad_input,)``, the inverse shuffle."""
    dtype, groups = channel_shuffle_spec("channel_shuffle_backward", x, groups)
    check_float_dtypes("channel_shuffle_backward", grad_output=grad_output, input=x)
    check_shape("channel_shuffle_backward", "grad_output", grad_output, x.shape)
    return one_grad(_shuffle("channel_shuffle_backward", grad_output,
                             int(x.shape[1]) // groups, dtype))


def _shuffle(op, x, groups, dtype):
    be = backend_for(op, input=x)
    spatial = 1
    for n in x.shape[2:]:
        spatial *= int(n)
    x4 = be.asarray(x).reshape(tuple(x.shape[:2]) + (1, spatial))
    out = be.empty(x4.shape, dtype)
    be.kernels.channel_shuffle(x4, out, groups)
    return out.reshape(x.shape)
