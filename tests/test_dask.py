"""numbaconv.dask on a real scheduler and real worker processes: every op and predict
against the single-array call, over seeded random chunkings (ragged, chunks of one
element, smaller than the halo), plus the workers' settings and the predict command."""

import logging
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask

import numbaconv as nc
import numbaconv.dask as ndk
from numbaconv import models, nn
from numbaconv.dask import _plan, _worker, workers

# one xdist worker runs this module, so its tests share one cluster
pytestmark = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    with distributed.Client(cluster) as c:
        ndk.configure(c)
        yield c
    cluster.close()


def chunking(rng, n):
    """A random split of ``n`` into 1-5 chunks, sizes from 1 up."""
    cuts = rng.choice(np.arange(1, n), size=int(rng.integers(0, min(4, n - 1) + 1)),
                      replace=False) if n > 1 else []
    return tuple(int(v) for v in np.diff([0, *sorted(cuts), n]))


def lazy(rng, x, axes=None):
    """``x`` as a dask array chunked at random along N and the spatial axes."""
    chunks = [chunking(rng, x.shape[0]), (x.shape[1],)]
    chunks += [chunking(rng, n) for n in x.shape[2:]]
    return da.from_array(x, chunks=tuple(chunks))


def check(pairs, rtol=1e-5):
    """Compute every lazy result in one go; each equals its single-array result."""
    got = dask.compute(*[lazy_result for lazy_result, _ in pairs])
    for g, (lazy_result, want) in zip(got, pairs):
        assert isinstance(lazy_result, da.Array)
        assert g.shape == want.shape and g.dtype == want.dtype
        np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol)


# --------------------------------------------------------------------------- plans alone
def test_plans_cover_every_output_once():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        k, s, d = (int(v) for v in rng.integers(1, 5, 3))
        p = int(rng.integers(0, k))
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            continue
        blocks = _plan.window_axis(chunking(rng, n), out, k, s, d, p)
        assert [b.o0 for b in blocks] == [0] + [b.o1 for b in blocks[:-1]]
        assert blocks[-1].o1 == out
        for b in blocks:
            assert 0 <= b.a < b.b <= n and (b.a % s == 0)
            # every kept output's window lies in the piece or in the array's own padding
            assert b.a == 0 or b.o0 * s - p >= b.a
            assert b.b == n or (b.o1 - 1) * s - p + d * (k - 1) + 1 <= b.b


# --------------------------------------------------------------------------- the ops
CONV2D = [
    {}, {"padding": 1}, {"stride": 2, "padding": 1}, {"stride": 3, "padding": 2},
    {"dilation": 2, "padding": 2}, {"stride": 2, "dilation": 3, "padding": 1},
    {"padding": "same", "dilation": 2}, {"padding": ((1, 2), (0, 3))},
    {"padding": 2, "padding_mode": "reflect"}, {"padding": 1, "padding_mode": "replicate",
                                                "stride": 2},
    {"padding": 2, "padding_mode": "circular", "stride": 3}, {"flip": True, "padding": 1},
]


