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

import dask.array as da
import distributed
import numpy as np

import numbaconv.dask as ndk
from numbaconv import nn
from numbaconv.dask import files

CHUNK = 2048


def model3():
    nn.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.ReLU(),
        nn.Conv2d(4, 1, 3, padding=1)).eval()


def write_image(path, side, rows=1024):
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1, 1, side, side))
    rng = np.random.default_rng(0)
    for r in range(0, side, rows):
        out[0, 0, r:r + rows] = rng.standard_normal((min(rows, side - r), side), np.float32)
    out.flush()
    del out


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Samples every worker's resident memory while the block runs."""

    def __init__(self, client, every=0.2):
        self.client, self.every, self.peak = client, every, {}
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            try:
                for addr, rss in self.client.run(_rss).items():
                    self.peak[addr] = max(self.peak.get(addr, 0), rss)
            except Exception:  # noqa: BLE001 - a worker busy closing
                pass
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cluster(n, memory_limit):
    c = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                 dashboard_address=None, memory_limit=memory_limit,
                                 silence_logs=50)
    client = distributed.Client(c)
    ndk.configure(client)
    return c, client


def file_run(client, model, src, dst):
    x = files.open_input(src).rechunk((1, 1, CHUNK, CHUNK))
    job = files.write_output(ndk.predict(model, x), dst)
    t0 = time.perf_counter()
    client.compute(job).result()
    return time.perf_counter() - t0


def warm(client, model, folder):
    small = os.path.join(folder, "warm.npy")
    if not os.path.exists(small):
        write_image(small, 512)
    file_run(client, model, small, os.path.join(folder, "warm-out.npy"))


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
        x = np.random.default_rng(1).standard_normal((1, 1, args.small, args.small),
                                                    np.float32)
        model.forward(x[:, :, :256, :256])
        c, client = cluster(2, args.memory_limit)
        warm(client, model, folder)
        lazy = da.from_array(x, chunks=(1, 1, CHUNK, CHUNK))
        single, dist = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            want = model.forward(x)
            single.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = ndk.predict(model, lazy).compute()
            dist.append(time.perf_counter() - t0)
        assert np.allclose(got, want, atol=1e-5)
        s, d = statistics.median(single), statistics.median(dist)
        print(f"fits ({args.small}^2): forward {s:.2f} s, dask 2 workers {d:.2f} s: "
              f"overhead {100 * (d / s - 1):+.0f}%")
        client.close()
        c.close()

    # 2. throughput, 1 vs 2 workers
    if args.mid:
        src = os.path.join(folder, f"mid-{args.mid}.npy")
        if not os.path.exists(src):
            write_image(src, args.mid)
        times = {1: [], 2: []}
        clusters = {n: cluster(n, args.memory_limit) for n in (1, 2)}
        for n, (_, client) in clusters.items():
            warm(client, model, folder)
        for _ in range(args.repeat):
            for n, (_, client) in clusters.items():
                times[n].append(file_run(client, model, src,
                                         os.path.join(folder, "mid-out.npy")))
        for c, client in clusters.values():
            client.close()
            c.close()
        t1, t2 = statistics.median(times[1]), statistics.median(times[2])
        mpix = args.mid ** 2 / 1e6
        print(f"throughput ({args.mid}^2 from disk to disk): 1 worker {mpix / t1:.1f} "
              f"Mpixel/s, 2 workers {mpix / t2:.1f} Mpixel/s: speedup {t1 / t2:.2f}x")

    # 1. an image larger than the workers' memory
    if args.big:
        src = os.path.join(folder, f"big-{args.big}.npy")
        if not os.path.exists(src):
            t0 = time.perf_counter()
            write_image(src, args.big)
            print(f"wrote {src} ({os.path.getsize(src) / 2**30:.1f} GiB) in "
                  f"{time.perf_counter() - t0:.0f} s")
        c, client = cluster(2, args.memory_limit)
        warm(client, model, folder)
        with PeakMemory(client) as mem:
            seconds = file_run(client, model, src, os.path.join(folder, "big-out.npy"))
        client.close()
        c.close()
        gib = os.path.getsize(src) / 2**30
        chunk_mib = CHUNK * CHUNK * 4 / 2**20
        peaks = ", ".join(f"{v / 2**20:.0f} MiB" for v in mem.peak.values())
        print(f"big ({args.big}^2, {gib:.1f} GiB in, same out): {seconds:.0f} s, "
              f"{args.big ** 2 / 1e6 / seconds:.1f} Mpixel/s; peak resident memory per "
              f"worker {peaks} (chunk {chunk_mib:.0f} MiB)")


if __name__ == "__main__":
    main()
