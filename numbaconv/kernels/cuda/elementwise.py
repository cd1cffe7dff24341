"""CUDA elementwise kernels of the layer API: twins of ``kernels/cpu/elementwise.py``
(same names, same signatures), one thread per element with a grid-stride loop.  The
arithmetic per element is ``kernels/_elementwise.py``, compiled here for the device."""

from numba import cuda

from .._elementwise import build
from ._launch import launch_1d

_el = build(cuda.jit(device=True))
_activation, _activation_grad, _keep = _el.activation, _el.activation_grad, _el.keep_element
_sgd, _adam = _el.sgd_update, _el.adam_update


@cuda.jit
def _activation_forward(total, op, x, alpha, y):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        y[i] = _activation(op, x[i], alpha)


@cuda.jit
def _activation_backward(total, op, g, x, y, alpha, gx):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        gx[i] = _activation_grad(op, g[i], x[i], y[i], alpha)


@cuda.jit
def _axpby(total, a, x, b, y, out):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        out[i] = a * x[i] + b * y[i]


@cuda.jit
def _multiply(total, x, y, out):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        out[i] = x[i] * y[i]


@cuda.jit
def _dropout_mask(total, seed, threshold, scale, mask):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        mask[i] = scale if _keep(seed, i, threshold) else mask.dtype.type(0)


@cuda.jit
def _copy_channels(total, src, src_start, dst, dst_start, count):
    size = src.shape[2]
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        s = i % size
        c = (i // size) % count
        n = i // (size * count)
        dst[n, dst_start + c, s] = src[n, src_start + c, s]


@cuda.jit
def _sgd_step(total, param, grad, buf, lr, momentum, dampening, weight_decay, nesterov,
              first):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        param[i], buf[i] = _sgd(param[i], grad[i], buf[i], lr, momentum, dampening,
                                weight_decay, nesterov, first)


@cuda.jit
def _adam_step(total, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, bias1,
               bias2_sqrt):
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        param[i], m[i], v[i] = _adam(param[i], grad[i], m[i], v[i], lr, beta1, beta2, eps,
                                     weight_decay, bias1, bias2_sqrt)


def activation_forward(op, x, alpha, y):
    launch_1d(_activation_forward, x.size, op, x, alpha, y)


def activation_backward(op, g, x, y, alpha, gx):
    launch_1d(_activation_backward, g.size, op, g, x, y, alpha, gx)


def axpby(a, x, b, y, out):
    launch_1d(_axpby, out.size, a, x, b, y, out)


def multiply(x, y, out):
    launch_1d(_multiply, out.size, x, y, out)


def dropout_mask(seed, threshold, scale, mask):
    launch_1d(_dropout_mask, mask.size, seed, threshold, scale, mask)


def copy_channels(src, src_start, dst, dst_start, count):
    launch_1d(_copy_channels, src.shape[0] * count * src.shape[2], src, src_start, dst,
              dst_start, count)


def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    launch_1d(_sgd_step, param.size, param, grad, buf, lr, momentum, dampening,
              weight_decay, nesterov, first)


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
    launch_1d(_adam_step, param.size, param, grad, m, v, lr, beta1, beta2, eps,
              weight_decay, bias1, bias2_sqrt)
