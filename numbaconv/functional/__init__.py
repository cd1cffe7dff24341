"""The functional ops: validate once (``numbaconv._args``), pick the device's kernels
(``numbaconv.dispatch``), allocate, launch.  One module per op family."""

from .conv import conv1d, conv1d_backward, conv2d, conv2d_backward

__all__ = ["conv1d", "conv1d_backward", "conv2d", "conv2d_backward"]
