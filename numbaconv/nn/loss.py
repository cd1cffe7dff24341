"""Losses: ``forward(pred, target)`` returns a float, ``backward()`` the gradient w.r.t.
``pred`` on ``pred``'s device (mean reduction, as PyTorch's defaults).  On the GPU only
the loss value comes to the host."""

from __future__ import annotations

import numpy as np

from ..dispatch import device_for
from . import _ops as ops


class CrossEntropyLoss:
    """Softmax cross-entropy from logits ``(N, classes)`` and integer labels ``(N,)``.
    After ``forward``, ``correct`` holds how many rows' first argmax is the label (the
    accuracy numerator, computed in the same pass)."""

    def forward(self, pred, target):
        device_for("CrossEntropyLoss", pred=pred, target=target)
        if len(pred.shape) != 2 or tuple(target.shape) != (pred.shape[0],):
            raise ValueError(f"CrossEntropyLoss: pred must be (N, classes) and target (N,); "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        if not np.issubdtype(np.dtype(target.dtype), np.integer):
            raise TypeError(f"CrossEntropyLoss: target must hold integer class labels; got "
                            f"{target.dtype}")
        if np.dtype(pred.dtype) not in (np.float32, np.float64):
            raise TypeError(f"CrossEntropyLoss: pred must be float32 or float64; got "
                            f"{pred.dtype}")
        loss, self.correct, self._grad = ops.cross_entropy(pred, target)
        return loss

    __call__ = forward

    def backward(self):
        return self._grad


class MSELoss:
    """Mean squared error over all elements."""

    def forward(self, pred, target):
        device_for("MSELoss", pred=pred, target=target)
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"MSELoss: pred and target shapes differ: {tuple(pred.shape)} vs "
                             f"{tuple(target.shape)}")
        self._diff = ops.axpby(1, pred, -1, target)
        return ops.sum_squares(self._diff) / self._diff.size

    __call__ = forward

    def backward(self):
        return ops.axpby(2 / self._diff.size, self._diff, 0, self._diff)
