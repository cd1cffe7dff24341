"""PyTorch bridge: numbaconv's ops inside torch's autograd.

``numbaconv.torch.<op>`` for every functional op (``conv1d``, ``conv2d``,
``conv_transpose1d/2d``, the pools, ``unfold``, ``fold``, ``interpolate``,
``channel_shuffle``, ``pad``): numbaconv's signature (``input=`` works for ``x``), torch
tensors in and out, one ``torch.autograd.Function`` whose backward is numbaconv's
``<op>_backward`` (first-order: no double backward).

No copies: a CPU tensor reaches the kernels as the NumPy view ``tensor.detach().numpy()``
(strided views included) and the result comes back through ``torch.from_numpy``; a CUDA
tensor goes through ``__cuda_array_interface__`` (made contiguous first, as the CUDA
kernels need), with every launch on torch's current stream and no synchronize.
``numbaconv.torch.nn`` has the layers and :func:`patch`.  Importing ``numbaconv`` never
imports torch; this module needs it (``pip install 'numbaconv[torch]'``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import dispatch
from .. import functional as F

_ARRAYS = ("x", "weight", "bias")  # the tensor arguments, in the functional order


def to_array(t):
    """The array the kernels see: a NumPy view of a CPU tensor, a numba view of a CUDA
    tensor (contiguous), None as None."""
    if t is None:
        return None
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    from numba import cuda

    return cuda.as_cuda_array(t.contiguous())


def to_tensor(a, like):
    """A kernel's result as a tensor on ``like``'s device, sharing its memory."""
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    return torch.as_tensor(a, device=like.device)


@contextlib.contextmanager
def _stream(like):
    """CUDA launches on torch's current stream of ``like``'s device."""
    if like.device.type != "cuda":
        yield
        return
    from numba import cuda

    stream = cuda.external_stream(torch.cuda.current_stream(like.device).cuda_stream)
    with dispatch.use_stream(stream):
        yield


class _Op(torch.autograd.Function):
    """``forward(ctx, name, params, x, weight, bias)``: ``F.<name>(x, weight, bias,
    **params)`` (the absent arrays are None and not passed); backward through
    ``F.<name>_backward``."""

    @staticmethod
    def forward(ctx, name, params, *tensors):
        like = tensors[0]
        arrays = [to_array(t) for t in tensors]
        with _stream(like):
            out = getattr(F, name)(*arrays, **params)
        ctx.name, ctx.params = name, params
        if isinstance(out, tuple):  # values and indices (max pools)
            values, indices = (to_tensor(o, like) for o in out)
            ctx.mark_non_differentiable(indices)
            ctx.save_for_backward(*tensors, indices)
            return values, indices
        ctx.save_for_backward(*tensors)
        return to_tensor(out, like)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, *_):
        saved = ctx.saved_tensors
        params = dict(ctx.params)
        if params.get("return_indices"):
            params["indices"] = to_array(saved[-1])
            saved = saved[:-1]
        like = saved[0]
        arrays = [to_array(t) for t in saved]
        with _stream(like):
            grads = getattr(F, ctx.name + "_backward")(to_array(grad), *arrays, **params)
        out = [None, None]
        for needs, g in zip(ctx.needs_input_grad[2:], grads):
            out.append(to_tensor(g, like) if needs else None)
        return tuple(out)


def _bridge(name):
    """``numbaconv.torch.<name>``: the functional op through :class:`_Op`."""
    import inspect

    fn = getattr(F, name)
    names = list(inspect.signature(fn).parameters)
    arrays = [n for n in names if n in _ARRAYS]

    def op(*args, **kwargs):
        if "input" in kwargs:  # torch's name for x
            kwargs["x"] = kwargs.pop("input")
        values = dict(zip(names, args))
        if len(args) > len(names):
            raise TypeError(f"{name}() takes {len(names)} arguments; got {len(args)}")
        for key, value in kwargs.items():
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        tensors = [values.pop(n, None) for n in arrays]
        while tensors and tensors[-1] is None:  # bias=None: not an input of the graph
            tensors.pop()
        for n, t in zip(arrays, tensors):
            if t is not None and not isinstance(t, torch.Tensor):
                raise TypeError(f"numbaconv.torch.{name}: {n} must be a torch.Tensor; "
                                f"got {type(t).__name__}")
        missing = [n for n, t in zip(arrays, tensors) if t is None]  # not `None in`:
        if missing:                                                  # that runs t == None
            raise ValueError(f"numbaconv.torch.{name}: {missing[0]} is required")
        return _Op.apply(name, values, *tensors)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``numbaconv.{name}`` on torch tensors, differentiable through "
                  f"``numbaconv.{name}_backward``.\n\n{fn.__doc__ or ''}")
    return op


for _name in F.FORWARD_OPS:
    globals()[_name] = _bridge(_name)
del _name

from .nn import patch  # noqa: E402  (needs the ops above)

__all__ = [*F.FORWARD_OPS, "patch", "to_array", "to_tensor"]
