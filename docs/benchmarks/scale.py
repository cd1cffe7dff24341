"""numbaconv.dask at scale: the numbers of docs/benchmarks/scale.md.

    python docs/benchmarks/scale.py [--big 32768] [--mid 8192] [--small 4096] [--dir DIR]

1. ``--big``: a (1, 1, S, S) float32 image in a .npy file on disk (S = 32768: 4 GiB), read
   memory-mapped, through a 3-layer conv model (``model3``) by ``numbaconv.dask.predict``
   on a LocalCluster of 2 worker processes with a memory limit each, written block by
   block to another .npy: wall time, and each worker's peak resident memory (sampled).
2. ``--mid``: throughput with 1 vs 2 workers on the same kind of file (speedup).
3. ``--small``: an array that fits: ``model.forward`` in this process (numba threads =
   cores) against ``predict`` on the 2-worker cluster, from and back to memory.

Compile time is kept out: every cluster runs a small warm-up first.  Times are medians
of ``--repeat`` runs, alternating where two things are compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

import dask
import dask.array as da
import distributed
import numba
import numpy as np

import numbaconv.dask as ndk
from numbaconv import models, nn
from numbaconv.dask import files

CHUNK = 2048


def model3():
    """1 -> 4 -> 4 -> 1 channels: models.fcn, narrow."""
    nn.manual_seed(0)
    return models.fcn(1, 1, width=4).eval()


def write_image(path, side, rows=1024):
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1, 1, side, side))
    rng = np.random.default_rng(0)
    for r in range(0, side, rows):
        out[0, 0, r:r + rows] = rng.standard_normal((min(rows, side - r), side), np.float32)
    out.flush()
    del out


def _memory():
    """Resident memory, and its private part (USS: without the pages of memory-mapped
    files, which the OS can drop at any time)."""
    import psutil

    info = psutil.Process().memory_full_info()
    return info.rss, info.uss


class PeakMemory:
    """Samples every worker's resident memory while the block runs."""

    def __init__(self, client, every=0.2):
        self.client, self.every, self.peak = client, every, {}
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            for addr, (rss, uss) in self.client.run(_memory).items():
                old = self.peak.get(addr, (0, 0))
                self.peak[addr] = (max(old[0], rss), max(old[1], uss))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cluster(n, memory_limit, threads=None):
    c = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                 dashboard_address=None, memory_limit=memory_limit,
                                 silence_logs=50)
    client = distributed.Client(c)
    ndk.configure(client, threads=threads)
    return c, client


def file_run(client, model, src, dst):
    x = files.open_input(src, chunks=(1, 1, CHUNK, CHUNK))
    job = files.write_output(ndk.predict(model, x), dst)
    t0 = time.perf_counter()
    client.compute(job).result()
    return time.perf_counter() - t0


def single_file_run(model, src, dst):
    """The same job in this process, without dask: load, forward, save."""
    t0 = time.perf_counter()
    np.save(dst, model.forward(np.load(src)))
    return time.perf_counter() - t0


def warm(client, model, folder):
    small = os.path.join(folder, "warm.npy")
    if not os.path.exists(small):
        write_image(small, 512)
    file_run(client, model, small, os.path.join(folder, "warm-out.npy"))


