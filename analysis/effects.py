"""Effects over seeds: the mean and Student-t interval of paired differences within
cells, the one interval helper every report of :mod:`analysis` uses.

Every effect is a difference taken within a cell (same data set, fraction, imbalance and
seed: the same training subset and initialisation), then summarised over seeds as mean and
a Student-t 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .outcomes import p_value

#: Confidence level of every interval in the report.
LEVEL = 0.95


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


def intervals(table: pd.DataFrame, mean: str = "mean") -> list[Interval]:
    """The :class:`Interval` of each row of a table with ``mean`` (the column named),
    ``ci_low``, ``ci_high`` and ``n_seeds`` columns, as the reports' CSV files hold them."""
    cols = [mean, "ci_low", "ci_high", "n_seeds"]
    return [Interval(*row) for row in table[cols].itertuples(index=False)]


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


def percent(fraction: float) -> str:
    """A training fraction as a percentage with 3 significant digits: ``8.33 %``."""
    return f"{100 * fraction:.3g} %"


def layer_mean(metrics: pd.DataFrame, prefix: str) -> pd.Series | float:
    """Per row, the mean over hidden layers of the columns named ``<prefix><layer>``
    (e.g. ``active_frac_h1``, ``active_frac_h2``); NaN when no such column exists."""
    found = [c for c in metrics.columns if c.startswith(prefix)]
    return metrics[found].mean(axis=1) if found else math.nan


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
