"""The Optuna sleep-parameter search: trial 0, determinism, resume after a kill, scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from brainsleep.experiment import search
from brainsleep.experiment.__main__ import main
from brainsleep.experiment.search import SearchSpace, TrialResult
from brainsleep.experiment.search import run_search as _run_search

from .test_experiment import argv

START = {
    "max_rate": 239.515363,
    "inc": 0.032064,
    "dec": 0.003344,
    "v_thresh": [14.548, 44.56, 38.046],
    "alpha_scale": 55.882,
}
SPACE = SearchSpace.for_model("src", 3)
N = 14  # past the 10 random start-up trials, so TPE proper proposes the last batch
COLUMNS = ["trial", "state", "score", *SPACE.columns(SPACE.start_values(START))]


def run_search(*args, **kwargs):
    """The search over the reference model's declared space."""
    return _run_search(*args, space=SPACE, **kwargs)


def objective(cand: dict) -> TrialResult:
    """Cheap stand-in for a sleep + validation run: best near max_rate 100, alpha 20."""
    score = -abs(math.log(cand["max_rate"] / 100)) - abs(math.log(cand["alpha_scale"] / 20))
    return TrialResult(score, {1: int(cand["max_rate"]), 2: 7})


class Kill(Exception):
    """Stands in for the process dying in the middle of a trial."""


def recorder(kill_at: int | None = None):
    """A trial function that logs what it saw and raises on call number ``kill_at``."""
    seen: list[dict] = []

    def fn(cand: dict) -> TrialResult:
        if kill_at is not None and len(seen) == kill_at:
            raise Kill
        seen.append(cand)
        return objective(cand)

    return fn, seen