def fits(model, folder, side, repeat, memory_limit):
    """An array that fits: in memory, in this process (whole-array forward vs dask's
    threaded scheduler); and file to file (one process vs the 2-worker cluster)."""
    x = np.random.default_rng(1).standard_normal((1, 1, side, side), np.float32)
    lazy = da.from_array(x, chunks=(1, 1, CHUNK, CHUNK))
    model.forward(x[:, :, :256, :256])
    whole, chunked = [], []
    with dask.config.set(scheduler="threads", num_workers=2):
        ndk.configure(None)  # 2 tasks at once, 1 numba thread each
        ndk.predict(model, lazy).compute()
        for _ in range(repeat):
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            t0 = time.perf_counter()
            want = model.forward(x)
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = ndk.predict(model, lazy).compute()
            chunked.append(time.perf_counter() - t0)
    assert np.allclose(got, want, atol=1e-5)
    w, c = statistics.median(whole), statistics.median(chunked)
    print(f"fits ({side}^2), in memory: forward (all cores) {w:.2f} s, numbaconv.dask "
          f"(threaded scheduler, 2 tasks x 1 thread) {c:.2f} s: {100 * (c / w - 1):+.0f}%")
    src = os.path.join(folder, f"fits-{side}.npy")
    np.save(src, x)
    cl, client = cluster(2, memory_limit)
    warm(client, model, folder)
    one, dist = [], []
    for _ in range(repeat):
        one.append(single_file_run(model, src, os.path.join(folder, "fits-out1.npy")))
        dist.append(file_run(client, model, src, os.path.join(folder, "fits-out2.npy")))
    client.close()
    cl.close()
    o, d = statistics.median(one), statistics.median(dist)
    print(f"fits ({side}^2), file to file: one process {o:.2f} s, 2 dask workers "
          f"{d:.2f} s: {100 * (d / o - 1):+.0f}%")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=32768)
    ap.add_argument("--mid", type=int, default=8192)
    ap.add_argument("--small", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-limit", default="1.5GiB")
    ap.add_argument("--dir", default=None, help="folder for the image files")
    args = ap.parse_args()
    model = model3()
    folder = args.dir or tempfile.mkdtemp(prefix="numbaconv-scale-")
    print(f"files in {folder}; chunks {CHUNK}x{CHUNK}; worker memory limit "
          f"{args.memory_limit}; {os.cpu_count()} cores")

    # 3. overhead on an array that fits
    if args.small:
        fits(model, folder, args.small, args.repeat, args.memory_limit)

    # 2. throughput, 1 vs 2 workers
    if args.mid:
        src = os.path.join(folder, f"mid-{args.mid}.npy")
        if not os.path.exists(src):
            write_image(src, args.mid)
        # one numba thread per worker: 1 worker uses one core, 2 workers two; and
        # one worker with a thread per core, the alternative on one machine
        setups = {"1 worker x 1 thread": (1, 1), "2 workers x 1 thread": (2, 1),
                  "1 worker x 2 threads": (1, 2)}
        clusters = {k: cluster(n, args.memory_limit, t) for k, (n, t) in setups.items()}
        times = {k: [] for k in setups}
        for _, client in clusters.values():
            warm(client, model, folder)
        for _ in range(args.repeat):
            for k, (_, client) in clusters.items():
                times[k].append(file_run(client, model, src,
                                         os.path.join(folder, "mid-out.npy")))
        for c, client in clusters.values():
            client.close()
            c.close()
        mpix = args.mid ** 2 / 1e6
        base = statistics.median(times["1 worker x 1 thread"])
        for k, t in times.items():
            t = statistics.median(t)
            print(f"throughput ({args.mid}^2, disk to disk), {k}: {mpix / t:.1f} Mpixel/s "
                  f"({base / t:.2f}x)")

    # 1. an image larger than the workers' memory
    if args.big:
        src = os.path.join(folder, f"big-{args.big}.npy")
        if not os.path.exists(src):
            t0 = time.perf_counter()
            write_image(src, args.big)
            print(f"wrote {src} ({os.path.getsize(src) / 2**30:.1f} GiB) in "
                  f"{time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        lazy = ndk.predict(model, files.open_input(src, chunks=(1, 1, CHUNK, CHUNK)))
        job = files.write_output(lazy, os.path.join(folder, "big-out.npy"))
        tasks = len(job.__dask_graph__())
        print(f"graph: {tasks} tasks ({lazy.npartitions} blocks), built in "
              f"{time.perf_counter() - t0:.2f} s")
        c, client = cluster(2, args.memory_limit)
        warm(client, model, folder)
        idle = {a: uss for a, (_, uss) in client.run(_memory).items()}
        with PeakMemory(client) as mem:
            seconds = file_run(client, model, src, os.path.join(folder, "big-out.npy"))
        client.close()
        c.close()
        gib = os.path.getsize(src) / 2**30
        chunk_mib = CHUNK * CHUNK * 4 / 2**20
        peaks = "; ".join(f"RSS {rss / 2**20:.0f} MiB, private {uss / 2**20:.0f} MiB "
                          f"({(uss - idle[a]) / 2**20:.0f} MiB above idle)"
                          for a, (rss, uss) in mem.peak.items())
        print(f"big ({args.big}^2, {gib:.1f} GiB in, same out): {seconds:.0f} s, "
              f"{args.big ** 2 / 1e6 / seconds:.1f} Mpixel/s; peak memory per worker: "
              f"{peaks} (chunk {chunk_mib:.0f} MiB)")


if __name__ == "__main__":
    main()
