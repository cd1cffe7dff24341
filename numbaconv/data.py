"""Datasets for ``numbaconv train``: scikit-learn's bundled 8x8 handwritten digits, and
MNIST-format idx files.  Images come back as float32 ``(N, 1, H, W)`` in [0, 1], labels
as int64."""

from __future__ import annotations

import gzip
import os

import numpy as np


class DataError(Exception):
    """A dataset that is missing or malformed; the message says which file and why."""


def digits(test_fraction=0.25, seed=0):
    """(x_train, y_train, x_test, y_test) from scikit-learn's bundled digits (1797
    images, the data of ``sklearn.datasets.load_digits``), a stratified held-out split."""
    images, target = _digits_file()
    x = (images.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    y = target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):  # stratified: the same fraction of every class
        idx = rng.permutation(np.flatnonzero(y == label))
        test[idx[:int(round(len(idx) * test_fraction))]] = True
    return x[~test], y[~test], x[test], y[test]


def _digits_file():
    """(images (1797, 64), labels) read straight from scikit-learn's ``digits.csv.gz``,
    as ``load_digits`` reads it: importing ``sklearn.datasets`` alone costs 0.7-1.3 s
    of a first training run's start.  Through ``load_digits`` where the file is not
    where it has always been."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None:
        raise DataError("the digits data ships with scikit-learn: pip install scikit-learn")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    if os.path.exists(path):
        table = np.loadtxt(path, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :64], table[:, 64]
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path):
    """An idx file (MNIST format, optionally .gz) as a NumPy array of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an idx file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: only unsigned-byte idx data is supported (type 0x{raw[2]:02x})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - header != count:
        raise DataError(f"{path}: header says shape {shape} ({count} bytes) but the file has "
                        f"{len(raw) - header} data bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find(data_dir, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise DataError(f"missing MNIST file {stem} (or {stem}.gz) in {data_dir}")


def mnist(data_dir):
    """(x_train, y_train, x_test, y_test) from the four MNIST idx files in ``data_dir``."""
    if not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir} is not a directory")
    arrays = {key: read_idx(_find(data_dir, stem)) for key, stem in _IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"MNIST {split} files disagree: images {images.shape}, labels "
                            f"{labels.shape}")
    convert = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return (convert(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
            convert(arrays["test_images"]), arrays["test_labels"].astype(np.int64))
