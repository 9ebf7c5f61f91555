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
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(m, m - half, m + half, n)


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
    """Every setting's ``metrics.csv`` rows with ``setting``, ``recipe`` and ``weight_hoyer``.

    ``recipe`` is the run's training recipe (``config.json``; empty if unknown).

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
        weights_of = {
            (cell.cell_id, stage): path
            for cell in s.results.cells
            for stage, path in cell.weights.items()
        }
        m["weight_hoyer"] = weight_hoyer_values(m, lambda c, st, w=weights_of: w.get((c, st)))
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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


def _verdict(rows: pd.DataFrame, ok: pd.Series, what: str) -> tuple[str, str]:
    """supported (every row), not supported (none) or only when (the rows that hold).

    A row identical to an earlier one (:func:`_repeats`) is one case, not two: it is
    counted once and the sentence says which settings coincide."""
    if rows.empty:
        return "not tested", "No results directory has cells for this claim."
    repeats = _repeats(rows)
    if repeats:
        keep = ~rows.index.isin(list(repeats))
        pairs = sorted(
            f"{rows.loc[i, 'setting']} = {rows.loc[j, 'setting']} on {rows.loc[i, 'dataset']} "
            f"at {percent(rows.loc[i, 'fraction'])}"
            for i, j in repeats.items()
        )
        verdict, why = _verdict(rows[keep], ok[keep], what)
        n = len(repeats)
        return verdict, (
            f"{why} ({n} identical repeat{'' if n == 1 else 's'} counted once: {'; '.join(pairs)}.)"
        )
    n_ok, n = int(ok.sum()), len(rows)
    what = what[:1].upper() + what[1:]
    if n_ok == n:
        return (
            "supported",
            f"{what} in {'the one case' if n == 1 else f'all {n} cases'} tested.",
        )
    if n_ok == 0:
        if n == 1:
            return (
                "not supported",
                f"Not so in the one case tested ({what[:1].lower()}{what[1:]}).",
            )
        return "not supported", f"{what} in none of the {n} cases tested."
    return f"only when {_where(rows, ok)}", f"{what} in {n_ok} of {_cases(n)} tested."


def _cell(iv: Interval | float, scale: float = 100.0, sign: bool = True) -> str:
    return iv.text(scale, sign) if isinstance(iv, Interval) else "n/a"


def _seeds(row: pd.Series, cols: Sequence[str]) -> int:
    return max((row[c].n for c in cols if isinstance(row[c], Interval)), default=0)


def _recipes(metrics: pd.DataFrame, rows: pd.DataFrame) -> set[str]:
    """The training recipes of the settings in a claim's ``rows`` (empty when unknown)."""
    if "recipe" not in metrics.columns:
        return set()
    return set(metrics.loc[metrics["setting"].isin(rows["setting"]), "recipe"])


