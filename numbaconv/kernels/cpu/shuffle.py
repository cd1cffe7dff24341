"""CPU channel shuffle (ShuffleNet): a permutation of channel planes.

Viewing the channels as a (groups, C / groups) matrix, the shuffle transposes it:
output channel ``j = i * groups + g`` is input channel ``g * (C / groups) + i``.  The
inverse permutation is the same shuffle with ``C / groups`` groups.
"""

import numba
from numba import njit

from .._index import shuffled_channel
from .shares import run_shares, share, share_of

_source = njit(inline="always")(shuffled_channel)


@share()
def _channel_shuffle(t, threads, args):
    # n c h w -> n c' h w   (c' a permutation of c)
    x, out, groups = args
    batch, ch = x.shape[0], x.shape[1]
    lo, hi = share_of(t, threads, batch * ch)
    for job in range(lo, hi):
        n = job // ch
        j = job % ch
        out[n, j] = x[n, _source(j, ch, groups)]


def channel_shuffle(x, out, groups):
    run_shares(_channel_shuffle, numba.get_num_threads(), (x, out, groups))
