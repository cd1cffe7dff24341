"""Losses: ``forward(pred, target)`` returns a float, ``backward()`` the gradient w.r.t.
``pred`` (mean reduction, as PyTorch's defaults)."""

from __future__ import annotations

import numpy as np


class CrossEntropyLoss:
    """Softmax cross-entropy from logits ``(N, classes)`` and integer labels ``(N,)``."""

    def forward(self, pred, target):
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.ndim != 2 or target.shape != (pred.shape[0],):
            raise ValueError(f"CrossEntropyLoss: pred must be (N, classes) and target (N,); "
                             f"got {pred.shape} and {target.shape}")
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError(f"CrossEntropyLoss: target must hold integer class labels; got "
                            f"{target.dtype}")
        if target.min() < 0 or target.max() >= pred.shape[1]:
            raise ValueError(f"CrossEntropyLoss: labels must be in [0, {pred.shape[1]}); got "
                             f"[{target.min()}, {target.max()}]")
        shifted = pred - pred.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self._probs = np.exp(log_probs)
        self._target = target
        return float(-log_probs[np.arange(len(target)), target].mean())

    __call__ = forward

    def backward(self):
        grad = self._probs.copy()
        grad[np.arange(len(self._target)), self._target] -= 1
        return grad / len(self._target)


class MSELoss:
    """Mean squared error over all elements."""

    def forward(self, pred, target):
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"MSELoss: pred and target shapes differ: {pred.shape} vs "
                             f"{target.shape}")
        self._diff = pred - target
        return float(np.mean(self._diff ** 2))

    __call__ = forward

    def backward(self):
        return 2 * self._diff / self._diff.size
