"""The compact copy (``python -m analysis export``): small, and the reports read from it are
the reports of the full directory; the pipeline's recorded weight sparseness is the one the
analysis computes from the weights."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main as analysis_main
from analysis.claims import weight_sparseness
from analysis.export import compact_metrics
from analysis.timing import run_timing
from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.experiment.__main__ import main as experiment_main
from brainsleep.formats import COMPACT_CELL_FILES, METRICS_CSV, weights_file


@pytest.fixture(scope="module")
def run_dir(data_dir, build_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny_run"
    argv = [
        "--data-dir", str(data_dir), "--fractions", "0.5", "--hidden", "24", "16",
        "--epochs", "3", "--finetune-epochs", "1", "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental", "--record-spikes", "all",
        "--device", "reference", "--seeds", "0", "1", "2", "--build-root", str(build_root),
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert experiment_main(argv) == 0
    return out


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_the_pipeline_records_the_weight_sparseness_the_analysis_computes(run_dir):
    df = pd.read_csv(run_dir / METRICS_CSV)
    assert df["weight_hoyer"].notna().all()
    for row in df.itertuples():
        path = run_dir / "cells" / row.cell / weights_file(row.stage)
        assert row.weight_hoyer == weight_sparseness(path)  # the same function, bit for bit


def test_the_copy_keeps_what_reports_read_and_no_weights_or_spikes(run_dir, tmp_path, capsys):
    assert analysis_main(["export", str(run_dir), "--out", str(tmp_path / "runs")]) == 0
    copy = tmp_path / "runs" / run_dir.name
    kept = files_under(copy)
    assert not [f for f in kept if f.endswith((".npz", "spikes.nc"))]
    assert {"config.json", "metrics.csv"} <= kept
    cell = "cells/mnist_f0.5_none_s0"
    assert {f"{cell}/{name}" for name in ("done.json", "confusion.nc", "sleep_params.json")} <= kept
    assert all(Path(f).name in COMPACT_CELL_FILES for f in kept if f.startswith("cells/"))
    # every kept file is a byte copy (metrics.csv already has weight_hoyer here), but for
    # timing.json: the wall time of the run, from the log that stays behind
    for f in kept - {"timing.json"}:
        assert (copy / f).read_bytes() == (run_dir / f).read_bytes(), f
    assert "log.txt" not in kept
    timing = json.loads((copy / "timing.json").read_text())
    assert timing == run_timing(run_dir) and len(timing["invocations"]) == 1
    assert 0 < timing["wall_s"] < 3600
    assert run_timing(copy) == timing  # a report reads the same from the copy
    assert "3 cells" in capsys.readouterr().out
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def test_a_report_from_the_copy_is_the_report_of_the_full_directory(run_dir, tmp_path):
    assert analysis_main(["export", str(run_dir), "--out", str(tmp_path / "runs"), "-q"]) == 0
    full, compact = tmp_path / "full", tmp_path / "compact"
    assert analysis_main(["report", str(run_dir), "--out", str(full), "-q"]) == 0
    copy = tmp_path / "runs" / run_dir.name
    assert analysis_main(["report", str(copy), "--out", str(compact), "-q"]) == 0
    for name in ("claims.csv", "metrics_summary.csv"):
        a, b = pd.read_csv(full / name), pd.read_csv(compact / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    summary = pd.read_csv(compact / "metrics_summary.csv")
    assert summary.query("metric == 'weight_hoyer'")["mean"].notna().all()

    def body(path: Path) -> list[str]:  # the report without its command and date lines
        return [x for x in path.read_text().splitlines()[4:] if ANALYSIS_COMMAND not in x]

    assert body(full / "REPORT.md") == body(compact / "REPORT.md")


def test_rows_from_before_weight_hoyer_are_filled_in_from_the_weights(run_dir, tmp_path):
    old = tmp_path / "old_run"
    old.mkdir()
    for f in files_under(run_dir):
        (old / f).parent.mkdir(parents=True, exist_ok=True)
        (old / f).write_bytes((run_dir / f).read_bytes())
    df = pd.read_csv(run_dir / METRICS_CSV)
    df.drop(columns="weight_hoyer").to_csv(old / METRICS_CSV, index=False)
    filled = pd.read_csv(io.BytesIO(compact_metrics(old)))
    pd.testing.assert_frame_equal(filled, df, check_exact=True)
    assert compact_metrics(old) == (run_dir / METRICS_CSV).read_bytes()  # the same text
    # a stage whose weights are gone stays empty rather than being guessed
    (old / "cells" / df.cell[0] / weights_file(df.stage[0])).unlink()
    filled = pd.read_csv(io.BytesIO(compact_metrics(old)))
    assert np.isnan(filled.weight_hoyer[0]) and filled.weight_hoyer[1:].notna().all()


def test_exporting_again_replaces_the_copy(run_dir, tmp_path):
    out = tmp_path / "runs"
    assert analysis_main(["export", str(run_dir), "--out", str(out), "-q"]) == 0
    stale = out / run_dir.name / "cells" / "mnist_f0.5_none_s9" / "done.json"
    stale.parent.mkdir()
    stale.write_text("{}")  # a cell of an earlier copy that the source no longer has
    assert analysis_main(["export", str(run_dir), "--out", str(out), "-q"]) == 0
    assert not stale.parent.exists()
    assert sorted(p.name for p in out.iterdir()) == [run_dir.name]


@pytest.mark.parametrize("problem", ["missing", "same name", "out inside"])
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(
    problem, run_dir, tmp_path, capsys
):
    out = tmp_path / "runs"
    if problem == "missing":
        argv = [str(run_dir), str(tmp_path / "nowhere"), "--out", str(out)]
    elif problem == "same name":
        twin = tmp_path / "elsewhere" / run_dir.name
        twin.mkdir(parents=True)
        (twin / METRICS_CSV).write_bytes((run_dir / METRICS_CSV).read_bytes())
        argv = [str(run_dir), str(twin), "--out", str(out)]
    else:
        out = run_dir / "compact"
        argv = [str(run_dir), "--out", str(out)]
    assert analysis_main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("analysis export: error:") and "\n" not in err
    assert not out.exists()


def test_a_full_directory_is_never_replaced_by_a_copy(run_dir, tmp_path, capsys):
    """--out the source's parent would put the copy in the source's place; a full run
    already at the destination is not a copy to replace. Both are refused, untouched."""
    before = files_under(run_dir)
    assert analysis_main(["export", str(run_dir), "--out", str(run_dir.parent)]) == 2
    assert "in its place" in capsys.readouterr().err
    assert files_under(run_dir) == before
    out = tmp_path / "runs"
    (out / run_dir.name / "cells" / "c").mkdir(parents=True)
    (out / run_dir.name / "cells" / "c" / "weights_baseline.npz").write_bytes(b"full")
    assert analysis_main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "holds more than a compact copy" in capsys.readouterr().err
    assert (out / run_dir.name / "cells" / "c" / "weights_baseline.npz").read_bytes() == b"full"


def test_a_source_given_as_dot_is_named_after_its_folder(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(run_dir)
    assert analysis_main(["export", ".", "--out", str(tmp_path / "runs"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run_dir.name]


def test_a_failed_swap_puts_the_earlier_copy_back(run_dir, tmp_path, monkeypatch):
    import analysis.export as export_module

    out = tmp_path / "runs"
    assert analysis_main(["export", str(run_dir), "--out", str(out), "-q"]) == 0
    earlier = files_under(out / run_dir.name)
    real_replace = os.replace

    def failing(a, b):  # the move aside works, the new copy's rename fails
        if str(a).endswith(".export"):
            raise OSError("disk full")
        real_replace(a, b)

    monkeypatch.setattr(export_module.os, "replace", failing)
    assert analysis_main(["export", str(run_dir), "--out", str(out)]) == 2
    assert files_under(out / run_dir.name) == earlier
    assert sorted(p.name for p in out.iterdir()) == [run_dir.name]  # no leftovers


def test_out_that_is_a_file_is_refused(run_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    out.write_text("x")
    assert analysis_main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_directory_a_run_still_holds_is_not_exported(run_dir, tmp_path, capsys):
    """Its partial copy read as a finished run (issue 32): refused while the run's lock
    is held, exported once it is released."""
    from brainsleep.experiment.results import lock_directory

    out = tmp_path / "runs"
    lock = lock_directory(run_dir)  # what a running experiment holds
    try:
        assert analysis_main(["export", str(run_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "in use by a running experiment" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
    finally:
        lock.release()
    assert analysis_main(["export", str(run_dir), "--out", str(out), "-q"]) == 0
