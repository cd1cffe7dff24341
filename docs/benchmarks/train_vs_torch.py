"""The digits CNN of ``numbaconv train`` trained side by side with the same network in
PyTorch (CPU, same thread count, same initial weights, same batches, Adam): seconds per
epoch after a warm-up epoch, and the test accuracy each reaches.

    python docs/benchmarks/train_vs_torch.py [--epochs 4] [--threads 2]

Needs PyTorch (``pip install torch``); writes nothing, prints a Markdown table.
"""

import argparse
import time

import numbaconv as nc  # first: it sets the thread wait policies before NumPy loads BLAS
from numbaconv import data, models, nn, optim

import numpy as np  # noqa: E402
import torch  # noqa: E402


def torch_cnn(num_classes=10):
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 32, 3, padding=1), t.BatchNorm2d(32), t.ReLU(),
        t.Conv2d(32, 64, 3, padding=1), t.BatchNorm2d(64), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(64, 64, 3, padding=1), t.BatchNorm2d(64), t.ReLU(),
        t.AdaptiveAvgPool2d(1), t.Flatten(), t.Linear(64, num_classes))


def epochs_numbaconv(model, batches, x_test, y_test):
    opt, loss_fn = optim.Adam(model.parameters(), lr=2e-3), nn.CrossEntropyLoss()
    times = []
    for epoch in batches:
        start = time.perf_counter()
        for xb, yb in epoch:
            opt.zero_grad()
            loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()
        times.append(time.perf_counter() - start)
    from numbaconv.train import evaluate

    return times, evaluate(model, x_test, y_test)


def epochs_torch(model, batches, x_test, y_test):
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=2e-3), torch.nn.CrossEntropyLoss()
    times = []
    for epoch in batches:
        start = time.perf_counter()
        for xb, yb in epoch:
            opt.zero_grad()
            loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    return times, float((pred == y_test).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    x_train, y_train, x_test, y_test = data.digits(seed=0)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(args.epochs + 1):  # the first epoch warms up (JIT, allocator)
        order = rng.permutation(len(x_train))
        batches.append([(np.ascontiguousarray(x_train[order[i:i + args.batch_size]]),
                         y_train[order[i:i + args.batch_size]])
                        for i in range(0, len(order), args.batch_size)])
    nn.manual_seed(0)
    ours = models.cnn()
    theirs = torch_cnn()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    t_ours, acc_ours = epochs_numbaconv(ours, batches, x_test, y_test)
    t_theirs, acc_theirs = epochs_torch(theirs, batches, x_test, y_test)
    med_ours, med_theirs = np.median(t_ours[1:]), np.median(t_theirs[1:])
    print(f"digits CNN, batch {args.batch_size}, {len(batches[0])} steps/epoch, "
          f"{args.threads} threads, numbaconv {nc.__version__}, torch {torch.__version__}\n")
    print("| | s / epoch (median of warm epochs) | first epoch s | test accuracy |")
    print("|---|---|---|---|")
    print(f"| numbaconv | {med_ours:.2f} | {t_ours[0]:.2f} | {100 * acc_ours:.1f}% |")
    print(f"| PyTorch | {med_theirs:.2f} | {t_theirs[0]:.2f} | {100 * acc_theirs:.1f}% |")
    print(f"\nratio (PyTorch time / numbaconv time): {med_theirs / med_ours:.2f}")


if __name__ == "__main__":
    main()
