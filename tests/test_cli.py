"""The ``numbaconv`` command, run in subprocesses as a user would."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest


def _run(*args, cwd=None):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run([sys.executable, "-m", "numbaconv", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def test_info():
    out = _run("info")
    assert out.returncode == 0, out.stderr
    assert "threading layer" in out.stdout and "numba-cuda" in out.stdout


def test_summary():
    out = _run("summary", "resnet")
    assert out.returncode == 0, out.stderr
    assert "total" in out.stdout and "ResidualBlock" not in out.stdout and "Conv2d" in out.stdout
    assert _run("summary", "nope").returncode == 2


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_train_on_small_mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 32)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28))
        for i, label in enumerate(labels):  # a learnable pattern: a bright row per class
            images[i, 2 + 2 * label] = 255
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    out = _run("train", "--data", "mnist", "--data-dir", str(tmp_path), "--epochs", "2",
               "--out", str(tmp_path / "m.npz"), "--history", str(tmp_path / "h.json"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("test accuracy: ")
    assert (tmp_path / "m.npz").exists()
    record = json.loads((tmp_path / "h.json").read_text())
    assert record["run"]["data"] == "mnist" and len(record["epochs"]) == 2
    last = record["epochs"][-1]
    assert f"test accuracy: {100 * last['test_accuracy']:.1f}%" in out.stdout
    if importlib.util.find_spec("matplotlib"):
        out = _run("plot", "history", str(tmp_path / "h.json"), "--out",
                   str(tmp_path / "h.png"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_train_refuses_an_unwritable_history_before_training(tmp_path):
    out = _run("train", "--epochs", "1", "--history", str(tmp_path / "no" / "h.json"),
               "--out", "", cwd=tmp_path)
    assert out.returncode == 2 and "--history" in out.stderr and "does not exist" in out.stderr
    assert "epoch" not in out.stderr  # no training was run


def test_train_reports_a_missing_or_malformed_file(tmp_path):
    out = _run("train", "--data", "mnist", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "missing MNIST file" in out.stderr
    assert "Traceback" not in out.stderr
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02garbage")
    out = _run("train", "--data", "mnist", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "bad magic number" in out.stderr


@pytest.mark.slow
def test_train_digits_default():
    out = _run("train", "--epochs", "2", "--out", "")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("test accuracy: ")


def test_digits_are_scikit_learns_digits_split_by_class():
    sklearn = pytest.importorskip("sklearn.datasets")
    from numbaconv.data import digits

    x, y, xt, yt = digits()
    ref = sklearn.load_digits()
    assert len(x) + len(xt) == len(ref.target) and x.dtype == np.float32
    # every image of the split is one of scikit-learn's, scaled to [0, 1], with its label
    known = {img.tobytes(): t for img, t in zip((ref.images / 16.0).astype(np.float32),
                                                ref.target)}
    for images, labels in ((x, y), (xt, yt)):
        assert all(known[img[0].tobytes()] == t for img, t in zip(images, labels))
    assert np.bincount(yt, minlength=10).min() > 0.2 * np.bincount(y, minlength=10).min()
