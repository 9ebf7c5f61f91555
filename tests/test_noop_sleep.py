"""A sleep that changed no weight is not sleep (issue 30): the search says when it chose
one, the cell then also evaluates the best trial that acted (``sleep_acting``), and
every sleep records the fraction of synapses it changed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainsleep.experiment.__main__ import main
from brainsleep.experiment.search import SearchSpace, TrialResult, acting_choice
from brainsleep.formats import STAGES
from tests.test_experiment import argv

SPACE = SearchSpace.for_model("src", 3)
START = SPACE.start_values({"max_rate": 40.0, "inc": 0.02, "dec": 0.07, "v_thresh": [30, 7, 30]})


def row(trial, score, changed, **params):
    out = {"trial": trial, "state": "COMPLETE", "score": score, "weights_changed": changed}
    out.update(SPACE.columns(START))
    out.update(params)
    return out


def test_acting_choice_names_a_noop_best_and_the_best_trial_that_acted():
    history = [
        row(0, 0.80, 0.0),
        row(1, 0.70, 0.01, dec=0.5),
        row(2, 0.75, 0.02, dec=0.9),  # the best that acted
        row(3, 0.80, 0.0),  # ties with 0: the lower index is the best, as run_search
        {"trial": 4, "state": "FAIL", "score": None, "weights_changed": None},
    ]
    choice = acting_choice(history, START, SPACE)
    assert choice["best_is_noop"] is True
    assert choice["best_acting"]["trial"] == 2
    assert choice["best_acting"]["params"]["dec"] == 0.9
    assert choice["best_acting"]["params"]["v_thresh"] == [30, 7, 30]
    # a best that acted is its own acting choice
    history[2]["score"] = 0.9
    choice = acting_choice(history, START, SPACE)
    assert choice["best_is_noop"] is False and choice["best_acting"]["trial"] == 2
    # nothing acted; nothing measured (a journal from before the bookkeeping)
    assert acting_choice([row(0, 0.5, 0.0)], START, SPACE)["best_acting"] is None
    assert acting_choice([row(0, 0.5, None)], START, SPACE)["best_is_noop"] is None


@pytest.fixture
def planted_noop(monkeypatch):
    """Trials whose scores make the start (trial 0) a no-op best and the others act."""
    from brainsleep.experiment import pipeline

    def trial(self, model, p):
        start = p["dec"] == self.start_dec
        return TrialResult(0.9 if start else 0.5 + p["dec"] / 100, {1: 0}, 0.0 if start else 0.3)

    monkeypatch.setattr(pipeline.CellRunner, "trial", trial)
    monkeypatch.setattr(pipeline.CellRunner, "start_dec", 0.0025, raising=False)


def searched_cell(data_dir, build_root, tmp_path, *extra):
    """Run one searched cell on the runtime device: its arguments, folder, ``search.json``."""
    args = argv(data_dir, tmp_path / "run", build_root, "--device", "runtime", "--seeds", "0")
    args += [*extra, "--record-spikes", "none"]
    assert main(args) == 0
    cell = tmp_path / "run" / "cells" / "mnist_f0.5_none_s0"
    return args, cell, json.loads((cell / "search.json").read_text())


def test_a_noop_best_adds_the_acting_stages_and_resumes(
    planted_noop, data_dir, build_root, tmp_path
):
    extra = ("--search", "4", "--sleep-param", "dec=0.0025")
    args, cell, search = searched_cell(data_dir, build_root, tmp_path, *extra)
    assert search["best_is_noop"] is True and search["best"]["dec"] == 0.0025
    acting = search["best_acting"]
    assert acting["trial"] != 0 and acting["params"]["dec"] != 0.0025
    used = json.loads((cell / "sleep_acting_params.json").read_text())["params"]
    assert used["dec"] == pytest.approx(acting["params"]["dec"])
    df = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(df["stage"]) == [s for s in STAGES if s != "strong"]  # no --strong
    slept = df.set_index("stage").loc[["sleep", "sleep_acting"]]
    assert slept["sleep_weights_changed"].notna().all()
    for name in ("pop_sparseness_h1", "silent_frac_h2", "weight_small_frac"):
        assert df[name].between(0, 1).all()
    # resumed: the whole cell verifies, nothing is redone
    before = {p.name: p.stat().st_mtime_ns for p in cell.iterdir()}
    assert main(args) == 0
    assert {p.name: p.stat().st_mtime_ns for p in cell.iterdir()} == before


def test_an_acting_best_has_no_acting_stage_and_stale_ones_go(data_dir, build_root, tmp_path):
    extra = ("--search", "2", "--finetune-epochs", "0")
    args, cell, search = searched_cell(data_dir, build_root, tmp_path, *extra)
    out = tmp_path / "run"
    changed = [r["weights_changed"] for r in search["history"]]
    assert all(isinstance(c, float) and 0 <= c <= 1 for c in changed)
    # a stage marker of a step the cell does not have (left by an earlier search that
    # chose a no-op) would be read into metrics.csv: the resume removes it
    stale = cell / "stage_sleep_acting.json"
    stale.write_text((cell / "stage_sleep.json").read_text())
    (cell / "done.json").unlink()
    assert main(args) == 0
    assert not stale.exists()
    stages = pd.read_csv(out / "metrics.csv")["stage"]
    assert "sleep_acting" not in set(stages)
    assert np.isfinite(pd.read_csv(out / "metrics.csv")["sleep_weights_changed"].dropna()).all()
