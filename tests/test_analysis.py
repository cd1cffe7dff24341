"""Analysis tools: layer cost, receptive field, checkerboard overlap map."""

import numpy as np
import pytest

import numbaconv as nc
from numbaconv import analysis


def test_conv_params_and_flops():
    assert analysis.conv_params(64, 128, 3) == 128 * 64 * 9 + 128
    assert analysis.conv_params(32, 32, (3, 3), groups=32, bias=False) == 32 * 9
    # ResNet 3x3: 56x56 output, 64 -> 64 channels, batch 2
    assert analysis.conv_flops((2, 64, 56, 56), 64, 3, padding=1) == 2 * 64 * 56 * 56 * 64 * 9
    assert analysis.conv_flops((1, 4, 5, 5), 6, 3, stride=2, transposed=True) == 25 * 4 * 6 * 9
    assert analysis.conv_flops((1, 8, 10), 8, 3, groups=8) == 8 * 8 * 3
    with pytest.raises(ValueError, match="divisible by groups"):
        analysis.conv_params(6, 4, 3, groups=4)


def test_receptive_field_of_dilated_stack_grows_exponentially():
    layers = [dict(kernel_size=3, dilation=d, padding=d) for d in (1, 2, 4, 8)]
    rf = analysis.receptive_field(layers)
    assert rf.size == (31, 31) and rf.jump == (1, 1) and rf.start == (0.5, 0.5)


def test_receptive_field_of_a_strided_stem():
    rf = analysis.receptive_field([dict(kernel_size=7, stride=2, padding=3),
                                   dict(kernel_size=3, stride=2, padding=1)])
    assert rf.size == (11, 11) and rf.jump == (4, 4)
    assert analysis.receptive_field([dict(kernel_size=(1, 5))]).size == (1, 5)


def test_receptive_field_matches_the_gradient_support(rng):
    """The input pixels that influence one output are exactly the receptive field."""
    layers = [dict(kernel_size=3, stride=2, padding=0), dict(kernel_size=3, dilation=2)]
    x = rng.standard_normal((1, 1, 40, 40))
    w1, w2 = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    y1 = nc.conv2d(x, w1, stride=2)
    y2 = nc.conv2d(y1, w2, dilation=2)
    gy2 = np.zeros_like(y2)
    gy2[0, 0, 0, 0] = 1
    gy1 = nc.conv2d_backward(gy2, y1, w2, dilation=2)[0]
    gx = nc.conv2d_backward(gy1, x, w1, stride=2)[0]
    rows = np.flatnonzero(np.abs(gx[0, 0]).sum(1))
    rf = analysis.receptive_field(layers)
    assert rows.max() - rows.min() + 1 == rf.size[0]


@pytest.mark.parametrize("k, s, uneven", [(3, 2, True), (4, 2, False), (3, 1, False),
                                          (5, 3, True), (6, 3, False), (2, 4, True)])
def test_checkerboard_is_uneven_iff_kernel_not_divisible_by_stride(k, s, uneven):
    cb = analysis.checkerboard(k, s)
    assert cb.uneven is uneven
    assert cb.period.shape == (s, s)


def test_checkerboard_counts_match_a_transposed_conv_of_ones():
    cb = analysis.checkerboard((3, 4), (2, 3), input_size=(4, 5))
    ones = nc.conv_transpose2d(np.ones((1, 1, 4, 5)), np.ones((1, 1, 3, 4)), stride=(2, 3))
    np.testing.assert_array_equal(cb.counts, ones[0, 0])
    assert cb.period.tolist() == [[4, 2, 2], [2, 1, 1]] and cb.uneven
    assert "uneven" in str(cb)
