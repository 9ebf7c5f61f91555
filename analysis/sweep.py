"""``python -m brainsleep.analysis sweep DIR [DIR ...] --out OUT``: what drives the effect of sleep.

The directories of a one-factor-at-a-time study (``studies/input_sweep.toml``) differ from
a base run in one setting each: the sleep input kind, the sleep length T, the masked-mean
patch size, a sleep parameter (``max_rate``, ``decay``); map runs differ in two (max_rate
and T). Each directory's *factors* are read from its ``config.json``: the fields that
differ across the directories given (:func:`run_factors`). The base is the directory whose
factors are all at their most common value.

For every factor value, data set and fraction the gain of sleep is the paired difference
sleep - baseline test accuracy within each seed's cell, summarised over seeds as mean and
Student-t 95 % CI (:func:`analysis.claims.paired`). Writes ``OUT/SWEEP.md`` (two answers
computed from the data, the tables, the figures), ``sweep.csv`` and one figure per factor:
a sensitivity curve per numeric factor, a bar chart per categorical one (the sleep input),
a heatmap per two-factor map.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from brainsleep.atomic import atomic_write_bytes
from brainsleep.cli import ANALYSIS_COMMAND

from .claims import (
    LEVEL,
    Interval,
    Setting,
    load_settings,
    mean_ci,
    paired,
    percent,
    total_wall_text,
)
from .claims_report import _ERR_KW, _md_table, _versions
from .report_command import ReadmeQuote, run_command
from .style import grid_shape, hide_unused, new_figure, note, save_figure
from .timing import wall_text

SWEEP_FILE = "SWEEP.md"
SWEEP_CSV = "sweep.csv"

#: Columns of ``sweep.csv`` (then ``imbalance``, ``setting``, ``is_base``, ``kind``).
CSV_COLUMNS = (
    "factor",
    "value",
    "dataset",
    "fraction",
    "n_seeds",
    "gain_mean",
    "ci_low",
    "ci_high",
)

#: config.json fields that are never factors: where and how a run was made, the grid axes
#: (a cell's own keys) and what changes no ANN accuracy (spike records, SNN evaluation,
#: the simulation device, the strong-recipe control).
NOT_FACTORS = frozenset(
    {
        "out",
        "progress",
        "data_dir",
        "build_root",
        "workers",
        "scheduler",
        "datasets",
        "fractions",
        "seeds",
        "imbalance",
        "device",
        "prefs",
        "record_spikes",
        "snn_eval",
        "snn_window",
        "strong",
        "sleep_params",
        "sleep_input_options",
    }
)

#: Factors the input-sweep study varies, in report order (others follow alphabetically).
FACTOR_ORDER = ("sleep_input", "sleep_steps", "patch", "max_rate", "decay")
#: The study's two-factor map (y, x).
MAP_PAIR = ("max_rate", "sleep_steps")
FACTOR_LABELS = {
    "sleep_input": "sleep input",
    "sleep_steps": "sleep length T (steps)",
    "patch": "masked-mean patch size (pixels)",
    "max_rate": "max_rate (input Poisson rate)",
    "decay": "decay (membrane potential, per step)",
}
#: Numeric factors drawn on a log axis.
LOG_FACTORS = frozenset({"max_rate", "sleep_steps"})
#: The data-free sleep input (labelled as such in the bar chart and the answers).
NOISE = "noise"
#: The reference's sleep input, which noise is compared with.
MASKED_MEAN = "masked-mean"
#: Differences this close to 0 (in accuracy, a millionth of a point) are 0: equal inputs
#: must not "differ" by rounding.
EPS = 1e-8
_GROUP = ["dataset", "imbalance", "fraction"]


# -- loading shared with analysis.remedies ----------------------------------------------------


def stage_metrics(settings: Sequence[Setting]) -> pd.DataFrame:
    """Every setting's ``metrics.csv`` rows with a ``setting`` column.

    Unlike :func:`analysis.claims.long_metrics` no weight file is read (a sweep has
    many directories and needs accuracies only).
    """
    return pd.concat(
        [s.results.metrics.assign(setting=s.name) for s in settings], ignore_index=True
    )


def config_of(setting: Setting) -> dict:
    """The run's configuration: ``config.json``'s ``config`` over the experiment's defaults.

    A field a directory's ``config.json`` lacks (written before the field existed, or a
    hand-made one) takes :class:`brainsleep.experiment.config.ExperimentConfig`'s default,
    which is what the run used.
    """
    from brainsleep.experiment.config import ExperimentConfig

    return {**ExperimentConfig().to_dict(), **setting.config}


def seed_differences(metrics: pd.DataFrame, stage: str, reference: str, value: str) -> pd.Series:
    """Per-seed ``value[stage] - value[reference]`` within each cell (not summarised).

    Returns
    -------
    pandas.Series
        Index ``setting, dataset, imbalance, fraction, seed``; empty when no cell has both.
    """
    keys = ["setting", *_GROUP, "seed"]
    sub = metrics[metrics["stage"].isin([stage, reference])]
    if value not in sub.columns or sub.empty:
        return pd.Series(dtype=float)
    wide = sub.pivot_table(index=keys, columns="stage", values=value, aggfunc="mean")
    if stage not in wide.columns or reference not in wide.columns:
        return pd.Series(dtype=float)
    return (wide[stage] - wide[reference]).dropna()


def overlaps_zero(iv: Interval) -> bool:
    """The interval reaches 0 (within :data:`EPS`); False with fewer than 2 seeds."""
    return iv.n >= 2 and iv.lo <= EPS and iv.hi >= -EPS


def above_zero(iv: Interval) -> bool:
    """The whole interval is above 0 (by more than :data:`EPS`; needs 2 seeds)."""
    return iv.n >= 2 and iv.lo > EPS


# -- factors ----------------------------------------------------------------------------------


def _hashable(v: object) -> object:
    """A config value as a hashable, comparable one (lists -> tuples, dicts -> JSON)."""
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def _sleep_param_values(config: dict, names: set[str]) -> dict[str, object]:
    """The sleep parameters ``names`` as the run used them: the model's declared default,
    the preset on top, then ``sleep_params``; ``"default"`` where that cannot be resolved
    (the model file is not here)."""
    from brainsleep.sleep.params import declared_parameters, preset

    resolved: dict[str, object] = {}
    try:
        resolved = {k: p.default for k, p in declared_parameters(config.get("model")).items()}
        if config.get("sleep_preset"):
            resolved.update(preset(config["sleep_preset"]))
    except Exception:  # any unreadable model file or unknown preset: values unknown
        resolved = {}
    resolved.update(config.get("sleep_params") or {})
    return {k: _hashable(resolved.get(k, "default")) for k in names}


def _input_option_values(config: dict, names: set[str]) -> dict[str, object]:
    """The sleep input's options ``names``: given, else the input's default; None for an
    option the run's input does not take (not applicable: matches any value)."""
    import inspect

    from brainsleep.sleep.inputs import SLEEP_INPUTS

    given = config.get("sleep_input_options") or {}
    make = SLEEP_INPUTS.get(config.get("sleep_input", MASKED_MEAN))
    params = inspect.signature(make).parameters if make is not None else {}
    out: dict[str, object] = {}
    for k in names:
        if k in given:
            out[k] = _hashable(given[k])
        elif k in params and params[k].default is not inspect.Parameter.empty:
            out[k] = _hashable(params[k].default)
        else:
            out[k] = None
    return out


