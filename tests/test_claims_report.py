"""The claims report on tiny results directories with known metrics and known verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.__main__ import main as analysis_main
from analysis.claims import (
    evaluate_claims,
    load_settings,
    long_metrics,
    mean_ci,
    weight_sparseness,
)
from analysis.claims_report import README_BEGIN, README_END
from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.formats import (
    CELLS_DIR,
    CONFIG_FILE,
    METRICS_CSV,
    format_cell_id,
    save_weights,
    weights_file,
)
from brainsleep.sparseness import small_weight_fraction
from tests.tiny_data import finish_cells

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
# A per-seed wobble, so intervals have a width (and differ between stages).
WOBBLE = (-0.01, 0.0, 0.012)


def write_dir(root, name, recipe, rows, weights=None):
    """A results directory with ``rows`` = [(dataset, fraction, imbalance, stage, acc,
    bal, active_frac)] per seed (the seed's wobble added), and optional weights
    ``{stage: [matrices]}`` saved for every cell."""
    d = root / name
    (d / CELLS_DIR).mkdir(parents=True)
    recs = []
    for seed, wob in zip(SEEDS, WOBBLE, strict=True):
        for ds, frac, imb, stage, acc, bal, act in rows:
            cell = format_cell_id(ds, frac, imb, seed)
            rec = {
                "cell": cell,
                "dataset": ds,
                "fraction": frac,
                "imbalance": imb,
                "seed": seed,
                "stage": stage,
                "accuracy": acc + wob,
                "balanced_accuracy": bal + wob,
                "active_frac_h1": act + wob / 2,
                "active_frac_h2": act - wob / 2,
                # fewer active units: a sparser population code (claim 4's measure)
                "pop_sparseness_h1": 1 - act,
                "pop_sparseness_h2": 1 - act,
                "weight_small_frac": (
                    small_weight_fraction(weights[stage]) if weights and stage in weights else 0.05
                ),
            }
            for c in range(10):  # minority classes 5-9 take the balanced-accuracy shift
                rec[f"acc_class_{c}"] = (bal + wob) if c >= 5 else acc + wob
            recs.append(rec)
            if weights:
                cdir = d / CELLS_DIR / cell
                cdir.mkdir(exist_ok=True)
                if stage in weights:
                    save_weights(cdir / weights_file(stage), weights[stage])
    pd.DataFrame(recs).to_csv(d / METRICS_CSV, index=False)
    finish_cells(d, [r["cell"] for r in recs])
    cfg = {
        "argv": ["brainsleep/experiment/__main__.py", "--recipe", recipe, "--out", str(d)],
        "config": {"recipe": recipe, "search": 20, "finetune_epochs": 1, "subset": "stratified"},
        "device": "cpp_standalone",
        "versions": {"brainsleep": "0.1.0", "brian2": "2.8.0"},
    }
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    return d


@pytest.fixture
def dirs(tmp_path):
    rng = np.random.default_rng(0)
    dense = [rng.normal(size=(6, 8)), rng.normal(size=(4, 6))]
    sparse = [w * (rng.random(w.shape) < 0.3) for w in dense]  # 70 % of weights zeroed
    ref = write_dir(
        tmp_path,
        "reference",
        "reference",
        [
            # limited: +30 points
            ("mnist", 0.01, "none", "baseline", 0.30, 0.30, 0.6),
            ("mnist", 0.01, "none", "sleep", 0.60, 0.60, 0.3),
            ("mnist", 0.05, "none", "baseline", 0.40, 0.40, 0.6),
            ("mnist", 0.05, "none", "sleep", 0.65, 0.65, 0.3),
            # above 10 %: -3 points, then fine-tune matches the control
            ("mnist", 0.5, "none", "baseline", 0.90, 0.90, 0.6),
            ("mnist", 0.5, "none", "sleep", 0.87, 0.87, 0.3),
            ("mnist", 0.5, "none", "sleep_finetune", 0.91, 0.91, 0.5),
            ("mnist", 0.5, "none", "finetune_only", 0.91, 0.91, 0.6),
            # imbalance: balanced accuracy +10
            ("mnist", 0.1, "5-9x0.1", "baseline", 0.70, 0.60, 0.6),
            ("mnist", 0.1, "5-9x0.1", "sleep", 0.72, 0.70, 0.3),
        ],
        weights={"baseline": dense, "sleep": sparse},
    )
    strong = write_dir(
        tmp_path,
        "strong",
        "strong",
        [  # sleep does nothing to a well-trained network
            ("mnist", 0.01, "none", "baseline", 0.85, 0.85, 0.4),
            ("mnist", 0.01, "none", "sleep", 0.85, 0.85, 0.4),
        ],
    )
    return ref, strong


def by_key(claims):
    return {c.key: c for c in claims}


def test_known_inputs_give_known_verdicts(dirs):
    claims = by_key(evaluate_claims(long_metrics(load_settings(dirs))))
    # 1: the reference setting gains 30 and 25 points, the strong one nothing
    lim = claims["limited"]
    assert lim.verdict == "only when reference on mnist at 1 %, 5 %"
    assert list(lim.table["outcome"]) == ["as claimed", "as claimed", "no effect"]
    assert list(lim.table["seeds"]) == [3, 3, 3]
    assert lim.why.startswith("Of 3 cases tested: 2 as claimed, 1 no effect.")
    # 2: -3 points after sleep, fine-tune equal to its control
    assert claims["recovery"].verdict == "supported"
    assert list(claims["recovery"].table["fraction"]) == ["50 %"]
    # 3: balanced accuracy +10 on the imbalanced subset
    assert claims["balance"].verdict == "supported"
    # minority classes 5-9 carry the balanced-accuracy shift: +10 points
    assert claims["balance"].table["sleep - baseline (minority)"].iloc[0].startswith("+10.0")
    # 4: sparser activity everywhere in reference; weights only recorded there
    sp = claims["sparsity"]
    assert set(sp.table.loc[sp.table["setting"] == "reference", "outcome"]) == {"as claimed"}
    assert set(sp.table.loc[sp.table["setting"] == "strong", "outcome"]) == {"no effect"}


def test_a_setting_that_does_not_gain_is_not_supported(tmp_path):
    d = write_dir(
        tmp_path,
        "flat",
        "reference",
        [
            ("mnist", 0.01, "none", "baseline", 0.50, 0.50, 0.5),
            ("mnist", 0.01, "none", "sleep", 0.55, 0.55, 0.5),  # +5: real, but not 20
        ],
    )
    lim = by_key(evaluate_claims(long_metrics(load_settings([d]))))["limited"]
    # every case decided against the claim: refuted, not merely "not supported"
    assert lim.verdict == "refuted"
    assert list(lim.table["outcome"]) == ["smaller than claimed"]
    # claims without cells are not tested, not "supported"
    claims = by_key(evaluate_claims(long_metrics(load_settings([d]))))
    assert claims["balance"].verdict == "not tested"
    assert claims["recovery"].verdict == "not tested"


def test_a_strong_recipe_baseline_is_named_as_the_bar(dirs):
    """A run trained with the strong recipe has no separate strong stage: its baseline is
    the bar, and the verdict says so instead of "no strong-recipe control was run"."""
    lim = by_key(evaluate_claims(long_metrics(load_settings([dirs[1]]))))["limited"]
    assert "the baseline is itself the strong recipe" in lim.why
    assert "no strong-recipe control" not in lim.why
    both = by_key(evaluate_claims(long_metrics(load_settings(list(dirs)))))["limited"]
    assert "itself the strong recipe" not in both.why


def test_a_cost_whose_interval_cannot_tell_is_undetermined_with_the_seeds_it_needs(dirs):
    """A mean cost of 3 points whose interval also allows none or a large one decides
    nothing: it was "as claimed" (the rule read the mean), now undetermined, with about
    how many seeds would decide it at the same spread."""
    ref = dirs[0]
    m = pd.read_csv(ref / METRICS_CSV)
    one = (m.fraction == 0.5) & (m.stage == "sleep")
    m.loc[one, "accuracy"] += [-0.06, 0.0, 0.05]  # costs of -9, -3 and +2 points
    m.to_csv(ref / METRICS_CSV, index=False)
    rec = by_key(evaluate_claims(long_metrics(load_settings([ref]))))["recovery"]
    assert list(rec.table["outcome"]) == ["undetermined"]
    assert rec.verdict == "not supported"
    needed = rec.table["seeds to decide"].item()
    # with sd 5.5 points around a mean of -3.3 the interval leaves 0 behind at ~13 seeds
    assert needed.startswith("~") and 8 <= int(needed[1:]) <= 20
    assert f"would need about {needed[1:]} seeds" in rec.why


def test_interval_is_the_student_t_interval():
    x = np.array([0.1, 0.25, 0.2, 0.4])
    iv = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert iv.n == 4 and iv.mean == pytest.approx(x.mean())
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi))
    one = mean_ci([0.3, math.nan])
    assert one.n == 1 and math.isnan(one.lo) and one.text() == "+30.0 [-]"


def test_weight_sparseness_rises_when_weights_are_zeroed(tmp_path):
    rng = np.random.default_rng(1)
    w = [rng.normal(size=(5, 7)), rng.normal(size=(3, 5))]
    a = save_weights(tmp_path / "a.npz", w)
    b = save_weights(tmp_path / "b.npz", [m * (np.abs(m) > 1.0) for m in w])
    assert 0 <= weight_sparseness(a) < weight_sparseness(b) <= 1


def test_cli_writes_report_figures_and_tables(dirs, tmp_path, capsys):
    out = tmp_path / "report"
    assert analysis_main(["report", *map(str, dirs), "--out", str(out), "-q"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "| 2 | Above 10 % of the data" in text and "**supported**" in text
    assert f"{ANALYSIS_COMMAND} report" in text  # the command that made it
    assert "brian2 2.8.0" in text  # the versions
    for name in ("accuracy_vs_fraction.png", "balance_per_class.png", "sparsity.png"):
        assert (out / name).stat().st_size > 1000
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["claim"]) == {"limited", "recovery", "balance", "sparsity"}
    summary = pd.read_csv(out / "metrics_summary.csv")
    row = summary.query(
        "setting == 'reference' and fraction == 0.01 and stage == 'sleep' and metric == 'accuracy'"
    )
    assert row["mean"].item() == pytest.approx(0.60 + np.mean(WOBBLE))
    assert row["n"].item() == 3


def test_unusable_directory_is_refused_and_nothing_written(dirs, tmp_path, capsys):
    out = tmp_path / "report"
    code = analysis_main(["report", str(dirs[0]), str(tmp_path / "missing"), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
    assert not out.exists()


def test_readme_block_is_rewritten_verbatim(dirs, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_BEGIN}\nold numbers 12.3\n{README_END}\nafter\n")
    out = tmp_path / "rep"
    args = ["report", *map(str, dirs), "--out", str(out), "--readme", str(readme), "-q"]
    assert analysis_main(args) == 0
    text = readme.read_text()
    assert "old numbers" not in text
    assert text.startswith(f"# x\n\nbefore\n{README_BEGIN}\n") and text.endswith("after\n")
    report = (out / "REPORT.md").read_text()
    verdicts = report.split("## Verdicts")[1].split("## Settings")[0].strip()
    assert verdicts in text and f"{ANALYSIS_COMMAND} report" in text


def test_readme_without_block_is_refused_before_writing(dirs, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    out = tmp_path / "rep"
    args = ["report", *map(str, dirs), "--out", str(out), "--readme", str(readme)]
    assert analysis_main(args) == 2
    assert "no results block" in capsys.readouterr().err
    assert not out.exists() and readme.read_text() == "# no block\n"


def test_cells_without_the_compared_stage_do_not_count(tmp_path):
    """A cell still running (baseline only) tests nothing: not 'not supported'."""
    d = write_dir(
        tmp_path,
        "running",
        "reference",
        [("mnist", 0.01, "none", "baseline", 0.30, 0.30, 0.6)],
    )
    claims = by_key(evaluate_claims(long_metrics(load_settings([d]))))
    assert claims["limited"].verdict == "not tested"
    assert claims["sparsity"].verdict == "not tested"


def test_balance_gain_on_majority_classes_only_is_said(tmp_path):
    d = write_dir(
        tmp_path,
        "collapsed",
        "reference",
        [  # balanced accuracy +10 but the minority classes 5-9 (acc_class_5..9 = bal) ...
            ("mnist", 0.1, "5-9x0.1", "baseline", 0.50, 0.10, 0.6),
            ("mnist", 0.1, "5-9x0.1", "sleep", 0.60, 0.10, 0.3),
        ],
    )
    m = long_metrics(load_settings([d]))
    # ... stay where they were; only the majority classes gain
    m.loc[m["stage"].isin(["sleep", "sleep_acted"]), "balanced_accuracy"] += 0.1
    bal = by_key(evaluate_claims(m))["balance"]
    # not more balanced towards the rare classes: no support (it was 'supported' before)
    assert "In 1 cases balanced accuracy rose but the minority classes' accuracy did not" in (
        bal.why
    )
    assert list(bal.table["outcome"]) == ["majority classes only"]
    assert bal.verdict == "refuted"


def test_an_unfinished_cell_is_left_out_and_named(dirs, tmp_path):
    """A cell that stopped after its baseline (no done.json: failed, killed or running)
    must not join the means: it was counted, with its chance-level baseline, in a
    committed remedies report. Now left out, and the report names it."""
    ref = dirs[0]
    m = pd.read_csv(ref / METRICS_CSV)
    extra = m[(m.seed == 0) & (m.fraction == 0.01) & (m.stage == "baseline")].copy()
    extra["seed"], extra["accuracy"] = 3, 0.10
    extra["cell"] = format_cell_id("mnist", 0.01, "none", 3)
    pd.concat([m, extra]).to_csv(ref / METRICS_CSV, index=False)
    settings = load_settings([ref])
    assert settings[0].unfinished == (extra["cell"].item(),)
    assert 3 not in set(settings[0].results.metrics["seed"])
    out = tmp_path / "report"
    assert analysis_main(["report", str(ref), "--out", str(out), "-q"]) == 0
    assert f"Not finished, left out: {extra['cell'].item()}." in (out / "REPORT.md").read_text()
    summary = pd.read_csv(out / "metrics_summary.csv")
    row = summary.query("fraction == 0.01 and stage == 'baseline' and metric == 'accuracy'")
    assert row["n"].item() == 3 and row["mean"].item() == pytest.approx(
        0.30 + np.mean(WOBBLE), abs=1e-5
    )


def test_every_command_that_made_a_directory_is_given(dirs):
    """A directory grown by a second run (another data set) names both commands."""
    ref = dirs[0]
    cfg = json.loads((ref / CONFIG_FILE).read_text())
    cfg["grown"] = [{"added": {"datasets": ["fashion-mnist"]}, "argv": ["--dataset", "x"]}]
    (ref / CONFIG_FILE).write_text(json.dumps(cfg))
    s = load_settings([ref])[0]
    assert s.commands == [
        f"python -m brainsleep.experiment --recipe reference --out {ref}",
        "python -m brainsleep.experiment --dataset x",
    ]
    assert s.command == " && ".join(s.commands)


def test_identical_settings_are_one_case(tmp_path):
    """A search that chose the preset gives the preset's networks: two directories, one
    result. Counted as two cases before, which made '2 of 3 cases' out of one."""
    rows = [
        ("mnist", 0.01, "none", "baseline", 0.30, 0.30, 0.6),
        ("mnist", 0.01, "none", "sleep", 0.60, 0.60, 0.3),
    ]
    a = write_dir(tmp_path, "preset", "reference", rows)
    # the searched run also trained the strong recipe: a control the preset run lacks
    b = write_dir(
        tmp_path, "searched", "reference", [*rows, ("mnist", 0.01, "none", "strong", 0.8, 0.8, 0.4)]
    )
    c = write_dir(tmp_path, "other", "reference", [rows[0], (*rows[1][:4], 0.31, 0.31, 0.6)])
    lim = by_key(evaluate_claims(long_metrics(load_settings([a, b, c]))))["limited"]
    assert lim.verdict == "only when preset on mnist at 1 %"
    assert lim.why.startswith("Of 2 cases tested: 1 as claimed, 1 no effect.")
    assert "(1 identical repeat counted once: searched = preset on " in lim.why
    assert "mnist at 1 %.)" in lim.why
    assert "below the strong recipe in 1 of 1 case" in lim.why  # the repeat's control
    assert len(lim.table) == 3  # the table still shows every directory


def test_the_report_states_each_directory_s_wall_time(dirs, tmp_path):
    ref, strong = dirs
    (ref / "log.txt").write_text(
        "2026-12-01 08:00:00,000 INFO brainsleep.experiment: starting r (config ab12)\n"
        "2026-12-01 08:28:00,000 INFO brainsleep.experiment [pid 1]: c baseline accuracy 0.3\n"
    )
    out = tmp_path / "report"
    assert analysis_main(["report", str(ref), str(strong), "--out", str(out), "-q"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "| wall time |" in text and "| 28 min |" in text
    assert "Wall time: 28 min in all, the sum of the runs that made the 1 directory" in text
    assert "not recorded for strong." in text


def test_a_broken_timing_record_stops_the_report_before_it_writes(dirs, tmp_path, capsys):
    ref = dirs[0]
    (ref / "timing.json").write_text("{not json")
    out = tmp_path / "report"
    assert analysis_main(["report", str(ref), "--out", str(out)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "timing.json is not a timing record" in err[0], err
    assert not out.exists()
