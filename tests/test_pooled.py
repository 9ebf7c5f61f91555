"""The pooled optimum (brainsleep.experiment.pooled): one parameter set for every seed,
chosen on validation, re-scoring each seed's best search trials with every seed's
baseline; the re-scores reproduce each search's own scores."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from brainsleep import ann
from brainsleep.experiment import pooled
from brainsleep.experiment.__main__ import main
from brainsleep.experiment.config import ConfigError, load_sleep_params_file
from brainsleep.experiment.search import SearchSpace

from .test_experiment import argv

SETTING = "mnist_f0.5_none"


@pytest.fixture(scope="module")
def searched(data_dir, build_root, tmp_path_factory):
    """A tiny run with a 4-trial search on 2 seeds (the numpy oracle device)."""
    out = tmp_path_factory.mktemp("searched") / "run"
    extra = ["--device", "reference", "--search", "4", "--seeds", "0", "1"]
    extra += ["--finetune-epochs", "0", "--record-spikes", "none"]
    assert main(argv(data_dir, out, build_root, *extra)) == 0
    return out


@pytest.fixture(scope="module")
def result(searched):
    return pooled.pooled_optimum(searched, progress=False, top=2)


def test_columns_and_from_columns_are_inverse():
    space = SearchSpace.for_model("src", 3)
    start = {"max_rate": 40.0, "inc": 0.02, "dec": 0.07, "v_thresh": [30.0, 7.0, 30.0]}
    cand = space.candidate(start, {n: 1.5 + 0.1 * k for k, n in enumerate(space.names)})
    assert space.from_columns(start, space.columns(cand)) == cand


def test_candidates_are_the_start_then_each_seeds_best_without_repeats(searched, result):
    sources = [row["source"] for row in result.table if row["seed"] == 0]
    expected = ["start"]
    for seed in (0, 1):
        history = pd.read_csv(searched / "cells" / f"{SETTING}_s{seed}" / "search.csv")
        done = history[history.state == "COMPLETE"].sort_values(
            ["score", "trial"], ascending=[False, True]
        )
        # trial 0 is the start itself: a repeat, left out
        expected += [f"{SETTING}_s{seed} trial {t}" for t in done["trial"].head(2) if t != 0]
    assert sources == expected
    # every candidate was scored on every seed
    assert len(result.table) == 2 * len(sources)


def test_rescoring_reproduces_each_searchs_own_scores(result):
    own = [r for r in result.table if r["search_score"] is not None]
    assert len(own) >= 4  # the start on both seeds, and each seed's own trials
    for row in own:
        assert row["val_score"] == row["search_score"], row


def test_gain_is_against_the_cells_baseline_on_its_validation_split(searched, result):
    from brainsleep.experiment.pipeline import Cell, CellRunner, load_data
    from brainsleep.experiment.pooled import read_run

    cfg, _, _ = read_run(searched, None)
    runner = CellRunner(cfg, Cell("mnist", 0.5, "none", 1), load_data(cfg)["mnist"], searched)
    base = ann.score(runner.baseline_model(), runner.xv, runner.yv)
    rows = [r for r in result.table if r["seed"] == 1]
    assert all(r["baseline_val_score"] == base for r in rows)
    assert all(r["gain"] == pytest.approx(100 * (r["val_score"] - base)) for r in rows)


def test_the_chosen_set_has_the_highest_mean_gain(result):
    means = dict(result.mean_gains())
    best = [r["candidate"] for r in result.table if r["source"] == result.best.source][0]
    assert means[best] == max(means.values())


def test_ties_go_to_the_earliest_candidate():
    assert pooled.choose([(0, 1.0), (1, 2.0), (2, 2.0)]) == 1
    assert pooled.choose([(0, 0.0), (1, 0.0)]) == 0
    assert pooled.mean_gains(
        [
            {"candidate": 1, "gain": 3.0},
            {"candidate": 0, "gain": 1.0},
            {"candidate": 1, "gain": -1.0},
        ]
    ) == [(0, 1.0), (1, 1.0)]


def test_command_writes_a_sleep_params_file_a_table_and_a_summary(searched, tmp_path):
    out = tmp_path / "best.json"
    assert pooled.main([str(searched), "--top", "1", "--out", str(out), "--no-progress"]) == 0
    params = load_sleep_params_file(str(out))  # usable as --sleep-params as it is
    table = pd.read_csv(out.with_suffix(".csv"))
    assert set(table.seed) == {0, 1}
    md = out.with_suffix(".md").read_text()
    assert "python -m brainsleep.experiment.pooled" in md and "Chosen: candidate" in md
    assert json.dumps(params["max_rate"]) in out.read_text()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_bad_input_is_one_line_before_anything_runs(searched, data_dir, build_root, tmp_path):
    out = tmp_path / "best.json"
    assert pooled.main([str(searched), "--setting", "mnist_f0.1_none", "--out", str(out)]) == 2
    assert pooled.main([str(searched), "--out", str(tmp_path / "best.txt")]) == 2
    assert pooled.main([str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert not list(tmp_path.iterdir())
    plain = tmp_path / "plain"
    extra = ["--device", "reference", "--finetune-epochs", "0", "--record-spikes", "none"]
    assert main(argv(data_dir, plain, build_root, *extra, "--seeds", "0", "1")) == 0
    with pytest.raises(ConfigError, match="no search"):
        pooled.read_run(plain, None)


def test_a_changed_search_record_is_refused(searched, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(searched, copy)
    marker = copy / "cells" / f"{SETTING}_s1" / "search.json"
    body = json.loads(marker.read_text())
    body["history"][0]["score"] = 1.0
    marker.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="search.json.*checksum"):
        pooled.read_run(copy, None)
