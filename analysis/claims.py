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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from brainsleep.formats import load_weights
from brainsleep.sparseness import weight_hoyer

from .noop import (
    ACTED,
    ACTED_COLUMN,
    ACTED_FINETUNE,
    noop_counts,
    noop_text,
    sleep_acted,
    with_acted_stages,
)
from .outcomes import (
    AGAINST,
    AS_CLAIMED,
    HURTS,
    NO_EFFECT,
    UNDETERMINED,
    Rule,
    classify,
    count_text,
    holm,
    p_value,
    seeds_to_decide,
)
from .results import Results, _row_cell_ids, load_results
from .timing import wall_seconds, wall_sum_text

#: Confidence level of every interval in the report.
LEVEL = 0.95
#: Training fractions the paper calls "limited" (claim 1); above it, claim 2 applies.
LIMITED_MAX = 0.10
#: The size of the paper's limited-data gain: 20-30 accuracy points.
CLAIMED_GAIN = 0.20
#: "A little" accuracy lost to sleep above 10 % (claim 2): at most 5 points.
SMALL_COST = 0.05
#: Below this accuracy a network is near chance on 10 classes: silence, not a sparse code.
NEAR_CHANCE = 0.20

STATEMENTS: dict[str, str] = {
    "limited": "Sleep improves accuracy by 20-30 points when trained on 0.5-10 % of the data.",
    "recovery": "Above 10 % of the data sleep costs a little accuracy; brief fine-tuning "
    "recovers it.",
    "balance": "Sleep makes classification more balanced on imbalanced data.",
    "sparsity": "Sleep makes network responses (activations) and synapses sparser.",
}

#: How each claim judges its primary effect (:mod:`analysis.outcomes`).
RULES: dict[str, Rule] = {
    "limited": Rule(size=CLAIMED_GAIN, sign=1),  # sleep - baseline, accuracy
    "recovery": Rule(size=0.0, sign=-1),  # a cost: sleep - baseline below 0
    "balance": Rule(size=0.0, sign=1),  # balanced accuracy
    "sparsity": Rule(size=0.0, sign=1),  # population sparseness, near-zero weights
}

#: Where each claim and threshold comes from. The abstract is quoted; the rest is labelled.
ABSTRACT = "arXiv 2402.10956v1, abstract"
SOURCES: dict[str, str] = {
    "limited": (
        f'"We found a significant boost in accuracy after the sleep phase for models trained '
        f'with limited data in the range of 0.5-10% of total MNIST or Fashion MNIST datasets" '
        f"({ABSTRACT}). The size, 20-30 points, is not in the abstract: it comes from summaries "
        'of the paper (e.g. its TL;DR: "20-30% accuracy gains for 0.5-10% data") and from '
        "the paper's figures; the 20-point threshold is that."
    ),
    "recovery": (
        f'"When more than 10% of the total data was used, sleep alone had a slight negative '
        f'impact on performance, but this was remedied by fine-tuning on the original data" '
        f'({ABSTRACT}). "Slight" is ours to size: at most {100 * SMALL_COST:.0f} points.'
    ),
    "balance": (
        'Not in the abstract (only the title says "limited or unbalanced"): from summaries '
        'of the paper ("Sleep also improves class balance").'
    ),
    "sparsity": (
        'Not in the abstract: from summaries of the paper ("producing sparser '
        'representations"). The measures are ours (see the rule).'
    ),
}


