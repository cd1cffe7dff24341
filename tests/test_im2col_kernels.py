"""im2col / col2im kernels (no public op yet: unfold / fold come with the CPU-ops issue):
CPU against the reference windows, col2im as the exact adjoint of im2col, CUDA twins
against CPU."""

import numpy as np
import pytest

import numbaconv as nc
from numbaconv import analysis
from numbaconv.kernels import cpu

# (x shape, kernel, stride, leading pads, dilation)
GEOMETRIES = [
    ((2, 3, 5, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 7, 5), (2, 3), (2, 1), (0, 2), (2, 1)),
    ((1, 1, 6, 6), (1, 1), (3, 2), (1, 0), (1, 1)),
]


def _setup(x_shape, kernel, stride, pads, dilation, rng):
    out = analysis.conv_output_size(x_shape[2:], kernel, stride,
                                    tuple((p, p) for p in pads), dilation)
    geometry = (*kernel, *stride, *pads, *dilation, *out)
    x = rng.standard_normal(x_shape)
    cols = np.empty((x_shape[0], x_shape[1] * kernel[0] * kernel[1], out[0] * out[1]))
    return x, cols, geometry, out


@pytest.mark.parametrize("case", GEOMETRIES, ids=str)
def test_im2col_reads_the_conv_windows_and_col2im_is_its_adjoint(case, rng):
    x, cols, geometry, out = _setup(*case, rng)
    kernel, stride, pads, dilation = case[1:]
    cpu.im2col(x, cols, geometry)
    # conv as a product with the columns must equal the reference conv
    w = rng.standard_normal((2, x.shape[1]) + kernel)
    y = np.einsum("kr,nrl->nkl", w.reshape(2, -1), cols).reshape(x.shape[0], 2, *out)
    np.testing.assert_allclose(y, nc.reference.conv(x, w, stride=stride, padding=pads,
                                                    dilation=dilation), atol=1e-12)
    c = rng.standard_normal(cols.shape)
    back = np.empty_like(x)
    cpu.col2im(c, back, geometry)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


@pytest.mark.parametrize("case", GEOMETRIES, ids=str)
def test_cuda_im2col_col2im_match_cpu(case, rng, monkeypatch):
    from numbaconv import config
    from numbaconv.kernels import cuda

    monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 16)
    x, cols, geometry, _ = _setup(*case, rng)
    cpu.im2col(x, cols, geometry)
    d_cols = nc.to_device(np.zeros_like(cols))
    cuda.im2col(nc.to_device(x), d_cols, geometry)
    np.testing.assert_array_equal(nc.to_host(d_cols), cols)
    c = rng.standard_normal(cols.shape)
    expected = np.empty_like(x)
    cpu.col2im(c, expected, geometry)
    d_x = nc.to_device(np.zeros_like(x))
    cuda.col2im(nc.to_device(c), d_x, geometry)
    np.testing.assert_allclose(nc.to_host(d_x), expected, atol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((1, 5, 7), (6, 1, 7, 9)),  # a broadcast over b's stack: the stack is split
    ((3, 5, 7), (3, 7, 9)),
    ((5, 7), (4, 7, 9)),
    ((4, 5, 7), (7, 9)),
    ((2, 3, 5, 7), (2, 3, 7, 9)),
    ((5, 7), (7, 9)),  # no stack: column blocks
    ((1, 9, 7), (1, 7, 5)),  # a stack of one: row blocks
])
def test_blas_matmul_blocks_match_numpy(a_shape, b_shape, rng, monkeypatch):
    import numba

    from numbaconv import config
    from numbaconv.kernels.cpu import blas

    monkeypatch.setattr(config, "BLAS_SPLIT_FLOPS", 100)  # split whatever the size
    monkeypatch.setattr(config, "BLAS_ONE_THREAD_MNK", 0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    want = np.matmul(a, b)
    out = np.full_like(want, np.nan)
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))  # two blocks
    try:
        blas.matmul(a, b, out)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((5, 3, 7), (5, 7, 4)),  # a longer stack than threads: runs of whole products
    ((1, 3, 70), (1, 70, 4)),  # a stack of one: pieces of the reduction
    ((3, 2, 3, 70), (3, 2, 70, 4)),  # groups inside each product
    ((1, 3, 1), (1, 1, 4)),  # a reduction of one value: one piece
])
@pytest.mark.parametrize("threads", [1, 2])
def test_blas_matmul_sum_matches_numpy(a_shape, b_shape, threads, rng, monkeypatch):
    import numba

    from numbaconv import config
    from numbaconv.kernels.cpu import blas

    monkeypatch.setattr(config, "BLAS_SPLIT_FLOPS", 1)  # split whatever the size
    monkeypatch.setattr(config, "BLAS_ONE_THREAD_MNK", 0)
    monkeypatch.setattr(blas, "_SUM_BYTES", 1)  # one product per stacked call
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    want = np.matmul(a, b).sum(axis=0)
    out = np.full_like(want, np.nan)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        assert blas.matmul_sum(a, b, out) is out
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w_shape", [(6, 4, 3, 3), (6, 4, 1, 1)])
def test_gemm_grad_weight_of_an_empty_batch_is_zero(w_shape):
    """Called directly (the public API pads an empty batch itself), the GEMM grad
    weight of no images is zeros, pointwise (``blas.matmul_sum``) or not."""
    from numbaconv.kernels.cpu.conv import conv2d_grad_weight_gemm

    out = 5 - w_shape[2] + 1
    grad_weight = np.full(w_shape, np.nan)
    conv2d_grad_weight_gemm(np.zeros((0, 4, 5, 5)), np.zeros((0, 6, out, out)), grad_weight,
                            (1, 1, 0, 0, 1, 1, 1))
    np.testing.assert_array_equal(grad_weight, 0)


@pytest.mark.parametrize("per_image_from", [0, 10**9])  # columns per image, side by side
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((3, 6, 9, 8), (8, 6, 3, 3), dict(padding=1)),
    ((4, 8, 11, 10), (6, 4, 3, 2), dict(stride=2, padding=(1, 0), groups=2, dilation=(1, 2))),
    ((1, 5, 7, 9), (7, 5, 5, 5), dict(padding=2)),  # one image: per image either way
    ((3, 6, 8, 8), (9, 6, 1, 1), dict()),  # pointwise: no columns
])
def test_gemm_layouts_match_the_oracle(x_shape, w_shape, params, dtype, per_image_from, rng,
                                       monkeypatch):
    """The GEMM path's forward, grad input and grad weight, in chunks of 2 images, with
    the columns laid out per image or side by side, against the NumPy-loop oracle."""
    from conftest import tolerance

    from numbaconv import config
    from numbaconv import reference as ref

    for name in ("GEMM_IMAGE_MIN_PIXELS", "GEMM_GRAD_WEIGHT_IMAGE_MIN_PIXELS"):
        monkeypatch.setattr(config, name, per_image_from)
    monkeypatch.setattr(config, "CONV_ALGORITHM", "gemm")
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y = ref.conv2d(x, w, b, **params)
    per_image = (x_shape[1] * w_shape[2] * w_shape[3] + w_shape[0]) * y[0, 0].size
    monkeypatch.setattr(config, "IM2COL_CHUNK_BYTES", 2 * per_image * x.itemsize)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = (nc.conv2d(x, w, b, **params),) + nc.conv2d_backward(gy, x, w, b, **params)
    want = (y,) + ref.conv2d_backward(gy, x, w, b, **params)
    rtol, atol = tolerance(dtype)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * 10)
