"""The sentences under the results table, the one-seed table and the plateau note."""

from __future__ import annotations

import pandas as pd
import pytest

from brainsleep.ann import get_recipe
from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.experiment.interpret import explain, plateau_note, points
from brainsleep.experiment.results import summary_table


def rows(accs: dict[str, list[float]]) -> pd.DataFrame:
    """Metrics rows for one group: ``{stage: [accuracy per seed]}``."""
    recs = []
    for stage, values in accs.items():
        for seed, a in enumerate(values):
            recs.append(
                {
                    "cell": f"mnist_f0.1_none_s{seed}",
                    "dataset": "mnist",
                    "imbalance": "none",
                    "fraction": 0.1,
                    "seed": seed,
                    "stage": stage,
                    "accuracy": a,
                    "balanced_accuracy": a,
                }
            )
    return pd.DataFrame(recs)


def test_sentences_compare_with_the_control_and_the_strong_recipe():
    df = rows(
        {
            "baseline": [0.18, 0.19],
            "sleep": [0.45, 0.40],
            "sleep_finetune": [0.80, 0.82],
            "finetune_only": [0.70, 0.70],
            "strong": [0.95, 0.96],
        }
    )
    text = " ".join(explain(df, "reference", "results/x").split())
    assert "from 18.5 % to 42.5 % test accuracy: +24.0 points (95 % CI" in text
    assert "2 seeds" in text
    assert "the step-matched control (the same fine-tuning without sleep) reaches 70.0 %" in text
    assert "is +11.0 points" in text
    # the strong recipe beats the best slept network (81.0 %): it is above it
    assert "reaches 95.5 %, 14.5 points above the best slept network (81.0 %)" in text
    assert "near chance (18.5 %)" in text  # the baseline had not learnt
    assert f"{ANALYSIS_COMMAND} report results/x --out results/x/report" in text


def test_a_strong_recipe_below_sleep_is_said_to_be_below():
    df = rows({"baseline": [0.18], "sleep": [0.90], "strong": [0.85]})
    text = " ".join(explain(df, "reference", "o").split())
    assert "reaches 85.0 %, 5.0 points below the best slept network (90.0 %)" in text


def test_one_seed_has_no_interval_and_no_fake_spread():
    df = rows({"baseline": [0.90], "sleep": [0.85]})
    text = " ".join(explain(df, "strong", "o").split())
    assert "-5.0 points (one seed: no interval)" in text
    assert "near chance" not in text and "strong recipe (Adam" not in text
    table = summary_table(df)
    assert "± 0.00" not in table and "± -" in table
    assert "one seed" in table


def test_points_interval():
    # two seeds, differences 0.1 and 0.3: mean 20, sem 10, t(0.975, 1) = 12.706: +-127.1
    text = points(pd.Series([0.1, 0.3]).to_numpy())
    assert text == "+20.0 points (95 % CI -107.1 to +147.1, 2 seeds)"


@pytest.mark.parametrize(
    ("val", "flat"),
    [
        ([0.11, 0.112, 0.115, 0.11], True),  # the reference recipe's plateau
        ([0.11, 0.40, 0.80], False),  # learning
        ([0.95, 0.951, 0.952], False),  # converged, not stuck
        ([0.11, 0.11], False),  # too few epochs to say
    ],
)
def test_plateau_note(val, flat):
    note = plateau_note(val, get_recipe("reference"))
    assert (note is not None) == flat
    if flat:
        assert "has not left its initial plateau" in note and "sgd lr 0.01" in note
