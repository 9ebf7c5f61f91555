"""Sleeps that did nothing are not sleep: which cells' sleeps acted, and the stages the
claims are judged on.

A sleep that changed no weight is a *no-op*: its network is the baseline, bit for bit.
Counting it as sleep makes "sleep costs nothing" out of "the search chose not to sleep".
The pipeline records ``sleep_weights_changed`` (the fraction of synapses the sleep
changed) on every sleep row, and when the search chose a no-op it also evaluates the
best trial that acted (stages ``sleep_acting`` and ``sleep_acting_finetune``).

Results written before that bookkeeping have no ``sleep_weights_changed``; their search
history still tells: the SRC rule (``models/src.py``) changes weights only when a
postsynaptic neuron fires, so a best trial with no spike in any layer past the input
changed nothing. A cell with neither (a preset sleep from before the bookkeeping) is
*unknown* and is kept, as before, and counted as such.

The claims are judged on two derived stages, per cell:

``sleep_acted``
    ``sleep`` when it acted (or is unknown); ``sleep_acting`` when the chosen sleep was a
    no-op and a trial acted; absent when no trial acted.
``sleep_acted_finetune``
    the same for the fine-tuned network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

#: The derived stages (see the module's docstring).
ACTED = "sleep_acted"
ACTED_FINETUNE = "sleep_acted_finetune"
#: Per-row column: True the cell's chosen sleep acted, False a no-op, NaN unknown.
ACTED_COLUMN = "sleep_acted"


def acted_from_search(path: Path | None) -> float:
    """Whether the best trial of a search acted, from its ``search.json`` history.

    Returns 1.0 (acted), 0.0 (no-op: no spike past the input layer, or a recorded
    ``weights_changed`` of 0) or NaN (no history, or spike counts not recorded).
    """
    if path is None or not Path(path).is_file():
        return math.nan
    try:
        history = json.loads(Path(path).read_text()).get("history") or []
    except (OSError, ValueError):
        return math.nan
    done = [r for r in history if r.get("state") == "COMPLETE" and r.get("score") is not None]
    if not done:
        return math.nan
    best = max(done, key=lambda r: (r["score"], -r["trial"]))
    if best.get("weights_changed") is not None:
        return float(best["weights_changed"] > 0)
    spikes = [v for k, v in best.items() if k.startswith("spikes_layer") and v is not None]
    if not spikes:
        return math.nan
    return float(sum(spikes) > 0)


def sleep_acted(metrics: pd.DataFrame, search_json: Callable[[str, str], Path | None]) -> pd.Series:
    """Per row of ``metrics``: whether its cell's chosen sleep acted (1.0, 0.0 or NaN).

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` rows of one or more settings (columns ``setting``, ``cell``,
        ``stage``; ``sleep_weights_changed`` when recorded).
    search_json : callable
        ``search_json(setting, cell_id)``: the cell's ``search.json``, or None.
    """
    sleep = metrics[metrics["stage"] == "sleep"]
    acted: dict[tuple[str, str], float] = {}
    for _, row in sleep.iterrows():
        changed = row.get("sleep_weights_changed", math.nan)
        key = (row["setting"], row["cell"])
        if changed is not None and not pd.isna(changed):
            acted[key] = float(changed > 0)
        else:
            acted[key] = acted_from_search(search_json(*key))
    keys = list(zip(metrics["setting"], metrics["cell"], strict=True))
    return pd.Series([acted.get(k, math.nan) for k in keys], index=metrics.index, dtype=float)


def with_acted_stages(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the rows of :data:`ACTED` and :data:`ACTED_FINETUNE` added.

    Needs the :data:`ACTED_COLUMN` column (:func:`sleep_acted`).
    """
    m = metrics
    status = m[ACTED_COLUMN]
    chosen = status.isna() | (status > 0)
    parts = [m]
    for target, own, alternative in (
        (ACTED, "sleep", "sleep_acting"),
        (ACTED_FINETUNE, "sleep_finetune", "sleep_acting_finetune"),
    ):
        rows = pd.concat(
            [m[(m["stage"] == own) & chosen], m[(m["stage"] == alternative) & ~chosen]]
        )
        parts.append(rows.assign(stage=target))
    return pd.concat(parts, ignore_index=True)


def noop_counts(metrics: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per case (``keys``): cells with a sleep, no-op sleeps among them, those replaced by
    an acting trial, and those whose status is unknown.

    Returns
    -------
    pandas.DataFrame
        Index ``keys``; columns ``cells``, ``noop``, ``replaced``, ``unknown``.
    """
    sleep = metrics[metrics["stage"] == "sleep"]
    acting = metrics[metrics["stage"] == "sleep_acting"]
    replaced = set(zip(acting["setting"], acting["cell"], strict=True))
    frame = pd.DataFrame(
        {
            **{k: sleep[k] for k in keys},
            "cells": 1,
            "noop": (sleep[ACTED_COLUMN] == 0).astype(int),
            "replaced": [
                int(a == 0 and (s, c) in replaced)
                for a, s, c in zip(
                    sleep[ACTED_COLUMN], sleep["setting"], sleep["cell"], strict=True
                )
            ],
            "unknown": sleep[ACTED_COLUMN].isna().astype(int),
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=["cells", "noop", "replaced", "unknown"])
    return frame.groupby(keys).sum()


def noop_text(counts: pd.Series | None) -> str:
    """A table entry: ``2 of 5 (2 replaced)``, ``0 of 5``, or ``?`` when unknown."""
    if counts is None or not isinstance(counts, pd.Series) or not counts.get("cells"):
        return "n/a"
    cells, noop = int(counts["cells"]), int(counts["noop"])
    text = f"{noop} of {cells}"
    if noop:
        text += f" ({int(counts['replaced'])} replaced)"
    if int(counts["unknown"]):
        text += f", {int(counts['unknown'])} unknown"
    return text
