"""Outcomes that can refute, and sleeps that did nothing (issue 30): each outcome from a
known interval, Holm's correction, the seeds that would decide a case, and a planted
no-op sleep that is named, counted and left out of the effect."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.claims import evaluate_claims, load_settings, long_metrics, mean_ci
from analysis.noop import acted_from_search
from analysis.outcomes import (
    AS_CLAIMED,
    BELOW_SIZE,
    HURTS,
    NO_EFFECT,
    SMALLER,
    UNDETERMINED,
    Rule,
    classify,
    holm,
    seeds_to_decide,
)
from brainsleep.formats import CELLS_DIR, METRICS_CSV
from tests.test_claims_report import by_key, write_dir

CLAIM_1 = Rule(size=0.20, sign=1)


@pytest.mark.parametrize(
    ("values", "outcome"),
    [
        ([0.25, 0.30, 0.28], AS_CLAIMED),
        ([0.05, 0.06, 0.07], SMALLER),  # CI above 0, entirely below 20 points
        ([0.0, 0.04, 0.06], BELOW_SIZE),  # 20 points excluded, 0 not
        ([-0.002, 0.0, 0.002, 0.001, -0.001], NO_EFFECT),  # inside +-2 points
        ([-0.10, -0.12, -0.11], HURTS),
        ([-0.10, 0.10, 0.40], UNDETERMINED),  # too wide: both 0 and 20 points allowed
    ],
)
def test_each_outcome_from_a_known_interval(values, outcome):
    iv = mean_ci(values)
    assert classify(iv.mean, iv.lo, iv.hi, iv.n, CLAIM_1, iv.p_value < 0.05) == outcome


def test_a_decrease_claim_is_judged_in_its_own_direction():
    cost = Rule(size=0.0, sign=-1)
    iv = mean_ci([-0.03, -0.04, -0.035])
    assert classify(iv.mean, iv.lo, iv.hi, iv.n, cost, True) == AS_CLAIMED
    iv = mean_ci([0.05, 0.06, 0.055])
    assert classify(iv.mean, iv.lo, iv.hi, iv.n, cost, True) == HURTS


def test_without_significance_after_correction_nothing_is_claimed():
    iv = mean_ci([0.25, 0.30, 0.28])
    assert classify(iv.mean, iv.lo, iv.hi, iv.n, CLAIM_1, significant=False) == UNDETERMINED


def test_holm_is_the_step_down_correction():
    # sorted p: 0.01 < 0.04 < 0.03? no: 0.01, 0.03, 0.04 against 0.05/3, 0.05/2, 0.05/1
    assert holm([0.04, 0.01, 0.03]) == [False, True, False]
    assert holm([0.001, 0.02, 0.04]) == [True, True, True]
    assert holm([float("nan"), 0.001]) == [False, True]


def test_seeds_to_decide_grows_as_the_effect_nears_a_boundary():
    far = seeds_to_decide(0.10, 0.10, 3, CLAIM_1)  # halfway between 0 and 20 points
    near = seeds_to_decide(0.17, 0.10, 3, CLAIM_1)  # close to the claimed 20 points
    assert far is not None and near is not None and 3 < far < near
    iv_far = mean_ci(0.10 + 0.10 * np.array([-1.2, 0.0, 1.2]))
    assert classify(iv_far.mean, iv_far.lo, iv_far.hi, 3, CLAIM_1, True) == UNDETERMINED
    assert seeds_to_decide(0.10, 0.0, 3, CLAIM_1) is None  # no spread to go by


def test_a_no_op_is_read_from_an_old_search_history(tmp_path):
    history = [
        {"trial": 0, "state": "COMPLETE", "score": 0.5, "spikes_layer1": 9, "spikes_layer2": 1},
        {"trial": 1, "state": "COMPLETE", "score": 0.8, "spikes_layer1": 0, "spikes_layer2": 0},
    ]
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"history": history}))
    assert acted_from_search(path) == 0.0  # the best trial: no spike past the input
    history[0]["score"] = 0.9
    path.write_text(json.dumps({"history": history}))
    assert acted_from_search(path) == 1.0
    assert np.isnan(acted_from_search(tmp_path / "missing.json"))


def test_a_planted_no_op_is_counted_named_and_left_out(tmp_path):
    """Seeds 0 and 1 chose a no-op sleep (weights bit-identical: accuracy = baseline);
    seed 0's best acting trial costs 10 points, seed 1 had none, seed 2 acted and cost
    10 points. Counted as sleep, the cost was the mean of 0, 0 and -10; judged on sleeps
    that acted it is -10 (seeds 0 and 2), and the report says what it left out."""
    d = write_dir(
        tmp_path,
        "above",
        "reference",
        [
            ("mnist", 0.5, "none", "baseline", 0.90, 0.90, 0.6),
            ("mnist", 0.5, "none", "sleep", 0.80, 0.80, 0.3),
            ("mnist", 0.5, "none", "sleep_finetune", 0.91, 0.91, 0.5),
            ("mnist", 0.5, "none", "finetune_only", 0.91, 0.91, 0.6),
        ],
    )
    m = pd.read_csv(d / METRICS_CSV)
    sleep = m["stage"] == "sleep"
    noop = sleep & m["seed"].isin([0, 1])
    base = m[m["stage"] == "baseline"].set_index("seed")["accuracy"]
    m.loc[noop, "accuracy"] = m.loc[noop, "seed"].map(base)
    m["sleep_weights_changed"] = np.where(sleep, np.where(noop, 0.0, 0.01), np.nan)
    acting = m[sleep & (m["seed"] == 0)].assign(stage="sleep_acting", accuracy=0.80 - 0.01)
    acting_ft = m[(m["stage"] == "sleep_finetune") & (m["seed"] == 0)]
    acting_ft = acting_ft.assign(stage="sleep_acting_finetune")
    pd.concat([m, acting, acting_ft]).to_csv(d / METRICS_CSV, index=False)
    (d / CELLS_DIR).mkdir(exist_ok=True)

    rec = by_key(evaluate_claims(long_metrics(load_settings([d]))))["recovery"]
    row = rec.table.iloc[0]
    assert row["no-op sleeps"] == "2 of 3 (1 replaced)"
    assert row["seeds"] == 2  # seed 1 had no sleep that acted
    assert row["sleep - baseline"].startswith("-10.0")  # not -3.3 (0, 0 and -10)
    assert "2 of 3 cells' chosen sleeps changed no weight" in rec.why
    assert "1 of them are judged on the best search trial that acted" in rec.why
    assert "1 left out (no acting trial evaluated)" in rec.why
    assert row["outcome"] == "cost larger than claimed"


def test_a_case_on_one_acting_seed_says_there_is_no_spread_to_go_by():
    """Two no-ops of three seeds leave one: "not decided by 200 seeds" was said, wrongly
    (there is no spread to extrapolate from), not "one seed"."""
    from analysis.verdicts import TOO_FEW, _needed_text, _undetermined_why

    outcomes = [UNDETERMINED, UNDETERMINED, AS_CLAIMED]
    needed = [TOO_FEW, 12, None]
    assert _needed_text(needed, outcomes) == ["one seed: no spread yet", "~12", ""]
    why = _undetermined_why(outcomes, needed)
    assert "1 undetermined case rests on one seed whose sleep acted" in why
    assert "would need about 12 seeds" in why and "200" not in why
