"""Layers: PyTorch's constructor arguments and default initialization, parameter and
buffer names as in PyTorch.  Convolution, pooling, resampling and shuffling call the
functional ops; the elementwise layers, batch-norm and linear call the layer kernels
through ``nn._ops``.  Either way the device is where the arrays live.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..dispatch import device_of, get_backend
from ..functional.conv import conv_param_grads
from ..functional.pool import max_pool2d_backward_of_forward
from . import _ops as ops
from .module import Module, Parameter, rng


def _uniform(shape, bound, dtype):
    return rng().uniform(-bound, bound, size=shape).astype(dtype)


def _data(param):
    return None if param is None else param.data


# --------------------------------------------------------------------------- convolution
class _ConvNd(Module):
    _ndim = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", output_padding=0,
                 dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) and "
                             f"out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        nd = self._ndim
        k = (kernel_size,) * nd if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.padding_mode, self.output_padding = groups, padding_mode, output_padding
        if self._transposed:
            shape = (in_channels, out_channels // groups) + k
        else:
            shape = (out_channels, in_channels // groups) + k
        # PyTorch: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        fan_in = shape[1] * math.prod(k)
        bound = 1 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(shape, bound, dtype))
        self.bias = Parameter(_uniform((out_channels,), bound, dtype)) if bias else None

    def _kw(self):
        kw = dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                  groups=self.groups)
        if self._transposed:
            kw["output_padding"] = self.output_padding
        else:
            kw["padding_mode"] = self.padding_mode
        return kw

    def _ops(self):
        name = ("conv_transpose" if self._transposed else "conv") + f"{self._ndim}d"
        return getattr(F, name), getattr(F, name + "_backward")

    def forward(self, x):
        self._x = x
        forward, _ = self._ops()
        return forward(x, self.weight.data, None if self.bias is None else self.bias.data,
                       **self._kw())

    def backward(self, grad_output):
        _, backward = self._ops()
        b = None if self.bias is None else self.bias.data
        if not self.input_grad and not self._transposed:  # fed with data: no grad input
            gx = None
            gw, gb = conv_param_grads(self._ndim, grad_output, self._x, self.weight.data, b,
                                      **self._kw())
        else:
            gx, gw, gb = backward(grad_output, self._x, self.weight.data, b, **self._kw())
        _accumulate(self.weight, gw)
        if self.bias is not None:
            _accumulate(self.bias, gb)
        return gx

    def macs(self, input_shape, output_shape):
        from ..analysis import conv_flops

        if self._transposed:
            return conv_flops(input_shape, self.out_channels, self.kernel_size,
                              groups=self.groups, transposed=True)
        per_out = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return math.prod(output_shape) * per_out

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


def _accumulate(param, grad):
    """param.grad += grad, on the parameter's device."""
    ops.accumulate_into(param.grad, grad)


class Conv1d(_ConvNd):
    _ndim = 1


class Conv2d(_ConvNd):
    _ndim = 2


class ConvTranspose2d(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, "zeros", output_padding, dtype)


# --------------------------------------------------------------------------- pooling
class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride  # as PyTorch stores it
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported by the layer; "
                             "use numbaconv.max_pool2d")

    def _kw(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, ceil_mode=self.ceil_mode)

    def forward(self, x):
        self._x = x
        y, self._indices = F.max_pool2d(x, return_indices=True, **self._kw())
        return y

    def backward(self, grad_output):
        return max_pool2d_backward_of_forward(grad_output, self._x, self._indices,
                                              **self._kw())[0]


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _kw(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                    divisor_override=self.divisor_override)

    def forward(self, x):
        self._x = x
        return F.avg_pool2d(x, **self._kw())

    def backward(self, grad_output):
        return F.avg_pool2d_backward(grad_output, self._x, **self._kw())[0]


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        self._x = x
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, grad_output):
        return F.adaptive_avg_pool2d_backward(grad_output, self._x, self.output_size)[0]


