"""The ``numbaconv`` command (also ``python -m numbaconv``)."""

from __future__ import annotations

import argparse
import sys

from ._args import unwritable_file


def info() -> dict:
    """Versions, CPU threads and threading layer, CUDA devices (or why none), JIT cache."""
    import numba
    import numpy

    from . import __version__, config
    from .dispatch import cuda_available, threading_layer

    try:
        from importlib.metadata import version

        numba_cuda = version("numba-cuda")
    except Exception:  # pragma: no cover
        numba_cuda = "not installed"
    ok, why = cuda_available()
    devices = why
    if ok and why == "gpu":
        from numba import cuda

        devices = ", ".join(f"{i}: {d.name.decode() if isinstance(d.name, bytes) else d.name}"
                            for i, d in enumerate(cuda.gpus))
    elif ok:
        devices = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    return {
        "numbaconv": __version__,
        "numba": numba.__version__,
        "numba-cuda": numba_cuda,
        "numpy": numpy.__version__,
        "cpu threads": numba.config.NUMBA_NUM_THREADS,
        "threading layer": threading_layer(),
        "idle threads": _idle_threads(),
        "cuda": devices if ok else f"unavailable ({why})",
        "jit cache": numba.config.CACHE_DIR or "beside each kernel's source (__pycache__)",
        "first conv forward": ("answered by NumPy while its kernel compiles (tier 0; "
                               "NUMBACONV_TIERING=0 turns it off)" if config.CPU_TIERING
                               else "compiles its kernel, then runs it"),
    }


def _idle_threads() -> str:
    """How the thread pools wait (see ``numbaconv._threads``)."""
    from . import _threads, config

    pools = (f"numba's OpenMP threads spin {config.CPU_SPIN_COUNT} rounds, then sleep; "
             "numbaconv's BLAS products run at one thread per block, never BLAS's pool")
    if _threads.blas_quiet:
        return pools + "; OpenBLAS's pool sleeps soon after your own NumPy products"
    return (pools + "; OpenBLAS's pool spins ~0.1 s after your own NumPy products "
            "(NumPy was imported before numbaconv): set OPENBLAS_THREAD_TIMEOUT=4 or "
            "import numbaconv first")


def _run_probe():
    """Run one tiny parallel kernel so that the threading layer is chosen and reportable."""
    import numpy as np

    from . import conv2d

    from .functional import _tier

    conv2d(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32))
    _tier.wait()  # with tier 0 on, the kernel ran in the background


