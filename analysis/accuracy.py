"""Accuracy against training fraction across stages, mean ± sd over seeds.

This is the figure the SRC claim is about: does sleep help when the ANN was trained on a
small fraction of the data, and does it add to fine-tuning? The aggregation helpers here
(:func:`aggregate_over_seeds`, :func:`stage_gain`) are reused for every metrics.csv column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
from brainsleep.formats import order_stages

from .style import grid_shape, hide_unused, new_figure, stage_color, stage_label

#: (stage, reference) pairs whose paired difference is "the gain of sleep".
DEFAULT_GAINS: tuple[tuple[str, str], ...] = (
    ("sleep", "baseline"),
    ("sleep_finetune", "finetune_only"),
)

_GROUP = ["dataset", "imbalance", "fraction"]


def aggregate_over_seeds(
    metrics: pd.DataFrame,
    value: str = "accuracy",
    by: Sequence[str] = ("dataset", "imbalance", "fraction", "stage"),
) -> pd.DataFrame:
    """Mean and standard deviation of a metrics column over seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table (one row per dataset, fraction, imbalance, seed, stage).
    value : str
        Column to aggregate.
    by : sequence of str
        Grouping columns; every other row variation (the seeds) is averaged over.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, mean, sd, n`` sorted by ``by`` (stages in the usual order when
        ``stage`` is a key). ``sd`` is the sample standard deviation (``ddof=1``) and NaN
        when ``n == 1``; ``n`` counts the non-NaN values (rows with NaN are ignored).
    """
    by = list(by)
    if value not in metrics.columns:
        raise KeyError(f"metrics has no column {value!r}")
    df = metrics[[*by, value]].dropna(subset=[value])
    g = df.groupby(by, sort=True, dropna=False)[value]
    # pandas "std" is the sample sd (ddof=1)
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["n"] = out["n"].astype(int)
    if "stage" in by:
        rank = {s: i for i, s in enumerate(order_stages(out["stage"]))}
        out = out.assign(_r=out["stage"].map(rank))
        keys = [k if k != "stage" else "_r" for k in by]
        out = out.sort_values(keys).drop(columns="_r").reset_index(drop=True)
    return out


def stage_gain(
    metrics: pd.DataFrame,
    stage: str,
    reference: str,
    value: str = "accuracy",
) -> pd.DataFrame:
    """Paired gain ``value[stage] - value[reference]`` per seed, then mean ± sd over seeds.

    The difference is taken within a cell (same dataset, imbalance, fraction, seed), so
    seed-to-seed variation of the baseline cancels; the mean of the paired differences
    equals the difference of the means when every seed has both stages.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    stage, reference : str
        Stages to compare, e.g. ``"sleep"`` and ``"baseline"``.
    value : str
        Column compared.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, imbalance, fraction, mean, sd, n``; ``sd`` sample sd
        (``ddof=1``, NaN for one seed). Empty when no seed has both stages.
    """
    keys = [*_GROUP, "seed"]
    sub = metrics[metrics["stage"].isin([stage, reference])]
    wide = sub.pivot_table(index=keys, columns="stage", values=value, aggfunc="mean")
    if stage not in wide.columns or reference not in wide.columns:
        return pd.DataFrame(columns=[*_GROUP, "mean", "sd", "n"])
    diff = (wide[stage] - wide[reference]).rename("gain").reset_index().dropna(subset=["gain"])
    if diff.empty:
        return pd.DataFrame(columns=[*_GROUP, "mean", "sd", "n"])
    return aggregate_over_seeds(diff, "gain", by=_GROUP)


def _groups(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = metrics[["dataset", "imbalance"]].drop_duplicates()
    return sorted((str(d), str(i)) for d, i in pairs.itertuples(index=False))


def group_title(dataset: str, imbalance: str) -> str:
    """Panel title of a (dataset, imbalance) group."""
    return f"{dataset}, balanced" if imbalance == "none" else f"{dataset}, imbalance {imbalance}"


def setup_fraction_axis(ax, fractions: np.ndarray) -> bool:
    """Log x axis when the fractions span a factor 10 or more; ticks at the fractions.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Panel to set up.
    fractions : numpy.ndarray
        Training fractions plotted in it.

    Returns
    -------
    bool
        Whether the axis is logarithmic.
    """
    fr = np.unique(fractions[np.isfinite(fractions)])
    use_log = fr.size > 1 and fr.min() > 0 and fr.max() / fr.min() >= 10
    if use_log:
        ax.set_xscale("log")
    if 0 < fr.size <= 12:
        ax.set_xticks(fr)
        ax.set_xticklabels([f"{v:g}" for v in fr])
        ax.minorticks_off()
    return bool(use_log)


def setup_stage_axis(ax, labels: Sequence[str], fraction: float) -> None:
    """x axis of a panel with one training fraction: one position per stage, not a fraction.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Panel whose points sit at x = 0, 1, ... (one per label).
    labels : sequence of str
        Tick label of each position.
    fraction : float
        The panel's one training fraction, named in the x label.
    """
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(f"stage (one training fraction: {fraction:g})")


def _dodge(x: np.ndarray, k: int, n: int, log: bool) -> np.ndarray:
    # Shift each stage a little sideways so error bars of different stages do not overlap.
    off = (k - (n - 1) / 2) * 0.025
    return x * (1 + off) if log else x + off * (np.ptp(x) if np.ptp(x) > 0 else 1.0)


@fill_doc
def plot_vs_fraction(
    metrics: pd.DataFrame,
    values: str | Sequence[str],
    *,
    stages: Sequence[str] | None = None,
    ylabel: str | Sequence[str] | None = None,
    scale: float = 1.0,
    title: str | None = None,
    hline: float | None = None,
    hline_label: str | None = None,
) -> Figure:
    """Metric(s) against training fraction, one line per stage, mean ± sd over seeds.

    One panel per (dataset, imbalance) group and value column: with one value the groups
    fill a grid of up to 3 columns, with several each group is a row and each value a
    column.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    values : str or sequence of str
        Column(s) to plot.
    stages : sequence of str, optional
        Stages to show (default: every stage in the table, in the usual order).
    ylabel : str or sequence of str, optional
        y label per value column (default: the column name).
    scale : float
        Multiplier for the values (100 to show fractions as %).
    %(title)s
    hline : float, optional
        Draw a dashed horizontal reference line at this (scaled) value.
    hline_label : str, optional
        Legend entry of the reference line.

    Returns
    -------
    matplotlib.figure.Figure
        Error bars: sample sd over seeds (none where there is one seed).
    """
    values = [values] if isinstance(values, str) else list(values)
    ylabels = [ylabel] * len(values) if isinstance(ylabel, str) or ylabel is None else ylabel
    stages = order_stages(metrics["stage"]) if stages is None else list(stages)
    groups = _groups(metrics)
    if len(values) == 1:
        # one metric: groups side by side in a grid (up to 3 per row)
        nrows, ncols = grid_shape(len(groups))
    else:
        nrows, ncols = len(groups), len(values)
    fig, axes = new_figure(nrows, ncols, panel_size=(5.2, 3.6))
    hide_unused(axes, len(groups) * len(values))
    for gi, (dataset, imbalance) in enumerate(groups):
        sel = metrics[(metrics["dataset"] == dataset) & (metrics["imbalance"] == imbalance)]
        for vi, value in enumerate(values):
            ax = axes[gi * len(values) + vi]
            agg = aggregate_over_seeds(sel, value)
            fractions = np.unique(agg["fraction"].dropna().to_numpy(dtype=float))
            single = fractions.size == 1  # stages side by side, not spread as fractions
            log = False if single else setup_fraction_axis(ax, fractions)
            drawn = []
            for k, stage in enumerate(stages):
                a = agg[agg["stage"] == stage].sort_values("fraction")
                if a.empty:
                    continue
                if single:
                    x = np.full(len(a), float(len(drawn)))
                    drawn.append(stage_label(stage))
                else:
                    x = _dodge(a["fraction"].to_numpy(dtype=float), k, len(stages), log)
                ax.errorbar(
                    x,
                    a["mean"] * scale,
                    yerr=a["sd"].fillna(0.0) * scale,
                    color=stage_color(stage),
                    label=stage_label(stage),
                    marker="o",
                    markersize=4,
                    capsize=3,
                    linewidth=1.4,
                )
            if hline is not None:
                ax.axhline(hline, color="#999999", linestyle="--", linewidth=1, label=hline_label)
            if single:
                setup_stage_axis(ax, drawn, fractions[0])
            else:
                ax.set_xlabel("training fraction (share of the training set)")
            ax.set_ylabel(ylabels[vi] or value)
            ax.set_title(group_title(dataset, imbalance), fontsize=10)
            ax.grid(alpha=0.3)
    if groups:
        axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title or ", ".join(values) + " vs training fraction (mean ± sd over seeds)")
    return fig


def plot_accuracy_vs_fraction(
    metrics: pd.DataFrame,
    value: str = "accuracy",
    *,
    stages: Sequence[str] | None = None,
) -> Figure:
    """Test accuracy (%) against training fraction per stage, mean ± sd over seeds.

    One panel per dataset and imbalance spec.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    value : str
        ``"accuracy"`` or ``"balanced_accuracy"``.
    stages : sequence of str, optional
        Stages to show (default all).

    Returns
    -------
    matplotlib.figure.Figure
    """
    pretty = "balanced accuracy" if value == "balanced_accuracy" else "accuracy"
    return plot_vs_fraction(
        metrics,
        value,
        stages=stages,
        ylabel=f"test {pretty} (%)",
        scale=100.0,
        title=f"Test {pretty} vs training fraction (mean ± sd over seeds)",
    )


def plot_gain_vs_fraction(
    metrics: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] = DEFAULT_GAINS,
    value: str = "accuracy",
) -> Figure:
    """Paired gain of sleep (percentage points) against training fraction.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    pairs : sequence of (str, str)
        ``(stage, reference)`` pairs; each becomes a line coloured like ``stage``.
    value : str
        Column compared.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (dataset, imbalance); a dashed line marks zero gain; error bars are
        sd over seeds of the paired differences.
    """
    groups = _groups(metrics)
    nrows, ncols = grid_shape(len(groups))
    fig, axes = new_figure(nrows, ncols, panel_size=(5.2, 3.6))
    for ax, (dataset, imbalance) in zip(axes, groups, strict=False):
        sel = metrics[(metrics["dataset"] == dataset) & (metrics["imbalance"] == imbalance)]
        fractions = np.unique(sel["fraction"].dropna().to_numpy(dtype=float))
        single = fractions.size == 1  # pairs side by side, not spread as fractions
        log = False if single else setup_fraction_axis(ax, fractions)
        drawn = []
        for k, (stage, ref) in enumerate(pairs):
            g = stage_gain(sel, stage, ref, value).sort_values("fraction")
            if g.empty:
                continue
            if single:
                x = np.full(len(g), float(len(drawn)))
                drawn.append(f"{stage_label(stage)} − {stage_label(ref)}")
            else:
                x = _dodge(g["fraction"].to_numpy(dtype=float), k, len(pairs), log)
            ax.errorbar(
                x,
                g["mean"].astype(float) * 100,
                yerr=g["sd"].astype(float).fillna(0.0) * 100,
                color=stage_color(stage),
                label=f"{stage_label(stage)} − {stage_label(ref)}",
                marker="o",
                markersize=4,
                capsize=3,
            )
        ax.axhline(0.0, color="#999999", linestyle="--", linewidth=1)
        if single:
            setup_stage_axis(ax, drawn, fractions[0])
        else:
            ax.set_xlabel("training fraction (share of the training set)")
        ax.set_ylabel(f"{value} gain (percentage points)")
        ax.set_title(group_title(dataset, imbalance), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    hide_unused(axes, len(groups))
    fig.suptitle("Gain from sleep (paired per seed, mean ± sd over seeds)")
    return fig
