"""Studies at scale: results directories that grow, search trials on Dask workers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from brainsleep.experiment.__main__ import main

from .test_experiment import argv

REPO = Path(__file__).resolve().parents[1]


def ref_args(data_dir, out, build_root, *extra):
    return argv(data_dir, out, build_root, "--device", "reference", *extra)


def cell_files(out: Path, cell: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "cells" / cell).iterdir())}


@pytest.mark.slow
def test_results_directory_grows_by_seed_and_fraction(data_dir, build_root, tmp_path, capsys):
    """Adding a seed (then a fraction) to a finished run computes only the new cells;
    the grown directory equals one run of the whole grid."""
    out = tmp_path / "grown"
    assert main(ref_args(data_dir, out, build_root, "--seeds", "0")) == 0
    first = cell_files(out, "mnist_f0.5_none_s0")
    assert main(ref_args(data_dir, out, build_root, "--seeds", "0", "1")) == 0
    assert cell_files(out, "mnist_f0.5_none_s0") == first  # kept, not redone
    assert main(ref_args(data_dir, out, build_root, "--seeds", "1", "--fractions", "1.0")) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["seeds"] == [0, 1] and cfg["config"]["fractions"] == [0.5, 1.0]
    assert [g["added"] for g in cfg["grown"]] == [{"seeds": [1]}, {"fractions": [1.0]}]
    # the same grid grown in another order, elsewhere: the same cells and metrics
    whole = tmp_path / "whole"
    assert main(ref_args(data_dir, whole, build_root, "--seeds", "0", "1")) == 0
    assert main(ref_args(data_dir, whole, build_root, "--seeds", "1", "--fractions", "1.0")) == 0
    grown_m = pd.read_csv(out / "metrics.csv")
    assert len(grown_m["cell"].unique()) == 3
    pd.testing.assert_frame_equal(grown_m, pd.read_csv(whole / "metrics.csv"))
    # anything but the grid is still another configuration
    capsys.readouterr()
    assert main(ref_args(data_dir, out, build_root, "--seeds", "2", "--epochs", "4")) == 2
    assert "different configuration (epochs: 3 -> 4)" in capsys.readouterr().err
    # an imbalance spec is a grid axis too: its cells are added
    assert main(ref_args(data_dir, out, build_root, "--imbalance", "5-9:0.3")) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["imbalance"] == ["none", "5-9x0.3"]
    assert (out / "cells" / "mnist_f0.5_5-9x0.3_s0" / "done.json").is_file()


@pytest.mark.slow
def test_search_trials_run_on_several_workers_with_the_same_result(data_dir, build_root, tmp_path):
    """--workers 2 with one cell: its trials go to the workers as tasks (Dask decides
    which: both, or the one whose thread the waiting cell did not free first); same
    trials, scores and metrics as in-process."""
    extra = ("--search", "4", "--record-spikes", "none", "--finetune-epochs", "0")
    alone = tmp_path / "alone"
    assert main(ref_args(data_dir, alone, build_root, *extra)) == 0
    spread = tmp_path / "spread"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "brainsleep.experiment",
            *[
                a
                for a in ref_args(data_dir, spread, build_root, *extra, "--workers", "2")
                if a != "--no-progress"  # the driver's bar, counting the workers' trials
            ],
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "trials=4" in res.stderr  # one bar in the driver over cells and trials
    assert (spread / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    cell = "cells/mnist_f0.5_none_s0/search.csv"
    a, b = pd.read_csv(alone / cell), pd.read_csv(spread / cell)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    log = (spread / "log.txt").read_text()
    pids = set(re.findall(r"search trial in worker process (\d+)", log))
    assert len(re.findall(r"search trial in worker process", log)) == 4
    assert 1 <= len(pids) <= 2, log  # worker processes (the driver logs no such line)
