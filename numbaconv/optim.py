"""Optimizers with PyTorch's update rules; ``step()`` updates every parameter from its
``.grad``, ``zero_grad()`` clears the gradients."""

from __future__ import annotations

import numpy as np


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive; got {lr!r}")
        self.lr = lr
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()


class SGD(Optimizer):
    """``g = grad + wd * p``; with momentum ``buf = momentum * buf + g`` (``buf = g`` at
    the first step), then ``g = g + momentum * buf`` (nesterov) or ``g = buf``;
    ``p -= lr * g``."""

    def __init__(self, params, lr, momentum=0, weight_decay=0, nesterov=False, dampening=0):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and no dampening")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.nesterov, self.dampening = nesterov, dampening

    def step(self):
        for p, state in zip(self.params, self.state):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= (self.lr * g).astype(p.data.dtype)


class Adam(Optimizer):
    """``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr * m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps)`` (L2 ``weight_decay``
    added to ``g``, as PyTorch's Adam)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, state in zip(self.params, self.state):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m = state.setdefault("exp_avg", np.zeros_like(p.data))
            v = state.setdefault("exp_avg_sq", np.zeros_like(p.data))
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            step = self.lr / (1 - b1 ** self.t)
            denom = np.sqrt(v) / np.sqrt(1 - b2 ** self.t) + self.eps
            p.data -= (step * m / denom).astype(p.data.dtype)
