"""A claim's cases and verdict: the rows it tests, the outcome of each (Holm-corrected,
:mod:`analysis.outcomes`), repeats counted once, no-op sleeps counted and left out, and
the sentences and tables that say so. :mod:`analysis.claims` declares the claims and
reads these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from .claim_rules import NEAR_CHANCE
from .effects import _KEYS, Interval, level_of, paired, percent
from .noop import noop_counts, noop_text
from .outcomes import (
    AS_CLAIMED,
    UNDETERMINED,
    Rule,
    classify,
    count_text,
    holm,
    seeds_to_decide,
)

# -- claims -----------------------------------------------------------------------------------


@dataclass
class ClaimResult:
    """The test of one claim.

    Attributes
    ----------
    key : str
        ``limited``, ``recovery``, ``balance`` or ``sparsity``.
    statement : str
        The claim as the paper makes it.
    verdict : str
        ``supported``, ``not supported``, ``only when ...`` or ``not tested``.
    why : str
        One sentence with the numbers behind the verdict.
    table : pandas.DataFrame
        One row per setting, data set, imbalance and fraction tested: seeds, the effects
        (as text, points or sparseness x 100) and the row's outcome.
    """

    key: str
    statement: str
    verdict: str
    why: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def _rows(
    metrics: pd.DataFrame,
    select: Callable[[pd.DataFrame], pd.Series],
    columns: dict[str, tuple[str, str | None, str]],
    primary: str,
) -> pd.DataFrame:
    """Join the named effects for the selected rows: column -> (stage, reference, value).

    Only cases where the ``primary`` effect was measured are kept (a cell still running,
    or a setting without the stage, tests nothing and must not count against a claim).
    """
    sub = metrics[select(metrics)]
    parts = []
    for name, (stage, reference, value) in columns.items():
        eff = (
            level_of(sub, stage, value)
            if reference is None
            else paired(sub, stage, reference, value)
        )
        parts.append(eff["effect"].rename(name))
    if not parts or sub.empty:
        return pd.DataFrame(columns=list(columns))
    table = pd.concat(parts, axis=1)
    measured = table[primary].map(lambda x: isinstance(x, Interval) and x.n > 0)
    return table[measured].sort_index().reset_index()


def _cases(n: int) -> str:
    """``n cases``: a case is one setting, data set, imbalance and fraction."""
    return f"{n} case{'' if n == 1 else 's'}"


def _where(rows: pd.DataFrame, mask: pd.Series) -> str:
    """Name the settings / data sets / fractions of the rows in ``mask``, briefly."""
    parts = []
    for (setting, dataset, imb), g in rows[mask].groupby(["setting", "dataset", "imbalance"]):
        fr = ", ".join(percent(f) for f in sorted(g["fraction"]))
        extra = "" if imb == "none" else f" imbalance {imb}"
        parts.append(f"{setting} on {dataset}{extra} at {fr}")
    return "; ".join(parts)


def _same(a: object, b: object) -> bool | None:
    """Whether two table entries measured the same value; None when either is unmeasured."""
    if not (isinstance(a, Interval) and a.n > 0 and isinstance(b, Interval) and b.n > 0):
        return None
    return repr((a.mean, a.lo, a.hi, a.n)) == repr((b.mean, b.lo, b.hi, b.n))  # NaN == NaN


def _repeats(rows: pd.DataFrame) -> dict[object, object]:
    """Rows that repeat an earlier row: same data set, imbalance and fraction, and every
    effect both measured identical (e.g. a search that chose the preset gives the preset's
    networks; one of the two directories may have run a control the other did not).
    Row index -> the index of the row it repeats."""
    out: dict[object, object] = {}
    effects = [c for c in rows.columns if c not in _KEYS]
    kept: list[object] = []
    for i, r in rows.iterrows():
        for j in kept:
            o = rows.loc[j]
            if (r["dataset"], r["imbalance"], r["fraction"]) != (
                o["dataset"],
                o["imbalance"],
                o["fraction"],
            ):
                continue
            same = [_same(r[c], o[c]) for c in effects]
            if any(x is True for x in same) and not any(x is False for x in same):
                out[i] = j
                break
        else:
            kept.append(i)
    return out


def _merged(rows: pd.DataFrame, column: str) -> list[object]:
    """``column`` of each counted row, taken from a repeat of it where the row itself did
    not measure it (one directory ran a control the identical other did not)."""
    repeats = _repeats(rows)
    out = []
    for i in (i for i in rows.index if i not in repeats):
        values = [rows.loc[i, column], *(rows.loc[k, column] for k, j in repeats.items() if j == i)]
        measured = [v for v in values if isinstance(v, Interval) and v.n > 0]
        out.append(measured[0] if measured else values[0])
    return out


def _counted(rows: pd.DataFrame) -> pd.Series:
    """True for the rows a claim counts: all but the repeats (:func:`_repeats`)."""
    return pd.Series(~rows.index.isin(list(_repeats(rows))), index=rows.index)


def _judge(rows: pd.DataFrame, column: str, rule: Rule) -> tuple[list[str], list[int | None]]:
    """Outcome of every row's ``column`` effect under ``rule`` (:mod:`analysis.outcomes`),
    Holm-corrected over the counted rows (a repeat takes its original's), and for the
    undetermined ones about how many seeds would decide them."""
    repeats = _repeats(rows)
    counted = [i for i in rows.index if i not in repeats]
    effects = {i: rows.loc[i, column] for i in rows.index}
    ps = [effects[i].p_value if isinstance(effects[i], Interval) else math.nan for i in counted]
    significant = dict(zip(counted, holm(ps), strict=True))
    outcomes, needed = {}, {}
    for i in counted:
        iv = effects[i]
        if not isinstance(iv, Interval) or iv.n == 0:
            outcomes[i], needed[i] = UNDETERMINED, None
            continue
        outcomes[i] = classify(iv.mean, iv.lo, iv.hi, iv.n, rule, significant[i])
        if outcomes[i] != UNDETERMINED:
            needed[i] = None
        elif iv.n < 2:
            needed[i] = TOO_FEW  # no spread to go by: more seeds whose sleep acted first
        else:
            needed[i] = seeds_to_decide(iv.mean, iv.sd, iv.n, rule)
    for i, j in repeats.items():
        outcomes[i], needed[i] = outcomes[j], needed[j]
    return [outcomes[i] for i in rows.index], [needed[i] for i in rows.index]


#: ``needed`` of an undetermined case with fewer than two seeds: nothing to extrapolate.
TOO_FEW = -1


def _needed_text(needed: Sequence[int | None], outcomes: Sequence[str]) -> list[str]:
    """Table entries: ``~12`` seeds to decide an undetermined case, ``> 200``, or empty."""
    out = []
    for k, o in zip(needed, outcomes, strict=True):
        if o != UNDETERMINED:
            out.append("")
        elif k == TOO_FEW:
            out.append("one seed: no spread yet")
        else:
            out.append(f"~{k}" if k is not None else "> 200")
    return out


def _verdict(
    rows: pd.DataFrame, outcomes: Sequence[str], what: str, supporting: str = ""
) -> tuple[str, str]:
    """The verdict over a claim's cases, and the sentence with its counts.

    *supported*: every case as claimed; *refuted*: none as claimed and every case decided
    against (smaller, below the claimed size, no effect or the opposite); *not supported*:
    none as claimed, some undetermined; *only when ...*: some cases as claimed, named (or
    described by ``supporting``). A row identical to an earlier one (:func:`_repeats`) is
    one case, not two.
    """
    if rows.empty:
        return "not tested", "No results directory has cells for this claim."
    repeats = _repeats(rows)
    keep = [i not in repeats for i in rows.index]
    counted = [o for o, k in zip(outcomes, keep, strict=True) if k]
    n, n_ok = len(counted), sum(o == AS_CLAIMED for o in counted)
    n_open = sum(o == UNDETERMINED for o in counted)
    why = f"Of {_cases(n)} tested: {count_text(counted)}. *As claimed* means {what}."
    if n_ok == n:
        verdict = "supported"
    elif n_ok == 0:
        verdict = "refuted" if n_open == 0 else "not supported"
    else:
        ok = pd.Series([o == AS_CLAIMED for o in outcomes], index=rows.index) & pd.Series(
            keep, index=rows.index
        )
        verdict = f"only {supporting or 'when ' + _where(rows, ok)}"
    if repeats:
        pairs = sorted(
            f"{rows.loc[i, 'setting']} = {rows.loc[j, 'setting']} on {rows.loc[i, 'dataset']} "
            f"at {percent(rows.loc[i, 'fraction'])}"
            for i, j in repeats.items()
        )
        k = len(repeats)
        why += f" ({k} identical repeat{'' if k == 1 else 's'} counted once: {'; '.join(pairs)}.)"
    return verdict, why


def _noop_why(metrics: pd.DataFrame, rows: pd.DataFrame) -> str:
    """A sentence: how many of the cases' chosen sleeps were no-ops, and what was done."""
    counts = noop_counts(metrics[metrics["setting"].isin(rows["setting"])], _KEYS)
    if counts.empty:
        return ""
    index = pd.MultiIndex.from_frame(rows[_KEYS])
    c = counts.reindex(index).fillna(0).sum()
    cells, noop, replaced = int(c["cells"]), int(c["noop"]), int(c["replaced"])
    text = (
        f" Judged on sleeps that acted: {noop} of {cells} cells' chosen sleeps changed no "
        "weight (no-ops, never counted as sleep)"
    )
    if noop:
        text += (
            f"; {replaced} of them are judged on the best search trial that acted "
            f"(chosen on validation), {noop - replaced} left out (no acting trial evaluated)"
        )
    if int(c["unknown"]):
        text += f"; {int(c['unknown'])} sleeps from before the bookkeeping are of unknown effect"
    return text + "."


def _undetermined_why(outcomes: Sequence[str], needed: Sequence[int | None]) -> str:
    ks = [k for o, k in zip(outcomes, needed, strict=True) if o == UNDETERMINED]
    few = sum(k == TOO_FEW for k in ks)
    text = (
        f" {few} undetermined case{'' if few == 1 else 's'} rest{'s' if few == 1 else ''} on "
        "one seed whose sleep acted: no spread to say how many would decide."
        if few
        else ""
    )
    ks = [k for k in ks if k != TOO_FEW]
    if not ks:
        return text
    known = sorted(k for k in ks if k is not None)
    if not known:
        return text + (
            " The undetermined cases would not be decided by any number of seeds up to 200."
        )
    span = f"{known[0]}" if known[0] == known[-1] else f"{known[0]}-{known[-1]}"
    more = f" ({len(ks) - len(known)} not within 200)" if len(known) < len(ks) else ""
    return text + (
        f" At their present spread the undetermined cases would need about {span} seeds "
        f"to decide{more} (uncorrected; somewhat more under Holm)."
    )


def _cell(iv: Interval | float, scale: float = 100.0, sign: bool = True) -> str:
    return iv.text(scale, sign) if isinstance(iv, Interval) else "n/a"


def _seeds(row: pd.Series, cols: Sequence[str]) -> int:
    return max((row[c].n for c in cols if isinstance(row[c], Interval)), default=0)


def _recipes(metrics: pd.DataFrame, rows: pd.DataFrame) -> set[str]:
    """The training recipes of the settings in a claim's ``rows`` (empty when unknown)."""
    if "recipe" not in metrics.columns:
        return set()
    return set(metrics.loc[metrics["setting"].isin(rows["setting"]), "recipe"])


def _trend(rows: pd.DataFrame, column: str) -> str:
    """A sentence on how the effect moves with the training fraction, per setting with at
    least three fractions (Spearman's rank correlation of the means)."""
    parts = []
    for (setting, dataset), g in rows.groupby(["setting", "dataset"]):
        means = [(f, iv.mean) for f, iv in zip(g["fraction"], g[column], strict=True)
                 if isinstance(iv, Interval) and math.isfinite(iv.mean)]  # fmt: skip
        if len(means) < 3:
            continue
        rho = stats.spearmanr(*zip(*means, strict=True)).statistic
        if abs(rho) < 0.5:
            continue
        lo, hi = min(means), max(means)
        way = "grows" if rho > 0 else "shrinks"
        parts.append(
            f"{setting} on {dataset}: the gain {way} with the training fraction (Spearman "
            f"{rho:+.2f}; {100 * lo[1]:+.1f} points at {percent(lo[0])}, "
            f"{100 * hi[1]:+.1f} at {percent(hi[0])})"
        )
    return (" Trend: " + "; ".join(parts) + ".") if parts else ""


def _near_chance_support(rows: pd.DataFrame, outcomes: Sequence[str]) -> str:
    """``where the baseline is near chance (...)`` when every supporting case's baseline
    is, else empty (the verdict then names the cases)."""
    ok = [o == AS_CLAIMED for o in outcomes]
    low = rows["baseline"].map(lambda b: isinstance(b, Interval) and b.mean < NEAR_CHANCE)
    if any(ok) and all(lw for lw, k in zip(low, ok, strict=True) if k):
        where = _where(rows, pd.Series(ok, index=rows.index))
        return f"where the baseline is near chance (< {100 * NEAR_CHANCE:.0f} %): {where}"
    return ""


def _input_ablation(metrics: pd.DataFrame, rows: pd.DataFrame) -> str:
    """How much of the gain needs image structure: the gain of sleep on uniform noise
    beside that of the same recipe's image-based sleep at the same cells."""
    if "sleep_input" not in metrics.columns:
        return ""
    first = metrics.groupby("setting")[["sleep_input", "recipe"]].first()
    noise = set(first.index[first["sleep_input"] == "noise"])
    parts = []
    for _, r in rows[rows["setting"].isin(noise)].iterrows():
        recipe = first.loc[r["setting"], "recipe"]
        same = rows[
            ~rows["setting"].isin(noise)
            & (rows["dataset"] == r["dataset"])
            & (rows["fraction"] == r["fraction"])
            & (rows["setting"].map(first["recipe"]) == recipe)
        ]
        for _, o in same.iterrows():
            parts.append(
                f"{r['dataset']} at {percent(r['fraction'])}: {_cell(r['sleep - baseline'])} on "
                f"noise ({r['setting']}) against {_cell(o['sleep - baseline'])} on images "
                f"({o['setting']})"
            )
    return (" Input ablation (sleep on uniform noise): " + "; ".join(parts) + ".") if parts else ""


def _noops(metrics: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """The no-op column of a claim's table: per case, no-op sleeps of its cells."""
    counts = noop_counts(metrics[metrics["setting"].isin(rows["setting"])], _KEYS)
    out = []
    for key in rows[_KEYS].itertuples(index=False):
        key = tuple(key)
        out.append(noop_text(counts.loc[key]) if key in counts.index else "n/a")
    return out


def _table(
    rows: pd.DataFrame,
    cols: dict,
    outcome: Sequence[str],
    signed: dict[str, bool] | None = None,
    needed: Sequence[int | None] | None = None,
    noops: Sequence[str] | None = None,
    primary: str | None = None,
) -> pd.DataFrame:
    """Text table: setting, data set, imbalance, fraction, seeds, no-op sleeps, effects,
    outcome, and the seeds that would decide an undetermined case."""
    signed = signed or {}
    out = rows[_KEYS].copy()
    out["fraction"] = [percent(f) for f in rows["fraction"]]
    # the seeds behind the judged effect (a no-op without an acting trial has none)
    judged = [primary] if primary else list(cols)
    out["seeds"] = [_seeds(r, judged) for _, r in rows.iterrows()]
    if noops is not None:
        out["no-op sleeps"] = list(noops)
    for c in cols:
        sign = signed.get(c, not (c.startswith("baseline") or c == "baseline"))
        out[c] = [_cell(v, sign=sign) for v in rows[c]]
    out["outcome"] = list(outcome)
    if needed is not None:
        out["seeds to decide"] = _needed_text(needed, outcome)
    return out
