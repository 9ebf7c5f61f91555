"""The design and the gains of a one-factor-at-a-time sweep (``studies/input_sweep.toml``).

The directories of such a study differ from a base run in one setting each: the sleep
input kind, the sleep length T, the masked-mean patch size, a sleep parameter
(``max_rate``, ``decay``); map runs differ in two (max_rate and T). Each directory's
*factors* are read from its ``config.json``: the fields that differ across the directories
given (:func:`run_factors`). The base is the directory whose factors are all at their most
common value (:func:`identify_design`).

For every factor value, data set and fraction the gain of sleep is the paired difference
sleep - baseline test accuracy within each seed's cell, summarised over seeds as mean and
Student-t 95 % CI (:func:`analysis.claims.paired`): :func:`sweep_table`. Figures:
:mod:`analysis.sweep_figures`; ``SWEEP.md`` and the command: :mod:`analysis.sweep_report`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.config_fields import ConfigRecord

from .claims import Interval, Setting, mean_ci, paired, percent

#: Columns of ``sweep.csv`` (then ``imbalance``, ``setting``, ``is_base``, ``kind``).
CSV_COLUMNS = tuple("factor value dataset fraction n_seeds gain_mean ci_low ci_high".split())

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
    hand-made one) takes the record's default (:class:`brainsleep.config_fields.ConfigRecord`),
    which is what the run used.
    """
    return {**ConfigRecord().to_dict(), **setting.config}


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


def _title(ds: str, imb: str) -> str:
    return ds if imb == "none" else f"{ds}, imbalance {imb}"


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
