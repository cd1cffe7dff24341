"""Index arithmetic shared by the CPU and CUDA kernels, written once as plain Python and
compiled for each target (``numba.njit`` in ``cpu``, ``numba.cuda.jit(device=True)`` in
``cuda``), so the twins cannot drift apart."""


def pad_source_index(i, size, mode):
    """Input index that padded position ``i`` (already shifted by the leading pad) copies;
    -1 for a constant-filled position.  ``mode``: 0 constant, 1 reflect, 2 replicate,
    3 circular (``config.PAD_MODES``)."""
    if 0 <= i < size:
        return i
    if mode == 1:  # reflect: mirror without repeating the edge
        period = 2 * (size - 1)
        if period == 0:
            return 0
        i = i % period
        return i if i < size else period - i
    if mode == 2:  # replicate: clamp to the edge
        return 0 if i < 0 else size - 1
    if mode == 3:  # circular: wrap around
        return i % size
    return -1


def unravel4(i, d1, d2, d3):
    """Flat C-order index ``i`` of a 4-D array with trailing dims (d1, d2, d3) -> (a, b, c, d)."""
    d = i % d3
    c = (i // d3) % d2
    b = (i // (d3 * d2)) % d1
    a = i // (d3 * d2 * d1)
    return a, b, c, d


def reading_output(i, pad, tap_offset, stride, out_len):
    """The output position whose window tap at ``tap_offset`` (= tap * dilation) reads
    input position ``i``, from ``i = o * stride - pad + tap_offset``; -1 if none does.
    The gather form of a convolution's adjoint (grad input, col2im) on the GPU."""
    num = i + pad - tap_offset
    if num < 0 or num % stride != 0 or num // stride >= out_len:
        return -1
    return num // stride


def shuffled_channel(j, channels, groups):
    """The input channel that output channel ``j`` of a channel shuffle copies."""
    per_group = channels // groups
    return (j % groups) * per_group + j // groups
