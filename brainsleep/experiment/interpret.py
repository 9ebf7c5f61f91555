"""A few plain sentences under the results table: what the numbers of a run mean.

The run's own cells only, paired within each cell (same subset and seed) the way the claims
report (``python -m brainsleep.analysis report``) does it; that report is where the full
answer is.
"""

from __future__ import annotations

import math
import shlex
import textwrap

import numpy as np
import pandas as pd

from brainsleep.cli import ANALYSIS_COMMAND

#: Below this test accuracy (10 classes) a network has not learnt: near chance.
NEAR_CHANCE = 0.20
#: More groups than this and the sentences would drown the table: point to the report.
MAX_GROUPS = 3


#: A validation accuracy that moves less than this over the whole training is flat.
FLAT = 0.02


def plateau_note(val_accuracy: list[float], recipe) -> str | None:
    """Explain a validation accuracy that stayed flat during training, or None.

    Parameters
    ----------
    val_accuracy : list of float
        Validation accuracy after each epoch (:class:`brainsleep.ann.TrainHistory`).
    recipe : brainsleep.ann.Recipe
        The recipe that was trained.

    Returns
    -------
    str or None
        One sentence when there are >= 3 epochs, all within :data:`FLAT` of each other
        and below 50 % (not learning), else None.
    """
    v = np.asarray(val_accuracy, dtype=float)
    if v.size < 3 or np.ptp(v) >= FLAT or v.max() >= 0.5:
        return None
    return (
        f"validation accuracy stayed at {100 * v.min():.1f}-{100 * v.max():.1f} % for all "
        f"{v.size} epochs: the {recipe.name} recipe ({recipe.optimizer} lr {recipe.lr:g}, "
        f"{recipe.loss} loss, {recipe.init} init) has not left its initial plateau on "
        "this subset. With the reference recipe that is expected on small subsets, and it "
        "is the network the paper's sleep is applied to; --strong trains a network that "
        "learns, for comparison."
    )


def _paired(g: pd.DataFrame, stage: str, reference: str) -> np.ndarray:
    """Per-seed ``accuracy[stage] - accuracy[reference]`` (seeds that have both)."""
    wide = g.pivot_table(index="seed", columns="stage", values="accuracy", aggfunc="mean")
    if stage not in wide or reference not in wide:
        return np.array([])
    return (wide[stage] - wide[reference]).dropna().to_numpy()


def points(diff: np.ndarray) -> str:
    """``+25.0 points`` and, with two seeds or more, the 95 % Student-t interval."""
    m = 100 * float(np.mean(diff))
    if diff.size < 2:
        return f"{m:+.1f} points (one seed: no interval)"
    from scipy import stats

    half = 100 * stats.t.ppf(0.975, diff.size - 1) * np.std(diff, ddof=1) / math.sqrt(diff.size)
    return f"{m:+.1f} points (95 % CI {m - half:+.1f} to {m + half:+.1f}, {diff.size} seeds)"


def _mean(g: pd.DataFrame, stage: str) -> float | None:
    v = g.loc[g["stage"] == stage, "accuracy"]
    return None if v.empty else 100 * float(v.mean())


def explain_group(g: pd.DataFrame, recipe: str) -> list[str]:
    """Sentences for one (data set, imbalance, fraction) group of metrics rows."""
    base, slept = _mean(g, "baseline"), _mean(g, "sleep")
    if base is None or slept is None:
        return []
    out = [
        f"Sleep took the {recipe}-recipe network from {base:.1f} % to {slept:.1f} % test "
        f"accuracy: {points(_paired(g, 'sleep', 'baseline'))}."
    ]
    ft, ctrl = _mean(g, "sleep_finetune"), _mean(g, "finetune_only")
    if ft is not None and ctrl is not None:
        out.append(
            f"Fine-tuned after sleep it reaches {ft:.1f} %; the step-matched control "
            f"(the same fine-tuning without sleep) reaches {ctrl:.1f} %: what sleep adds on "
            f"top of training is {points(_paired(g, 'sleep_finetune', 'finetune_only'))}."
        )
    strong = _mean(g, "strong")
    if strong is not None:
        best = max(slept, ft if ft is not None else -1.0)
        # the strong recipe is the sentence's subject: "above" when it beats sleep
        word = "above" if strong > best else "below"
        out.append(
            f"The strong recipe (Adam, cross-entropy, early stopping) on the same data "
            f"reaches {strong:.1f} %, {abs(strong - best):.1f} points {word} the best slept "
            f"network ({best:.1f} %): that is the bar a remedy for little data has to clear."
        )
    if base < 100 * NEAR_CHANCE:
        out.append(
            f"The baseline is near chance ({base:.1f} %): the {recipe} recipe has not "
            "left its plateau on this subset, so sleep is repairing a failed training, "
            "not improving a trained network."
        )
    return out


def explain(metrics: pd.DataFrame, recipe: str, out: str) -> str:
    """What a run's results mean, in two to four sentences per group.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The run's ``metrics.csv`` rows (one per cell and stage).
    recipe : str
        The run's training recipe (``--recipe``).
    out : str
        The results directory, for the pointer to the claims report.

    Returns
    -------
    str
        Paragraphs, one per (data set, imbalance, fraction) group when there are at most
        :data:`MAX_GROUPS`, then the command of the full claims report.
    """
    if metrics.empty:
        return ""
    groups = list(metrics.groupby(["dataset", "imbalance", "fraction"], sort=True))
    paras = []
    if len(groups) <= MAX_GROUPS:
        for (dataset, imbalance, fraction), g in groups:
            sentences = explain_group(g, recipe)
            if sentences:
                where = f"{dataset}, {100 * fraction:g} % of the training set" + (
                    "" if imbalance == "none" else f", imbalance {imbalance}"
                )
                paras.append(f"{where}: " + " ".join(sentences))
    paras.append(
        f"The paper's claims, tested with confidence intervals: "
        f"{ANALYSIS_COMMAND} report {shlex.quote(str(out))} --out {shlex.quote(f'{out}/report')}"
    )
    return "\n\n".join(textwrap.fill(p, width=92) for p in paras)
