"""A minimal layer API with explicit ``forward`` / ``backward`` (see ``module.py``),
enough to build and train the classic small architectures."""

from .blocks import (DepthwiseSeparableConv2d, FlattenedConv2d, HighwayBlock,
                     InceptionBlock, ResidualBlock, ResizeConv2d, ShuffleUnit,
                     SpatiallySeparableConv2d)
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, ChannelShuffle, Conv1d,
                     Conv2d, ConvTranspose2d, Dropout, Flatten, LeakyReLU, Linear, MaxPool2d,
                     ReLU, Sigmoid, Tanh, Upsample)
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter, Sequential, manual_seed

__all__ = [
    "Module", "Parameter", "Sequential", "manual_seed",
    "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Linear", "Flatten", "Dropout",
    "Upsample", "ChannelShuffle",
    "DepthwiseSeparableConv2d", "SpatiallySeparableConv2d", "FlattenedConv2d",
    "ResizeConv2d", "ShuffleUnit", "InceptionBlock", "ResidualBlock", "HighwayBlock",
    "CrossEntropyLoss", "MSELoss",
]
