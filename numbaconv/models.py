"""Named small models for the command line (``numbaconv train --model``, ``numbaconv
summary``): each builder takes ``(in_channels, num_classes)`` and works on 8x8 digits
as on 28x28 MNIST (a global pool before the classifier)."""

from __future__ import annotations

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


MODELS = {"cnn": cnn, "resnet": resnet, "mobile": mobile, "inception": inception}


def build(name, in_channels=1, num_classes=10):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](in_channels, num_classes)
