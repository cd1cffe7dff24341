"""Training loop behind ``numbaconv train``: minibatch Adam on a named model, with a
progress bar, then the held-out accuracy."""

from __future__ import annotations

import sys
import time

import numpy as np

from . import models, nn, optim
from .dispatch import to_device


def _bar(done, total, width=24):
    filled = int(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _interactive(stream):
    """Redraw the bar every step on a terminal; once per epoch into a log file."""
    return hasattr(stream, "isatty") and stream.isatty()


def _on(device, a):
    return to_device(a) if device == "cuda" else a


def evaluate(model, x, y, batch_size=256, device="cpu"):
    """Accuracy of ``model`` (in eval mode) on ``(x, y)``; the data moves to ``device``
    once, and only the per-row hit counts come back."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss()
    x, y = _on(device, np.ascontiguousarray(x)), _on(device, np.ascontiguousarray(y))
    correct = 0
    for i in range(0, len(x), batch_size):
        loss_fn(model(x[i:i + batch_size]), y[i:i + batch_size])
        correct += loss_fn.correct
    model.train()
    return correct / len(x)


def fit(model, data, epochs=10, batch_size=32, lr=2e-3, seed=0, device="cpu",
        stream=sys.stderr, history=False):
    """Train ``model`` on ``data = (x_train, y_train, x_test, y_test)``; returns a dict of
    test accuracy, final loss and seconds per epoch, and with ``history`` a list of
    per-epoch records (mean training loss, training accuracy, test accuracy, seconds).

    Each epoch the shuffled training set moves to ``device`` in one copy; every step
    (forward, loss, backward, Adam) then runs there on contiguous slices of it.  Only the
    loss value and the count of correct rows come back per step.  The per-epoch test
    accuracy of ``history`` is measured outside the epoch's time."""
    before = model.first_layer().input_grad
    model.input_requires_grad(False)  # the data needs no gradient (restored at the end)
    try:
        return _fit(model, data, epochs, batch_size, lr, seed, device, stream, history)
    finally:
        model.input_requires_grad(before)


def _fit(model, data, epochs, batch_size, lr, seed, device, stream, history):
    x_train, y_train, x_test, y_test = data
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    steps = -(-len(x_train) // batch_size)
    epoch_times, records = [], []
    loss = float("nan")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        xs, ys = _on(device, x_train[order]), _on(device, y_train[order])
        seen = correct = 0
        running = 0.0
        for step in range(steps):
            xb = xs[step * batch_size:(step + 1) * batch_size]
            yb = ys[step * batch_size:(step + 1) * batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()
            seen += len(yb)
            correct += loss_fn.correct
            running += loss * len(yb)
            if stream is not None and (step + 1 == steps or _interactive(stream)):
                stream.write(f"\repoch {epoch}/{epochs} {_bar(step + 1, steps)} "
                             f"loss {running / seen:.4f} acc {100 * correct / seen:5.1f}%")
                stream.flush()
        epoch_times.append(time.perf_counter() - start)
        if history:
            records.append({"epoch": epoch, "loss": running / max(seen, 1),
                            "train_accuracy": correct / max(seen, 1),
                            "test_accuracy": evaluate(model, x_test, y_test, device=device),
                            "seconds": epoch_times[-1]})
        if stream is not None:
            stream.write(f"  ({epoch_times[-1]:.1f} s)\n")
    accuracy = records[-1]["test_accuracy"] if records else evaluate(
        model, x_test, y_test, device=device)
    result = {"test_accuracy": accuracy, "loss": loss, "epoch_seconds": epoch_times}
    if history:
        result["history"] = records
    return result


def run(model_name="cnn", data="digits", data_dir=None, epochs=10, batch_size=32, lr=2e-3,
        seed=0, device="cpu", out=None, stream=sys.stderr, history=None):
    """Build, train and (to ``out``) save a named model; with ``history`` (a path) also
    write the per-epoch records as JSON, with the run's settings: what ``numbaconv plot
    history`` draws."""
    from . import data as datasets

    nn.manual_seed(seed)
    arrays = datasets.digits(seed=seed) if data == "digits" else datasets.mnist(data_dir)
    model = models.build(model_name, in_channels=arrays[0].shape[1], num_classes=10)
    if device == "cuda":
        model.to("cuda")
    result = fit(model, arrays, epochs, batch_size, lr, seed, device, stream,
                 history=bool(history))
    if out:
        model.save(out)
    if history:
        from . import __version__

        settings = {"model": model_name, "data": data, "epochs": epochs,
                    "batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
                    "numbaconv": __version__}
        write_history(history, {"run": settings, "epochs": result["history"]})
    return model, result


def write_history(path, record):
    """Write ``record`` as JSON to ``path`` atomically (a partial file is never seen)."""
    import json
    import os

    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
