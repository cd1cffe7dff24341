"""The building blocks of the classic architectures (see the seed notes), as Modules.

Chains are ``Sequential``s; where a block branches (Inception, ShuffleNet, ResNet,
Highway) its backward sends the gradient down every branch and *sums* what comes back
to the shared input, the chain rule for a fan-out.
"""

from __future__ import annotations

from . import _ops as ops
from .layers import (AvgPool2d, BatchNorm2d, ChannelShuffle, Conv2d, MaxPool2d, ReLU,
                     Sigmoid, Upsample)
from .module import Module, Sequential


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _Chain(Module):
    """A block that is one chain of layers (``self.body``)."""

    def forward(self, x):
        return self.body(x)

    def backward(self, grad_output):
        return self.body.backward(grad_output)

    def receptive_chain(self):
        return self.body.receptive_chain()


class DepthwiseSeparableConv2d(_Chain):
    """Depthwise ``k x k`` conv (one filter per input channel), then a 1x1 conv mixing
    channels: ``C_in * k^2 + C_in * C_out`` weights instead of ``C_in * C_out * k^2``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                 dilation=1, bias=True):
        super().__init__()
        k = _pair(kernel_size)
        padding = tuple(dilation * (kk - 1) // 2 for kk in k) if padding is None else padding
        self.body = Sequential(
            Conv2d(in_channels, in_channels, k, stride, padding, dilation, groups=in_channels,
                   bias=bias),
            Conv2d(in_channels, out_channels, 1, bias=bias))


class SpatiallySeparableConv2d(_Chain):
    """A ``k x 1`` conv then a ``1 x k`` conv: a rank-1 ``k x k`` kernel per channel pair
    path, ``2k`` taps instead of ``k^2``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                 bias=True):
        super().__init__()
        k = kernel_size
        p = (k - 1) // 2 if padding is None else padding
        s = _pair(stride)
        self.body = Sequential(
            Conv2d(in_channels, out_channels, (k, 1), (s[0], 1), (p, 0), bias=bias),
            Conv2d(out_channels, out_channels, (1, k), (1, s[1]), (0, p), bias=bias))


class FlattenedConv2d(_Chain):
    """Flattened convolution: the 3-D filter split into 1-D filters applied in turn:
    across channels (1x1), vertically (``k x 1``, per channel) and horizontally
    (``1 x k``, per channel)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=None, bias=True):
        super().__init__()
        k = kernel_size
        p = (k - 1) // 2 if padding is None else padding
        self.body = Sequential(
            Conv2d(in_channels, out_channels, 1, bias=bias),
            Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0), groups=out_channels,
                   bias=bias),
            Conv2d(out_channels, out_channels, (1, k), padding=(0, p), groups=out_channels,
                   bias=bias))


class ResizeConv2d(_Chain):
    """Upsample (nearest or bilinear), then a stride-1 conv: the checkerboard-free
    alternative to a transposed conv (every output gets the same number of taps)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, scale_factor=2,
                 mode="nearest", bias=True):
        super().__init__()
        align = False if mode == "bilinear" else None
        self.body = Sequential(
            Upsample(scale_factor=scale_factor, mode=mode, align_corners=align),
            Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2,
                   bias=bias))


def _conv_bn(c_in, c_out, k, stride=1, padding=0, groups=1, relu=True):
    layers = [Conv2d(c_in, c_out, k, stride, padding, groups=groups, bias=False),
              BatchNorm2d(c_out)]
    return Sequential(*(layers + [ReLU()] if relu else layers))


class _Sum:
    """Gradient of a fan-out: the sum of the branches' input gradients."""

    @staticmethod
    def of(*grads):
        total = grads[0]
        for g in grads[1:]:
            total = ops.add(total, g)
        return total


