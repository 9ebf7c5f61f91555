"""Merging several results directories in analysis/ (``python -m analysis DIR DIR ...``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from brainsleep.analysis.report import write_report
from brainsleep.analysis.results import ResultsError, load_results, load_results_many

from .test_analysis import make_results_dir, run_cli


def two_dirs(tmp_path: Path, second=("3:0.1",)) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    make_results_dir(a, spikes=False, confusion=False)
    make_results_dir(b, spikes=False, confusion=False, imbalances=second)
    return a, b


def test_merge_gives_union_of_cells(tmp_path):
    a, b = two_dirs(tmp_path)
    ra, rb = load_results(a), load_results(b)
    merged = load_results_many([a, b])
    assert merged.merged and merged.sources == [a, b]
    ids = {c.cell_id for c in merged.cells}
    assert ids == {c.cell_id for c in ra.cells} | {c.cell_id for c in rb.cells}
    assert len(ids) == 8 and len(merged.cells) == 8
    assert len(merged.metrics) == len(ra.metrics) + len(rb.metrics)
    assert set(merged.metrics["imbalance"]) == {"none", "3:0.1"}
    # each cell's files stay in the directory it came from
    for c in merged.cells:
        src = a if c.imbalance == "none" else b
        assert c.path == src / "cells" / c.cell_id
        assert c.weights["baseline"].is_file() and c.weights["baseline"].is_relative_to(src)
    assert merged.config == {"fingerprint": "abc123"}  # same config in both


def test_single_directory_is_load_results(tmp_path):
    a = tmp_path / "a"
    make_results_dir(a, spikes=False, confusion=False)
    r = load_results_many([a, a])  # the same directory twice is read once
    assert not r.merged and r.sources == [a] and len(r.cells) == 4


def test_identical_duplicate_cells_kept_once(tmp_path):
    a, b = two_dirs(tmp_path, second=("none",))
    merged = load_results_many([a, b])
    assert len(merged.cells) == 4 and len(merged.metrics) == len(load_results(a).metrics)
    assert all(c.path.is_relative_to(a) for c in merged.cells)


def test_duplicate_prefers_finished_copy(tmp_path):
    a, b = two_dirs(tmp_path, second=("none",))
    (a / "cells" / "mnist_f0.1_none_s1" / "done.json").unlink()
    merged = load_results_many([a, b])
    c = {c.cell_id: c for c in merged.cells}["mnist_f0.1_none_s1"]
    assert c.done and c.path == b / "cells" / "mnist_f0.1_none_s1"


def test_conflicting_duplicate_cell_raises_naming_it(tmp_path):
    a, b = two_dirs(tmp_path, second=("none",))
    m = pd.read_csv(b / "metrics.csv")
    row = (m["cell"] == "mnist_f0.1_none_s1") & (m["stage"] == "sleep")
    m.loc[row, "accuracy"] += 0.05
    m.to_csv(b / "metrics.csv", index=False)
    with pytest.raises(ResultsError) as info:
        load_results_many([a, b])
    msg = str(info.value)
    assert "mnist_f0.1_none_s1" in msg and str(a) in msg and str(b) in msg
    assert "\n" not in msg
    assert "mnist_f0.01" not in msg  # the identical cells are not blamed

    proc = run_cli(str(a), str(b), "--out", str(tmp_path / "fig"))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "mnist_f0.1_none_s1" in lines[0], proc.stderr
    assert not (tmp_path / "fig").exists()


def test_merged_report_needs_out(tmp_path):
    a, b = two_dirs(tmp_path)
    with pytest.raises(ValueError, match="out_dir"):
        write_report(load_results_many([a, b]), log=lambda _: None)
    proc = run_cli(str(a), str(b))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--out" in lines[0], proc.stderr
    assert not (a / "figures").exists() and not (b / "figures").exists()


@pytest.mark.slow
def test_cli_merges_directories(tmp_path):
    a, b = two_dirs(tmp_path)
    for f in [*a.glob("cells/*/weights_*.npz"), *b.glob("cells/*/weights_*.npz")]:
        f.unlink()  # fewer figures to draw: the test is about the merge
    out = tmp_path / "merged"
    proc = run_cli(str(a), str(b), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "accuracy_vs_fraction.png").is_file()
    assert (out / "per_class_accuracy_mnist_3-0.1.png").is_file()
    assert (out / "per_class_accuracy_mnist_none.png").is_file()
    summary = (out / "summary.md").read_text()
    assert "2 directories merged" in summary
    assert f"- `{a}`" in summary and f"- `{b}`" in summary
    assert "| mnist | none | 0.01 | 2 |" in summary and "| mnist | 3:0.1 | 0.01 | 2 |" in summary
    assert "40 metrics rows, 8 cells" in summary


def _set_config(root: Path, fingerprint: str, **config) -> None:
    import json

    (root / "config.json").write_text(json.dumps({"fingerprint": fingerprint, "config": config}))


def test_directories_of_different_configurations_are_not_merged(tmp_path):
    """They were merged into one "mean +- sd over 4 seeds" table without a word (issue
    32): another recipe is not more seeds."""
    a, b = two_dirs(tmp_path)
    _set_config(a, "f1", recipe="reference", seeds=[0, 1], sleep_steps=20000)
    _set_config(b, "f2", recipe="strong", seeds=[2, 3], sleep_steps=20000)
    with pytest.raises(ResultsError) as info:
        load_results_many([a, b])
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg and "\n" not in msg
    assert "recipe: 'reference' -> 'strong'" in msg and "seeds:" not in msg
    proc = run_cli(str(a), str(b), "--out", str(tmp_path / "fig"))
    assert proc.returncode == 2 and "different configurations" in proc.stderr
    assert not (tmp_path / "fig").exists()
    # the same configuration grown by other seeds merges
    _set_config(b, "f1", recipe="reference", seeds=[2, 3], sleep_steps=20000)
    assert load_results_many([a, b]).merged
    # a directory without a fingerprint cannot be vouched for
    (b / "config.json").unlink()
    with pytest.raises(ResultsError, match="no configuration fingerprint"):
        load_results_many([a, b])


def test_class_incremental_directories_of_different_configurations_are_not_merged(tmp_path):
    from brainsleep.analysis.incremental import read_incremental

    a, b = tmp_path / "a", tmp_path / "b"
    for root, fp in ((a, "f1"), (b, "f2")):
        root.mkdir()
        _set_config(root, fp, protocol="class-incremental", sleep_steps=100 if fp == "f1" else 50)
    with pytest.raises(ResultsError, match="sleep_steps: 100 -> 50"):
        read_incremental([a, b])