def run_factors(configs: Sequence[dict]) -> list[dict[str, object]]:
    """Each run's value of every candidate factor.

    Parameters
    ----------
    configs : sequence of dict
        :func:`config_of` of each directory.

    Returns
    -------
    list of dict
        Per run: each config field that is not in :data:`NOT_FACTORS` (``model`` by file
        stem), each sleep parameter any run overrides (``sleep_params`` key, e.g.
        ``max_rate``: resolved, so the base has its preset value) and each sleep-input
        option any run sets (``sleep_input_options`` key, e.g. ``patch``; None where the
        run's input does not take it).
    """
    params = {k for c in configs for k in (c.get("sleep_params") or {})}
    options = {k for c in configs for k in (c.get("sleep_input_options") or {})}
    out = []
    for c in configs:
        v = {k: _hashable(x) for k, x in c.items() if k not in NOT_FACTORS}
        if c.get("model"):
            v["model"] = Path(str(c["model"])).stem
        v.update(_sleep_param_values(c, params))
        v.update(_input_option_values(c, options))
        out.append(v)
    return out


def _factor_order(names) -> list[str]:
    names = list(dict.fromkeys(names))
    known = [f for f in FACTOR_ORDER if f in names]
    return known + sorted(f for f in names if f not in FACTOR_ORDER)


@dataclass
class Run:
    """One directory of a sweep.

    Attributes
    ----------
    setting : Setting
        The loaded directory.
    varied : dict
        Factor -> value where it differs from the base value (empty: the base).
    role : str
        ``base``, ``factor`` (one factor varied), ``map`` (two), ``unused`` (more than
        two, or the same as an earlier directory).
    """

    setting: Setting
    varied: dict[str, object] = field(default_factory=dict)
    role: str = "base"


@dataclass
class Design:
    """What a set of directories varies: the factors, their base values, the runs."""

    factors: list[str]
    base: dict[str, object]
    runs: list[Run]

    def numeric(self, factor: str) -> bool:
        """Every known value of ``factor`` is a number."""
        vals = [self.base.get(factor), *(r.varied[factor] for r in self.of(factor))]
        vals = [v for v in vals if v is not None]
        return bool(vals) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in vals
        )

    def of(self, *factors: str) -> list[Run]:
        """The runs (base or one- or two-factor) that vary exactly ``factors``."""
        want = set(factors)
        return [r for r in self.runs if r.role != "unused" and set(r.varied) == want]

    @property
    def base_run(self) -> Run | None:
        return next((r for r in self.runs if r.role == "base"), None)

    @property
    def maps(self) -> list[tuple[str, str]]:
        """Two-factor maps (y factor, x factor), in :data:`FACTOR_ORDER`."""
        pairs = {tuple(_factor_order(r.varied)) for r in self.runs if r.role == "map"}
        return [(x[1], x[0]) for x in sorted(pairs)]