# -- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with a Student-t confidence interval.

    ``lo`` and ``hi`` are NaN when ``n < 2`` (no interval from one seed).
    """

    mean: float
    lo: float
    hi: float
    n: int
    sd: float = math.nan

    @property
    def p_value(self) -> float:
        """Two-sided t-test p-value of the mean against 0 (NaN for ``n < 2``)."""
        return p_value(self.mean, self.sd, self.n)

    @property
    def above_zero(self) -> bool:
        """The whole interval is above 0 (needs ``n >= 2``)."""
        return self.n >= 2 and self.lo > 0

    @property
    def below_zero(self) -> bool:
        """The whole interval is below 0 (needs ``n >= 2``)."""
        return self.n >= 2 and self.hi < 0

    def text(self, scale: float = 100.0, sign: bool = True, digits: int = 1) -> str:
        """``+12.3 [8.1, 16.5]`` (points by default); ``-`` in place of the interval for n = 1."""
        if self.n == 0 or not math.isfinite(self.mean):
            return "n/a"
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        m = fmt.format(self.mean * scale)
        if self.n < 2:
            return f"{m} [-]"
        return f"{m} [{fmt.format(self.lo * scale)}, {fmt.format(self.hi * scale)}]"


def mean_ci(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval:
    """Mean and two-sided Student-t confidence interval of independent values.

    Parameters
    ----------
    values : array_like, shape (n,)
        One value per seed; NaNs are dropped.
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    Interval
        ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` with the sample sd (``ddof=1``);
        ``lo = hi = mean`` when every value is the same, NaN bounds when ``n < 2``.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(x.mean())
    if n < 2:
        return Interval(m, math.nan, math.nan, n)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n))
    return Interval(m, m - half, m + half, n, sd)


# -- loading ----------------------------------------------------------------------------------


@dataclass
class Setting:
    """One results directory: a recipe, epochs and sleep-parameter choice.

    Attributes
    ----------
    name : str
        Directory name (unique among the settings of a report).
    label : str
        What differs in it, e.g. ``reference recipe, searched sleep (20 trials)``.
    results : Results
        The loaded directory.
    """

    name: str
    label: str
    results: Results
    unfinished: tuple[str, ...] = ()
    #: Wall seconds of the runs that made the directory (:func:`analysis.timing.wall_seconds`,
    #: read once when loaded), None when neither its log nor a ``timing.json`` records them.
    wall_s: float | None = None

    @property
    def config(self) -> dict:
        return (self.results.config or {}).get("config", {})

    @property
    def commands(self) -> list[str]:
        """The commands that made the directory: the first run's, then those that grew it
        (``config.json`` ``grown``: e.g. a second data set added by a later run)."""
        recorded = self.results.config or {}
        argvs = [recorded.get("argv") or []]
        argvs += [g.get("argv") or [] for g in recorded.get("grown") or ()]
        return [_command(argv) for argv in argvs]

    @property
    def command(self) -> str:
        """:attr:`commands` as one shell line (``&&`` between them)."""
        return " && ".join(self.commands)

    @property
    def unfinished_text(self) -> str:
        """``""``, or a sentence naming the cells left out (no ``done.json``)."""
        if not self.unfinished:
            return ""
        return f"Not finished, left out: {', '.join(self.unfinished)}."


def total_wall_text(settings: Sequence[Setting]) -> str:
    """One sentence: the summed wall time of the settings' runs (and which lack one)."""
    return wall_sum_text({s.name: s.wall_s for s in settings})


def _command(argv: Sequence[object]) -> str:
    args = " ".join(str(a) for a in argv[1:]) if argv and "/" in str(argv[0]) else ""
    args = args or " ".join(str(a) for a in argv)
    return f"python -m brainsleep.experiment {args}".strip()


def setting_label(config: dict) -> str:
    """Describe a run's configuration in a few words (recipe, epochs, sleep, subset)."""
    if not config:
        return "configuration unknown"
    parts = [f"{config.get('recipe', '?')} recipe"]
    if config.get("epochs"):
        parts.append(f"{config['epochs']} epochs")
    if config.get("search"):
        parts.append(f"searched sleep ({config['search']} trials)")
    else:
        parts.append(f"preset {config.get('sleep_preset', '?')}")
    if config.get("subset") not in (None, "stratified"):
        parts.append(f"{config['subset']} subset")
    if config.get("finetune_epochs") is not None:
        parts.append(f"fine-tune {config['finetune_epochs']} ep")
    return ", ".join(parts)


def load_settings(paths: Sequence[str | Path]) -> list[Setting]:
    """Load each results directory as its own setting.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories (``python -m brainsleep.experiment --out DIR``).

    Returns
    -------
    list of Setting
        In the order given; names are the directory names, made unique with the parent
        directory's name when two are equal. Only finished cells' rows are kept (cells
        without ``done.json`` are named in :attr:`Setting.unfinished`).

    Raises
    ------
    analysis.results.ResultsError
        A directory is missing or has no usable ``metrics.csv``.
    """
    out: list[Setting] = []
    names = [Path(p).resolve().name for p in paths]
    for p, name in zip(paths, names, strict=True):
        res = load_results(p)
        if names.count(name) > 1:
            name = f"{Path(p).resolve().parent.name}/{name}"
        label = setting_label((res.config or {}).get("config", {}))
        # only finished cells count: an unfinished one's stages would join the means
        # over fewer seeds than the rest; the reports name what is left out. A broken
        # timing.json stops the report here, before it writes anything.
        unfinished = tuple(res.unfinished_cells())
        out.append(Setting(name, label, res.finished(), unfinished, wall_seconds(p)))
    return out


def long_metrics(settings: Sequence[Setting]) -> pd.DataFrame:
    """Every setting's ``metrics.csv`` rows with ``setting``, ``recipe`` and ``weight_hoyer``,
    whether each cell's sleep acted, and the stages the claims are judged on.

    ``recipe`` is the run's training recipe (``config.json``; empty if unknown).
    ``sleep_acted`` (1, 0 or NaN per row) and the derived stages ``sleep_acted`` and
    ``sleep_acted_finetune``: see :mod:`analysis.noop`.

    ``weight_hoyer`` is the Hoyer sparseness of all the stage's weights (mean over layers;
    0 dense, 1 one nonzero weight). The pipeline records it in ``metrics.csv``; for rows
    written before it did, it is computed from the cell's ``weights_<stage>.npz`` when that
    is there, else NaN. A compact copy of a directory (``python -m analysis export``) has
    no weights, so it relies on the recorded column.
    """
    frames = []
    for s in settings:
        m = s.results.metrics.copy()
        m.insert(0, "setting", s.name)
        # the recipe of the baseline stage: with the strong recipe, the baseline is the bar
        m["recipe"] = ((s.results.config or {}).get("config") or {}).get("recipe", "")
        m["sleep_input"] = s.config.get("sleep_input") or "masked-mean"
        weights_of = {
            (cell.cell_id, stage): path
            for cell in s.results.cells
            for stage, path in cell.weights.items()
        }
        m["weight_hoyer"] = weight_hoyer_values(m, lambda c, st, w=weights_of: w.get((c, st)))
        searches = {cell.cell_id: cell.path / "search.json" for cell in s.results.cells}
        m[ACTED_COLUMN] = sleep_acted(m, lambda _, c, f=searches: f.get(c))
        frames.append(m)
    if not frames:
        return pd.DataFrame()
    return with_acted_stages(pd.concat(frames, ignore_index=True))


def weight_hoyer_values(
    metrics: pd.DataFrame, weights_path: Callable[[str, str], Path | None]
) -> list[float]:
    """The ``weight_hoyer`` of every metrics row: the value the pipeline recorded, else
    :func:`weight_sparseness` of the stage's weights file, else NaN.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` rows (``weight_hoyer`` may be missing or partly empty: rows written
        before the pipeline recorded it).
    weights_path : callable
        ``weights_path(cell_id, stage)``: the stage's ``weights_<stage>.npz``, or None
        when there is none.

    Returns
    -------
    list of float
        One value per row, in order.
    """
    recorded = metrics["weight_hoyer"] if "weight_hoyer" in metrics.columns else None
    values = []
    for i, key in enumerate(zip(_row_cell_ids(metrics), metrics["stage"], strict=True)):
        path = weights_path(*key)
        if recorded is not None and not pd.isna(recorded.iloc[i]):
            values.append(float(recorded.iloc[i]))
        elif path is not None and Path(path).is_file():
            values.append(weight_sparseness(path))
        else:
            values.append(math.nan)
    return values


def weight_sparseness(path: str | Path) -> float:
    """Hoyer sparseness of a weights file's matrices, averaged over layers.

    Parameters
    ----------
    path : path-like
        ``weights_<stage>.npz`` (:func:`brainsleep.formats.save_weights`).

    Returns
    -------
    float
        In [0, 1], larger is sparser (:func:`brainsleep.sparseness.weight_hoyer`, what the
        pipeline records as ``weight_hoyer``).
    """
    return weight_hoyer(load_weights(path).values())


# -- paired effects ---------------------------------------------------------------------------

_KEYS = ["setting", "dataset", "imbalance", "fraction"]


def _no_effect() -> pd.DataFrame:
    """An empty effect table with the same index names as a full one (so joins keep them)."""
    index = pd.MultiIndex.from_tuples([], names=_KEYS)
    return pd.DataFrame({"effect": pd.Series([], index=index, dtype=object)})


def paired(metrics: pd.DataFrame, stage: str, reference: str, value: str) -> pd.DataFrame:
    """Per-seed difference ``value[stage] - value[reference]`` within each cell, over seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        :func:`long_metrics` rows.
    stage, reference : str
        Stages compared (e.g. ``"sleep"`` vs ``"baseline"``).
    value : str
        Metric column.

    Returns
    -------
    pandas.DataFrame
        Index ``setting, dataset, imbalance, fraction``; column ``effect`` holding an
        :class:`Interval` over the seeds that have both stages. Empty when none has.
    """
    if value not in metrics.columns:
        return _no_effect()
    sub = metrics[metrics["stage"].isin([stage, reference])]
    wide = sub.pivot_table(index=[*_KEYS, "seed"], columns="stage", values=value, aggfunc="mean")
    if stage not in wide.columns or reference not in wide.columns:
        return _no_effect()
    diff = (wide[stage] - wide[reference]).dropna()
    if diff.empty:
        return _no_effect()
    return diff.groupby(level=_KEYS).agg(mean_ci).rename("effect").to_frame()


def level_of(metrics: pd.DataFrame, stage: str, value: str) -> pd.DataFrame:
    """Mean and interval over seeds of one stage's ``value`` (column ``effect``)."""
    sub = metrics[metrics["stage"] == stage].dropna(subset=[value])
    if sub.empty:
        return _no_effect()
    return sub.groupby(_KEYS)[value].agg(mean_ci).rename("effect").to_frame()


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


