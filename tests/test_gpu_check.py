"""benchmarks/gpu_check.sh stops at once, clearly, on a machine without a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brainsleep.sleep.cuda_setup import gpu_available

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU: the check would run")
def test_gpu_check_without_gpu_says_so_and_exits_2():
    res = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no NVIDIA GPU" in lines[0]
    assert res.stdout == ""
