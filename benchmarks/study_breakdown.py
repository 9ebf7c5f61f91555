"""Where a cell's time goes: training, search trials, the final sleep, fine-tuning, the
strong recipe, read off the logs of finished runs.

    python benchmarks/study_breakdown.py results/claims_v2/*      # appends to the table

Each cell logs ``<cell> started``, then one line per finished step (``baseline``,
``search ... done``, ``sleep``, ``sleep_finetune``, ``sleep_acting``, ...,
``finetune_only``, ``strong``) from the one worker process that runs it; the time from
one line to the next is the step's. Search trials that a cell sends to other workers
are counted in its ``search`` step (wall time, as the cell waits for them). A cell
without its ``started`` line (logged since issue 30), or not finished (no ``cell done``
line from the driver, when the log has any), is skipped. Writes
``benchmarks/study_breakdown.md``: per run, the mean seconds per cell of every step and
its share of the cell.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd

from brainsleep.atomic import atomic_write_bytes

HERE = Path(__file__).resolve().parent
_LINE = re.compile(
    r"^(?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO brainsleep\.experiment "
    r"(?:\[pid (?P<pid>\d+)\])?:? ?(?P<cell>\S+) (?P<what>started|search +done|\w+ +accuracy)"
)
_DONE = re.compile(r"cell done: (?P<cell>\S+)$")
STEPS = {
    "baseline": "training (baseline)",
    "search": "search trials",
    "sleep": "final sleep + evaluation",
    "sleep_finetune": "fine-tune after sleep",
    "sleep_acting": "acting sleep (no-op best)",
    "sleep_acting_finetune": "its fine-tune",
    "finetune_only": "fine-tune-only control",
    "strong": "strong recipe",
}


def step_times(log: Path) -> pd.DataFrame:
    """Seconds per (cell, step) from a run's ``log.txt``.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell, step, seconds``; empty when no cell logged its start.
    """
    events: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    done: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        if (finished := _DONE.search(line)) is not None:
            done.add(finished["cell"])
        m = _LINE.match(line)
        if not m:
            continue
        t = datetime.strptime(m["t"], "%Y-%m-%d %H:%M:%S,%f")
        what = m["what"].split()[0]
        events[m["cell"]].append((t, "started" if what == "started" else what))
    rows = []
    for cell, ev in events.items():
        if done and cell not in done:
            continue  # still running (or failed): its steps so far are not a cell's time
        ev.sort()
        starts = [i for i, (_, w) in enumerate(ev) if w == "started"]
        if not starts:
            continue
        prev = ev[starts[-1]][0]  # the last start: a resumed cell counts its last run
        for t, what in ev[starts[-1] + 1 :]:
            rows.append({"cell": cell, "step": what, "seconds": (t - prev).total_seconds()})
            prev = t
    return pd.DataFrame(rows, columns=["cell", "step", "seconds"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="results directories (their log.txt)")
    p.add_argument("--out", default=str(HERE / "study_breakdown.md"))
    a = p.parse_args(argv)
    lines = [
        "# Where a cell's time goes",
        "",
        f"Written by `benchmarks/study_breakdown.py` on {time.strftime('%Y-%m-%d')} from the "
        "logs of the runs below (2 Dask workers on 2 cores; wall seconds per cell, mean over "
        "its cells; a step's share of the cell in brackets).",
        "",
    ]
    header = ["run", "cells", *STEPS.values(), "cell total"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in map(Path, a.runs):
        df = step_times(run / "log.txt") if (run / "log.txt").is_file() else pd.DataFrame()
        if df.empty:
            continue
        per_cell = df.pivot_table(index="cell", columns="step", values="seconds", aggfunc="sum")
        total = per_cell.sum(axis=1).mean()
        cells = [run.name, str(len(per_cell))]
        for step in STEPS:
            if step in per_cell:
                mean = per_cell[step].mean()
                cells.append(f"{mean:.0f} s ({100 * mean / total:.0f} %)")
            else:
                cells.append("-")
        cells.append(f"{total:.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_bytes(Path(a.out), ("\n".join(lines) + "\n").encode())
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
