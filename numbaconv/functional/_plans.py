"""Plans: a conv call that repeats an earlier call's signature runs straight to its kernel.

A training loop or a benchmark calls the same layer with the same shapes over and over.
The first call of a signature goes the whole way: the caller-type and edge-case wrappers
(``dispatch.returns_caller_type``, ``_edges``), validation (``_args.conv_spec``), the
device look-up and the algorithm chooser, about 12 us of Python, more than a small
layer's kernel takes.  It also builds a *plan* (``conv.forward_plan`` /
``conv.backward_plan``): the chosen kernels and geometry, as a function of the arrays.
A later call with the same signature runs the plan: allocate, call the kernel.

The rule: a signature is the arrays' types, shapes and dtypes, and the other arguments
as ``repr`` gives them (so ``True`` and ``1`` differ); only plain NumPy arrays of the
batched rank, with a batch and output channels, get a plan (the one case the wrappers
pass through unchanged), so a plan's result is the full path's.  Any change to
``numbaconv.config`` drops every plan (``config.generation``): the chooser reads it.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import config
from .._args import check_float_dtypes, check_shape, conv_spec
from ..dispatch import CPU, get_backend
from . import conv as _conv

_MAX_PLANS = 4096  # per op; past it new signatures take the full path
_NONE = object()


class _Plans(dict):
    """Plans by signature, emptied when ``config`` changes."""

    def __init__(self):
        super().__init__()
        self.generation = config.generation

    def find(self, key):
        """The plan for ``key`` (``_NONE`` if there is none), and the settings'
        generation it was looked up under (for :meth:`keep`)."""
        generation = config.generation
        if self.generation != generation:
            self.clear()
            self.generation = generation
        return self.get(key, _NONE), generation

    def keep(self, key, plan, generation):
        """Keep a plan built under ``generation``, unless the settings changed since
        (another thread's assignment: the plan may hold an outdated choice)."""
        if len(self) < _MAX_PLANS and self.generation == generation == config.generation:
            self[key] = plan


def _plain(ndim, *arrays):
    """Whether every array is a native-order NumPy array of the batched rank with a
    non-empty first axis (``None`` entries: an absent bias)."""
    return all(a is None or (type(a) is np.ndarray and a.dtype.isnative) for a in arrays) \
        and arrays[0].ndim == ndim + 2 and arrays[0].shape[0] > 0


def planned_conv(ndim, op):
    """``op`` (the public ``conv{ndim}d``) with plans."""
    name = f"conv{ndim}d"
    plans = _Plans()

    @functools.wraps(op)
    def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros", flip=False):
        if type(x) is np.ndarray and type(weight) is np.ndarray \
                and (bias is None or type(bias) is np.ndarray):
            args = repr((stride, padding, dilation, groups, padding_mode, flip))
            key = (x.shape, x.dtype, weight.shape, weight.dtype,
                   None if bias is None else (bias.shape, bias.dtype), args)
            plan, generation = plans.find(key)
            if plan is _NONE:
                plan = None
                if _plain(ndim, x, weight, bias) and weight.ndim and weight.shape[0] > 0:
                    spec = conv_spec(name, ndim, x, weight, bias, stride, padding,
                                     dilation, groups, padding_mode, flip)
                    plan = _conv.forward_plan(get_backend(CPU), spec)
                plans.keep(key, plan, generation)
            if plan is not None:
                return plan(x, weight, bias)
        return op(x, weight, bias, stride, padding, dilation, groups, padding_mode, flip)

    conv.plans = plans
    return conv


def planned_conv_backward(ndim, op):
    """``op`` (the public ``conv{ndim}d_backward``) with plans."""
    name = f"conv{ndim}d_backward"
    plans = _Plans()

    @functools.wraps(op)
    def conv_backward(grad_output, x, weight, bias=None, stride=1, padding=0, dilation=1,
                      groups=1, padding_mode="zeros", flip=False):
        if type(grad_output) is np.ndarray and type(x) is np.ndarray \
                and type(weight) is np.ndarray and (bias is None or type(bias) is np.ndarray):
            args = repr((stride, padding, dilation, groups, padding_mode, flip))
            key = (grad_output.shape, grad_output.dtype, x.shape, x.dtype, weight.shape,
                   weight.dtype, None if bias is None else (bias.shape, bias.dtype), args)
            plan, generation = plans.find(key)
            if plan is _NONE:
                plan = None
                if _plain(ndim, x, grad_output, weight, bias) and weight.ndim \
                        and weight.shape[0] > 0:
                    spec = conv_spec(name, ndim, x, weight, bias, stride, padding,
                                     dilation, groups, padding_mode, flip)
                    check_float_dtypes(name, grad_output=grad_output, input=x,
                                       weight=weight, bias=bias)
                    check_shape(name, "grad_output", grad_output, spec.output_shape)
                    plan = _conv.backward_plan(get_backend(CPU), spec)
                plans.keep(key, plan, generation)
            if plan is not None:
                return plan(grad_output, x, weight, bias)
        return op(grad_output, x, weight, bias, stride, padding, dilation, groups,
                  padding_mode, flip)

    conv_backward.plans = plans
    return conv_backward