def test_conv2d_any_chunking(client):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 17, 14)).astype(np.float32)
    pairs = []
    for kw in CONV2D:
        for groups, kernel in ((1, (3, 3)), (2, (2, 3)), (4, (3, 1))):
            w = rng.standard_normal((4, 4 // groups) + kernel).astype(np.float32)
            b = rng.standard_normal(4).astype(np.float32)
            if kw.get("padding") == "same" and kernel != (3, 3):
                continue
            pairs.append((ndk.conv2d(lazy(rng, x), w, b, groups=groups, **kw),
                          nc.conv2d(x, w, b, groups=groups, **kw)))
    check(pairs)


def test_conv1d_and_float64(client):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 31))
    pairs = []
    for kw in ({}, {"stride": 3, "padding": 4, "dilation": 2},
               {"padding": 3, "padding_mode": "circular"},
               {"padding": "same", "padding_mode": "reflect"}, {"stride": 2, "groups": 3}):
        w = rng.standard_normal((6, 3 // kw.get("groups", 1), 5))
        for _ in range(2):
            pairs.append((ndk.conv1d(lazy(rng, x), w, **kw), nc.conv1d(x, w, **kw)))
    check(pairs, rtol=1e-12)


def test_conv_transpose_any_chunking(client):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 11, 9)).astype(np.float32)
    pairs = []
    for kw in ({"stride": 2}, {"stride": 3, "padding": 1, "output_padding": 2},
               {"stride": 2, "dilation": 2, "padding": 3, "output_padding": 1},
               {"stride": 4}, {"groups": 2, "stride": 2, "padding": 1}):
        w = rng.standard_normal((4, 6 // kw.get("groups", 1), 3, 2)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        for _ in range(2):
            pairs.append((ndk.conv_transpose2d(lazy(rng, x), w, b, **kw),
                          nc.conv_transpose2d(x, w, b, **kw)))
    x1 = x[:, :, 0]
    w1 = rng.standard_normal((4, 3, 4)).astype(np.float32)
    pairs.append((ndk.conv_transpose1d(lazy(rng, x1), w1, stride=3, padding=2),
                  nc.conv_transpose1d(x1, w1, stride=3, padding=2)))
    check(pairs)


def test_pools_any_chunking(client):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 16, 13)).astype(np.float32)
    pairs, indices = [], []
    for kw in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
               {"kernel_size": 3, "stride": 2, "ceil_mode": True},
               {"kernel_size": (3, 2), "stride": (3, 1), "padding": (1, 0),
                "ceil_mode": True}):
        for _ in range(2):
            y, i = ndk.max_pool2d(lazy(rng, x), return_indices=True, **kw)
            ry, ri = nc.max_pool2d(x, return_indices=True, **kw)
            pairs.append((y, ry))
            indices.append((i, ri))
            for extra in ({}, {"count_include_pad": False}, {"divisor_override": 5}):
                pairs.append((ndk.avg_pool2d(lazy(rng, x), **kw, **extra),
                              nc.avg_pool2d(x, **kw, **extra)))
    pairs.append((ndk.max_pool2d(lazy(rng, x), 2, 1, dilation=3),
                  nc.max_pool2d(x, 2, 1, dilation=3)))
    x1 = x[:, :, 3]
    y, i = ndk.max_pool1d(lazy(rng, x1), 3, 2, 1, return_indices=True)
    ry, ri = nc.max_pool1d(x1, 3, 2, 1, return_indices=True)
    pairs += [(y, ry), (ndk.avg_pool1d(lazy(rng, x1), 4, 3, 2, ceil_mode=True),
                        nc.avg_pool1d(x1, 4, 3, 2, ceil_mode=True))]
    indices.append((i, ri))
    check(pairs)
    for got, (_, want) in zip(dask.compute(*[i for i, _ in indices]), indices):
        assert got.dtype == want.dtype and (got == want).all()


def test_interpolate_any_chunking(client):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    pairs = []
    for kw in ({"scale_factor": 2}, {"size": (20, 7)}, {"scale_factor": 1.7},
               {"size": (23, 30), "mode": "bilinear"},
               {"scale_factor": 0.6, "mode": "bilinear"},
               {"scale_factor": 2.5, "mode": "bilinear", "align_corners": True}):
        pairs.append((ndk.interpolate(lazy(rng, x), **kw), nc.interpolate(x, **kw)))
    x1 = x[:, :, 0]
    pairs.append((ndk.interpolate(lazy(rng, x1), scale_factor=3, mode="linear"),
                  nc.interpolate(x1, scale_factor=3, mode="linear")))
    check(pairs)


def test_channels_rechunked_and_lazy(client):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 6, 8, 8)).astype(np.float32)
    w = rng.standard_normal((3, 6, 3, 3)).astype(np.float32)
    lazy_x = da.from_array(x, chunks=(1, 2, 3, 5))
    y = ndk.conv2d(lazy_x, w, padding=1)
    assert y.chunks[1] == (3,)
    # the weight is one key of the graph, not a copy per task
    graph = dict(y.__dask_graph__())
    assert sum(isinstance(v, np.ndarray) and v.shape == w.shape for v in graph.values()) == 1
    check([(y, nc.conv2d(x, w, padding=1))])


def test_blocks_of_padding_only_and_pool_windows_of_padding_only():
    """Output blocks whose windows lie wholly in the end padding still get the bias;
    max-pool windows of padding only keep index -1, as the single call gives."""
    x = np.arange(1.0, 5.0).reshape(1, 1, 4)
    w, b = np.ones((1, 1, 1)), np.array([10.0])
    with dask.config.set(scheduler="sync"):
        got = ndk.conv1d(da.from_array(x, chunks=1), w, b, stride=2,
                         padding=((0, 1),)).compute()
        np.testing.assert_array_equal(got, nc.conv1d(x, w, b, stride=2, padding=((0, 1),)))
        x2 = np.array([[[1.0, 2.0]]])
        got = ndk.conv1d(da.from_array(x2, chunks=1), w, stride=3, padding=((0, 2),))
        np.testing.assert_array_equal(got.compute(), nc.conv1d(x2, w, stride=3,
                                                               padding=((0, 2),)))
        x3 = np.arange(1.0, 31.0).reshape(1, 1, 2, 15)
        kw = {"kernel_size": 2, "padding": 1, "dilation": 3, "return_indices": True}
        for chunks in (x3.shape, (1, 1, 1, 4)):
            _, i = dask.compute(*ndk.max_pool2d(da.from_array(x3, chunks=chunks), **kw))
            np.testing.assert_array_equal(i, nc.max_pool2d(x3, **kw)[1])


