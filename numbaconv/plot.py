"""Pictures as PNG files, behind ``numbaconv plot``: a training run's curves, what a
model's first filters look like, what each conv stage sees in one image, and where
checkerboard artifacts come from.

Every picture is two functions: one that computes the arrays it draws (``read_history``,
``filter_grid``, ``feature_maps``, ``checkerboard_panels``; plain NumPy, tested against
the library) and one that draws them (``plot_*``).  Only the drawing needs matplotlib
(the ``plot`` extra); it is imported there, and figures are drawn on the Agg canvas
without pyplot, so nothing global changes and no screen is needed.  Bad input fails
before any work with a ``ValueError`` that names it.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

MAX_FILTERS = 64       # filters drawn by ``plot_filters`` (the first ones)
MAX_CHANNELS = 16      # input channels drawn per filter
MAPS_PER_STAGE = 8     # feature maps drawn per stage (the most active ones)


# --------------------------------------------------------------------------- checks
def _figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("numbaconv plot needs matplotlib: pip install "
                          "'numbaconv[plot]'") from exc
    return Figure


def check_png_path(out, what="out"):
    """``out`` must name a .png file in a folder that exists."""
    from ._args import unwritable_file

    out = os.fspath(out)
    if not out.lower().endswith(".png"):
        raise ValueError(f"{what}: expected a path ending in .png; got {out!r}")
    problem = unwritable_file(out)
    if problem:
        raise ValueError(f"{what}: {out!r}: {problem}")
    return out


def _save(fig, out):
    """Write ``fig`` as a 256-colour PNG: a third of the size of matplotlib's RGBA file
    and the same picture to the eye (Pillow comes with matplotlib)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=fig.dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out


def _normalize(images):
    """Each image (the last two axes) scaled to [0, 1] on its own; a flat one is 0.5."""
    images = np.asarray(images, np.float64)
    lo = images.min(axis=(-2, -1), keepdims=True)
    span = images.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (images - lo) / np.where(span > 0, span, 1), 0.5)


# --------------------------------------------------------------------------- history
def read_history(path):
    """The record ``numbaconv train --history`` wrote: ``{"run": settings, "epochs": [
    {"epoch", "loss", "train_accuracy", "test_accuracy", "seconds"}, ...]}``."""
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"history file {os.fspath(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"history file {os.fspath(path)!r} is not JSON: {exc}") from None
    return _checked_history(record, f"history file {os.fspath(path)!r}")


def _checked_history(record, what):
    keys = ("epoch", "loss", "train_accuracy", "test_accuracy", "seconds")
    epochs = record.get("epochs") if isinstance(record, dict) else None

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if (not isinstance(epochs, list) or not epochs or not isinstance(record.get("run", {}), dict)
            or not all(isinstance(e, dict) and all(number(e.get(k)) for k in keys)
                       for e in epochs)):
        raise ValueError(f"{what} holds no epochs; expected what 'numbaconv train "
                         f"--history' writes (a list of epochs, each with numbers {keys})")
    return record


