"""torch layers on numbaconv's kernels, and ``patch`` to put them into a torch model.

Each layer *is* its torch namesake (a subclass: same constructor, parameters, buffers,
``state_dict``, ``repr``) with a ``forward`` that calls ``numbaconv.torch``.  What
numbaconv does not compute (dtypes other than float32 / float64, devices other than CPU
and CUDA, modes it lacks) runs torch's own ``forward``, so a layer is never wrong, only
sometimes not faster.  :func:`patch` turns matching layers of a model into these in
place (it changes their class; parameters, hooks and optimizer state stay as they are).
"""

from __future__ import annotations

import torch
from torch import nn as tnn

from .. import torch as nt

_DTYPES = (torch.float32, torch.float64)


def _ours(*tensors):
    """Whether numbaconv computes this call (else torch's own forward runs)."""
    first = tensors[0]
    if first.device.type not in ("cpu", "cuda") or first.dtype not in _DTYPES:
        return False
    return all(t is None or (t.dtype == first.dtype and t.device == first.device)
               for t in tensors)


class Conv1d(tnn.Conv1d):
    def forward(self, input):
        if not _ours(input, self.weight, self.bias):
            return super().forward(input)
        return nt.conv1d(input, self.weight, self.bias, self.stride, self.padding,
                         self.dilation, self.groups, padding_mode=self.padding_mode)


class Conv2d(tnn.Conv2d):
    def forward(self, input):
        if not _ours(input, self.weight, self.bias):
            return super().forward(input)
        return nt.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                         self.dilation, self.groups, padding_mode=self.padding_mode)


class ConvTranspose2d(tnn.ConvTranspose2d):
    def forward(self, input, output_size=None):
        if not _ours(input, self.weight, self.bias) or self.padding_mode != "zeros":
            return super().forward(input, output_size)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        return nt.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                   output_padding, self.groups, self.dilation)


class MaxPool2d(tnn.MaxPool2d):
    def forward(self, input):
        if not _ours(input):
            return super().forward(input)
        return nt.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                             self.dilation, self.ceil_mode, self.return_indices)


class AvgPool2d(tnn.AvgPool2d):
    def forward(self, input):
        if not _ours(input):
            return super().forward(input)
        return nt.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                             self.ceil_mode, self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(tnn.AdaptiveAvgPool2d):
    def forward(self, input):
        if not _ours(input):
            return super().forward(input)
        return nt.adaptive_avg_pool2d(input, self.output_size)


class Upsample(tnn.Upsample):
    _MODES = {3: ("nearest", "nearest-exact", "linear", "area"),
              4: ("nearest", "nearest-exact", "bilinear", "bicubic", "area")}

    def forward(self, input):
        if not _ours(input) or self.mode not in self._MODES.get(input.dim(), ()):
            return super().forward(input)  # trilinear, 5-D, half precision, ...
        return nt.interpolate(input, self.size, self.scale_factor, self.mode,
                              self.align_corners, self.recompute_scale_factor)


class ChannelShuffle(tnn.ChannelShuffle):
    def forward(self, input):
        if not _ours(input):
            return super().forward(input)
        return nt.channel_shuffle(input, self.groups)


TWINS = {tnn.Conv1d: Conv1d, tnn.Conv2d: Conv2d, tnn.ConvTranspose2d: ConvTranspose2d,
         tnn.MaxPool2d: MaxPool2d, tnn.AvgPool2d: AvgPool2d,
         tnn.AdaptiveAvgPool2d: AdaptiveAvgPool2d, tnn.Upsample: Upsample,
         tnn.ChannelShuffle: ChannelShuffle}


def patch(model, ops=None):
    """Swap, in place, every submodule of ``model`` (itself included) whose type is one
    of torch's ``Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
    AdaptiveAvgPool2d, Upsample, ChannelShuffle`` for its numbaconv twin; ``ops`` (names
    or torch classes) limits it to those.  Subclasses of those types are left alone
    (their ``forward`` may differ).  Returns ``model``."""
    if not isinstance(model, tnn.Module):
        raise TypeError(f"patch: model must be a torch.nn.Module; got {type(model).__name__}")
    chosen = set(TWINS)
    if ops is not None:
        names = {cls.__name__: cls for cls in TWINS}
        chosen = set()
        for op in ([ops] if isinstance(ops, (str, type)) else ops):
            cls = names.get(op) if isinstance(op, str) else op
            if cls not in TWINS:
                raise ValueError(f"patch: ops must name layers among {sorted(names)}; "
                                 f"got {op!r}")
            chosen.add(cls)
    for module in model.modules():
        if type(module) in chosen:
            module.__class__ = TWINS[type(module)]
    return model


__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Upsample", "ChannelShuffle", "patch"]
