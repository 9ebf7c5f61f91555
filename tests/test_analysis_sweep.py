"""The input / sleep-parameter sweep report on tiny results directories with known gains."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.__main__ import main as analysis_main
from analysis.claims import load_settings, mean_ci
from analysis.sweep import (
    identify_design,
    noise_comparison,
    sensitivity,
    stage_metrics,
    sweep_table,
)
from analysis.sweep_report import noise_answer, sensitivity_answer, where_answer
from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.formats import CELLS_DIR, CONFIG_FILE, METRICS_CSV, format_cell_id
from tests.tiny_data import finish_cells

SEEDS = (0, 1, 2)
#: Per-seed baselines and gains of sleep at 1 % and 10 % of MNIST in the base run.
BASELINE = {0.01: (0.30, 0.32, 0.31), 0.1: (0.80, 0.81, 0.79)}
GAIN = {0.01: (0.20, 0.23, 0.19), 0.1: (0.05, 0.04, 0.06)}
PRESET_MAX_RATE = 42.162268  # reduced_mnist_10ep, the default preset


def write_run(root, name, config, rows, validation=True):
    """A results directory: ``rows`` = [(dataset, fraction, imbalance, stage, accuracies
    one per seed, balanced accuracies one per seed or None for the same[, validation
    scores one per seed])]; ``config`` = config.json's ``config`` (missing fields: the
    experiment's defaults). The validation columns repeat the test ones unless a row
    gives its own; ``validation=False`` leaves them out (runs from before they were
    recorded)."""
    d = root / name
    (d / CELLS_DIR).mkdir(parents=True)
    recs = []
    for i, seed in enumerate(SEEDS):
        for ds, frac, imb, stage, acc, bal, *val in rows:
            rec = {
                "cell": format_cell_id(ds, frac, imb, seed),
                "dataset": ds,
                "fraction": frac,
                "imbalance": imb,
                "seed": seed,
                "stage": stage,
                "accuracy": acc[i],
                "balanced_accuracy": (bal or acc)[i],
            }
            if validation:
                rec["val_accuracy"] = (val[0] if val else acc)[i]
                rec["val_balanced_accuracy"] = (val[0] if val else (bal or acc))[i]
            recs.append(rec)
    pd.DataFrame(recs).to_csv(d / METRICS_CSV, index=False)
    finish_cells(d, [r["cell"] for r in recs])
    cfg = {
        "argv": ["--out", str(d)],
        "config": {"out": str(d), "record_spikes": "none", **config},
        "versions": {"brainsleep": "0.1.0"},
    }
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    return d


def sweep_run(root, name, config, shift=0.0, shift_10=None):
    """A sweep run on MNIST 1 % and 10 % whose gain is the base's plus ``shift``
    (``shift_10`` at 10 %, default ``shift``)."""
    rows = []
    for frac in (0.01, 0.1):
        s = shift if shift_10 is None or frac == 0.01 else shift_10
        base = BASELINE[frac]
        slept = tuple(b + g + s for b, g in zip(base, GAIN[frac], strict=True))
        rows += [("mnist", frac, "none", "baseline", base, None)]
        rows += [("mnist", frac, "none", "sleep", slept, None)]
    return write_run(root, name, config, rows)


@pytest.fixture
def sweep_dirs(tmp_path):
    """Only max_rate changes the gain (-10 at 10, +10 at 80 points, at both fractions)."""
    return [
        sweep_run(tmp_path, "kind_masked-mean", {}),
        sweep_run(tmp_path, "kind_mean", {"sleep_input": "mean"}),
        sweep_run(tmp_path, "kind_noise", {"sleep_input": "noise"}),
        sweep_run(tmp_path, "steps_5000", {"sleep_steps": 5000}),
        sweep_run(tmp_path, "steps_40000", {"sleep_steps": 40000}),
        sweep_run(tmp_path, "patch_5", {"sleep_input_options": {"patch": 5}}),
        sweep_run(tmp_path, "max_rate_10", {"sleep_params": {"max_rate": 10}}, shift=-0.10),
        sweep_run(tmp_path, "max_rate_80", {"sleep_params": {"max_rate": 80}}, shift=0.10),
        sweep_run(
            tmp_path,
            "map_rate80_steps40000",
            {"sleep_params": {"max_rate": 80}, "sleep_steps": 40000},
            shift=0.15,
        ),
    ]


def test_design_finds_base_factors_and_map(sweep_dirs):
    design = identify_design(load_settings(sweep_dirs))
    assert design.factors == ["sleep_input", "sleep_steps", "patch", "max_rate"]
    assert design.base == {
        "sleep_input": "masked-mean",
        "sleep_steps": 20000,
        "patch": 11,  # masked-mean's default option
        "max_rate": PRESET_MAX_RATE,  # the preset's, resolved
    }
    roles = {r.setting.name: (r.role, r.varied) for r in design.runs}
    assert roles["kind_masked-mean"] == ("base", {})
    # mean takes no patch: not a second difference
    assert roles["kind_mean"] == ("factor", {"sleep_input": "mean"})
    assert roles["patch_5"] == ("factor", {"patch": 5})
    assert roles["max_rate_10"] == ("factor", {"max_rate": 10})
    assert roles["map_rate80_steps40000"] == ("map", {"sleep_steps": 40000, "max_rate": 80})
    assert design.maps == [("max_rate", "sleep_steps")]


def test_gains_match_hand_computation(sweep_dirs):
    settings = load_settings(sweep_dirs)
    table = sweep_table(identify_design(settings), stage_metrics(settings))
    row = table.query("factor == 'max_rate' and value == 10 and fraction == 0.01")
    assert len(row) == 1
    gains = np.array(GAIN[0.01]) - 0.10
    lo, hi = stats.t.interval(0.95, 2, loc=gains.mean(), scale=stats.sem(gains))
    assert row["gain_mean"].item() == pytest.approx(gains.mean())
    assert (row["ci_low"].item(), row["ci_high"].item()) == pytest.approx((lo, hi))
    assert row["n_seeds"].item() == 3 and row["setting"].item() == "max_rate_10"
    # the base is a point of every factor's curve
    base = table.query("factor == 'max_rate' and is_base and fraction == 0.1")
    assert base["value"].item() == PRESET_MAX_RATE
    assert base["gain_mean"].item() == pytest.approx(np.mean(GAIN[0.1]))
    # the map: base, the one-factor runs of both factors, and the run varying both
    grid = table[table["kind"] == "map"]
    assert set(grid["factor"]) == {"max_rate x sleep_steps"}
    assert len(grid.query("fraction == 0.01")) == 1 + 2 + 2 + 1
    corner = grid.query("fraction == 0.01 and setting == 'map_rate80_steps40000'")
    assert corner["value"].item() == (80, 40000)
    assert corner["gain_mean"].item() == pytest.approx(np.mean(GAIN[0.01]) + 0.15)


def test_answers_name_max_rate_and_noise_cannot_be_told_apart(sweep_dirs):
    settings = load_settings(sweep_dirs)
    design = identify_design(settings)
    metrics = stage_metrics(settings)
    sens = sensitivity(sweep_table(design, metrics))
    assert sens["factor"].iloc[0] == "max_rate"
    assert sens["range"].iloc[0] == pytest.approx(0.20)  # -10 .. +10 points
    assert sens.set_index("factor").loc["sleep_input", "range"] == pytest.approx(0, abs=1e-12)
    assert sensitivity_answer(sens).startswith("The gain is most sensitive to max_rate:")
    comp = noise_comparison(design, metrics)
    assert len(comp) == 2
    assert noise_answer(comp).startswith("Noise (no data) cannot be told apart from masked-mean")


def test_where_sleep_helps_counts_settings_and_names_the_best(sweep_dirs):
    settings = load_settings(sweep_dirs)
    table = sweep_table(identify_design(settings), stage_metrics(settings))
    best = [
        mean_ci(np.array(GAIN[f]) + 0.15).text() + " points" for f in (0.01, 0.1)
    ]  # the map corner: the base's gain + 15 points
    # at 10 %, max_rate 10 takes 10 points off a 4-6 point gain: its CI is below 0
    assert where_answer(table) == (
        "mnist at 1 %: 9 of 9 settings (with 2 or more seeds) gain with the 95 % CI above 0; "
        f"the best on validation, max_rate = 80, sleep_steps = 40000, gains {best[0]} on "
        "test; mnist at 10 %: 8 of 9 settings (with 2 or more seeds) gain with the 95 % CI "
        "above 0; the best on validation, max_rate = 80, sleep_steps = 40000, gains "
        f"{best[1]} on test."
    )
    assert where_answer(table.iloc[0:0]).startswith("Not measured")


def test_the_best_setting_is_chosen_on_validation_or_not_named(sweep_dirs):
    settings = load_settings(sweep_dirs)
    table = sweep_table(identify_design(settings), stage_metrics(settings))
    # validation prefers the base where test prefers the map corner: the base is named
    table["val_gain_mean"] = np.where(table["is_base"], 1.0, 0.0)
    assert "the best on validation, the base, gains" in where_answer(table)
    # no validation recorded: no best is named (it would be chosen on the test set)
    table["val_gain_mean"] = np.nan
    answer = where_answer(table)
    assert "the best" not in answer and "no best is named" in answer


def test_noise_worse_and_absent(tmp_path):
    dirs = [
        sweep_run(tmp_path, "base", {}),
        sweep_run(tmp_path, "noise", {"sleep_input": "noise"}, shift=-0.12),
    ]
    settings = load_settings(dirs)
    design = identify_design(settings)
    comp = noise_comparison(design, stage_metrics(settings))
    iv = comp.loc[("mnist", "none", 0.01), "effect"]
    assert iv.mean == pytest.approx(-0.12)
    assert noise_answer(comp).startswith("Noise (no data) does worse than masked-mean")
    only_base = identify_design(load_settings(dirs[:1]))
    assert "not measured" in noise_answer(noise_comparison(only_base, pd.DataFrame()))
    assert "not measured" in sensitivity_answer(sensitivity(sweep_table(only_base, pd.DataFrame())))


def test_noisy_gain_difference_ci_decides(tmp_path):
    """A noise gain that differs by seed-to-seed scatter only overlaps 0: as well."""
    dirs = [
        sweep_run(tmp_path, "base", {}),
        sweep_run(tmp_path, "noise", {"sleep_input": "noise"}),
    ]
    m = stage_metrics(load_settings(dirs))
    wobble = np.tile([0.01, -0.02, 0.012], 2)
    sel = (m["setting"] == "noise") & (m["stage"] == "sleep")
    m.loc[sel, "accuracy"] += wobble
    comp = noise_comparison(identify_design(load_settings(dirs)), m)
    iv = comp.loc[("mnist", "none", 0.01), "effect"]
    ref = mean_ci([0.01, -0.02, 0.012])
    assert (iv.mean, iv.lo, iv.hi) == pytest.approx((ref.mean, ref.lo, ref.hi))
    assert "cannot be told apart" in noise_answer(comp)


def test_cli_writes_report_csv_and_figures(sweep_dirs, tmp_path):
    out = tmp_path / "sweep"
    assert analysis_main(["sweep", *map(str, sweep_dirs), "--out", str(out), "-q"]) == 0
    for name in (
        "sweep_sleep_input.png",
        "sweep_sleep_steps.png",
        "sweep_patch.png",
        "sweep_max_rate.png",
        "sweep_map_max_rate_x_sleep_steps.png",
    ):
        assert (out / name).stat().st_size > 1000, name
    csv = pd.read_csv(out / "sweep.csv")
    head = "factor value dataset fraction n_seeds gain_mean ci_low ci_high"
    assert list(csv.columns[:8]) == head.split()
    row = csv.query("factor == 'max_rate' and value == '80' and fraction == 0.1")
    assert row["gain_mean"].item() == pytest.approx(np.mean(GAIN[0.1]) + 0.10, abs=1e-6)
    text = (out / "SWEEP.md").read_text()
    assert "The gain is most sensitive to max_rate" in text
    assert "Noise (no data) cannot be told apart from masked-mean" in text
    assert "## decay" in text and "Not measured: no directory varies it alone." in text
    assert "![sweep_max_rate.png](sweep_max_rate.png)" in text
    assert f"{ANALYSIS_COMMAND} sweep" in text


def test_cli_refuses_a_missing_directory(sweep_dirs, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = analysis_main(
        ["sweep", str(sweep_dirs[0]), str(tmp_path / "missing"), "--out", str(out)]
    )
    assert code == 2 and "missing" in capsys.readouterr().err
    assert not out.exists()


def test_cli_quotes_its_answers_in_the_readme(sweep_dirs, tmp_path):
    from analysis.readme_block import markers, read_block

    begin, end = markers("input-sweep", "sweep")
    readme = tmp_path / "README.md"
    readme.write_text(f"# r\n{begin}\nstale 12.3\n{end}\nafter\n")
    out = tmp_path / "docs"
    args = [*map(str, sweep_dirs), "--out", str(out), "--readme", str(readme), "-q"]
    assert analysis_main(["sweep", *args]) == 0
    block = read_block(readme.read_text(), "input-sweep", "sweep")
    answers = (out / "SWEEP.md").read_text().split("## Answers")[1].split("## ")[0].strip()
    assert block.endswith(answers) and "stale 12.3" not in block
    assert block.startswith("Quoted from [docs/SWEEP.md](docs/SWEEP.md)")
    assert readme.read_text().endswith(f"{end}\nafter\n")
