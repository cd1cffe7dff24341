"""``numbaconv bench --random`` in a process shaped like a user's: NumPy and PyTorch
imported and used first, then numbaconv (issue #23's condition).

    python3 docs/benchmarks/random_user.py N SEED [REPEAT]
"""
import sys

import numpy as np
import torch

a = np.random.rand(256, 256).astype(np.float32)
a @ a
x = torch.randn(8, 16, 32, 32)
torch.nn.functional.conv2d(x, torch.randn(16, 16, 3, 3), padding=1).sum()

from numbaconv.bench import random_cases, suite_table

n, seed = int(sys.argv[1]), int(sys.argv[2])
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 5
print(f"{n} random layers, seed {seed}, numpy+torch imported first")
print(suite_table(repeat=repeat, cases=random_cases(n, seed), memory=False), flush=True)