def identify_design(settings: Sequence[Setting]) -> Design:
    """The factors the directories vary, each one's base (most common) value, the runs.

    A directory with every factor at its base value is the base (the first, if several:
    the others are ``unused``); one that differs in one factor is a point of that
    factor's curve, in two a point of their map. A value of None (an option the run's
    sleep input does not take) never counts as a difference.
    """
    values = run_factors([config_of(s) for s in settings])
    keys = _factor_order(k for v in values for k in v)
    factors = [k for k in keys if len({v.get(k) for v in values} - {None}) > 1]
    base = {}
    for f in factors:
        counts = Counter(v.get(f) for v in values if v.get(f) is not None)
        base[f] = counts.most_common(1)[0][0]
    runs: list[Run] = []
    seen: set[str] = set()
    for s, v in zip(settings, values, strict=True):
        varied = {f: v[f] for f in factors if v.get(f) is not None and v[f] != base[f]}
        key = json.dumps(sorted((k, str(x)) for k, x in varied.items()))
        role = {0: "base", 1: "factor", 2: "map"}.get(len(varied), "unused")
        if key in seen:
            role = "unused"
        seen.add(key)
        runs.append(Run(s, varied, role))
    return Design(factors, base, runs)


# -- the gains --------------------------------------------------------------------------------


def sweep_table(design: Design, metrics: pd.DataFrame) -> pd.DataFrame:
    """The paired gain of sleep per factor value, data set, imbalance and fraction.

    Returns
    -------
    pandas.DataFrame
        :data:`CSV_COLUMNS` then ``imbalance``, ``setting``, ``is_base`` and ``kind``
        (``factor``: a one-factor curve, base included; ``map``: a two-factor grid, the
        base and the one-factor runs of its factors included, ``value`` the pair
        ``(y, x)``). Gains in accuracy (1 = 100 points).
    """
    gains = paired(metrics, "sleep", "baseline", "accuracy")["effect"]
    # the gain on the validation split: what a "best" setting is chosen on
    val_gains = paired(metrics, "sleep", "baseline", "val_accuracy")["effect"]
    recs = []

    def add(kind: str, factor: str, value: object, run: Run) -> None:
        if run.setting.name not in gains.index.get_level_values("setting"):
            return
        for (ds, imb, frac), iv in gains.xs(run.setting.name, level="setting").items():
            recs.append(
                {
                    "factor": factor,
                    "value": value,
                    "dataset": ds,
                    "fraction": frac,
                    "n_seeds": iv.n,
                    "gain_mean": iv.mean,
                    "ci_low": iv.lo,
                    "ci_high": iv.hi,
                    "imbalance": imb,
                    "setting": run.setting.name,
                    "is_base": run.role == "base",
                    "kind": kind,
                    "val_gain_mean": _mean_of(val_gains.get((run.setting.name, ds, imb, frac))),
                }
            )

    base = design.base_run
    for f in design.factors:
        runs = design.of(f)
        if not runs:
            continue
        for r in ([base] if base else []) + runs:
            add("factor", f, r.varied.get(f, design.base[f]), r)
    for y, x in design.maps:
        runs = ([base] if base else []) + design.of(y) + design.of(x) + design.of(y, x)
        for r in runs:
            add(
                "map",
                f"{y} x {x}",
                (r.varied.get(y, design.base[y]), r.varied.get(x, design.base[x])),
                r,
            )
    cols = [*CSV_COLUMNS, "imbalance", "setting", "is_base", "kind", "val_gain_mean"]
    return pd.DataFrame(recs, columns=cols)


def _mean_of(iv: object) -> float:
    return iv.mean if isinstance(iv, Interval) and iv.n else np.nan


