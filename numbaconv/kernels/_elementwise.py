"""Per-element arithmetic of the training kernels (activations, dropout's random numbers,
the optimizer updates, batch norm, a row of softmax cross-entropy), written once as plain
Python and compiled for each target by :func:`build` (``numba.njit(inline='always')``
for the CPU, ``numba.cuda.jit(device=True)`` for CUDA), so the twins compute the same
formula in the same order.

Activation codes (``config.ACTIVATIONS``): 0 leaky ReLU (ReLU is slope 0), 1 sigmoid,
2 tanh.
"""

import math
from types import SimpleNamespace

import numpy as np

_MASK32 = 0xFFFFFFFF
# Constants typed float32 (all exact in float32): with a float32 value the arithmetic
# stays float32 on the GPU, with a float64 value it is float64; a bare 1.0 or 1 would
# turn float32 math into float64.  Next to a math.* result (a Python float in the CUDA
# simulator, which NumPy 2 would round to float32) a constant is first given the dtype
# of a finite scalar argument: ``s * _ZERO + c``.
_HALF, _ONE, _ZERO = np.float32(0.5), np.float32(1), np.float32(0)


def build(jit):
    """The element functions compiled with ``jit`` (a decorator); returns a namespace."""

    @jit
    def activation(op, v, alpha):
        """The activation ``op`` at ``v``; ``alpha`` is leaky ReLU's negative slope."""
        if op == 0:
            return v if v > 0 else v * alpha
        if op == 1:  # sigmoid through tanh: no overflow for large |v|
            half = alpha * _ZERO + _HALF  # 0.5 in the dtype of alpha (finite, typed)
            return half + half * math.tanh(half * v)
        return math.tanh(v)

    @jit
    def activation_grad(op, g, x, y, alpha):
        """``g * f'(x)``: ReLU from the input ``x``, sigmoid and tanh from the output ``y``."""
        if op == 0:
            return g if x > 0 else g * alpha
        if op == 1:
            return g * y * (_ONE - y)
        return g * (_ONE - y * y)

    @jit
    def pcg_hash(v):
        """A 32-bit integer hash (the PCG output permutation).  Written with masks so that
        every product stays below 2**63: the same integers on the CPU, on the GPU and in the
        CUDA simulator (which runs this as Python)."""
        state = (v * 747796405 + 2891336453) & _MASK32
        word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK32
        return ((word >> 22) ^ word) & _MASK32

    @jit
    def keep_element(seed, i, threshold):
        """Dropout's coin for element ``i``: kept when its hash of ``(seed, i)`` is at least
        ``threshold = p * 2**32``.  Counter-based, so any thread can draw any element."""
        return pcg_hash((pcg_hash(i & _MASK32) + seed) & _MASK32) >= threshold

    @jit
    def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
        """One element of ``torch.optim.SGD``; returns the new ``(p, buf)``."""
        g = g + weight_decay * p
        if momentum != 0:
            buf = g if first else momentum * buf + (_ONE - dampening) * g
            g = g + momentum * buf if nesterov else buf
        return p - lr * g, buf

    @jit
    def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
        """One element of ``torch.optim.Adam`` (L2 weight decay added to the gradient);
        ``bias1 = 1 - beta1**t``, ``bias2_sqrt = sqrt(1 - beta2**t)``.  Returns the new
        ``(p, m, v)``."""
        g = g + weight_decay * p
        m = beta1 * m + (_ONE - beta1) * g
        v = beta2 * v + (_ONE - beta2) * g * g
        denom = math.sqrt(v) / bias2_sqrt + eps
        return p - (lr / bias1) * m / denom, m, v

    @jit
    def batch_norm_channel(c, mean, var, eps, momentum, unbiased, update, running_mean,
                           running_var, inv_std):
        """Channel ``c``: ``inv_std = 1 / sqrt(var + eps)``; with ``update`` the running
        statistics move by ``momentum`` (the variance made unbiased by ``unbiased``)."""
        if update:
            running_mean[c] = (_ONE - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (_ONE - momentum) * running_var[c] + momentum * var[c] * unbiased
        inv_std[c] = (eps * _ZERO + _ONE) / math.sqrt(var[c] + eps)

    @jit
    def batch_norm_element(x, mean, inv_std, weight, bias, xhat, y, n, c, s):
        """``xhat = (x - mean) * inv_std``, ``y = xhat * weight + bias`` at (n, c, s)."""
        v = (x[n, c, s] - mean[c]) * inv_std[c]
        xhat[n, c, s] = v
        y[n, c, s] = v * weight[c] + bias[c]

    @jit
    def batch_norm_grad_element(g, xhat, weight, inv_std, mean_g, mean_gx, gx, n, c, s):
        """``gx = (g - mean_g - xhat * mean_gx) * weight * inv_std`` at (n, c, s) (the
        means are zero in eval mode, where the statistics are constants)."""
        gx[n, c, s] = ((g[n, c, s] - mean_g[c] - xhat[n, c, s] * mean_gx[c])
                       * (weight[c] * inv_std[c]))

    @jit
    def cross_entropy_row(logits, target, scale, grad, stats, i):
        """Row ``i`` of softmax cross-entropy: ``stats[i, 0]`` = logsumexp - the target's
        logit, ``stats[i, 1]`` = 1 if the first argmax is the target, 0 if not, -1 if the
        label is out of range (loss NaN); ``grad[i]`` = (softmax - onehot) * scale."""
        classes = logits.shape[1]
        t = target[i]
        best = logits[i, 0]
        arg = 0
        for j in range(1, classes):
            if logits[i, j] > best:
                best = logits[i, j]
                arg = j
        zero = scale * _ZERO  # in scale's dtype, the logits'
        one = zero + _ONE
        total = zero
        for j in range(classes):
            total += math.exp(logits[i, j] - best)
        lse = best + math.log(total)
        for j in range(classes):
            grad[i, j] = (math.exp(logits[i, j] - lse) - (one if j == t else zero)) * scale
        if t < 0 or t >= classes:
            stats[i, 0] = math.nan
            stats[i, 1] = -1.0
        else:
            stats[i, 0] = lse - logits[i, t]
            stats[i, 1] = 1.0 if arg == t else 0.0

    return SimpleNamespace(
        activation=activation, activation_grad=activation_grad, pcg_hash=pcg_hash,
        keep_element=keep_element, sgd_update=sgd_update, adam_update=adam_update,
        cross_entropy_row=cross_entropy_row, batch_norm_channel=batch_norm_channel,
        batch_norm_element=batch_norm_element, batch_norm_grad_element=batch_norm_grad_element,
    )
