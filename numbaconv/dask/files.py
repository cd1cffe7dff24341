"""``numbaconv predict``: a saved model over an array file, on a dask cluster.

Input: a ``.npy`` file (memory-mapped: each block's task reads its own piece, halo
included, never the whole file) or a Zarr store (a directory, where ``zarr`` is
installed), registered with ``ops.register_source`` so that blocks read from the file.
Output: the same two kinds, by the output path's suffix; each block is written by the
task that computed it (the ``.npy`` header is written first, then each task opens the
file and writes its slice), so memory per worker stays at a few chunks.  On a
multi-machine cluster both paths must be on storage every worker sees.
"""

from __future__ import annotations

import os
import sys

import dask.array as da
import numpy as np

from .._args import unwritable_file
from .ops import register_source


def _is_zarr(path):
    return os.fspath(path).rstrip("/").endswith(".zarr") or os.path.isdir(path)


def open_input(path, chunks="auto"):
    """A dask array over ``path`` (``.npy`` memory-mapped, or a Zarr store)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"input {path!r} does not exist")
    if _is_zarr(path):
        try:
            import zarr
        except ImportError:
            raise ValueError(f"input {path!r} is a Zarr store: pip install zarr") from None
        store = zarr.open_array(path, mode="r")
        x = da.from_zarr(store, chunks=chunks if chunks != "auto" else store.chunks)
        return register_source(x, store)
    if not path.endswith(".npy"):
        raise ValueError(f"input {path!r}: expected a .npy file or a .zarr store")
    reader = NpyReader(path)
    x = da.from_array(reader, chunks=chunks, name=f"npy-{os.path.abspath(path)}-"
                      f"{os.stat(path).st_mtime_ns}-{chunks}",
                      meta=np.empty((0,) * reader.ndim, reader.dtype))
    return register_source(x, reader)


class NpyReader:
    """A ``.npy`` file as dask's ``from_array`` source: it pickles as its path (a
    memory map would pickle as its whole data, into the graph), and each chunk's task
    maps the file and copies its slice."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            array = np.load(self.path, mmap_mode="r")
        except ValueError as exc:
            raise ValueError(f"input {self.path!r} is not a .npy array: {exc}") from None
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])


def parse_chunks(text, ndim):
    """``'auto'``, or one entry per axis separated by commas (``-1``: the whole axis)."""
    if text == "auto":
        return "auto"
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--chunks: expected 'auto' or {ndim} comma-separated ints "
                         f"(-1 for a whole axis); got {text!r}") from None
    if len(parts) != ndim or any(p == 0 or p < -1 for p in parts):
        raise ValueError(f"--chunks: expected {ndim} positive ints or -1 for an input of "
                         f"{ndim} dims; got {text!r}")
    return parts


class NpyBlocks:
    """A ``da.store`` target: each block opens the ``.npy`` file and writes its slice."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = os.fspath(path), tuple(shape), np.dtype(dtype)
        np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)

    def __setitem__(self, key, value):
        out = np.lib.format.open_memmap(self.path, mode="r+")
        out[key] = np.asarray(value)
        del out  # unmapped: the pages are the OS's to write back (no msync per block)


def check_output(path):
    """``path`` if a result can be written there (the shared check of ``train`` and
    ``plot``; a Zarr store is a folder and may exist: it is overwritten)."""
    path = os.fspath(path).rstrip("/")
    zarr_store = path.endswith(".zarr")
    if not (path.endswith(".npy") or zarr_store):
        raise ValueError(f"output {path!r}: expected a .npy file or a .zarr store")
    why = unwritable_file(path + "/x" if zarr_store and os.path.isdir(path) else path)
    if why:
        raise ValueError(f"output {path!r}: {why}")
    return path


def write_output(y, path):
    """Lazy writes of ``y`` to ``path``: returns what to compute."""
    if path.rstrip("/").endswith(".zarr"):  # Zarr wants regular chunks
        regular = y.rechunk(tuple(max(c) for c in y.chunks))
        return regular.to_zarr(path, overwrite=True, compute=False)
    return da.store(y, NpyBlocks(path, y.shape, y.dtype), lock=False, compute=False)


def run(args):
    """The ``numbaconv predict`` command (``args`` from the CLI's parser)."""
    from distributed import Client, LocalCluster, progress

    from .. import models
    from . import configure, predict

    model = models.load(args.model_file, args.model)
    output = check_output(args.output)
    x = open_input(args.input)
    if args.chunks != "auto":
        x = open_input(args.input, parse_chunks(args.chunks, x.ndim))
    y = predict(model, x)
    job = write_output(y, output)
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        configure(client)
        print(f"numbaconv predict: {tuple(x.shape)} in {x.npartitions} chunks -> "
              f"{tuple(y.shape)} {y.dtype} in {y.npartitions} blocks on "
              f"{len(client.scheduler_info()['workers'])} workers", file=sys.stderr)
        future = client.compute(job)
        progress(future)
        future.result()
        print(file=sys.stderr)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"wrote {output}: shape {tuple(y.shape)}, {y.dtype}")
    return 0
