"""Optimizers with PyTorch's update rules; ``step()`` updates every parameter from its
``.grad`` in place, with one fused kernel per parameter on the parameter's device
(``kernels/_elementwise.py`` holds the per-element rules); ``zero_grad()`` clears the
gradients."""

from __future__ import annotations

from .nn import _ops as ops


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
            first = "momentum_buffer" not in state
            if first and self.momentum:  # set to g by the first step
                state["momentum_buffer"] = ops.zeros_like(p.data)
            # without momentum the kernel leaves ``buf`` as it is: pass the gradient
            buf = state["momentum_buffer"] if self.momentum else p.grad
            ops.sgd_step(p.data, p.grad, buf, self.lr, self.momentum, self.dampening,
                         self.weight_decay, self.nesterov, first)


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
            if "exp_avg" not in state:
                state["exp_avg"] = ops.zeros_like(p.data)
                state["exp_avg_sq"] = ops.zeros_like(p.data)
            ops.adam_step(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], self.lr, b1,
                          b2, self.eps, self.weight_decay, self.t)
