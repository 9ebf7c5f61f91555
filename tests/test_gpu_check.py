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


def test_gpu_check_without_brian2cuda_or_wheels_says_what_to_download(tmp_path):
    """A GPU machine (faked) whose Python lacks brian2cuda and brainsleep, without the
    wheels to install them offline: one line naming benchmarks/gpu_wheels.txt, exit 2,
    before anything is installed or built."""
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "GPU 0: NVIDIA Fake (UUID: GPU-1)"\n')
    smi.chmod(0o755)
    bare = tmp_path / "python"  # no site-packages: neither brian2cuda nor brainsleep
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    res = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PYTHON": str(bare),
            "PATH": f"{fake}:/usr/bin:/bin",
            "GPU_WHEELS": str(tmp_path / "no-wheels"),
        },
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "benchmarks/gpu_wheels.txt" in lines[0], lines
    assert res.stdout == ""
