"""benchmarks/study_breakdown.py reads each step's time off a run's log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from study_breakdown import step_times  # noqa: E402

P = "INFO brainsleep.experiment [pid {}]: "
LOG = (
    "\n".join(
        f"2026-12-07 10:{t} {P.format(pid)}{text}"
        for t, pid, text in [
            ("00:00,000", 1, "mnist_f0.01_none_s0 started"),
            ("00:00,500", 2, "mnist_f0.01_none_s1 started"),
            ("01:00,000", 1, "mnist_f0.01_none_s0 baseline        accuracy 0.5"),
            ("01:30,000", 1, "mnist_f0.01_none_s0 search          done (10 trials)"),
            ("01:35,000", 1, "mnist_f0.01_none_s0 sleep           accuracy 0.6"),
            ("01:36,000", 1, "mnist_f0.01_none_s0: search trial in worker process 2"),
            ("02:35,000", 1, "mnist_f0.01_none_s0 strong          accuracy 0.9"),
            ("03:00,000", 2, "mnist_f0.02_none_s0 baseline        accuracy 0.5"),
        ]
    )
    + "\n2026-12-07 10:02:36,000 INFO brainsleep.experiment: cell done: mnist_f0.01_none_s0\n"
)


def test_each_step_takes_the_time_since_the_cell_s_previous_line(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(LOG)
    df = step_times(log)
    s0 = df[df["cell"] == "mnist_f0.01_none_s0"].set_index("step")["seconds"]
    assert s0.to_dict() == pytest.approx(
        {"baseline": 60.0, "search": 30.0, "sleep": 5.0, "strong": 60.0}
    )
    # a cell without its started line (logged before issue 30) is skipped, and so is
    # one the driver has not reported done (s1: still running)
    assert set(df["cell"]) == {"mnist_f0.01_none_s0"}
