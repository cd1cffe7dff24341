"""The CUDA conv kernels compiled for sm_90 (PTX, then ptxas) without a GPU: no register
spills, no float64 arithmetic in float32 kernels, no local memory, at least 2 blocks per
SM but for the one kernel documented at 1.  This catches what the simulator cannot (a
shared-array shape that is not a compile-time constant, a float64 constant, a register
tile that spills).  Skips without the CUDA compiler wheels:
``pip install 'cuda-toolkit[nvrtc,nvvm,nvcc]==13.*'``."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _compiler_wheels():
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(p) / "cu13" / "bin" / "ptxas").exists()
               for p in spec.submodule_search_locations)


@pytest.mark.skipif(not _compiler_wheels(), reason="CUDA compiler wheels not installed")
def test_conv_kernels_compile_for_sm90_without_spills_float64_or_local_memory():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "benchmarks" / "gpu_static.py"),
                           "--quick"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"kernels: \d+, spills: 0, f64 in float32 kernels: 0, local memory: 0",
                        lines[-1]), done.stdout
    blocks = {line.split(":")[0]: int(re.search(r"(\d+) blocks/SM", line).group(1))
              for line in lines if "blocks/SM" in line}
    assert len(blocks) == 14
    for name, count in blocks.items():
        expected = 1 if name.startswith("tiled.grad_input_kernel[128x128") else 2
        assert count >= expected, (name, count)
