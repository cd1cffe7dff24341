"""Reference implementations: plain NumPy loops that read like the formulas.

This is the oracle every kernel is tested against, and a place to read how each op is
defined.  It is slow on purpose (Python loops over positions): use tiny shapes.  It
shares nothing with the kernels but the argument normalizers and output-size formulas.

Names mirror the functional API (``conv2d``, ``max_pool2d_backward``, ...); the
definitions are written once for any number of spatial dims (``conv``, ``max_pool``...).
"""

from .conv import conv, conv_backward, conv_transpose, conv_transpose_backward
from .pool import (adaptive_avg_pool, adaptive_avg_pool_backward, adaptive_max_pool,
                   adaptive_max_pool_backward, avg_pool, avg_pool_backward, max_pool,
                   max_pool_backward)
from .resample import (channel_shuffle, channel_shuffle_backward, fold, fold_backward,
                       interpolate, interpolate_backward, pad, pad_backward, unfold,
                       unfold_backward)

_ANY_ND = {
    "conv": conv, "conv_transpose": conv_transpose, "max_pool": max_pool,
    "avg_pool": avg_pool, "adaptive_avg_pool": adaptive_avg_pool,
    "adaptive_max_pool": adaptive_max_pool,
}
for _name, _fn in list(_ANY_ND.items()):
    _back = globals()[_name + "_backward"]
    for _nd in ("1d", "2d"):
        globals()[f"{_name}{_nd}"] = _fn
        globals()[f"{_name}{_nd}_backward"] = _back
del _name, _fn, _back, _nd