def complete_rows(history: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(history)
    return df[df["state"] == "COMPLETE"][COLUMNS].reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    journal = tmp_path_factory.mktemp("search") / search.JOURNAL
    fn, seen = recorder()
    best, history = run_search(START, N, 3, fn, journal, key="k", progress=False)
    return best, history, seen


def test_trial_zero_is_exactly_the_start(uninterrupted, tmp_path):
    best, history, seen = uninterrupted
    assert seen[0] == SPACE.start_values(START)
    row = history[0]
    assert row["trial"] == 0 and row["state"] == "COMPLETE"
    assert [row[f"v_thresh_{k}"] for k in (1, 2, 3)] == START["v_thresh"]
    assert (row["max_rate"], row["inc"], row["alpha_scale"]) == (239.515363, 0.032064, 55.882)
    assert row["spikes_layer1"] == 239 and row["spikes_layer2"] == 7
    assert row["score_name"] == "val_accuracy" and row["seconds"] >= 0
    # a start of 0 is kept exactly for trial 0; the others search around the floor
    zero = {**START, "inc": 0.0}
    fn, seen = recorder()
    run_search(zero, 3, 0, fn, tmp_path / "j", progress=False)
    assert seen[0]["inc"] == 0.0 and all(c["inc"] > 0 for c in seen[1:])


def test_trials_stay_in_the_log_space_ranges(uninterrupted):
    _, history, _ = uninterrupted
    for row in history[1:]:
        for name in SPACE.names:
            base = "v_thresh" if name.startswith("v_thresh_") else name
            lo, hi = SPACE.parameters[base].search
            start = START["v_thresh"][int(name[-1]) - 1] if base == "v_thresh" else START[name]
            assert lo <= row[name] / start <= hi, name


def test_same_seed_same_history_other_seed_other_history(uninterrupted, tmp_path):
    best, history, _ = uninterrupted
    again_best, again = run_search(START, N, 3, objective, tmp_path / "a", key="k", progress=False)
    pd.testing.assert_frame_equal(complete_rows(again), complete_rows(history))
    assert again_best == best
    _, other = run_search(START, N, 4, objective, tmp_path / "b", key="k", progress=False)
    assert not complete_rows(other).equals(complete_rows(history))


def test_best_is_the_max_score_lowest_trial_on_ties(uninterrupted, tmp_path):
    best, history, _ = uninterrupted
    top = max(history, key=lambda r: (r["score"], -r["trial"]))
    assert SPACE.columns(best) == {k: top[k] for k in SPACE.columns(best)}
    assert top["trial"] > 0  # the fake objective prefers other parameters than the start
    flat, _ = run_search(START, 5, 0, lambda c: 0.5, tmp_path / "j", progress=False)
    assert flat == SPACE.start_values(START)


@pytest.mark.parametrize("kill_at", [6, 13])  # mid-batch among random, then TPE trials
def test_killed_search_resumes_only_the_rest_with_the_same_choice(kill_at, uninterrupted, tmp_path):
    best, history, _ = uninterrupted
    journal = tmp_path / search.JOURNAL
    fn, seen = recorder(kill_at)
    with pytest.raises(Kill):
        run_search(START, N, 3, fn, journal, key="k", progress=False)
    assert len(seen) == kill_at
    fn, resumed = recorder()
    again_best, again = run_search(START, N, 3, fn, journal, key="k", progress=False)
    assert len(resumed) == N - kill_at  # finished trials were not rerun
    pd.testing.assert_frame_equal(complete_rows(again), complete_rows(history))
    assert again_best == best
    # the trials asked with the killed one were failed, and are listed as such
    failed = [r["trial"] for r in again if r["state"] == "FAIL"]
    assert kill_at in failed and all(r >= kill_at for r in failed)


def test_trials_left_running_by_a_killed_process_are_failed_not_counted(tmp_path):
    journal = tmp_path / search.JOURNAL
    run_search(START, 3, 1, objective, journal, key="k", progress=False)
    # what a process killed between ask and tell leaves: one running, one enqueued trial
    storage = search._storage(journal)
    study = optuna.load_study(study_name=search.STUDY_NAME, storage=storage)
    study.enqueue_trial(SPACE.start_factors(), user_attrs={"index": 3})
    study.ask(SPACE.distributions())
    study.enqueue_trial(SPACE.start_factors(), user_attrs={"index": 4})
    fn, seen = recorder()
    best, history = run_search(START, 5, 1, fn, journal, key="k", progress=False)
    assert len(seen) == 2  # trials 3 and 4 only
    states = [(r["trial"], r["state"]) for r in history]
    assert states.count((3, "FAIL")) == 1 and states.count((4, "FAIL")) == 1
    assert [t for t, s in states if s == "COMPLETE"] == [0, 1, 2, 3, 4]
    _, straight = run_search(START, 5, 1, objective, tmp_path / "j2", key="k", progress=False)
    pd.testing.assert_frame_equal(complete_rows(history), complete_rows(straight))


def test_journal_for_other_inputs_starts_over(tmp_path, caplog):
    journal = tmp_path / search.JOURNAL
    run_search(START, 3, 1, objective, journal, key="baseline A", progress=False)
    fn, seen = recorder()
    _, history = run_search(START, 3, 1, fn, journal, key="baseline B", progress=False)
    assert len(seen) == 3 and len(history) == 3
    assert "other inputs" in caplog.text


def test_partly_written_last_journal_line_is_dropped(tmp_path):
    journal = tmp_path / search.JOURNAL
    fn, _ = recorder(kill_at=2)
    with pytest.raises(Kill):
        run_search(START, 4, 1, fn, journal, key="k", progress=False)
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "tri')  # killed mid-write
    fn, seen = recorder()
    _, history = run_search(START, 4, 1, fn, journal, key="k", progress=False)
    assert len(seen) == 2
    assert [r["trial"] for r in history if r["state"] == "COMPLETE"] == [0, 1, 2, 3]


def test_pipeline_imbalanced_search_balanced_score_journal_in_cell_resumes(
    data_dir, tmp_path, monkeypatch
):
    """Scored on balanced validation accuracy; killed in trial 2, resumed from trial 2."""
    from brainsleep import ann
    from brainsleep.experiment import pipeline

    real_score, real_sleep = ann.score, pipeline.CellRunner._sleep

    # accuracy and balanced accuracy told apart: the search must use the balanced one
    def told_apart(*a, balanced=False, **k):
        real_score(*a, balanced=balanced, **k)  # the real scoring still runs
        return 0.75 if balanced else 0.25

    monkeypatch.setattr(ann, "score", told_apart)
    calls = []
    kill_at = [2]

    def sleep(self, *a, **k):
        if len(calls) in kill_at:
            raise KeyboardInterrupt
        calls.append(a)
        return real_sleep(self, *a, **k)

    monkeypatch.setattr(pipeline.CellRunner, "_sleep", sleep)
    out = tmp_path / "run"
    args = argv(data_dir, out, tmp_path / "builds", "--device", "reference", "--search", "3")
    args += ["--imbalance", "5-9:0.3", "--finetune-epochs", "0", "--record-spikes", "none"]
    assert main(args) == 130
    cell = out / "cells" / "mnist_f0.5_5-9x0.3_s0"
    assert (cell / search.JOURNAL).is_file() and not (cell / "search.json").exists()
    assert len(calls) == 2

    calls.clear()
    kill_at.clear()
    assert main(args) == 0
    assert len(calls) == 2  # trial 2 and the final sleep: trials 0 and 1 were kept
    hist = pd.read_csv(cell / "search.csv")
    assert list(zip(hist["trial"], hist["state"], strict=True)) == [
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (2, "FAIL"),
        (2, "COMPLETE"),
    ]
    done = hist[hist["state"] == "COMPLETE"]
    assert (done["score"] == 0.75).all() and (hist["score_name"] == "val_balanced_accuracy").all()
    assert done["spikes_layer1"].notna().all()
    marker = json.loads((cell / "search.json").read_text())
    assert marker["score"] == "val_balanced_accuracy"
    assert {"search.csv", search.JOURNAL} <= set(marker["artifacts"])
    # every score ties, so the start (trial 0) is chosen and slept with
    assert marker["best"]["max_rate"] == START["max_rate"]
    used = json.loads((cell / "sleep_params.json").read_text())["params"]
    assert used["max_rate"] == pytest.approx(START["max_rate"])
    assert not list(Path(out).rglob("*.tmp"))


def test_a_process_killed_holding_the_journal_lock_does_not_block_the_next(tmp_path):
    """The case that stalled a study: a search interrupted while writing its journal left
    Optuna's symlink lock behind, and the resumed run retried it forever. The journal lock
    is an OS lock now: the kernel releases it with the process."""
    import os
    import signal
    import subprocess
    import sys

    journal = tmp_path / search.JOURNAL
    run_search(START, 2, 1, objective, journal, key="k", progress=False)
    holder = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from brainsleep.experiment import search\n"
        "storage = search._storage(Path(sys.argv[1]))\n"
        "storage._backend._lock.acquire()\n"  # what a write in progress holds
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # a relative journal path, as the experiment passes it (results/<run>/cells/...)
    rel = os.path.relpath(journal)
    died = subprocess.run([sys.executable, "-c", holder, rel], timeout=60)
    assert died.returncode == -signal.SIGKILL
    resume = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.test_search import START, objective, run_search\n"
        "best, history = run_search(START, 3, 1, objective, Path(sys.argv[1]),"
        " key='k', progress=False)\n"
        "print(len(history))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", resume, rel], timeout=60, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "3"


def test_search_ranges_replace_the_declared_ones_by_name():
    declared = SearchSpace.for_model("src", 3)
    broad = SearchSpace.for_model("src", 3, {"dec": [1e-5, 100.0]})
    assert broad.parameters["dec"].search == (1e-5, 100.0)
    assert broad.parameters["inc"] == declared.parameters["inc"]
    assert broad.describe() != declared.describe()  # part of what a seed reproduces
    with pytest.raises(ValueError, match="not a searched parameter"):
        SearchSpace.for_model("src", 3, {"decay": [0.5, 2.0]})
