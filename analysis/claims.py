"""The paper's claims, tested: paired effects with 95 % confidence intervals over seeds,
against the right control, and a verdict per claim.

The claims are those of Bazhenov, Dewasurendra, Krishnan & Delanois, "Sleep-like
unsupervised replay improves performance when data are limited or unbalanced"
(arXiv 2402.10956), for an ANN slept with Sleep Replay Consolidation:

1. ``limited``: sleep improves accuracy by 20-30 points when the network was trained on
   0.5-10 % of MNIST or Fashion-MNIST;
2. ``recovery``: above 10 % sleep costs a little accuracy, and brief fine-tuning recovers it;
3. ``balance``: sleep makes classification more balanced on imbalanced data;
4. ``sparsity``: sleep makes network responses (activations) and synapses sparser.

Every effect is a difference taken within a cell (same data set, fraction, imbalance and
seed: the same training subset and initialisation), then summarised over seeds as mean and
a Student-t 95 % interval. A *setting* is one results directory (one recipe, epochs,
sleep-parameter choice); its cells are never pooled with another setting's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from .claim_rules import (  # noqa: F401  (the claims' data, read from here too)
    ABSTRACT,
    CLAIMED_GAIN,
    LIMITED_MAX,
    NEAR_CHANCE,
    RULES,
    SMALL_COST,
    SOURCES,
    STATEMENTS,
)
from .effects import (  # noqa: F401  (re-exported: every report's interval helpers)
    LEVEL,
    Interval,
    layer_mean,
    level_of,
    mean_ci,
    paired,
    percent,
    summary_levels,
)
from .noop import ACTED, ACTED_FINETUNE
from .outcomes import AGAINST, AS_CLAIMED, HURTS, NO_EFFECT, UNDETERMINED
from .settings import (  # noqa: F401  (re-exported: the reports load settings from here)
    Setting,
    load_settings,
    long_metrics,
    setting_label,
    total_wall_text,
    weight_hoyer_values,
    weight_sparseness,
)
from .verdicts import (
    ClaimResult,
    _cases,
    _counted,
    _input_ablation,
    _judge,
    _merged,
    _near_chance_support,
    _noop_why,
    _noops,
    _recipes,
    _rows,
    _table,
    _trend,
    _undetermined_why,
    _verdict,
)


def _result(
    key: str,
    metrics: pd.DataFrame,
    rows: pd.DataFrame,
    cols: dict,
    outcome: list[str],
    needed: list,
    verdict: str,
    why: str,
    primary: str,
    signed: dict[str, bool] | None = None,
) -> ClaimResult:
    """A claim's result: ``why`` ends with the no-op and undetermined sentences, and the
    table (:func:`_table`) gives every case its outcome and the seeds it would need."""
    why += _noop_why(metrics, rows) + _undetermined_why(outcome, needed)
    noops = _noops(metrics, rows)
    table = _table(rows, cols, outcome, signed=signed, needed=needed, noops=noops, primary=primary)
    return ClaimResult(key, STATEMENTS[key], verdict, why, table)


def claim_limited(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 1: sleep - baseline >= 20 points at fractions <= 10 % (balanced subsets).

    Judged on sleeps that acted (:mod:`analysis.noop`) with the outcomes of
    :mod:`analysis.outcomes` (claimed size 20 points). The table also gives the
    step-matched control (sleep + fine-tune vs fine-tune only) and both slept networks
    against the strong recipe trained on the same subset.
    """
    cols = {
        "baseline": ("baseline", None, "accuracy"),
        "sleep - baseline": (ACTED, "baseline", "accuracy"),
        "sleep+ft - ft only": (ACTED_FINETUNE, "finetune_only", "accuracy"),
        "sleep - strong": (ACTED, "strong", "accuracy"),
        "sleep+ft - strong": (ACTED_FINETUNE, "strong", "accuracy"),
    }
    rows = _rows(
        metrics,
        lambda m: (m["imbalance"] == "none") & (m["fraction"] <= LIMITED_MAX + 1e-12),
        cols,
        "sleep - baseline",
    )
    if rows.empty:
        return ClaimResult("limited", STATEMENTS["limited"], *_verdict(rows, [], ""))
    rule = RULES["limited"]
    outcome, needed = _judge(rows, "sleep - baseline", rule)
    verdict, why = _verdict(
        rows,
        outcome,
        f"a gain of at least {100 * rule.size:.0f} points with its CI above 0 (Holm)",
        _near_chance_support(rows, outcome),
    )
    low = rows["baseline"].map(lambda b: isinstance(b, Interval) and b.mean < NEAR_CHANCE)
    counted = _counted(rows)
    ok = pd.Series([o == AS_CLAIMED for o in outcome], index=rows.index)
    if int((ok & low & counted).sum()):
        why += (
            f" In {int((ok & low & counted).sum())} of the cases as claimed the baseline is "
            f"near chance (< {100 * NEAR_CHANCE:.0f} %: the recipe had not learnt), so sleep "
            "repairs a failed training rather than improving a trained network."
        )
    gain = rows["sleep - baseline"]
    means = [g.mean for g in gain if isinstance(g, Interval) and math.isfinite(g.mean)]
    if means:
        why += f" Gains range from {100 * min(means):+.1f} to {100 * max(means):+.1f} points"
        strong = [
            g.mean for g in _merged(rows, "sleep - strong") if isinstance(g, Interval) and g.n > 0
        ]
        if strong:
            n_below = sum(s < 0 for s in strong)
            why += (
                f"; the slept network is below the strong recipe in {n_below} of "
                f"{_cases(len(strong))}."
            )
        elif _recipes(metrics, rows) == {"strong"}:
            why += "; the baseline is itself the strong recipe here."
        else:
            why += "; no strong-recipe control was run (--strong)."
    why += _trend(rows, "sleep - baseline")
    why += _input_ablation(metrics, rows)
    return _result(
        "limited", metrics, rows, cols, outcome, needed, verdict, why, "sleep - baseline"
    )


