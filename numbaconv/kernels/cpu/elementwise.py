"""CPU elementwise kernels of the layer API: activations, sums and products, dropout's
mask, channel concatenation, the optimizer updates.  Every array is C-contiguous; the
launchers in ``numbaconv.nn._ops`` pass flat views where the shape does not matter.
The arithmetic per element lives in ``kernels/_elementwise.py``, shared with the CUDA
twins (``kernels/cuda/elementwise.py``)."""

from numba import njit, prange

from .._elementwise import build

_el = build(njit(inline="always"))
_activation, _activation_grad, _keep = _el.activation, _el.activation_grad, _el.keep_element
_sgd, _adam = _el.sgd_update, _el.adam_update


@njit(parallel=True, cache=True, nogil=True)
def activation_forward(op, x, alpha, y):
    for i in prange(x.size):
        y[i] = _activation(op, x[i], alpha)


@njit(parallel=True, cache=True, nogil=True)
def activation_backward(op, g, x, y, alpha, gx):
    for i in prange(g.size):
        gx[i] = _activation_grad(op, g[i], x[i], y[i], alpha)


@njit(parallel=True, cache=True, nogil=True)
def axpby(a, x, b, y, out):
    # out = a * x + b * y
    for i in prange(out.size):
        out[i] = a * x[i] + b * y[i]


@njit(parallel=True, cache=True, nogil=True)
def multiply(x, y, out):
    for i in prange(out.size):
        out[i] = x[i] * y[i]


@njit(parallel=True, cache=True, nogil=True)
def dropout_mask(seed, threshold, scale, mask):
    # mask[i] = scale where element i is kept, else 0
    for i in prange(mask.size):
        mask[i] = scale if _keep(seed, i, threshold) else 0.0


@njit(parallel=True, cache=True, nogil=True)
def copy_channels(src, src_start, dst, dst_start, count):
    # dst[:, dst_start:dst_start+count] = src[:, src_start:src_start+count]  (arrays (N, C, S))
    for job in prange(src.shape[0] * count):
        n = job // count
        c = job % count
        dst[n, dst_start + c] = src[n, src_start + c]


@njit(parallel=True, cache=True, nogil=True)
def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    for i in prange(param.size):
        param[i], buf[i] = _sgd(param[i], grad[i], buf[i], lr, momentum, dampening,
                                weight_decay, nesterov, first)


@njit(parallel=True, cache=True, nogil=True)
def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
    for i in prange(param.size):
        param[i], m[i], v[i] = _adam(param[i], grad[i], m[i], v[i], lr, beta1, beta2, eps,
                                     weight_decay, bias1, bias2_sqrt)