def claim_limited(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 1: sleep - baseline >= 20 points at fractions <= 10 % (balanced subsets).

    A setting supports it when the 95 % interval of the paired gain is above 0 and its
    mean is at least 20 points. The table also gives the step-matched control
    (sleep + fine-tune vs fine-tune only) and both slept networks against the strong
    recipe trained on the same subset.
    """
    cols = {
        "baseline": ("baseline", None, "accuracy"),
        "sleep - baseline": ("sleep", "baseline", "accuracy"),
        "sleep+ft - ft only": ("sleep_finetune", "finetune_only", "accuracy"),
        "sleep - strong": ("sleep", "strong", "accuracy"),
        "sleep+ft - strong": ("sleep_finetune", "strong", "accuracy"),
    }
    rows = _rows(
        metrics,
        lambda m: (m["imbalance"] == "none") & (m["fraction"] <= LIMITED_MAX + 1e-12),
        cols,
        "sleep - baseline",
    )
    if rows.empty:
        return ClaimResult("limited", STATEMENTS["limited"], *_verdict(rows, pd.Series(), ""))
    gain = rows["sleep - baseline"]
    ok = gain.map(lambda g: isinstance(g, Interval) and g.above_zero and g.mean >= CLAIMED_GAIN)
    helps = gain.map(lambda g: isinstance(g, Interval) and g.above_zero)
    hurts = gain.map(lambda g: isinstance(g, Interval) and g.below_zero)
    outcome = np.where(
        ok, "as claimed", np.where(helps, "smaller", np.where(hurts, "hurts", "unclear"))
    )
    verdict, why = _verdict(rows, ok, "the gain is >= 20 points with its 95 % CI above 0")
    low = rows["baseline"].map(lambda b: isinstance(b, Interval) and b.mean < NEAR_CHANCE)
    counted = _counted(rows)
    if int((ok & low & counted).sum()):
        why += (
            f" In {int((ok & low & counted).sum())} of them the baseline is near chance "
            f"(< {100 * NEAR_CHANCE:.0f} %: the recipe had not learnt), so sleep repairs a "
            "failed training rather than improving a trained network."
        )
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
    return ClaimResult("limited", STATEMENTS["limited"], verdict, why, _table(rows, cols, outcome))


def claim_recovery(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 2: above 10 %, sleep costs <= 5 points and fine-tuning recovers it.

    A setting supports it when sleep - baseline is negative but no worse than -5 points,
    and sleep + fine-tune is not below the step-matched fine-tune-only control (the
    interval of their difference reaches 0 or above).
    """
    cols = {
        "baseline": ("baseline", None, "accuracy"),
        "sleep - baseline": ("sleep", "baseline", "accuracy"),
        "sleep+ft - baseline": ("sleep_finetune", "baseline", "accuracy"),
        "sleep+ft - ft only": ("sleep_finetune", "finetune_only", "accuracy"),
        "sleep - strong": ("sleep", "strong", "accuracy"),
        "sleep+ft - strong": ("sleep_finetune", "strong", "accuracy"),
    }
    rows = _rows(
        metrics,
        lambda m: (m["imbalance"] == "none") & (m["fraction"] > LIMITED_MAX + 1e-12),
        cols,
        "sleep - baseline",
    )
    if rows.empty:
        return ClaimResult("recovery", STATEMENTS["recovery"], *_verdict(rows, pd.Series(), ""))

    def small_cost(g) -> bool:
        return isinstance(g, Interval) and g.n > 0 and -SMALL_COST <= g.mean < 0

    def recovered(g) -> bool:
        return isinstance(g, Interval) and g.n >= 2 and g.hi >= 0

    cost = rows["sleep - baseline"].map(small_cost)
    rec = rows["sleep+ft - ft only"].map(recovered)
    ok = cost & rec
    outcome = np.where(
        ok,
        "as claimed",
        np.where(
            ~rows["sleep+ft - ft only"].map(lambda g: isinstance(g, Interval) and g.n > 0),
            "no fine-tune",
            np.where(
                cost,
                "not recovered",
                np.where(
                    rows["sleep - baseline"].map(lambda g: isinstance(g, Interval) and g.mean >= 0),
                    "no cost",
                    "cost not small",
                ),
            ),
        ),
    )
    verdict, why = _verdict(
        rows,
        ok,
        "sleep costs 0-5 points and sleep + fine-tune matches the fine-tune-only control",
    )
    # the rule reads the mean cost; say where its interval cannot tell a small cost apart
    # from none or from a larger one
    loose = ok & rows["sleep - baseline"].map(lambda g: g.hi >= 0 or g.lo < -SMALL_COST)
    if int(loose.sum()):
        widest = max(rows.loc[loose, "sleep - baseline"], key=lambda g: g.hi - g.lo)
        where = "There" if len(rows) == 1 else f"In {int(loose.sum())} of the supporting cases"
        why += (
            f" {where} the cost's 95 % CI (widest: "
            f"{widest.text(100, True)} points) also allows no cost or one above "
            f"{100 * SMALL_COST:.0f} points: more seeds are needed to tell."
        )
    return ClaimResult(
        "recovery", STATEMENTS["recovery"], verdict, why, _table(rows, cols, outcome)
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
    classes' own accuracy (both CIs above 0).

    Balanced accuracy alone can rise with the minority classes still at 0: a baseline
    that had collapsed onto a few majority classes recovers the others. That makes the
    classification no more balanced towards the rare classes, so such a row is its own
    outcome (*majority classes only*) and does not count as support.
    """
    m = metrics.assign(minority_accuracy=minority_accuracy(metrics))
    cols = {
        "baseline bal.": ("baseline", None, "balanced_accuracy"),
        "sleep - baseline (bal.)": ("sleep", "baseline", "balanced_accuracy"),
        "sleep - baseline (minority)": ("sleep", "baseline", "minority_accuracy"),
        "sleep+ft - ft only (bal.)": ("sleep_finetune", "finetune_only", "balanced_accuracy"),
        "sleep - strong (bal.)": ("sleep", "strong", "balanced_accuracy"),
        "sleep+ft - strong (bal.)": ("sleep_finetune", "strong", "balanced_accuracy"),
    }
    rows = _rows(m, lambda d: d["imbalance"] != "none", cols, "sleep - baseline (bal.)")
    if rows.empty:
        return ClaimResult("balance", STATEMENTS["balance"], *_verdict(rows, pd.Series(), ""))
    g = rows["sleep - baseline (bal.)"]
    bal = g.map(lambda x: isinstance(x, Interval) and x.above_zero)
    hurts = g.map(lambda x: isinstance(x, Interval) and x.below_zero)
    minority = rows["sleep - baseline (minority)"].map(
        lambda x: isinstance(x, Interval) and x.above_zero
    )
    measured = rows["sleep - baseline (minority)"].map(
        lambda x: isinstance(x, Interval) and x.n > 0
    )  # per-class accuracies recorded
    ok = bal & minority
    outcome = np.where(
        ok,
        "as claimed",
        np.where(
            bal & ~measured,
            "minority not measured",
            np.where(bal, "majority classes only", np.where(hurts, "less balanced", "unclear")),
        ),
    )
    verdict, why = _verdict(
        rows, ok, "balanced accuracy and the minority classes' accuracy rise (CIs above 0)"
    )
    only_majority = bal & ~minority & measured & _counted(rows)
    if int(only_majority.sum()):
        why += (
            f" In {int(only_majority.sum())} of them balanced accuracy rose but the "
            "minority classes' accuracy did not: the gain is on majority classes of a "
            "baseline that had collapsed onto few of them."
        )
    return ClaimResult("balance", STATEMENTS["balance"], verdict, why, _table(rows, cols, outcome))


def claim_sparsity(metrics: pd.DataFrame) -> ClaimResult:
    """Claim 4: after sleep, fewer hidden units are active and the weights are sparser.

    Activity: the mean over hidden layers of the fraction of (test image, unit) pairs
    with ReLU output > 0 (``active_frac_h*``); sparser = lower. Synapses: the Hoyer
    sparseness of the weights (:func:`weight_sparseness`); sparser = higher. A setting
    supports the claim when both intervals exclude 0 in the sparser direction. Rows where
    the slept network is near chance are flagged: a silenced network is not a sparse code.
    """
    act_cols = [c for c in metrics.columns if c.startswith("active_frac_")]
    m = metrics.assign(
        active_frac=metrics[act_cols].mean(axis=1) if act_cols else math.nan,
    )
    cols = {
        "sleep accuracy": ("sleep", None, "accuracy"),
        "active frac. baseline": ("baseline", None, "active_frac"),
        "active frac. sleep - baseline": ("sleep", "baseline", "active_frac"),
        "weight Hoyer sleep - baseline": ("sleep", "baseline", "weight_hoyer"),
    }
    rows = _rows(m, lambda d: pd.Series(True, index=d.index), cols, "active frac. sleep - baseline")
    if rows.empty:
        return ClaimResult("sparsity", STATEMENTS["sparsity"], *_verdict(rows, pd.Series(), ""))
    act = rows["active frac. sleep - baseline"].map(
        lambda x: isinstance(x, Interval) and x.below_zero
    )
    wgt = rows["weight Hoyer sleep - baseline"].map(
        lambda x: isinstance(x, Interval) and x.above_zero
    )
    silent = rows["sleep accuracy"].map(lambda x: isinstance(x, Interval) and x.mean < NEAR_CHANCE)
    ok = act & wgt
    outcome = np.where(
        ok & silent,
        "sparser, near chance",
        np.where(
            ok,
            "as claimed",
            np.where(act, "activity only", np.where(wgt, "weights only", "not sparser")),
        ),
    )
    verdict, why = _verdict(rows, ok, "activity and weights both get sparser (CIs exclude 0)")
    silenced = ok & silent & _counted(rows)
    if int(silenced.sum()):
        why += (
            f" In {int(silenced.sum())} of them the slept network is near chance "
            f"(< {100 * NEAR_CHANCE:.0f} %): sparser because silenced."
        )
    return ClaimResult(
        "sparsity",
        STATEMENTS["sparsity"],
        verdict,
        why,
        _table(
            rows, cols, outcome, signed={"sleep accuracy": False, "active frac. baseline": False}
        ),
    )


def _table(
    rows: pd.DataFrame,
    cols: dict,
    outcome: np.ndarray,
    signed: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """Text table: setting, data set, imbalance, fraction, seeds, effects, outcome."""
    signed = signed or {}
    out = rows[_KEYS].copy()
    out["fraction"] = [percent(f) for f in rows["fraction"]]
    out["seeds"] = [_seeds(r, list(cols)) for _, r in rows.iterrows()]
    for c in cols:
        sign = signed.get(c, not (c.startswith("baseline") or c == "baseline"))
        out[c] = [_cell(v, sign=sign) for v in rows[c]]
    out["outcome"] = outcome
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
