"""Named small models for the command line (``numbaconv train --model``, ``numbaconv
summary``, ``numbaconv predict``): each builder takes ``(in_channels, num_classes)``; the
classifiers work on 8x8 digits as on 28x28 MNIST (a global pool before the classifier),
``fcn`` on images of any size."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from . import nn


def cnn(in_channels=1, num_classes=10):
    """Two conv-BN-ReLU stages, a max-pool, global average pool, linear classifier."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def resnet(in_channels=1, num_classes=10):
    """A stem conv and three residual blocks (one strided, with a projection)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ResidualBlock(32, 32), nn.ResidualBlock(32, 64, stride=2),
        nn.ResidualBlock(64, 64, bottleneck=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def mobile(in_channels=1, num_classes=10):
    """Depthwise-separable convs (MobileNet style)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.DepthwiseSeparableConv2d(32, 64), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.DepthwiseSeparableConv2d(64, 128), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))


def inception(in_channels=1, num_classes=10):
    """A stem conv and one Inception block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.InceptionBlock(32, 16, 16, 32, 8, 8, 8), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def fcn(in_channels=1, num_classes=2, width=16):
    """Fully convolutional: three 3x3 convs (the middle one dilated 2, a 9x9 receptive
    field), per-pixel scores of the input's size (what ``numbaconv predict`` runs tile
    by tile over images of any size)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
        nn.Conv2d(width, num_classes, 3, padding=1))


# the classifiers, trainable on the digits (numbaconv train --model)
MODELS = {"cnn": cnn, "resnet": resnet, "mobile": mobile, "inception": inception}
# every named model (numbaconv predict --model)
ALL = {**MODELS, "fcn": fcn}


def build(name, in_channels=1, num_classes=10):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](in_channels, num_classes)


def load(path, name):
    """A named model (``numbaconv.models``) with the weights saved at ``path`` (.npz by
    ``numbaconv train``), in eval mode.  Input channels and classes come from the file."""
    if name not in ALL:
        raise ValueError(f"model: unknown model {name!r}; choose one of {sorted(ALL)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"model file {path!r} does not exist")
    try:
        data = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"model file {path!r} is not a saved model (.npz): {exc}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"model file {path!r} holds one array, not a saved model (.npz)")
    with data:
        state = {k: data[k] for k in data.files}
    kernels = [a for a in state.values() if a.ndim == 4]
    matrices = [a for a in state.values() if a.ndim == 2]
    classifier = name in MODELS
    if not kernels or (classifier and not matrices):
        what = "conv weights and classifier" if classifier else "conv weights"
        raise ValueError(f"model file {path!r} holds no {what}; was it written by "
                         f"'numbaconv train' (or Module.save)?")
    outputs = matrices[-1].shape[0] if classifier else kernels[-1].shape[0]
    model = ALL[name](in_channels=kernels[0].shape[1], num_classes=outputs)
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"model file {path!r} does not hold a {name!r} model: "
                         f"{exc.args[0]}") from None
    return model.eval()