def value_text(v: object, digits: int = 6) -> str:
    """A factor value for tables and ticks: numbers to ``digits`` significant digits,
    pairs as ``y x x``."""
    if isinstance(v, tuple):
        return " x ".join(value_text(x, digits) for x in v)
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _sorted(values) -> list:
    """Values in increasing order, or as given when they do not compare (mixed types)."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return values


def _ordered_values(rows: pd.DataFrame, numeric: bool) -> list:
    vals = list(dict.fromkeys(rows["value"]))
    if numeric:
        return _sorted(vals)
    base = list(dict.fromkeys(rows.loc[rows["is_base"], "value"]))
    return base + [v for v in vals if v not in base]


def sensitivity(table: pd.DataFrame) -> pd.DataFrame:
    """Per factor, the largest range of mean gains over its values in any one group.

    Returns
    -------
    pandas.DataFrame
        One row per factor with two or more measured values: ``factor``, ``range``,
        ``dataset``, ``imbalance``, ``fraction`` (the group where the range is largest),
        ``low_value``, ``low``, ``high_value``, ``high``, ``n_values``; sorted by range,
        largest first.
    """
    recs = []
    one = table[(table["kind"] == "factor") & np.isfinite(table["gain_mean"].astype(float))]
    for factor, g in one.groupby("factor", sort=False):
        best = None
        for (ds, imb, frac), h in g.groupby(_GROUP, sort=True):
            if h["value"].nunique() < 2:
                continue
            lo, hi = h.loc[h["gain_mean"].idxmin()], h.loc[h["gain_mean"].idxmax()]
            rec = {
                "factor": factor,
                "range": hi["gain_mean"] - lo["gain_mean"],
                "dataset": ds,
                "imbalance": imb,
                "fraction": frac,
                "low_value": lo["value"],
                "low": lo["gain_mean"],
                "high_value": hi["value"],
                "high": hi["gain_mean"],
                "n_values": h["value"].nunique(),
            }
            if best is None or rec["range"] > best["range"]:
                best = rec
        if best is not None:
            recs.append(best)
    cols = ["factor", "range", "dataset", "imbalance", "fraction"]
    cols += ["low_value", "low", "high_value", "high", "n_values"]
    out = pd.DataFrame(recs, columns=cols)
    return out.sort_values("range", ascending=False, kind="stable").reset_index(drop=True)


def _group_text(ds: str, imb: str, frac: float) -> str:
    return f"{ds}{'' if imb == 'none' else f' imbalance {imb}'} at {percent(frac)}"


def sensitivity_answer(sens: pd.DataFrame) -> str:
    """One sentence: the factor the gain is most sensitive to (largest range of means)."""
    if sens.empty:
        return "Most sensitive factor: not measured (no factor has two measured values)."
    top = sens.iloc[0]
    text = (
        f"The gain is most sensitive to {top['factor']}: its mean gain spans "
        f"{100 * top['range']:.1f} points over its values "
        f"({_group_text(top['dataset'], top['imbalance'], top['fraction'])}: "
        f"{100 * top['low']:+.1f} at {value_text(top['low_value'])}, "
        f"{100 * top['high']:+.1f} at {value_text(top['high_value'])})"
    )
    if len(sens) > 1:
        rest = ", ".join(f"{r.factor} {100 * r.range:.1f}" for r in sens.iloc[1:].itertuples())
        text += f"; the other factors span {rest} points"
    else:
        text += "; no other factor was measured"
    return text + "."


def where_answer(table: pd.DataFrame) -> str:
    """One sentence per group: how many settings gain with a CI above 0, and the best one.

    A setting is one results directory (the base, a one-factor run or a map cell); the
    best is the largest mean gain on the validation split (chosen there, its test gain
    reported); where the runs record no validation accuracy no best is named (the largest
    test gain would be a best chosen on the test set).
    """
    rows = table.drop_duplicates(["setting", *_GROUP])
    rows = rows[np.isfinite(rows["gain_mean"].astype(float))]
    if rows.empty:
        return "Not measured (no directory has a paired gain)."
    parts = []
    for (ds, imb, frac), g in rows.groupby(_GROUP, sort=True):
        with_ci = g[g["n_seeds"] >= 2]
        above = int((with_ci["ci_low"] > 0).sum())
        text = (
            f"{_group_text(ds, imb, frac)}: {above} of {len(with_ci)} settings (with 2 or "
            f"more seeds) gain with the {100 * LEVEL:.0f} % CI above 0"
        )
        val = g["val_gain_mean"].astype(float) if "val_gain_mean" in g else pd.Series(np.nan)
        if val.notna().all():
            best = g.loc[val.idxmax()]
            varies = "the base" if best["is_base"] else _varied_text(table, best["setting"])
            best_ci = Interval(best["gain_mean"], best["ci_low"], best["ci_high"], best["n_seeds"])
            text += f"; the best on validation, {varies}, gains {best_ci.text()} points on test"
        else:
            text += (
                "; no best is named (the runs record no validation accuracy, and the "
                "largest test gain would be a best chosen on the test set)"
            )
        parts.append(text)
    return "; ".join(parts) + "."


def _varied_text(table: pd.DataFrame, setting: str) -> str:
    """``factor = value`` for a setting's one-factor row(s) (``y, x`` for a map cell)."""
    rows = table[(table["setting"] == setting) & ~table["is_base"].astype(bool)]
    texts = []
    for r in rows.drop_duplicates("factor").itertuples():
        if r.kind == "map":
            names = str(r.factor).split(" x ")
            values = r.value if isinstance(r.value, tuple) else (r.value,)
            texts.append(
                ", ".join(f"{n} = {value_text(v)}" for n, v in zip(names, values, strict=False))
            )
        else:
            texts.append(f"{r.factor} = {value_text(r.value)}")
    return texts[0] if texts else setting