def claim_recovery(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 2: above 10 %, sleep costs a little (significantly, at most 5 points) and
    fine-tuning recovers it (sleep + fine-tune not below the step-matched fine-tune-only
    control by more than the margin). Judged on sleeps that acted.
    """
    cols = {
        "baseline": ("baseline", None, "accuracy"),
        "sleep - baseline": (ACTED, "baseline", "accuracy"),
        "sleep+ft - baseline": (ACTED_FINETUNE, "baseline", "accuracy"),
        "sleep+ft - ft only": (ACTED_FINETUNE, "finetune_only", "accuracy"),
        "sleep - strong": (ACTED, "strong", "accuracy"),
        "sleep+ft - strong": (ACTED_FINETUNE, "strong", "accuracy"),
    }
    rows = _rows(
        metrics,
        lambda m: (m["imbalance"] == "none") & (m["fraction"] > LIMITED_MAX + 1e-12),
        cols,
        "sleep - baseline",
    )
    if rows.empty:
        return ClaimResult("recovery", STATEMENTS["recovery"], *_verdict(rows, [], ""))
    cost, needed = _judge(rows, "sleep - baseline", RULES["recovery"])
    outcome = []
    for c, g, ft in zip(cost, rows["sleep - baseline"], rows["sleep+ft - ft only"], strict=True):
        measured = isinstance(ft, Interval) and ft.n >= 2
        if c == AS_CLAIMED and g.mean < -SMALL_COST:
            outcome.append("cost larger than claimed")
        elif c == AS_CLAIMED and not measured:
            outcome.append("no fine-tune")
        elif c == AS_CLAIMED and ft.lo < -RULES["recovery"].margin:
            outcome.append("not recovered" if ft.hi < 0 else UNDETERMINED)
        elif c == HURTS:
            outcome.append("sleep helps")
        else:
            outcome.append(c)
    verdict, why = _verdict(
        rows,
        outcome,
        f"a cost of sleep with its CI below 0 (Holm) and a mean of at most "
        f"{100 * SMALL_COST:.0f} points, and sleep + fine-tune not below the fine-tune-only "
        f"control by more than {100 * RULES['recovery'].margin:.0f} points (CI)",
    )
    return _result(
        "recovery", metrics, rows, cols, outcome, needed, verdict, why, "sleep - baseline"
    )


def minority_accuracy(metrics: pd.DataFrame) -> pd.Series:
    """Mean per-class accuracy over each row's minority classes (NaN when balanced)."""
    from brainsleep.subsets import parse_imbalance

    out = pd.Series(np.nan, index=metrics.index)
    for spec, idx in metrics.groupby("imbalance").groups.items():
        if spec == "none":
            continue
        mult = parse_imbalance(spec)
        minority = [f"acc_class_{c}" for c, k in mult.items() if k < 1]
        present = [c for c in minority if c in metrics.columns]
        if present:
            out.loc[idx] = metrics.loc[idx, present].mean(axis=1)
    return out


def claim_balance(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 3: on imbalanced subsets, sleep raises balanced accuracy *and* the minority
    classes' own accuracy (both CIs above 0; balanced accuracy Holm-corrected).

    Balanced accuracy alone can rise with the minority classes still at 0: a baseline
    that had collapsed onto a few majority classes recovers the others. That makes the
    classification no more balanced towards the rare classes, so such a row is its own
    outcome (*majority classes only*) and does not count as support.
    """
    m = metrics.assign(minority_accuracy=minority_accuracy(metrics))
    cols = {
        "baseline bal.": ("baseline", None, "balanced_accuracy"),
        "sleep - baseline (bal.)": (ACTED, "baseline", "balanced_accuracy"),
        "sleep - baseline (minority)": (ACTED, "baseline", "minority_accuracy"),
        "sleep+ft - ft only (bal.)": (ACTED_FINETUNE, "finetune_only", "balanced_accuracy"),
        "sleep - strong (bal.)": (ACTED, "strong", "balanced_accuracy"),
        "sleep+ft - strong (bal.)": (ACTED_FINETUNE, "strong", "balanced_accuracy"),
    }
    rows = _rows(m, lambda d: d["imbalance"] != "none", cols, "sleep - baseline (bal.)")
    if rows.empty:
        return ClaimResult("balance", STATEMENTS["balance"], *_verdict(rows, [], ""))
    bal, needed = _judge(rows, "sleep - baseline (bal.)", RULES["balance"])
    minority = rows["sleep - baseline (minority)"]
    outcome = []
    for b, x in zip(bal, minority, strict=True):
        if b != AS_CLAIMED:
            outcome.append(b)
        elif not (isinstance(x, Interval) and x.n > 0):
            outcome.append("minority not measured")
        else:
            outcome.append(AS_CLAIMED if x.above_zero else "majority classes only")
    verdict, why = _verdict(
        rows,
        outcome,
        "balanced accuracy rises (CI above 0, Holm) and so does the minority classes' "
        "accuracy (CI above 0)",
    )
    only_majority = sum(
        o == "majority classes only" for o, k in zip(outcome, _counted(rows), strict=True) if k
    )
    if only_majority:
        why += (
            f" In {only_majority} cases balanced accuracy rose but the minority classes' "
            "accuracy did not: the gain is on majority classes of a baseline that had "
            "collapsed onto few of them."
        )
    primary = "sleep - baseline (bal.)"
    return _result("balance", metrics, rows, cols, outcome, needed, verdict, why, primary)


def claim_sparsity(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 4: after sleep, hidden activity and weights are sparser, by measures that a
    few silenced units or depressed rows do not drive.

    Activity: the population sparseness (Treves-Rolls, :func:`brainsleep.sparseness.
    population_sparseness`) of the hidden ReLU outputs on test images, mean over images
    and hidden layers (``pop_sparseness_h*``). Synapses: the fraction of near-zero weights
    (:func:`brainsleep.sparseness.small_weight_fraction`, ``weight_small_frac``). Both
    higher = sparser; each Holm-corrected over the cases. The fraction of active units
    and the Hoyer sparseness stay as columns, not judged on (Hoyer moves as much when 10
    rows of layer 1 are depressed as with a whole sleep). Rows where the slept network is
    near chance are flagged: a silenced network is not a sparse code.
    """

    m = metrics.assign(
        active_frac=layer_mean(metrics, "active_frac_"),
        pop_sparseness=layer_mean(metrics, "pop_sparseness_"),
        silent_frac=layer_mean(metrics, "silent_frac_"),
    )
    for name in ("weight_small_frac",):
        if name not in m.columns:
            m[name] = math.nan
    cols = {
        "sleep accuracy": (ACTED, None, "accuracy"),
        "pop. sparseness sleep - baseline": (ACTED, "baseline", "pop_sparseness"),
        "near-zero weights sleep - baseline": (ACTED, "baseline", "weight_small_frac"),
        "silent units sleep - baseline": (ACTED, "baseline", "silent_frac"),
        "active frac. sleep - baseline": (ACTED, "baseline", "active_frac"),
        "weight Hoyer sleep - baseline": (ACTED, "baseline", "weight_hoyer"),
    }
    rows = _rows(
        m, lambda d: pd.Series(True, index=d.index), cols, "pop. sparseness sleep - baseline"
    )
    if rows.empty:
        return ClaimResult(
            "sparsity",
            STATEMENTS["sparsity"],
            "not tested",
            "No results directory records the population sparseness and near-zero weight "
            "fraction (results made before issue 30's measures): rerun them.",
        )
    act, needed = _judge(rows, "pop. sparseness sleep - baseline", RULES["sparsity"])
    wgt, needed_w = _judge(rows, "near-zero weights sleep - baseline", RULES["sparsity"])
    silent = rows["sleep accuracy"].map(lambda x: isinstance(x, Interval) and x.mean < NEAR_CHANCE)
    outcome = []
    for a, w, s in zip(act, wgt, silent, strict=True):
        if a == AS_CLAIMED and w == AS_CLAIMED:
            outcome.append("sparser, near chance" if s else AS_CLAIMED)
        elif a == AS_CLAIMED:
            outcome.append("activity only")
        elif w == AS_CLAIMED:
            outcome.append("weights only")
        elif HURTS in (a, w):
            outcome.append("denser")
        elif a == w == NO_EFFECT:
            outcome.append(NO_EFFECT)
        elif a in AGAINST and w in AGAINST:
            outcome.append("not sparser")
        else:
            outcome.append(UNDETERMINED)
    counted = list(_counted(rows))
    verdict, why = _verdict(
        rows,
        [AS_CLAIMED if o == AS_CLAIMED else o for o in outcome],
        "the population sparseness of hidden activity and the fraction of near-zero "
        "weights both rise (CIs above 0, Holm)",
    )
    silenced = sum(o == "sparser, near chance" for o, k in zip(outcome, counted, strict=True) if k)
    if silenced:
        why += (
            f" In {silenced} cases both rose but the slept network is near chance "
            f"(< {100 * NEAR_CHANCE:.0f} %): sparser because silenced, not counted."
        )
    needed = [n if n is not None else nw for n, nw in zip(needed, needed_w, strict=True)]
    primary, signed = "pop. sparseness sleep - baseline", {"sleep accuracy": False}
    return _result("sparsity", metrics, rows, cols, outcome, needed, verdict, why, primary, signed)


CLAIMS: dict[str, Callable[[pd.DataFrame], ClaimResult]] = {
    "limited": claim_limited,
    "recovery": claim_recovery,
    "balance": claim_balance,
    "sparsity": claim_sparsity,
}


def evaluate_claims(metrics: pd.DataFrame) -> list[ClaimResult]:
    """Test every claim of the paper on :func:`long_metrics` rows.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Rows of one or more settings (column ``setting``).

    Returns
    -------
    list of ClaimResult
        In the paper's order (limited, recovery, balance, sparsity).
    """
    return [test(metrics) for test in CLAIMS.values()]