# --------------------------------------------------------------------------- resampling
class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self.kw = dict(size=size, scale_factor=scale_factor, mode=mode,
                       align_corners=align_corners)

    def forward(self, x):
        self._x = x
        return F.interpolate(x, **self.kw)

    def backward(self, grad_output):
        return F.interpolate_backward(grad_output, self._x, **self.kw)[0]


class ChannelShuffle(Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        self._x = x
        return F.channel_shuffle(x, self.groups)

    def backward(self, grad_output):
        return F.channel_shuffle_backward(grad_output, self._x, self.groups)[0]


# --------------------------------------------------------------------------- normalization
class BatchNorm2d(Module):
    """Per-channel batch normalization.  Training: normalizes with the batch's mean and
    biased variance and updates ``running_mean`` / ``running_var`` (unbiased) with
    ``momentum``; eval: normalizes with the running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        if len(x.shape) != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: input must be (N, {self.num_features}, H, W); got "
                             f"shape {tuple(x.shape)}")
        self._batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        y, self._xhat, self._inv_std = ops.batch_norm(
            x, _data(self.weight), _data(self.bias), self.running_mean, self.running_var,
            self._batch_stats, update, self.momentum, self.eps)
        if update:
            self.num_batches_tracked = np.asarray(self.num_batches_tracked + 1)
        return y

    def backward(self, grad_output):
        gx, gw, gb = ops.batch_norm_backward(grad_output, self._xhat, self._inv_std,
                                             _data(self.weight), self._batch_stats)
        if self.affine:
            _accumulate(self.weight, gw)
            _accumulate(self.bias, gb)
        return gx


# --------------------------------------------------------------------------- activations
class _Activation(Module):
    """``y = f(x)`` elementwise; the backward reads ``x`` (ReLU) or ``y`` (sigmoid, tanh)."""

    kind = "relu"
    alpha = 0.0

    def forward(self, x):
        self._x = x
        self._y = ops.activation(x, self.kind, self.alpha)
        return self._y

    def backward(self, grad_output):
        return ops.activation_backward(grad_output, self._x, self._y, self.kind, self.alpha)


class ReLU(_Activation):
    kind = "relu"


class LeakyReLU(_Activation):
    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = self.alpha = negative_slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Activation):
    kind = "sigmoid"


class Tanh(_Activation):
    kind = "tanh"


# --------------------------------------------------------------------------- misc
class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(_uniform((out_features, in_features), bound, dtype))
        self.bias = Parameter(_uniform((out_features,), bound, dtype)) if bias else None

    def forward(self, x):
        if len(x.shape) != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear: input must be (N, {self.in_features}); got shape "
                             f"{tuple(x.shape)}")
        self._x = x
        return ops.linear(x, self.weight.data, _data(self.bias))

    def backward(self, grad_output):
        return ops.linear_backward(grad_output, self._x, self.weight.data, self.weight.grad,
                                   None if self.bias is None else self.bias.grad)

    def macs(self, input_shape, output_shape):
        return math.prod(output_shape) * self.in_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        self._shape = tuple(x.shape)
        nd = len(self._shape)
        end = self.end_dim % nd
        shape = self._shape[:self.start_dim] + (-1,) + self._shape[end + 1:]
        return get_backend(device_of(x)).asarray(x).reshape(shape)

    def backward(self, grad_output):
        return grad_output.reshape(self._shape)


class Dropout(Module):
    """Inverted dropout: in training, zeroes each element with probability ``p`` and
    scales the rest by ``1 / (1 - p)``; identity in eval."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1); got {p!r}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        # the seed comes from the module generator (numbaconv.nn.manual_seed); the mask is
        # drawn where x lives, by a counter-based hash: no host copy on the GPU
        self._mask = ops.dropout_mask(x, self.p, rng().integers(0, 2 ** 32))
        return ops.multiply(x, self._mask)

    def backward(self, grad_output):
        return grad_output if self._mask is None else ops.multiply(grad_output, self._mask)
