"""CPU depthwise convolution (``groups == C_in``, any channel multiplier): the fast path
the algorithm chooser picks for it (``dispatch.choose_conv_algorithm``).

One job per output plane, as in the direct kernel, but the loops run row by row: an
output row is accumulated from its ``kH * kW`` taps while it sits in L1, instead of the
whole plane being swept once per tap.  Same signature and contract as
``conv.conv2d_forward``; the backward runs on the general direct kernels.
"""

from numba import njit, prange

from ...config import CPU_FASTMATH
from .conv import valid_range


@njit(parallel=True, cache=True, fastmath=CPU_FASTMATH)
def conv2d_forward_depthwise(x, weight, bias, out, geometry):
    # n c h w , (c m) 1 r s -> n (c m) oh ow
    sh, sw, ph, pw, dh, dw, groups = geometry
    batch, in_ch, in_h, in_w = x.shape
    out_ch, _, kh, kw = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    multiplier = out_ch // in_ch
    for job in prange(batch * out_ch):
        n = job // out_ch
        k = job % out_ch
        x_plane = x[n, k // multiplier]
        w = weight[k, 0]
        for oh in range(out_h):
            row = out[n, k, oh]
            row[:] = bias[k]
            for r in range(kh):
                ih = oh * sh + r * dh - ph
                if ih < 0 or ih >= in_h:
                    continue
                x_row = x_plane[ih]
                for s in range(kw):
                    tap = w[r, s]
                    offset = s * dw - pw
                    lo, hi = valid_range(offset, sw, in_w, out_w)
                    if sw == 1:  # unit stride: contiguous, vectorizes
                        for ow in range(lo, hi):
                            row[ow] += tap * x_row[ow + offset]
                    else:
                        for ow in range(lo, hi):
                            row[ow] += tap * x_row[ow * sw + offset]