def noise_comparison(design: Design, metrics: pd.DataFrame) -> pd.DataFrame:
    """Gain with the noise input minus gain with masked-mean, paired by seed.

    Returns
    -------
    pandas.DataFrame
        Index ``dataset, imbalance, fraction``; column ``effect``: an
        :class:`~analysis.claims.Interval` over the seeds both directories have. Empty when
        either input was not run.
    """
    runs = design.of("sleep_input") + ([design.base_run] if design.base_run else [])
    kind = {
        r.setting.name: r.varied.get("sleep_input", design.base.get("sleep_input")) for r in runs
    }
    noise = [s for s, k in kind.items() if k == NOISE]
    masked = [s for s, k in kind.items() if k == MASKED_MEAN]
    if not noise or not masked:
        return pd.DataFrame(columns=["effect"])
    gains = seed_differences(metrics, "sleep", "baseline", "accuracy")
    have = set(gains.index.get_level_values("setting")) if not gains.empty else set()
    if noise[0] not in have or masked[0] not in have:
        return pd.DataFrame(columns=["effect"])
    diff = (gains.xs(noise[0], level="setting") - gains.xs(masked[0], level="setting")).dropna()
    if diff.empty:
        return pd.DataFrame(columns=["effect"])
    return diff.groupby(level=_GROUP).agg(mean_ci).rename("effect").to_frame()


def noise_answer(comparison: pd.DataFrame) -> str:
    """One sentence: does the data-free noise input do as well as masked-mean?"""
    if comparison.empty:
        return (
            "Noise (no data) against masked-mean: not measured (both inputs, run on the "
            "same cells, are needed)."
        )
    cases = []
    outcome = Counter()
    for (ds, imb, frac), iv in comparison["effect"].items():
        if iv.n < 2:
            what = "one seed, no interval"
        elif overlaps_zero(iv):
            what = "no difference shown"
        elif iv.hi < 0:
            what = "worse"
        else:
            what = "better"
        outcome[what] += 1
        cases.append(f"{_group_text(ds, imb, frac)}: {iv.text()} ({what})")
    n = sum(outcome.values())
    every = "the one case" if n == 1 else f"all {n} cases"
    ci = f"the {100 * LEVEL:.0f} % CI of the difference in gain"
    if outcome["no difference shown"] == n:
        # an interval over 0 is absence of evidence, not evidence of equality: say how
        # large a difference the intervals still allow
        allowed = max(max(abs(iv.lo), abs(iv.hi)) for iv in comparison["effect"])
        text = (
            f"Noise (no data) cannot be told apart from masked-mean: {ci} overlaps 0 in "
            f"{every}, but still allows differences of up to {100 * allowed:.1f} points"
        )
    elif outcome["worse"] == n:
        text = f"Noise (no data) does worse than masked-mean: {ci} is below 0 in {every}"
    elif outcome["better"] == n:
        text = f"Noise (no data) does better than masked-mean: {ci} is above 0 in {every}"
    else:
        counts = ", ".join(f"{k} in {v}" for k, v in outcome.items())
        text = f"Noise (no data) does not consistently match masked-mean ({counts} of {n} cases)"
    return f"{text} (noise - masked-mean, points: {'; '.join(cases)})."


# -- figures ----------------------------------------------------------------------------------


def _fraction_colors(fractions: Sequence[float]) -> dict[float, tuple]:
    cmap = colormaps["viridis"]
    n = max(len(fractions) - 1, 1)
    return {f: cmap(0.85 * i / n) for i, f in enumerate(sorted(fractions))}