def percent(fraction: float) -> str:
    """A training fraction as a percentage with 3 significant digits: ``8.33 %``."""
    return f"{100 * fraction:.3g} %"


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
        needed[i] = (
            seeds_to_decide(iv.mean, iv.sd, iv.n, rule) if outcomes[i] == UNDETERMINED else None
        )
    for i, j in repeats.items():
        outcomes[i], needed[i] = outcomes[j], needed[j]
    return [outcomes[i] for i in rows.index], [needed[i] for i in rows.index]


def _needed_text(needed: Sequence[int | None], outcomes: Sequence[str]) -> list[str]:
    """Table entries: ``~12`` seeds to decide an undetermined case, ``> 200``, or empty."""
    out = []
    for k, o in zip(needed, outcomes, strict=True):
        if o != UNDETERMINED:
            out.append("")
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
    if not ks:
        return ""
    known = sorted(k for k in ks if k is not None)
    if not known:
        return " The undetermined cases would not be decided by any number of seeds up to 200."
    span = f"{known[0]}" if known[0] == known[-1] else f"{known[0]}-{known[-1]}"
    more = f" ({len(ks) - len(known)} not within 200)" if len(known) < len(ks) else ""
    return (
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
    why += _noop_why(metrics, rows) + _undetermined_why(outcome, needed)
    table = _table(
        rows, cols, outcome, needed=needed, noops=_noops(metrics, rows), primary="sleep - baseline"
    )
    return ClaimResult("limited", STATEMENTS["limited"], verdict, why, table)


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
    why += _noop_why(metrics, rows) + _undetermined_why(outcome, needed)
    table = _table(
        rows, cols, outcome, needed=needed, noops=_noops(metrics, rows), primary="sleep - baseline"
    )
    return ClaimResult("recovery", STATEMENTS["recovery"], verdict, why, table)


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
    why += _noop_why(metrics, rows) + _undetermined_why(outcome, needed)
    table = _table(
        rows,
        cols,
        outcome,
        needed=needed,
        noops=_noops(metrics, rows),
        primary="sleep - baseline (bal.)",
    )
    return ClaimResult("balance", STATEMENTS["balance"], verdict, why, table)


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

    def layer_mean(prefix: str):
        found = [c for c in metrics.columns if c.startswith(prefix)]
        return metrics[found].mean(axis=1) if found else math.nan

    m = metrics.assign(
        active_frac=layer_mean("active_frac_"),
        pop_sparseness=layer_mean("pop_sparseness_"),
        silent_frac=layer_mean("silent_frac_"),
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
    why += _noop_why(metrics, rows) + _undetermined_why(outcome, needed)
    table = _table(
        rows,
        cols,
        outcome,
        signed={"sleep accuracy": False},
        needed=needed,
        noops=_noops(metrics, rows),
        primary="pop. sparseness sleep - baseline",
    )
    return ClaimResult("sparsity", STATEMENTS["sparsity"], verdict, why, table)


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


def summary_levels(metrics: pd.DataFrame) -> pd.DataFrame:
    """Compact metrics table: mean and 95 % CI over seeds per setting, cell group and stage.

    Returns
    -------
    pandas.DataFrame
        Columns ``setting, dataset, imbalance, fraction, stage, metric, mean, ci_low,
        ci_high, n`` for accuracy, balanced accuracy, the hidden layers' active fractions
        and the weights' Hoyer sparseness.
    """
    values = [
        c
        for c in ("accuracy", "balanced_accuracy", "weight_hoyer")
        + tuple(c for c in metrics.columns if c.startswith("active_frac_"))
        if c in metrics.columns
    ]
    recs = []
    for keys, g in metrics.groupby([*_KEYS, "stage"], sort=True):
        for v in values:
            iv = mean_ci(g[v])
            if iv.n:
                recs.append((*keys, v, iv.mean, iv.lo, iv.hi, iv.n))
    return pd.DataFrame(recs, columns=[*_KEYS, "stage", "metric", "mean", "ci_low", "ci_high", "n"])