def test_predict_routes_non_local_layers_per_image_and_names_models_apart():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 1, 10, 9)).astype(np.float32)
    lazy_x = da.from_array(x, chunks=(1, 1, 4, 5))
    nn.manual_seed(0)
    zeros = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 1, 1, padding=2)).eval()
    nn.manual_seed(0)
    replicate = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1),
                              nn.Conv2d(2, 1, 1, padding=2, padding_mode="replicate")).eval()
    batch_stats = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1),
                                nn.BatchNorm2d(2, track_running_stats=False)).eval()
    assert ndk.model.tileable(zeros)
    assert not ndk.model.tileable(replicate) and not ndk.model.tileable(batch_stats)
    ys = [ndk.predict(m, lazy_x) for m in (zeros, replicate, batch_stats)]
    assert len({y.name for y in ys}) == 3  # same weights, other padding: other graphs
    with dask.config.set(scheduler="sync"):
        for y, m in zip(dask.compute(*ys), (zeros, replicate, batch_stats)):
            np.testing.assert_allclose(y, m.forward(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="too small"):
        ndk.predict(nn.Sequential(nn.Conv2d(1, 1, 5), nn.Conv2d(1, 1, 7, padding=3)),
                    da.from_array(x[:, :, :3, :3], chunks=2))


def test_predict_on_threads_sharing_one_model():
    """Several threads of one process: each runs its own copy of the model (the layers
    keep per-forward state), so results stay exact."""
    rng = np.random.default_rng(14)
    model = _fcn()
    x = rng.standard_normal((2, 2, 40, 40)).astype(np.float32)
    with dask.config.set(scheduler="threads", num_workers=4):
        for _ in range(3):
            got = ndk.predict(model, da.from_array(x, chunks=(1, 2, 8, 8))).compute()
            np.testing.assert_allclose(got, model.forward(x), rtol=1e-4, atol=1e-5)


def test_errors_are_early_and_clear():
    x = da.zeros((2, 3, 8, 8), chunks=4, dtype=np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match="dask.array.Array"):
        ndk.conv2d(np.zeros((2, 3, 8, 8), np.float32), w)
    with pytest.raises(TypeError, match="int64"):
        ndk.conv2d(da.zeros((2, 3, 8, 8), chunks=4, dtype=np.int64), w)
    with pytest.raises(ValueError, match="4-D"):
        ndk.conv2d(da.zeros((3, 8, 8), chunks=4, dtype=np.float32), w)
    with pytest.raises(ValueError, match="stride"):
        ndk.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="C_in"):
        ndk.conv2d(x, np.zeros((4, 2, 3, 3), np.float32))  # C_in mismatch
    with pytest.raises(ValueError, match="padding"):
        ndk.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="divisor_override"):
        ndk.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="batch_size"):
        ndk.predict(models.fcn(3, 2), x, batch_size=0)


# --------------------------------------------------------------------------- predict
def _fcn():
    nn.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2), nn.LeakyReLU(0.1),
        nn.ResidualBlock(8, 8), nn.MaxPool2d(3, 2, padding=1),
        nn.DepthwiseSeparableConv2d(8, 6), nn.Conv2d(6, 3, 1))
    rng = np.random.default_rng(7)
    for m in model.parameters():  # batch norm away from the identity
        m.data[...] = m.data + 0.1 * rng.standard_normal(m.data.shape).astype(m.data.dtype)
    return model.eval()


def test_predict_fully_convolutional_tiles(client):
    rng = np.random.default_rng(8)
    model = _fcn()
    x = rng.standard_normal((3, 2, 61, 47)).astype(np.float32)
    want = model.forward(x)
    assert ndk.model.tileable(model)
    pairs = [(ndk.predict(model, lazy(rng, x)), want) for _ in range(3)]
    pairs.append((ndk.predict(model, da.from_array(x, chunks=(1, 2, 16, 16))), want))
    # the model is in the graph once, whatever the number of tasks
    graph = dict(pairs[-1][0].__dask_graph__())
    assert sum(isinstance(v, nn.Module) for v in graph.values()) == 1
    check(pairs, rtol=1e-4)