def _errors(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Means and (2, n) half widths in points (0 where there is no interval)."""
    m = rows["gain_mean"].to_numpy(float)
    lo = np.nan_to_num(m - rows["ci_low"].to_numpy(float))
    hi = np.nan_to_num(rows["ci_high"].to_numpy(float) - m)
    return 100 * m, 100 * np.vstack([lo, hi])


def _panels(
    rows: pd.DataFrame, keys: list[str], sort: bool = True, **kw
) -> tuple[Figure, list, list]:
    """A figure with one panel per group of ``rows`` (``sort=False``: in row order)."""
    groups = list(rows.groupby(keys, sort=sort))
    fig, axes = new_figure(*grid_shape(max(len(groups), 1)), **kw)
    hide_unused(axes, max(len(groups), 1))
    if not groups:
        note(axes[0], "not measured")
    return fig, axes, groups


def _title(ds: str, imb: str) -> str:
    return ds if imb == "none" else f"{ds}, imbalance {imb}"


def plot_curve(table: pd.DataFrame, factor: str, base_value: object) -> Figure:
    """Gain of sleep against a numeric factor's value, one line per fraction.

    One panel per data set (and imbalance); error bars are the 95 % CI over seeds; the
    base value is marked with a dashed line; log x for :data:`LOG_FACTORS`.
    """
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    fig, axes, groups = _panels(rows, ["dataset", "imbalance"], sharey=True)
    colors = _fraction_colors(rows["fraction"].unique())
    for ax, ((ds, imb), g) in zip(axes, groups, strict=False):
        for frac, h in g.groupby("fraction"):
            h = h.assign(x=h["value"].astype(float)).sort_values("x")
            y, err = _errors(h)
            ax.errorbar(
                h["x"], y, yerr=err, fmt="-o", color=colors[frac], label=percent(frac), **_ERR_KW
            )
        xs = np.sort(g["value"].astype(float).unique())
        if factor in LOG_FACTORS and xs.min() > 0:
            ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs], rotation=30)
        ax.minorticks_off()
        if isinstance(base_value, int | float):
            ax.axvline(float(base_value), color="#999999", ls="--", lw=1)
            ax.text(
                float(base_value),
                0.98,
                " base",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=7,
                color="#555555",
            )
        ax.axhline(0, color="#999999", ls=":", lw=1)
        ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
        ax.set_ylabel("sleep - baseline (points)")
        ax.set_title(_title(ds, imb), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(title="fraction", fontsize=7, title_fontsize=7)
    fig.suptitle(f"Gain of sleep vs {factor}: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def category_label(factor: str, value: object, base_value: object) -> str:
    """Tick label of a categorical value: the noise input is marked as data-free."""
    text = value_text(value)
    if factor == "sleep_input" and value == NOISE:
        text += "\n(no data)"
    if value == base_value:
        text += "\n(base)"
    return text


def plot_categories(table: pd.DataFrame, factor: str, base_value: object) -> Figure:
    """Gain of sleep per value of a categorical factor (the sleep input): grouped bars.

    One panel per data set (and imbalance), one bar per fraction, 95 % CI error bars.
    The data-free ``noise`` input is hatched and labelled ``(no data)`` in red.
    """
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    fig, axes, groups = _panels(rows, ["dataset", "imbalance"], panel_size=(6.0, 3.6))
    colors = _fraction_colors(rows["fraction"].unique())
    values = _ordered_values(rows, numeric=False)
    fractions = sorted(rows["fraction"].unique())
    width = 0.8 / max(len(fractions), 1)
    for ax, ((ds, imb), g) in zip(axes, groups, strict=False):
        for j, frac in enumerate(fractions):
            h = g[g["fraction"] == frac].set_index("value").reindex(values)
            y, err = _errors(h)
            x = np.arange(len(values)) + (j - (len(fractions) - 1) / 2) * width
            bars = ax.bar(x, y, width, yerr=err, color=colors[frac], label=percent(frac), capsize=2)
            for bar, v in zip(bars, values, strict=True):
                if factor == "sleep_input" and v == NOISE:
                    bar.set_hatch("//")
                    bar.set_edgecolor("#d62728")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([category_label(factor, v, base_value) for v in values], fontsize=8)
        for tick, v in zip(ax.get_xticklabels(), values, strict=True):
            if factor == "sleep_input" and v == NOISE:
                tick.set_color("#d62728")
                tick.set_fontweight("bold")
        ax.axhline(0, color="#999999", ls=":", lw=1)
        ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
        ax.set_ylabel("sleep - baseline (points)")
        ax.set_title(_title(ds, imb), fontsize=9)
        ax.legend(title="fraction", fontsize=7, title_fontsize=7)
    fig.suptitle(f"Gain of sleep per {factor}: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def plot_map(table: pd.DataFrame, pair: tuple[str, str], base: dict) -> Figure:
    """Mean gain of sleep on a two-factor grid (``pair`` = y factor, x factor).

    One panel per data set, imbalance and fraction; each cell is annotated with its mean
    gain in points, cells not run are grey, the base cell is outlined.
    """
    y_f, x_f = pair
    rows = table[(table["kind"] == "map") & (table["factor"] == f"{y_f} x {x_f}")]
    rows = rows.assign(y=[v[0] for v in rows["value"]], x=[v[1] for v in rows["value"]])
    fig, axes, groups = _panels(rows, _GROUP, panel_size=(4.6, 3.8))
    xs, ys = _sorted(rows["x"].unique()), _sorted(rows["y"].unique())
    finite = rows["gain_mean"].astype(float).abs()
    vmax = 100 * float(finite.max()) if finite.notna().any() and finite.max() > 0 else 1.0
    cmap = colormaps["RdBu"].with_extremes(bad="#dddddd")
    for ax, ((ds, imb, frac), g) in zip(axes, groups, strict=False):
        grid = np.full((len(ys), len(xs)), np.nan)
        for r in g.itertuples():
            grid[ys.index(r.y), xs.index(r.x)] = 100 * r.gain_mean
        im = ax.imshow(grid, cmap=cmap, vmin=-vmax, vmax=vmax, origin="lower", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = grid[i, j]
                text = "not run" if np.isnan(v) else f"{v:+.1f}"
                dark = not np.isnan(v) and abs(v) > 0.6 * vmax
                color = "#ffffff" if dark else ("#777777" if np.isnan(v) else "#000000")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        if base.get(y_f) in ys and base.get(x_f) in xs:
            ax.add_patch(
                Rectangle(
                    (xs.index(base[x_f]) - 0.5, ys.index(base[y_f]) - 0.5),
                    1,
                    1,
                    fill=False,
                    lw=2,
                    ec="#000000",
                )
            )
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([value_text(v) for v in xs])
        ax.set_yticks(range(len(ys)))
        ax.set_yticklabels([value_text(v) for v in ys])
        ax.set_xlabel(FACTOR_LABELS.get(x_f, x_f))
        ax.set_ylabel(FACTOR_LABELS.get(y_f, y_f))
        ax.set_title(f"{_title(ds, imb)} at {percent(frac)}", fontsize=9)
        fig.colorbar(im, ax=ax, label="sleep - baseline (points)")
    # one panel is narrower than the title: break it there
    sep = "\n" if len(groups) == 1 else " "
    fig.suptitle(f"Mean gain of sleep over {y_f} x {x_f}{sep}(outlined: base)")
    return fig


# -- report -----------------------------------------------------------------------------------


def _figure_name(factor: str) -> str:
    return f"sweep_{factor.replace(' ', '_')}.png"


def _factor_rows(table: pd.DataFrame, factor: str, numeric: bool) -> pd.DataFrame:
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    order = {v: i for i, v in enumerate(_ordered_values(rows, numeric))}
    rows = rows.assign(_o=rows["value"].map(order)).sort_values(
        ["dataset", "imbalance", "fraction", "_o"]
    )
    return pd.DataFrame(
        {
            factor: [
                value_text(v) + (" (base)" if b else "")
                for v, b in zip(rows["value"], rows["is_base"], strict=True)
            ],
            "directory": rows["setting"],
            "data set": [
                _title(d, i) for d, i in zip(rows["dataset"], rows["imbalance"], strict=True)
            ],
            "fraction": [percent(f) for f in rows["fraction"]],
            "seeds": rows["n_seeds"],
            "gain (points)": [
                Interval(m, lo, hi, n).text()
                for m, lo, hi, n in zip(
                    rows["gain_mean"], rows["ci_low"], rows["ci_high"], rows["n_seeds"], strict=True
                )
            ],
        }
    )


def sweep_markdown(
    design: Design,
    table: pd.DataFrame,
    answers: tuple[str, str],
    settings: Sequence[Setting],
    command: str,
    figures: dict[str, str],
) -> str:
    """The text of ``SWEEP.md``."""
    sens = sensitivity(table)
    lines = [
        "# What drives the effect of sleep? One factor at a time",
        "",
        f"Generated on {time.strftime('%Y-%m-%d')} by",
        "",
        f"    {command}",
        "",
        f"from {len(settings)} results directories; versions: {_versions(settings)}. "
        "Do not edit by hand: rerun the command.",
        "",
        "The gain is sleep - baseline test accuracy, a paired difference within each cell "
        "(same data set, fraction, subset, initialisation and seed), in points: mean "
        f"[{100 * LEVEL:.0f} % CI] over seeds (Student t); `[-]` where there is one seed. "
        "Each directory's factors come from its config.json: the fields that differ "
        "across the directories given; the base is the directory with every factor at its "
        "most common value.",
        "",
        "## Answers",
        "",
        f"- **Most sensitive factor.** {answers[0]}",
        f"- **Noise vs masked-mean.** {answers[1]}",
        f"- **Where sleep helps.** {answers[2]}",
        "",
        "## Directories",
        "",
    ]
    roles = {
        "base": "base",
        "factor": "one factor",
        "map": "two factors (map)",
        "unused": "not used (varies more than two factors, or repeats another)",
    }
    lines.append(
        _md_table(
            pd.DataFrame(
                {
                    "directory": [r.setting.name for r in design.runs],
                    "role": [roles[r.role] for r in design.runs],
                    "varies": [
                        ", ".join(f"{k} = {value_text(v)}" for k, v in r.varied.items()) or "-"
                        for r in design.runs
                    ],
                    "wall time": [wall_text(r.setting.wall_s) for r in design.runs],
                }
            )
        )
    )
    lines += [f"\n`{s.name}`: {s.unfinished_text}" for s in settings if s.unfinished]
    lines += ["", total_wall_text(settings)]
    base = ", ".join(f"{f} = {value_text(design.base[f])}" for f in design.factors)
    lines += ["", f"Base values: {base or 'no factor varies'}.", "", "## Factors", ""]
    factors = _factor_order([*FACTOR_ORDER, *design.factors])
    maps = list(dict.fromkeys([*(f"{y} x {x}" for y, x in design.maps), " x ".join(MAP_PAIR)]))
    measured = set(table["factor"])
    lines.append(_md_table(_factor_summary(design, table, sens, factors, maps)))
    for f in factors:
        lines += ["", f"## {f}", ""]
        if f not in measured:
            lines.append("Not measured: no directory varies it alone.")
            continue
        if f in figures:
            lines += [f"![{figures[f]}]({figures[f]})", ""]
        lines.append(_md_table(_factor_rows(table, f, design.numeric(f))))
    for m in maps:
        lines += ["", f"## Map: {m}", ""]
        if m not in measured:
            lines.append("Not measured: no directory varies both.")
            continue
        lines += [f"![{figures[m]}]({figures[m]})", "", "Mean gain (points) per grid cell:", ""]
        lines.append(_md_table(_map_rows(table, m)))
    lines += [
        "",
        "## Files",
        "",
        f"- `{SWEEP_CSV}`: one row per factor value, data set and fraction: "
        + ", ".join(CSV_COLUMNS)
        + ", imbalance, setting (directory), is_base, kind (factor or map); gains in "
        "accuracy (1 = 100 points).",
    ]
    return "\n".join(lines) + "\n"


def _factor_summary(
    design: Design,
    table: pd.DataFrame,
    sens: pd.DataFrame,
    factors: Sequence[str],
    maps: Sequence[str],
) -> pd.DataFrame:
    """One row per factor and map: base value, values measured, largest range of means."""
    ranges = dict(zip(sens["factor"], sens["range"], strict=True))
    rows = []
    for f in [*factors, *maps]:
        sub = table[table["factor"] == f]
        is_map = f in maps
        if sub.empty:
            values = rng = "not measured"
            if f in design.factors:
                values = rng = "not measured alone (only with another factor)"
        elif is_map:
            values = f"{sub['value'].nunique()} grid cells"
            rng = "(see the map)"
        else:
            values = ", ".join(value_text(v) for v in _ordered_values(sub, design.numeric(f)))
            rng = f"{100 * ranges[f]:.1f}" if f in ranges else "one value only"
        base = "-" if is_map or f not in design.base else value_text(design.base[f])
        rows.append(
            {
                "factor": f,
                "base value": base,
                "values": values,
                "largest range of mean gain (points)": rng,
            }
        )
    return pd.DataFrame(rows)


def _map_rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = table[(table["kind"] == "map") & (table["factor"] == name)]
    y_f, x_f = name.split(" x ")
    out = []
    for (ds, imb, frac), g in rows.groupby(_GROUP, sort=True):
        for r in sorted(g.itertuples(), key=lambda r: r.value):
            out.append(
                {
                    "data set": _title(ds, imb),
                    "fraction": percent(frac),
                    y_f: value_text(r.value[0]),
                    x_f: value_text(r.value[1]),
                    "seeds": r.n_seeds,
                    "gain (points)": Interval(r.gain_mean, r.ci_low, r.ci_high, r.n_seeds).text(),
                }
            )
    return pd.DataFrame(out)


def write_sweep_report(
    paths: Sequence[str | Path], out: str | Path, command: str | None = None, log=print
) -> Path:
    """Analyse a one-factor-at-a-time sweep and write ``SWEEP.md``, ``sweep.csv`` and figures.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories of the sweep (the base among them).
    out : path-like
        Output directory (created).
    command : str, optional
        The command line stated in the report.
    log : callable
        Receives one line per file written.

    Returns
    -------
    pathlib.Path
        ``out/SWEEP.md``.

    Raises
    ------
    analysis.results.ResultsError
        A directory is unusable (nothing is written then).
    """
    settings = load_settings(paths)
    metrics = stage_metrics(settings)
    design = identify_design(settings)
    table = sweep_table(design, metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    for f in _factor_order(set(table.loc[table["kind"] == "factor", "factor"])):
        plot = plot_curve if design.numeric(f) else plot_categories
        figures[f] = _figure_name(f)
        save_figure(plot(table, f, design.base.get(f)), out / figures[f])
    for pair in design.maps:
        name = f"{pair[0]} x {pair[1]}"
        figures[name] = _figure_name(f"map_{pair[0]}_x_{pair[1]}")
        save_figure(plot_map(table, pair, design.base), out / figures[name])
    for name in figures.values():
        log(f"wrote {out / name}")
    csv = table.assign(value=[value_text(v, 12) for v in table["value"]])
    atomic_write_bytes(out / SWEEP_CSV, csv.to_csv(index=False, float_format="%.6g").encode())
    log(f"wrote {out / SWEEP_CSV}")
    answers = (
        sensitivity_answer(sensitivity(table)),
        noise_answer(noise_comparison(design, metrics)),
        where_answer(table),
    )
    if command is None:
        command = f"{ANALYSIS_COMMAND} sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    report = out / SWEEP_FILE
    text = sweep_markdown(design, table, answers, settings, command, figures)
    atomic_write_bytes(report, text.encode())
    log(f"wrote {report}")
    return report


# -- command line (shared with analysis.remedies) ---------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m brainsleep.analysis sweep``; returns the exit status."""
    return run_command(
        "sweep",
        "Sensitivity of the gain of sleep to the factors a one-factor-at-a-time sweep "
        "varies (studies/input_sweep.toml): SWEEP.md, sweep.csv and a figure per factor.",
        write_sweep_report,
        argv,
        ReadmeQuote(
            "input-sweep", "Answers", "sensitivity curves with CIs, the map, every directory"
        ),
    )
