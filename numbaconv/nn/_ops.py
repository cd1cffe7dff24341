"""The array math of the layer API, on whichever device the arrays live: each function
picks the backend from its arguments (``numbaconv.dispatch``), allocates the result
there and launches the twin kernel (``kernels.cpu`` / ``kernels.cuda``: activations,
arithmetic, dropout, batch norm, cross-entropy, Linear's product, optimizer updates).

So a model moved with ``to('cuda')`` runs its whole forward / backward / step on the GPU:
nothing here copies to the host except the loss value the API returns as a float (and
the per-row statistics computed alongside it).  Inputs are never written; results are
new arrays unless a name says ``_into``.  Shapes were checked by the calling layer.
"""

from __future__ import annotations

import numpy as np

from .. import config
from ..config import ACTIVATIONS
from ..dispatch import backend_for, device_of, get_backend, to_host


def _backend(op, *arrays):
    return backend_for(op, **{f"array{i}": a for i, a in enumerate(arrays)})


def _flat(be, a):
    a = be.asarray(a)
    return a.reshape(a.size)


def _ncs(be, a):
    """``(N, C, *spatial)`` as ``(N, C, S)``."""
    a = be.asarray(a)
    return a.reshape((a.shape[0], a.shape[1], a.size // max(1, a.shape[0] * a.shape[1])))


def _scalar(dtype, value):
    return np.dtype(dtype).type(value)


def zeros_like(a):
    return get_backend(device_of(a)).zeros(a.shape, a.dtype)


# --------------------------------------------------------------------------- elementwise
def activation(x, kind, alpha=0.0):
    """``kind`` (``config.ACTIVATIONS``) applied to every element of ``x``."""
    be = _backend(kind, x)
    y = be.empty(x.shape, x.dtype)
    be.kernels.activation_forward(ACTIVATIONS[kind], _flat(be, x), _scalar(x.dtype, alpha),
                                  _flat(be, y))
    return y


def activation_backward(grad, x, y, kind, alpha=0.0):
    """``grad * f'``: ReLU reads the input ``x``, sigmoid / tanh the output ``y``."""
    be = _backend(kind + "_backward", grad, x, y)
    gx = be.empty(grad.shape, grad.dtype)
    be.kernels.activation_backward(ACTIVATIONS[kind], _flat(be, grad), _flat(be, x),
                                   _flat(be, y), _scalar(grad.dtype, alpha), _flat(be, gx))
    return gx


def axpby(a, x, b, y):
    """``a * x + b * y`` (scalars ``a``, ``b``; arrays of one shape)."""
    be = _backend("axpby", x, y)
    out = be.empty(x.shape, x.dtype)
    be.kernels.axpby(_scalar(x.dtype, a), _flat(be, x), _scalar(x.dtype, b), _flat(be, y),
                     _flat(be, out))
    return out


def add(x, y):
    return axpby(1, x, 1, y)


def multiply(x, y):
    be = _backend("multiply", x, y)
    out = be.empty(x.shape, x.dtype)
    be.kernels.multiply(_flat(be, x), _flat(be, y), _flat(be, out))
    return out


def accumulate_into(dst, src):
    """``dst += src`` in place (gradient accumulation), on their device."""
    be = _backend("accumulate", dst, src)
    flat = _flat(be, dst)
    be.kernels.axpby(_scalar(dst.dtype, 1), flat, _scalar(dst.dtype, 1), _flat(be, src), flat)


def dropout_mask(like, p, seed):
    """``1 / (1 - p)`` where an element is kept (probability ``1 - p``), else 0; the
    coin of element ``i`` is a hash of ``(seed, i)``, the same on either device."""
    be = get_backend(device_of(like))
    mask = be.empty(like.shape, like.dtype)
    be.kernels.dropout_mask(int(seed) & 0xFFFFFFFF, int(round(p * 2.0 ** 32)),
                            _scalar(like.dtype, 1 / (1 - p)), _flat(be, mask))
    return mask


def concat_channels(arrays):
    """Concatenate ``(N, C_i, *spatial)`` arrays along the channel axis."""
    be = _backend("concat_channels", *arrays)
    first = arrays[0]
    total = sum(a.shape[1] for a in arrays)
    out = be.empty((first.shape[0], total) + tuple(first.shape[2:]), first.dtype)
    dst, start = _ncs(be, out), 0
    for a in arrays:
        be.kernels.copy_channels(_ncs(be, a), 0, dst, start, a.shape[1])
        start += a.shape[1]
    return out


def split_channels(x, sizes):
    """The inverse of :func:`concat_channels`: channel slices of ``x``, new arrays."""
    be = _backend("split_channels", x)
    src, start, parts = _ncs(be, x), 0, []
    for size in sizes:
        part = be.empty((x.shape[0], size) + tuple(x.shape[2:]), x.dtype)
        be.kernels.copy_channels(src, start, _ncs(be, part), 0, size)
        parts.append(part)
        start += size
    return parts


# --------------------------------------------------------------------------- batch norm
def batch_norm(x, weight, bias, running_mean, running_var, use_batch_stats, update, momentum,
               eps):
    """Per-channel normalization of ``(N, C, *spatial)`` ``x``; returns ``(y, xhat,
    inv_std)``.  ``use_batch_stats``: the batch's mean and biased variance (and, with
    ``update``, the running statistics move by ``momentum``, the variance unbiased);
    otherwise the running statistics.  ``weight`` / ``bias`` None: 1 and 0."""
    be = _backend("batch_norm", x, weight, bias, running_mean, running_var)
    ch, dtype = x.shape[1], x.dtype
    xv = _ncs(be, x)
    if use_batch_stats:
        mean, var = be.empty(ch, dtype), be.empty(ch, dtype)
        be.kernels.channel_moments(xv, mean, var)
    else:
        mean, var = running_mean, running_var
    count = x.size // ch
    inv_std = be.empty(ch, dtype)
    if running_mean is None:  # no running statistics: nothing to update
        running_mean = running_var = be.empty(ch, dtype)
        update = False
    be.kernels.batch_norm_finish(mean, var, _scalar(dtype, eps), _scalar(dtype, momentum),
                                 _scalar(dtype, count / max(count - 1, 1)), bool(update),
                                 running_mean, running_var, inv_std)
    weight = be.full(ch, dtype, 1.0) if weight is None else weight
    bias = be.full(ch, dtype, 0.0) if bias is None else bias
    xhat, y = be.empty(x.shape, dtype), be.empty(x.shape, dtype)
    be.kernels.batch_norm_forward(xv, mean, inv_std, be.asarray(weight), be.asarray(bias),
                                  _ncs(be, xhat), _ncs(be, y))
    return y, xhat, inv_std


def batch_norm_backward(grad, xhat, inv_std, weight, batch_stats):
    """``(grad_input, grad_weight, grad_bias)`` of :func:`batch_norm`; with
    ``batch_stats`` the gradient also flows through the batch's mean and variance."""
    be = _backend("batch_norm_backward", grad, xhat, inv_std, weight)
    ch, dtype = grad.shape[1], grad.dtype
    gv, xv = _ncs(be, grad), _ncs(be, xhat)
    grad_bias, grad_weight = be.empty(ch, dtype), be.empty(ch, dtype)
    be.kernels.channel_dot_sums(gv, xv, grad_bias, grad_weight)
    count = grad.size // ch
    w = be.full(ch, dtype, 1.0) if weight is None else be.asarray(weight)
    if batch_stats:  # means over (n, s) of g and of g * xhat
        mean_g, mean_gx = axpby(1 / count, grad_bias, 0, grad_bias), axpby(
            1 / count, grad_weight, 0, grad_weight)
    else:
        mean_g = mean_gx = be.zeros(ch, dtype)
    gx = be.empty(grad.shape, dtype)
    be.kernels.batch_norm_backward(gv, xv, w, inv_std, mean_g, mean_gx, _ncs(be, gx))
    return gx, grad_weight, grad_bias


# --------------------------------------------------------------------------- linear
def linear(x, weight, bias):
    """``x @ weight.T + bias`` for ``x (N, in)``, ``weight (out, in)``."""
    be = _backend("linear", x, weight, bias)
    y = be.empty((x.shape[0], weight.shape[0]), x.dtype)
    be.kernels.matmul(be.asarray(x), be.asarray(weight), y, False, True, False)
    if bias is not None:
        be.kernels.add_channel_bias(y.reshape(y.shape + (1, 1)), be.asarray(bias))
    return y


def linear_backward(grad, x, weight, grad_weight, grad_bias):
    """Adds ``grad.T @ x`` into ``grad_weight`` and the column sums of ``grad`` into
    ``grad_bias`` (None: no bias); returns ``grad @ weight``."""
    be = _backend("linear_backward", grad, x, weight)
    g = be.asarray(grad)
    be.kernels.matmul(g, be.asarray(x), grad_weight, True, False, True)
    if grad_bias is not None:
        col = be.empty(grad_bias.shape, grad.dtype)
        be.kernels.conv2d_grad_bias(g.reshape(g.shape + (1, 1)), col)
        accumulate_into(grad_bias, col)
    gx = be.empty(x.shape, x.dtype)
    be.kernels.matmul(g, be.asarray(weight), gx, False, False, False)
    return gx


# --------------------------------------------------------------------------- losses
def cross_entropy(logits, target):
    """Mean softmax cross-entropy of ``(N, classes)`` logits against integer labels;
    returns ``(loss, correct, grad)`` (``correct``: rows whose first argmax is the label;
    ``grad`` w.r.t. the logits, on their device).  Only the ``(N, 2)`` per-row
    statistics come to the host."""
    be = _backend("cross_entropy", logits, target)
    rows = logits.shape[0]
    grad = be.empty(logits.shape, logits.dtype)
    stats = be.empty((rows, 2), np.float64)
    be.kernels.cross_entropy_rows(be.asarray(logits), be.asarray(target),
                                  _scalar(logits.dtype, 1 / rows), grad, stats)
    stats = to_host(stats)
    if (stats[:, 1] < 0).any():
        bad = int(np.flatnonzero(stats[:, 1] < 0)[0])
        raise ValueError(f"CrossEntropyLoss: labels must be in [0, {logits.shape[1]}); row "
                         f"{bad} has {int(to_host(target)[bad])}")
    return float(stats[:, 0].sum() / rows), int(stats[:, 1].sum()), grad


def sum_squares(x):
    """The sum of squares of every element (a float on the host)."""
    be = _backend("sum_squares", x)
    partials = be.empty(config.REDUCE_PARTIALS, np.float64)
    be.kernels.sum_squares(_flat(be, x), partials)
    return float(to_host(partials).sum())


# --------------------------------------------------------------------------- optimizers
def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    be = _backend("SGD.step", param, grad, buf)
    t = param.dtype.type
    be.kernels.sgd_step(_flat(be, param), _flat(be, grad), _flat(be, buf), t(lr), t(momentum),
                        t(dampening), t(weight_decay), bool(nesterov), bool(first))


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    be = _backend("Adam.step", param, grad, m, v)
    t = param.dtype.type
    be.kernels.adam_step(_flat(be, param), _flat(be, grad), _flat(be, m), _flat(be, v), t(lr),
                         t(beta1), t(beta2), t(eps), t(weight_decay), t(1 - beta1 ** step),
                         t((1 - beta2 ** step) ** 0.5))