def test_predict_classifier_per_images(client):
    rng = np.random.default_rng(9)
    model = models.cnn(1, 10).eval()
    x = rng.standard_normal((7, 1, 12, 12)).astype(np.float32)
    assert not ndk.model.tileable(model)
    y = ndk.predict(model, da.from_array(x, chunks=(3, 1, 5, 12)))
    assert y.chunks == ((3, 3, 1), (10,))
    check([(y, model.forward(x)),
           (ndk.predict(model, da.from_array(x, chunks=(4, 1, 12, 12)), batch_size=2),
            model.forward(x))], rtol=1e-4)


def test_predict_cuda_chunks_under_the_simulator():
    """GPU workers: chunks stay device arrays, the CUDA kernels run (simulated here, on
    tiny arrays, in this process)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 2, 9, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    meta = nc.to_device(np.empty((0, 0, 0, 0), np.float32))
    on_gpu = da.from_array(x, chunks=(1, 2, (4, 5), (3, 4))).map_blocks(
        nc.to_device, meta=meta, dtype=np.float32)

    def host(a):
        return a.map_blocks(nc.to_host, meta=np.empty((0,) * a.ndim, a.dtype), dtype=a.dtype)

    with dask.config.set(scheduler="sync"):
        y = ndk.conv2d(on_gpu, nc.to_device(w), stride=2, padding=1)
        assert type(y._meta) is type(meta)
        np.testing.assert_allclose(host(y).compute(), nc.conv2d(x, w, stride=2, padding=1),
                                   rtol=1e-5, atol=1e-5)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        want = model.eval().forward(x)
        model.to("cuda")
        np.testing.assert_allclose(host(ndk.predict(model, on_gpu)).compute(), want,
                                   rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- workers
def test_configure_sets_numba_threads_on_every_worker(client):
    seen = workers.report(client)
    assert len(seen) == 2
    cores = next(iter(seen.values()))["cores"]
    for info in seen.values():  # 2 workers x 1 task share the cores
        assert info["configured_threads"] == max(1, cores // 2)
        assert info["numba_threads"] == info["configured_threads"]
        assert info["threading_layer"] is not None
    # inside tasks, on each worker: the kernels see the configured count
    for addr in seen:
        task = client.submit(_in_task, pure=False, workers=[addr])
        assert task.result()["numba_threads"] == seen[addr]["configured_threads"]
    ndk.configure(client, threads=1)
    assert {i["configured_threads"] for i in workers.report(client).values()} == {1}


def _in_task():
    _worker.enter()
    return _worker.report()


# --------------------------------------------------------------------------- command line
def test_predict_command(tmp_path):
    rng = np.random.default_rng(11)
    nn.manual_seed(0)
    model = models.fcn(3, 2)
    model.save(tmp_path / "fcn.npz")
    x = rng.standard_normal((2, 3, 40, 33)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    run = [sys.executable, "-m", "numbaconv", "predict", str(tmp_path / "fcn.npz"),
           str(tmp_path / "in.npy"), "--model", "fcn", "--workers", "2",
           "--chunks", "1,-1,16,20"]
    done = subprocess.run(run + [str(tmp_path / "out.npy")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model.eval().forward(x),
                               rtol=1e-4, atol=1e-5)
    pytest.importorskip("zarr")
    done = subprocess.run(run + [str(tmp_path / "out.zarr")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.asarray(da.from_zarr(str(tmp_path / "out.zarr"))),
                               np.load(tmp_path / "out.npy"))
    bad = subprocess.run(run + [str(tmp_path / "missing" / "out.npy")], capture_output=True,
                         text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_file_sources_read_each_piece_directly(client, tmp_path):
    """Arrays opened from .npy / Zarr files: blocks read their own pieces (no chunk or
    halo tasks in the graph), with the same result for any chunking."""
    from numbaconv.dask import files

    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 2, 29, 23)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    model = _fcn()
    pairs = []
    for _ in range(2):
        chunks = (chunking(rng, 3), (2,), chunking(rng, 29), chunking(rng, 23))
        lazy_x = files.open_input(tmp_path / "x.npy", chunks=chunks)
        y = ndk.conv2d(lazy_x, w, stride=2, padding=1)
        assert not any("halo" in str(k) for k in dict(y.__dask_graph__()))
        pairs += [(y, nc.conv2d(x, w, stride=2, padding=1)),
                  (ndk.predict(model, lazy_x), model.forward(x))]
    zarr = pytest.importorskip("zarr")
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=x.shape,
                        chunks=(2, 2, 10, 7), dtype=x.dtype)
    z[...] = x
    pairs.append((ndk.max_pool2d(files.open_input(tmp_path / "x.zarr"), 3, 2, 1),
                  nc.max_pool2d(x, 3, 2, 1)))
    check(pairs, rtol=1e-4)
