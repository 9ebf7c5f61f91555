"""The sleep-parameter search history in analysis/ (``cells/<cell>/search.csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainsleep.analysis.report import SEARCH_FIGURES, write_report
from brainsleep.analysis.results import load_results
from brainsleep.analysis.search import (
    parameter_columns,
    parameter_correlations,
    plot_parameter_correlations,
    plot_search_history,
    read_search,
    search_table,
)
from brainsleep.formats import SEARCH_CSV

from .test_analysis import assert_real_png, make_results_dir


def fake_search(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Trials whose score is a monotone function of max_rate; inc is noise, dec fixed.

    Every 7th trial failed (no score).
    """
    rng = np.random.default_rng(seed)
    max_rate = np.exp(rng.uniform(np.log(10), np.log(500), n))
    score = 0.5 + 0.05 * np.log(max_rate)
    state = np.where(np.arange(n) % 7 == 6, "FAIL", "COMPLETE")
    return pd.DataFrame(
        {
            "trial": np.arange(n),
            "study_trial": np.arange(n) + 100,
            "state": state,
            "score": np.where(state == "COMPLETE", score, np.nan),
            "score_name": "val_accuracy",
            "max_rate": max_rate,
            "inc": np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), n)),
            "dec": np.full(n, 1e-4),
            "v_thresh_1": rng.uniform(1, 50, n),
            "spikes_layer0": rng.integers(0, 10_000, n),
            "spikes_layer1": rng.integers(0, 10_000, n),
            "seconds": rng.uniform(1, 3, n),
        }
    )


def results_with_search(root: Path) -> Path:
    make_results_dir(root, spikes=False, confusion=False)
    for k, d in enumerate(sorted((root / "cells").iterdir())):
        fake_search(seed=k).to_csv(d / SEARCH_CSV, index=False)
        for f in d.glob("weights_*.npz"):  # fewer figures to draw
            f.unlink()
    return root


def test_read_search_and_parameter_columns(tmp_path):
    path = tmp_path / SEARCH_CSV
    fake_search(n=14).to_csv(path, index=False)
    t = read_search(path)
    assert len(t) == 14 and t["score"].isna().sum() == 2
    assert parameter_columns(t) == ["max_rate", "inc", "dec", "v_thresh_1"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_search(tmp_path / "bad.csv")


def test_rank_correlation_of_determining_and_random_parameter():
    rows = []
    for seed in range(2):  # two seeds of one (dataset, imbalance, fraction): pooled
        t = fake_search(n=120, seed=seed)
        t.insert(0, "cell", f"mnist_f0.1_none_s{seed}")
        t.insert(1, "dataset", "mnist")
        t.insert(2, "imbalance", "none")
        t.insert(3, "fraction", 0.1)
        t.insert(4, "seed", seed)
        rows.append(t)
    corr = parameter_correlations(pd.concat(rows, ignore_index=True))
    by = corr.set_index("parameter")
    assert len(corr) == 4  # one group x four parameters
    n_complete = 2 * sum(1 for i in range(120) if i % 7 != 6)
    assert (corr["n"] == n_complete).all()
    assert by.at["max_rate", "abs_rho"] == pytest.approx(1.0, abs=1e-9)
    assert by.at["max_rate", "rho"] > 0
    assert by.at["inc", "abs_rho"] < 0.2
    assert by.at["v_thresh_1", "abs_rho"] < 0.2
    assert np.isnan(by.at["dec", "rho"])  # a fixed parameter has no correlation
    plot_parameter_correlations(corr).clf()


def test_search_figures_written_with_search(tmp_path):
    d = results_with_search(tmp_path / "r")
    res = load_results(d)
    assert all(c.search is not None for c in res.cells)
    table = search_table(res)
    assert len(table) == 4 * 40 and set(table["fraction"]) == {0.01, 0.1}
    lines: list[str] = []
    report = write_report(res, tmp_path / "fig", log=lines.append)
    assert not report.failed, report.failed
    for name in SEARCH_FIGURES:
        assert_real_png(tmp_path / "fig" / name)
        assert tmp_path / "fig" / name in report.written
    summary = (tmp_path / "fig" / "summary.md").read_text()
    assert "rank correlation with the validation score" in summary
    assert "| dataset | imbalance | fraction | trials | max_rate | inc | dec | v_thresh_1 |" in (
        summary
    )
    # per fraction 2 seeds x 35 COMPLETE trials; max_rate determines the score
    assert "| mnist | none | 0.01 | 70 | +1.00 |" in summary
    assert "| mnist | none | 0.1 | 70 | +1.00 |" in summary


def test_search_figures_absent_without_search(tmp_path):
    d = tmp_path / "r"
    make_results_dir(d, spikes=False, confusion=False)
    for cell in (d / "cells").iterdir():  # fewer figures: only what the test looks at
        for f in cell.glob("weights_*.npz"):
            f.unlink()
    report = write_report(load_results(d), log=lambda _: None)
    assert not report.failed
    for name in SEARCH_FIGURES:
        assert not (d / "figures" / name).exists()
        assert name not in [n for n, _ in report.skipped]
    summary = (d / "figures" / "summary.md").read_text()
    assert "search" not in summary.lower()


def test_search_history_handles_cell_without_complete_trial(tmp_path):
    t = fake_search(n=5)
    t["state"] = "RUNNING"
    t["score"] = np.nan
    t.insert(0, "cell", "mnist_f0.1_none_s0")
    t.insert(1, "dataset", "mnist")
    t.insert(2, "imbalance", "none")
    t.insert(3, "fraction", 0.1)
    t.insert(4, "seed", 0)
    fig = plot_search_history(t)
    assert fig.axes[0].get_title() == "mnist, balanced, fraction 0.1"
    corr = parameter_correlations(t)
    assert corr["rho"].isna().all() and (corr["n"] == 0).all()