def _train(args) -> int:
    import time

    from .data import DataError
    from .train import run

    if args.data == "mnist" and not args.data_dir:
        print("numbaconv train: --data mnist needs --data-dir DIR (the four idx files)",
              file=sys.stderr)
        return 2
    for flag, path in (("--out", args.out), ("--history", args.history)):
        problem = unwritable_file(path)
        if problem:  # said now, not after the training it would throw away
            print(f"numbaconv train: {flag} {path!r}: {problem}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    try:
        _, result = run(args.model, args.data, args.data_dir, args.epochs, args.batch_size,
                        args.lr, args.seed, args.device, args.out, history=args.history)
    except DataError as exc:
        print(f"numbaconv train: {exc}", file=sys.stderr)
        return 2
    except (NotImplementedError, RuntimeError) as exc:
        print(f"numbaconv train: {exc}", file=sys.stderr)
        return 1
    epochs = result["epoch_seconds"]
    print(f"first epoch {epochs[0]:.1f} s (includes JIT compile), later epochs "
          f"{(sum(epochs[1:]) / max(len(epochs) - 1, 1)):.2f} s each, total "
          f"{time.perf_counter() - start:.1f} s")
    if args.out:
        print(f"model saved to {args.out}")
    if args.history:
        print(f"history written to {args.history}")
    print(f"test accuracy: {100 * result['test_accuracy']:.1f}%")
    return 0


def _warmup(args) -> int:
    from .warmup import warmup

    workload = "ops" if args.ops else "train"
    what = "the functional ops" if args.ops else f"training {args.model!r}"
    print(f"numbaconv warmup: compiling the kernels of {what} ({args.dtype}) in "
          f"{args.jobs or 'one per core'} processes", file=sys.stderr)
    try:
        result = warmup(workload, args.model, args.dtype, args.jobs, force=args.force,
                        check=args.check)
    except (ValueError, RuntimeError) as exc:
        print(f"numbaconv warmup: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    if result["already"]:
        print(f"{result['kernels']} kernels already in the cache (warmed before with these "
              f"sources; --force to redo)")
        return 0
    print(f"{result['kernels']} kernels in the cache after {result['seconds']:.1f} s")
    return 0


def _summary(args) -> int:
    from .analysis import summary
    from .models import build

    try:
        model = build(args.model)
    except ValueError as exc:
        print(f"numbaconv summary: {exc}", file=sys.stderr)
        return 2
    size = 28 if args.data == "mnist" else 8
    print(summary(model, (args.batch_size, 1, size, size)))
    return 0


def _bench(args) -> int:
    """The conv-family suite against PyTorch (if installed), or the per-op table."""
    from . import config

    config.CPU_TIERING = False  # time the kernels, never a first call answered by NumPy
    from .bench import SUITE, suite_table, table

    if args.compile:
        from .compile_report import table as compile_table

        try:
            print(compile_table("ops" if args.ops else "train", args.model))
        except RuntimeError as exc:
            print(f"numbaconv bench --compile: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.ops:
        print(table(repeat=args.repeat))
        return 0
    if args.random is not None:
        import os

        from .bench import random_cases

        if args.random < 1:
            print(f"numbaconv bench: --random needs a positive count; got {args.random}",
                  file=sys.stderr)
            return 2
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
        print(f"{args.random} random layers, seed {seed} (numbaconv bench --random "
              f"{args.random} --seed {seed} draws them again)")
        print(suite_table(repeat=args.repeat, cases=random_cases(args.random, seed),
                          memory=False))
        return 0
    names = [n for n in SUITE if args.filter in n] if args.filter else None
    if names == []:
        print(f"numbaconv bench: no case matches {args.filter!r}", file=sys.stderr)
        return 2
    print(suite_table(repeat=args.repeat, names=names))
    return 0


def _predict(args) -> int:
    """A saved model over an array file on a dask cluster; bad inputs are one line."""
    try:
        from .dask import files
    except ImportError as exc:
        print(f"numbaconv predict: {exc}", file=sys.stderr)
        return 1
    try:
        return files.run(args)
    except ValueError as exc:
        print(f"numbaconv predict: {exc}", file=sys.stderr)
        return 2


def _plot(args) -> int:
    """Draw one picture to ``--out`` (PNG); bad paths and files are one line on stderr."""
    from . import plot

    try:
        plot.check_png_path(args.out, "--out")
        if args.what == "history":
            plot.plot_history(args.file, args.out)
        elif args.what == "checkerboard":
            plot.plot_checkerboard(args.kernel_size, args.stride, args.out, args.size)
        else:
            model = plot.load_model(args.file, args.model)
            if args.what == "filters":
                plot.plot_filters(model, args.out, args.reduce)
            else:
                image, label = _test_image(args, model)
                plot.plot_features(model, image, args.out, label)
    except ImportError as exc:
        print(f"numbaconv plot: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"numbaconv plot {args.what}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled while writing
        print(f"numbaconv plot {args.what}: could not write {args.out!r}: {exc}",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


def _test_image(args, model):
    """Image ``--index`` of the held-out split ``numbaconv train`` used, and its label."""
    from . import data as datasets

    if args.data == "mnist" and not args.data_dir:
        raise ValueError("--data mnist needs --data-dir DIR (the four idx files)")
    try:
        arrays = datasets.digits() if args.data == "digits" else datasets.mnist(args.data_dir)
    except datasets.DataError as exc:
        raise ValueError(str(exc)) from None
    x_test, y_test = arrays[2], arrays[3]
    if not -len(x_test) <= args.index < len(x_test):
        raise ValueError(f"--index: expected 0 to {len(x_test) - 1} (the {args.data} test "
                         f"images); got {args.index}")
    image = x_test[args.index]
    from .plot import _convs

    expected = _convs(model)[0].in_channels
    if image.shape[0] != expected:
        raise ValueError(f"the model takes {expected} input channels; the {args.data} "
                         f"images have {image.shape[0]}")
    return image, int(y_test[args.index])


def _add_plot_parser(sub, models):
    plot = sub.add_parser("plot", help="pictures as PNG: training curves, filters, "
                                       "feature maps, checkerboard artifacts")
    what = plot.add_subparsers(dest="what", required=True)
    history = what.add_parser("history", help="loss and accuracy per epoch of a run "
                                              "('numbaconv train --history FILE')")
    history.add_argument("file", help="the JSON file 'numbaconv train --history' wrote")
    filters = what.add_parser("filters", help="the first conv layer's filters")
    features = what.add_parser("features", help="one test image and the feature maps of "
                                                "each conv stage")
    for p in (filters, features):
        p.add_argument("file", help="a model saved by 'numbaconv train' (.npz)")
        p.add_argument("--model", required=True, choices=models,
                       help="the model the file holds")
    filters.add_argument("--reduce", default="each", choices=["each", "mean"],
                         help="one image per input channel, or their mean")
    features.add_argument("--index", type=int, default=0, help="which test image")
    features.add_argument("--data", default="digits", choices=["digits", "mnist"])
    features.add_argument("--data-dir", help="directory with the MNIST idx files")
    board = what.add_parser("checkerboard", help="overlap counts, transposed conv and "
                                                 "resize-then-conv side by side")
    board.add_argument("--kernel-size", type=int, required=True)
    board.add_argument("--stride", type=int, required=True)
    board.add_argument("--size", type=int, default=8, help="input size (pixels)")
    for p in (history, filters, features, board):
        p.add_argument("--out", required=True, help="the PNG file to write")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="numbaconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, threads, CUDA devices, JIT cache")
    from .models import MODELS

    train = sub.add_parser("train", help="train a small CNN (default: bundled 8x8 digits)")
    train.add_argument("--model", default="cnn", choices=sorted(MODELS))
    train.add_argument("--data", default="digits", choices=["digits", "mnist"])
    train.add_argument("--data-dir", help="directory with the MNIST idx files")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    train.add_argument("--out", default="numbaconv-model.npz",
                       help="where to save the trained model (.npz); '' to skip")
    train.add_argument("--history", default="",
                       help="write per-epoch loss and accuracy as JSON to this file "
                            "(what 'numbaconv plot history' draws)")
    summ = sub.add_parser("summary", help="per-layer shapes, parameters, MACs of a model")
    summ.add_argument("model", choices=sorted(MODELS))
    summ.add_argument("--data", default="digits", choices=["digits", "mnist"])
    summ.add_argument("--batch-size", type=int, default=1)
    bench = sub.add_parser("bench", help="timing tables against PyTorch CPU")
    bench.add_argument("--repeat", type=int, default=7)
    bench.add_argument("--ops", action="store_true",
                       help="one shape per functional op (default: the conv suite)")
    bench.add_argument("--filter", default="", help="only suite cases whose name has this")
    bench.add_argument("--random", type=int, default=None, metavar="N",
                       help="N conv layers drawn at random from realistic ranges instead "
                            "of the suite (odd sizes, thin, depthwise, grouped, 1x1)")
    bench.add_argument("--seed", type=int, default=None,
                       help="the seed of --random (default: a fresh one, printed)")
    bench.add_argument("--compile", action="store_true",
                       help="compile seconds per kernel with an empty cache, for one "
                            "training step of --model (or, with --ops, every op)")
    bench.add_argument("--model", default="cnn", choices=sorted(MODELS),
                       help="the model of --compile (default cnn, the main job's)")
    warm = sub.add_parser("warmup", help="compile the kernels a model's training (or the "
                                          "functional ops) needs into the cache, in "
                                          "parallel processes")
    warm.add_argument("--model", default="cnn", choices=sorted(MODELS))
    warm.add_argument("--ops", action="store_true", help="the functional ops instead")
    warm.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    warm.add_argument("-j", "--jobs", type=int, default=None,
                      help="processes (default: the number of cores, at most 4)")
    warm.add_argument("--force", action="store_true",
                      help="compile again even if this workload was warmed before")
    warm.add_argument("--check", action="store_true",
                      help="always end with a fresh process that runs the workload from "
                           "the cache (otherwise only where a worker stopped early or a "
                           "kernel did not read back)")
    _add_plot_parser(sub, sorted(MODELS))
    from .models import ALL

    pred = sub.add_parser("predict", help="run a saved model over an array file (.npy or "
                                          "Zarr), locally or on a dask cluster")
    pred.add_argument("model_file", help="the model's weights (.npz)")
    pred.add_argument("input", help="(N, C, H, W) or (N, C, L) array: .npy or .zarr")
    pred.add_argument("output", help="where to write the result: .npy or .zarr")
    pred.add_argument("--model", default="cnn", choices=sorted(ALL),
                      help="the architecture of MODEL_FILE (default cnn)")
    pred.add_argument("--scheduler", default="",
                      help="address of a dask scheduler (default: a local cluster)")
    pred.add_argument("--workers", type=int, default=None,
                      help="worker processes of the local cluster (default: one per core)")
    pred.add_argument("--chunks", default="auto",
                      help="input chunks, one int per axis, -1 for a whole axis, e.g. "
                           "'1,-1,1024,1024' (default: the file's, or dask's 'auto')")
    args = parser.parse_args(argv)
    if args.command == "info":
        _run_probe()
        for key, value in info().items():
            print(f"{key:>16}: {value}")
        return 0
    return {"train": _train, "summary": _summary, "bench": _bench,
            "plot": _plot, "warmup": _warmup, "predict": _predict}[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
