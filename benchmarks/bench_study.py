"""Study throughput: cells per hour and trials per second with 1 and 2 Dask workers.

    python benchmarks/bench_study.py                    # MNIST 1 %, 784-1200-1200-10, 4 cells
    python benchmarks/bench_study.py --seeds 2 --search 2 --hidden 100 100   # quick

Runs the same small grid twice, ``--workers 1`` and ``--workers 2`` (fresh results
directories, one shared build cache compiled beforehand so neither run pays for it), and
times each. From the measured per-cell and per-trial costs it projects the full paper
grid (2 data sets x 8 fractions x 2 recipes x 5 seeds x 30 trials) for 1, 2, 16 and 64
workers. Writes ``benchmarks/study_throughput.md``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from brainsleep.atomic import atomic_write_bytes

HERE = Path(__file__).resolve().parent
PAPER_GRID = {"datasets": 2, "fractions": 8, "recipes": 2, "seeds": 5, "trials": 30}


def run(args: list[str]) -> float:
    """Seconds one CLI run took; raises when it fails."""
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "brainsleep.experiment", *args], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"run failed ({res.returncode}): {res.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fraction", default="0.01")
    p.add_argument("--seeds", type=int, default=4, help="cells in the grid")
    p.add_argument("--search", type=int, default=4, help="trials per cell")
    p.add_argument("--hidden", nargs="+", default=["1200", "1200"])
    p.add_argument("--out", default=str(HERE / "study_throughput.md"))
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_study_"))
    common = [
        "--fractions", a.fraction, "--seeds", *map(str, range(a.seeds)),
        "--hidden", *a.hidden, "--search", str(a.search), "--finetune-epochs", "0",
        "--record-spikes", "none", "--no-progress", "--build-root", str(work / "builds"),
    ]  # fmt: skip
    try:
        # compile once beforehand (a 1-seed, 1-trial run), so neither timed run pays it
        warm = [*common, "--seeds", "0", "--search", "1", "--out", str(work / "warm")]
        run(warm)  # argparse: the later --seeds / --search win
        wall = {
            n: run([*common, "--workers", str(n), "--out", str(work / f"w{n}")]) for n in (1, 2)
        }
        trials = pd.concat(pd.read_csv(f) for f in (work / "w1" / "cells").glob("*/search.csv"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = trials[trials["state"] == "COMPLETE"]
    t_trial = float(done["seconds"].mean())
    cell = wall[1] / a.seeds
    rest = max(cell - a.search * t_trial, 0.0)  # training, final sleep, evaluation
    speedup = wall[1] / wall[2]
    efficiency = speedup / 2
    g = PAPER_GRID
    n_cells = g["datasets"] * g["fractions"] * g["recipes"] * g["seeds"]
    serial = n_cells * (rest + g["trials"] * t_trial)
    lines = [
        "# Study throughput",
        "",
        f"Written by `benchmarks/bench_study.py {' '.join(argv or sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d')}: MNIST {float(a.fraction):g} of the training set, "
        f"784-{'-'.join(a.hidden)}-10, {a.seeds} cells, {a.search} search trials each, "
        "cpp_standalone with a warm build cache.",
        "",
        "| workers | wall (s) | cells per hour | trials per second |",
        "|---|---|---|---|",
    ]
    for n, w in wall.items():
        lines.append(f"| {n} | {w:.0f} | {3600 * a.seeds / w:.1f} | {a.seeds * a.search / w:.3f} |")
    lines += [
        "",
        f"Speed-up with 2 workers: **{speedup:.2f}x** (parallel efficiency {efficiency:.0%}). "
        f"Per trial {t_trial:.1f} s; per cell outside its trials {rest:.1f} s.",
        "",
        "## Projected: the paper grid",
        "",
        f"{n_cells} cells ({' x '.join(f'{v} {k}' for k, v in g.items() if k != 'trials')}) "
        f"x {g['trials']} trials, at this benchmark's per-cell and per-trial costs and its "
        "measured 2-worker efficiency for every worker count (larger fractions train "
        "longer, so this is a lower bound):",
        "",
        "| workers | projected wall |",
        "|---|---|",
    ]
    for n in (1, 2, 16, 64):
        hours = serial / (n * (efficiency if n > 1 else 1.0)) / 3600
        lines.append(f"| {n} | {hours:.1f} h |")
    atomic_write_bytes(Path(a.out), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