class ResidualBlock(Module):
    """ResNet block: ``relu(F(x) + shortcut(x))``.  ``bottleneck=False``: two 3x3
    conv-BN (basic); ``True``: 1x1 reduce to ``out/4``, 3x3, 1x1 expand.  The shortcut is
    the identity, or a 1x1 conv-BN projection when stride or channels change."""

    def __init__(self, in_channels, out_channels, stride=1, bottleneck=False):
        super().__init__()
        if bottleneck:
            mid = max(out_channels // 4, 1)
            self.body = Sequential(_conv_bn(in_channels, mid, 1),
                                   _conv_bn(mid, mid, 3, stride, 1),
                                   _conv_bn(mid, out_channels, 1, relu=False))
        else:
            self.body = Sequential(_conv_bn(in_channels, out_channels, 3, stride, 1),
                                   _conv_bn(out_channels, out_channels, 3, 1, 1, relu=False))
        self.shortcut = (_conv_bn(in_channels, out_channels, 1, stride, relu=False)
                         if stride != 1 or in_channels != out_channels else None)
        self.relu = ReLU()

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(ops.add(self.body(x), skip))

    def backward(self, grad_output):
        g = self.relu.backward(grad_output)
        g_skip = g if self.shortcut is None else self.shortcut.backward(g)
        return _Sum.of(self.body.backward(g), g_skip)

    def receptive_chain(self):
        return self.body.receptive_chain()


class InceptionBlock(Module):
    """GoogLeNet's Inception module: four branches concatenated along channels: 1x1;
    1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1."""

    def __init__(self, in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5,
                 pool_proj):
        super().__init__()
        self.branch1 = _conv_bn(in_channels, ch1x1, 1)
        self.branch2 = Sequential(_conv_bn(in_channels, ch3x3_reduce, 1),
                                  _conv_bn(ch3x3_reduce, ch3x3, 3, padding=1))
        self.branch3 = Sequential(_conv_bn(in_channels, ch5x5_reduce, 1),
                                  _conv_bn(ch5x5_reduce, ch5x5, 5, padding=2))
        self.branch4 = Sequential(MaxPool2d(3, stride=1, padding=1),
                                  _conv_bn(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def _branches(self):
        return (self.branch1, self.branch2, self.branch3, self.branch4)

    def forward(self, x):
        outs = [b(x) for b in self._branches()]
        self._sizes = [o.shape[1] for o in outs]
        return ops.concat_channels(outs)

    def backward(self, grad_output):
        parts = ops.split_channels(grad_output, self._sizes)
        return _Sum.of(*(b.backward(g) for b, g in zip(self._branches(), parts)))

    def receptive_chain(self):
        return self.branch3.receptive_chain()  # the widest path


class ShuffleUnit(Module):
    """ShuffleNet unit: 1x1 grouped conv, channel shuffle, 3x3 depthwise conv, 1x1
    grouped conv; the shortcut is added (stride 1) or, for stride 2, average-pooled and
    concatenated (the unit then adds ``out - in`` channels)."""

    def __init__(self, in_channels, out_channels, groups=3, stride=1, first_group=True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit: stride must be 1 or 2; got {stride!r}")
        self.stride = stride
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if stride == 1 and in_channels != out_channels:
            raise ValueError("ShuffleUnit: stride 1 needs in_channels == out_channels; got "
                             f"{in_channels} -> {out_channels}")
        mid = max(groups, (out_channels // 4) // groups * groups)
        g1 = groups if first_group else 1
        self.body = Sequential(
            _conv_bn(in_channels, mid, 1, groups=g1),
            ChannelShuffle(g1) if g1 > 1 else Sequential(),
            _conv_bn(mid, mid, 3, stride, 1, groups=mid, relu=False),
            _conv_bn(mid, branch_out, 1, groups=groups, relu=False))
        self.pool = AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = ReLU()

    def forward(self, x):
        y = self.body(x)
        if self.pool is None:
            return self.relu(ops.add(y, x))
        p = self.pool(x)
        self._split = p.shape[1]
        return self.relu(ops.concat_channels([p, y]))

    def backward(self, grad_output):
        g = self.relu.backward(grad_output)
        if self.pool is None:
            return _Sum.of(self.body.backward(g), g)
        g_pool, g_body = ops.split_channels(g, [self._split, g.shape[1] - self._split])
        return _Sum.of(self.pool.backward(g_pool), self.body.backward(g_body))

    def receptive_chain(self):
        return self.body.receptive_chain()


class HighwayBlock(Module):
    """Highway layer: ``y = T(x) * H(x) + (1 - T(x)) * x`` with ``H = relu(conv(x))`` and
    the gate ``T = sigmoid(conv(x))``, its bias started negative so the block begins
    close to the identity (carry)."""

    def __init__(self, channels, kernel_size=3, gate_bias=-1.0):
        super().__init__()
        p = (kernel_size - 1) // 2
        self.transform = Sequential(Conv2d(channels, channels, kernel_size, padding=p), ReLU())
        self.gate = Sequential(Conv2d(channels, channels, kernel_size, padding=p), Sigmoid())
        self.gate[0].bias.data[...] = gate_bias

    def forward(self, x):
        self._h = self.transform(x)
        self._t = self.gate(x)
        self._h_minus_x = ops.axpby(1, self._h, -1, x)
        return ops.add(ops.multiply(self._t, self._h_minus_x), x)  # t * (h - x) + x

    def backward(self, grad_output):
        g = grad_output
        g_h = ops.multiply(g, self._t)
        g_t = ops.multiply(g, self._h_minus_x)
        g_carry = ops.axpby(1, g, -1, g_h)  # g * (1 - t)
        return _Sum.of(self.transform.backward(g_h), self.gate.backward(g_t), g_carry)

    def receptive_chain(self):
        return self.transform.receptive_chain()
