"""numbaconv against PyTorch's own sample inputs (its OpInfo database), forward and
backward, float32 and float64, CPU: how many numbaconv matches, refuses, or gets wrong.

    pip install expecttest   # torch.testing._internal needs it
    python docs/benchmarks/torch_samples.py [--verbose]

Every 1-D / 2-D op numbaconv has (3-D ops, fractional pools and max_unpool are not
numbaconv's) runs through ``numbaconv.torch`` with the sample's arguments; forward
outputs and the gradients of every input that requires grad are compared with PyTorch's
(float64: 1e-7, float32: 1e-4 relative).  A refusal is a ``TypeError`` / ``ValueError``
naming what numbaconv does not take; anything else raised is a crash.
"""

from __future__ import annotations

import argparse
import collections
import sys

import torch
from torch.testing._internal.common_methods_invocations import op_db

import numbaconv.torch as nt

OPS = {
    "nn.functional.conv1d": "conv1d", "nn.functional.conv2d": "conv2d",
    "nn.functional.conv_transpose1d": "conv_transpose1d",
    "nn.functional.conv_transpose2d": "conv_transpose2d",
    "nn.functional.max_pool1d": "max_pool1d", "nn.functional.max_pool2d": "max_pool2d",
    "nn.functional.avg_pool1d": "avg_pool1d", "nn.functional.avg_pool2d": "avg_pool2d",
    "nn.functional.adaptive_avg_pool1d": "adaptive_avg_pool1d",
    "nn.functional.adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "nn.functional.adaptive_max_pool1d": "adaptive_max_pool1d",
    "nn.functional.adaptive_max_pool2d": "adaptive_max_pool2d",
    "nn.functional.unfold": "unfold", "nn.functional.interpolate": "interpolate",
    "nn.functional.pad": "pad", "nn.functional.channel_shuffle": "channel_shuffle",
    "nn.functional.upsample_nearest": "upsample_nearest",
    "nn.functional.upsample_bilinear": "upsample_bilinear",
}


def ours(name, sample):
    args, kwargs = list(sample.args), dict(sample.kwargs)
    if name == "upsample_nearest":
        kwargs.setdefault("mode", "nearest")
        name = "interpolate"
    elif name == "upsample_bilinear":
        kwargs.update(mode="bilinear", align_corners=True)
        name = "interpolate"
    if name == "interpolate" and kwargs.pop("antialias", False):
        raise ValueError("interpolate: antialias is not supported")
    return getattr(nt, name)(sample.input, *args, **kwargs)


def leaves(sample):
    out = [sample.input] + [a for a in sample.args if isinstance(a, torch.Tensor)]
    out += [v for v in sample.kwargs.values() if isinstance(v, torch.Tensor)]
    return [t for t in out if isinstance(t, torch.Tensor) and t.requires_grad]


def first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def check(op, name, sample, tol):
    want = first(op(sample.input, *sample.args, **sample.kwargs))
    got = first(ours(name, sample))
    if got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol,
                                                     equal_nan=True):
        return "mismatch (forward)"
    inputs = leaves(sample)
    if inputs and want.requires_grad and want.numel():
        g = torch.randn_like(want)
        theirs = torch.autograd.grad(want, inputs, g, allow_unused=True)
        mine = torch.autograd.grad(got, inputs, g, allow_unused=True)
        for a, b in zip(mine, theirs):
            a = torch.zeros_like(b) if a is None and b is not None else a
            if b is None:
                continue
            if not torch.allclose(a, b, rtol=tol * 10, atol=tol * 10):
                return "mismatch (backward)"
    return "match"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    counts = collections.Counter()
    per_op = collections.defaultdict(collections.Counter)
    examples = collections.defaultdict(list)
    for info in op_db:
        if info.name not in OPS:
            continue
        name = OPS[info.name]
        label = info.name.split(".")[-1] + (f"[{info.variant_test_name}]"
                                            if info.variant_test_name else "")
        if info.variant_test_name in ("trilinear",):
            continue
        for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-7)):
            for sample in info.sample_inputs("cpu", dtype, requires_grad=True):
                if sample.input.dim() > 4 or (name.endswith("1d") and sample.input.dim() > 3):
                    continue  # volumetric
                try:
                    result = check(info.op, name, sample, tol)
                except (TypeError, ValueError) as exc:
                    result = "refused"
                    examples[label].append(f"{type(exc).__name__}: {str(exc)[:140]}")
                except RuntimeError as exc:
                    # PyTorch refusing its own sample (e.g. an error-input check) is not ours
                    result = "refused" if "numbaconv" in repr(exc) else "crash"
                    examples[label].append(f"{type(exc).__name__}: {str(exc)[:140]}")
                except Exception as exc:  # noqa: BLE001 - the point is to count them
                    result = "crash"
                    examples[label].append(f"{type(exc).__name__}: {str(exc)[:140]}")
                counts[result] += 1
                per_op[label][result] += 1
    print(f"{'op':<34} {'match':>6} {'refused':>8} {'mismatch':>9} {'crash':>6}")
    for label, c in sorted(per_op.items()):
        bad = c["mismatch (forward)"] + c["mismatch (backward)"]
        print(f"{label:<34} {c['match']:>6} {c['refused']:>8} {bad:>9} {c['crash']:>6}")
    print(dict(counts))
    if args.verbose:
        for label, msgs in examples.items():
            for m in sorted(set(msgs))[:6]:
                print(f"  {label}: {m}")
    return 0 if not (counts["crash"] or counts["mismatch (forward)"]
                     or counts["mismatch (backward)"]) else 1


if __name__ == "__main__":
    sys.exit(main())
