"""CPU channel shuffle (ShuffleNet): a permutation of channel planes.

Viewing the channels as a (groups, C / groups) matrix, the shuffle transposes it:
output channel ``j = i * groups + g`` is input channel ``g * (C / groups) + i``.  The
inverse permutation is the same shuffle with ``C / groups`` groups.
"""

from numba import njit, prange

from .._index import shuffled_channel

_source = njit(inline="always")(shuffled_channel)


@njit(parallel=True, cache=True, nogil=True)
def channel_shuffle(x, out, groups):
    # n c h w -> n c' h w   (c' a permutation of c)
    batch, ch = x.shape[0], x.shape[1]
    for job in prange(batch * ch):
        n = job // ch
        j = job % ch
        out[n, j] = x[n, _source(j, ch, groups)]