def plot_history(history, out):
    """Loss, and training and test accuracy, per epoch (``history``: a path or the record)."""
    out = check_png_path(out)
    record = (_checked_history(history, "history") if isinstance(history, dict)
              else read_history(history))
    epochs = record["epochs"]
    x = [e["epoch"] for e in epochs]
    fig = _figure()(figsize=(8, 3.2), dpi=100, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(x, [e["loss"] for e in epochs], "o-", color="tab:red")
    loss_ax.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", yscale="log")
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test")):
        acc_ax.plot(x, [100 * e[key] for e in epochs], "o-", label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.legend(loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    run = record.get("run", {})
    seconds = [e["seconds"] for e in epochs]
    fig.suptitle(f"{run.get('model', 'model')} on {run.get('data', 'data')}: "
                 f"test accuracy {100 * epochs[-1]['test_accuracy']:.1f}% after "
                 f"{len(epochs)} epochs ({seconds[0]:.1f} s first, "
                 f"{np.median(seconds[1:] or seconds):.2f} s later)", fontsize=10)
    return _save(fig, out)


# --------------------------------------------------------------------------- models
def load_model(path, name):
    """A named model with the weights saved at ``path``, in eval mode
    (:func:`numbaconv.models.load`)."""
    from . import models

    return models.load(path, name)


def _convs(module):
    from .nn.layers import _ConvNd

    return [m for _, m in module.named_modules() if isinstance(m, _ConvNd)]


def filter_grid(model, reduce="each"):
    """The first conv layer's filters as images ``(filters, channels, kH, kW)``, each
    normalized to [0, 1]; ``reduce="mean"`` averages the input channels first (one
    image per filter).  At most ``MAX_FILTERS`` filters and ``MAX_CHANNELS`` channels."""
    if reduce not in ("each", "mean"):
        raise ValueError(f"reduce: expected 'each' or 'mean'; got {reduce!r}")
    convs = _convs(model)
    if not convs:
        raise ValueError("model has no conv layer")
    from .dispatch import to_host

    w = np.asarray(to_host(convs[0].weight.data), np.float64)
    if w.ndim != 4:
        raise ValueError(f"the first conv layer is not 2-D (weight shape {w.shape})")
    w = w[:MAX_FILTERS, :MAX_CHANNELS]
    if reduce == "mean":
        w = w.mean(axis=1, keepdims=True)
    return _normalize(w)


def plot_filters(model, out, reduce="each"):
    """The first conv layer's filters: one row per filter and a column per input
    channel, or, for one channel (or ``reduce="mean"``), a square-ish grid."""
    out = check_png_path(out)
    grid = filter_grid(model, reduce)
    n, c = grid.shape[:2]
    if c == 1:
        cols = math.ceil(math.sqrt(n * 1.5))
        rows = math.ceil(n / cols)
        cells = [(i // cols, i % cols, grid[i, 0], f"{i}") for i in range(n)]
    else:
        rows, cols = n, c
        cells = [(i, j, grid[i, j], f"{i}.{j}") for i in range(n) for j in range(c)]
    fig = _figure()(figsize=(0.9 * cols + 0.4, 0.9 * rows + 0.7), dpi=100,
                    layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    for r, col, image, label in cells:
        axes[r, col].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, col].set_title(label, fontsize=7, pad=2)
    conv = _convs(model)[0]
    how = "averaged over input channels" if reduce == "mean" and conv.weight.shape[1] > 1 \
        else "filter.channel" if c > 1 else "one per filter"
    fig.suptitle(f"first conv layer: {conv.weight.shape[0]} filters "
                 f"{'x'.join(map(str, conv.kernel_size))}, {how}, each scaled to its own "
                 f"range (white = largest weight)", fontsize=9)
    return _save(fig, out)


def _stages(model):
    """Split a Sequential model into conv stages: a layer holding a conv, then the
    element-wise layers after it (BatchNorm, activations, dropout).  Returns (name,
    layers, is_stage) runs in order, the layers between stages (pools, the classifier)
    as runs with ``is_stage`` False."""
    from .nn import layers as L
    from .nn.module import Sequential

    if not isinstance(model, Sequential):
        raise ValueError(f"feature maps need a Sequential model; got "
                         f"{type(model).__name__}")
    elementwise = (L.BatchNorm2d, L._Activation, L.Dropout)
    runs = []
    for layer in model:
        if _convs(layer):
            runs.append([type(layer).__name__, [layer], True])
        elif isinstance(layer, elementwise) and runs and runs[-1][2]:
            runs[-1][1].append(layer)
        else:
            runs.append([type(layer).__name__, [layer], False])
    return [tuple(r) for r in runs]


def feature_maps(model, image):
    """What each conv stage of ``model`` (eval mode) outputs for one ``image`` ``(C, H,
    W)``: a list of ``(stage name, maps (C', H', W'))``, and the class probabilities."""
    from .dispatch import to_host

    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected (C, H, W); got shape {image.shape}")
    model.eval()
    x = np.ascontiguousarray(image[None], dtype=np.float32)
    stages = []
    for name, layers, is_stage in _stages(model):
        for layer in layers:
            x = layer(x)
        if is_stage:
            chain = " > ".join(type(m).__name__ for m in layers)
            stages.append((f"stage {len(stages) + 1}: {chain}", np.asarray(to_host(x))[0]))
    logits = np.asarray(to_host(x), np.float64).reshape(-1)
    p = np.exp(logits - logits.max())
    return stages, p / p.sum()


def plot_features(model, image, out, label=None):
    """The input image and, per conv stage, its ``MAPS_PER_STAGE`` most active maps
    (largest mean activation; each scaled to its own range)."""
    out = check_png_path(out)
    stages, probs = feature_maps(model, image)
    cols = MAPS_PER_STAGE
    fig = _figure()(figsize=(1.2 * cols + 1.6, 1.25 * (len(stages) + 1) + 0.5), dpi=100,
                    layout="constrained")
    axes = fig.subplots(len(stages) + 1, cols + 1, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    axes[0, 0].imshow(_normalize(np.asarray(image, np.float64).mean(axis=0)), cmap="gray",
                      vmin=0, vmax=1, interpolation="nearest")
    axes[0, 0].set_title("input", fontsize=8)
    guess = int(np.argmax(probs))
    truth = "" if label is None else f"label {label}, "
    for row, (name, maps) in enumerate(stages, start=1):
        order = np.argsort(-maps.reshape(len(maps), -1).mean(axis=1), kind="stable")[:cols]
        axes[row, 0].text(1, 0.5, name.replace(": ", ":\n", 1).replace(" > ", "\n"),
                          fontsize=7, ha="right", va="center",
                          transform=axes[row, 0].transAxes)
        for j, ch in enumerate(order):
            ax = axes[row, j + 1]
            ax.imshow(_normalize(maps[ch]), cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"ch {ch} ({maps.shape[1]}x{maps.shape[2]})", fontsize=6, pad=2)
    fig.suptitle(f"feature maps of each conv stage for one image ({truth}predicted {guess}, "
                 f"p = {probs[guess]:.2f}): the {cols} most active channels, each scaled "
                 f"to its own range", fontsize=10)
    return _save(fig, out)


# --------------------------------------------------------------------------- checkerboard
def smooth_image(size):
    """A smooth test picture ``(size, size)`` in [0.5, 1]: a soft blob."""
    t = np.linspace(-1, 1, size)
    r2 = t[:, None] ** 2 + t[None, :] ** 2
    return 0.5 + 0.5 * np.exp(-1.5 * r2)


def checkerboard_panels(kernel_size, stride, size=8, image=None):
    """What ``plot_checkerboard`` draws for one (kernel, stride): the overlap counts of a
    transposed conv (``analysis.checkerboard``), and the outputs of a transposed conv and
    of resize-then-conv (``nn.ResizeConv2d``, nearest) with equal weights, on ``image``
    (``(size, size)``; default ``smooth_image``).  Weights are scaled so that an output
    with the average number of overlaps keeps the input's level."""
    from . import analysis, nn

    k, s = int(kernel_size), int(stride)
    if k < 1 or s < 1:
        raise ValueError(f"kernel_size and stride: expected positive integers; got "
                         f"{kernel_size} and {stride}")
    if image is None and int(size) < 2:
        raise ValueError(f"size: expected an input of at least 2 pixels; got {size}")
    image = smooth_image(size) if image is None else np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"image: expected (H, W); got shape {image.shape}")
    x = np.ascontiguousarray(image[None, None])
    transposed = nn.ConvTranspose2d(1, 1, k, stride=s, bias=False, dtype=np.float64)
    transposed.weight.data = np.full((1, 1, k, k), s * s / (k * k))
    resize = nn.ResizeConv2d(1, 1, k, scale_factor=s, bias=False)
    conv = resize.body[1]
    conv.weight.data = np.full((1, 1, k, k), 1.0 / (k * k))
    return {"image": image,
            "counts": analysis.checkerboard(k, s, input_size=image.shape).counts,
            "transposed": np.asarray(transposed(x))[0, 0],
            "resize_conv": np.asarray(resize(x))[0, 0],
            "uneven": analysis.checkerboard(k, s).uneven}


def _contrast_kernel(k, s):
    """The other case to show beside (k, s): the nearest even kernel (a multiple of s)
    for an uneven one, an uneven one (k + 1) for an even one; none for stride 1."""
    if s == 1:
        return None
    return s * math.ceil(k / s) if k % s else k + 1


def plot_checkerboard(kernel_size, stride, out, size=8):
    """Per row, one kernel size at ``stride``: the overlap counts, the transposed conv's
    output and resize-then-conv's output for the same smooth input, equal weights.  The
    row of ``kernel_size`` is shown with the contrasting (even / uneven) kernel."""
    out = check_png_path(out)
    k, s = int(kernel_size), int(stride)
    rows = [k] + ([_contrast_kernel(k, s)] if _contrast_kernel(k, s) else [])
    panels = [checkerboard_panels(kk, s, size) for kk in rows]
    fig = _figure()(figsize=(10, 3.3 * len(rows) + 0.4), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for kk, p, row in zip(rows, panels, axes):
        state = "uneven: k % s != 0" if p["uneven"] else "even: k % s == 0"
        shown = [("overlap count per output", p["counts"], "magma"),
                 ("ConvTranspose2d (equal weights)", p["transposed"], "gray"),
                 (f"ResizeConv2d: nearest x{s}, then conv", p["resize_conv"], "gray")]
        for ax, (title, data, cmap) in zip(row, shown):  # outputs: black is 0
            im = ax.imshow(data, cmap=cmap, vmin=None if cmap == "magma" else 0,
                           interpolation="nearest")
            ax.set_title(f"k={kk}, s={s}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.8)
        counts = p["counts"]
        if counts.shape[0] * counts.shape[1] <= 400:  # small maps: write the counts in
            for (i, j), v in np.ndenumerate(counts):
                row[0].text(j, i, str(int(v)), ha="center", va="center", fontsize=6,
                            color="white" if v < counts.max() * 0.6 else "black")
        row[0].set_ylabel(state, fontsize=9)
    fig.suptitle(f"checkerboard artifacts of a transposed conv (stride {s}): the same "
                 f"{size}x{size} smooth input, all weights equal", fontsize=10)
    return _save(fig, out)


__all__ = [
    "check_png_path",
    "checkerboard_panels",
    "feature_maps",
    "filter_grid",
    "load_model",
    "plot_checkerboard",
    "plot_features",
    "plot_filters",
    "plot_history",
    "read_history",
    "smooth_image",
]
