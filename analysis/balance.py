"""Did the classes become more balanced? Per-class accuracy, confusion, prediction entropy.

Sources: the ``acc_class_k`` and ``pred_entropy`` columns of ``metrics.csv`` (all cells)
and ``cells/<cell>/confusion.nc`` (one cell, dims ``stage, true, predicted``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
from brainsleep.formats import order_stages

from .accuracy import aggregate_over_seeds, group_title, plot_vs_fraction
from .style import grid_shape, hide_unused, new_figure, stage_color, stage_label

_CLASS_RE = re.compile(r"^acc_class_(\d+)$")


def class_columns(metrics: pd.DataFrame) -> list[str]:
    """The ``acc_class_k`` columns of a metrics table, ordered by class ``k``."""
    found = [(int(m.group(1)), c) for c in metrics.columns if (m := _CLASS_RE.match(c))]
    return [c for _, c in sorted(found)]


def per_class_accuracy(
    metrics: pd.DataFrame,
    by: Sequence[str] = ("dataset", "imbalance", "fraction", "stage"),
) -> pd.DataFrame:
    """Per-class test accuracy, mean ± sd over seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table with ``acc_class_0`` .. ``acc_class_9``.
    by : sequence of str
        Grouping columns (seeds are averaged over).

    Returns
    -------
    pandas.DataFrame
        Long table ``*by, class, mean, sd, n``; ``class`` is the int class label, ``sd``
        the sample sd (``ddof=1``, NaN for one seed).
    """
    cols = class_columns(metrics)
    if not cols:
        raise KeyError("metrics has no acc_class_k columns")
    parts = []
    for col in cols:
        agg = aggregate_over_seeds(metrics, col, by=by)
        agg.insert(len(by), "class", int(_CLASS_RE.match(col).group(1)))
        parts.append(agg)
    return pd.concat(parts, ignore_index=True)


def prediction_entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of the distribution given by class counts.

    ``H = -sum_k p_k ln p_k`` with ``p_k = counts_k / sum(counts)`` and ``0 ln 0 = 0``.
    Uniform over ``K`` classes gives ``ln K``; all predictions in one class give 0.

    Parameters
    ----------
    counts : array_like
        Non-negative counts (e.g. predicted-class counts, the column sums of a confusion
        matrix).

    Returns
    -------
    float
        NaN when all counts are zero.
    """
    c = np.asarray(counts, dtype=float).ravel()
    total = c.sum()
    if total <= 0:
        return float("nan")
    p = c[c > 0] / total
    return float(-np.sum(p * np.log(p)))


def confusion_fractions(conf: xr.DataArray) -> xr.DataArray:
    """Confusion matrix normalised per true class (each row sums to 1).

    Parameters
    ----------
    conf : xarray.DataArray
        Counts with dims ``(stage, true, predicted)`` (``stage`` optional).

    Returns
    -------
    xarray.DataArray
        Same dims, float; ``[.., t, p]`` = share of test images of class ``t``
        predicted as ``p``. Rows of classes absent from the test set are 0.
    """
    totals = conf.sum("predicted")
    return (conf / totals.where(totals > 0)).fillna(0.0)


@fill_doc
def predicted_distribution(conf: xr.DataArray) -> xr.DataArray:
    """Share of test predictions falling in each class (column sums / total).

    Parameters
    ----------
    %(conf)s

    Returns
    -------
    xarray.DataArray
        Dims ``(stage, predicted)``; each stage sums to 1.
    """
    cols = conf.sum("true")
    return cols / cols.sum("predicted")


def _stage_list(conf: xr.DataArray, stages: Sequence[str] | None) -> list[str]:
    present = [str(s) for s in conf["stage"].values] if "stage" in conf.coords else []
    if stages is None:
        return order_stages(present)
    return [s for s in stages if s in present]


@fill_doc
def plot_confusion(
    conf: xr.DataArray,
    stages: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Row-normalised confusion matrices, one panel per stage.

    Parameters
    ----------
    %(conf)s
    %(stages_shown)s
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Colour = share of the true class (0..1, square-root scale, the same in every
        panel); the diagonal
        (per-class recall) is written in each cell in %.
    """
    stages = _stage_list(conf, stages)
    if not stages:
        raise ValueError("confusion array has no stage to plot")
    frac = confusion_fractions(conf)
    nrows, ncols = grid_shape(len(stages), max_cols=3)
    fig, axes = new_figure(nrows, ncols, panel_size=(4.2, 3.9))
    im = None
    for ax, stage in zip(axes, stages, strict=False):
        m = frac.sel(stage=stage).transpose("true", "predicted").to_numpy()
        counts = conf.sel(stage=stage).to_numpy()
        acc = np.trace(counts) / max(counts.sum(), 1)
        # square-root colour scale: the few-% confusions that show class imbalance stay
        # visible next to a ~90% diagonal
        im = ax.imshow(m, cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0))
        k = m.shape[0]
        for i in range(min(k, m.shape[1])):
            ax.text(
                i,
                i,
                f"{100 * m[i, i]:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i, i] > 0.5 else "black",
            )
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(k))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{stage_label(stage)}: acc {100 * acc:.1f}%", fontsize=10)
    hide_unused(axes, len(stages))
    if im is not None:
        cb = fig.colorbar(im, ax=axes[: len(stages)], shrink=0.8)
        cb.set_label("share of true class (square-root scale)")
    fig.suptitle(title or "Confusion matrices (test set, row-normalised; diagonal in %)")
    return fig


@fill_doc
def plot_predicted_distribution(
    conf: xr.DataArray,
    stages: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Share of predictions per class for each stage, with the true class shares.

    Parameters
    ----------
    %(conf)s
    %(stages_shown)s
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Grouped bars per class; the black steps are the true class shares of the test set;
        the legend gives each stage's prediction entropy in nats.
    """
    stages = _stage_list(conf, stages)
    if not stages:
        raise ValueError("confusion array has no stage to plot")
    dist = predicted_distribution(conf)
    n_cls = conf.sizes["predicted"]
    fig, (ax,) = new_figure(1, 1, panel_size=(8.0, 3.6))
    width = 0.8 / len(stages)
    x = np.arange(n_cls)
    for k, stage in enumerate(stages):
        counts = conf.sel(stage=stage).sum("true").to_numpy()
        ax.bar(
            x + (k - (len(stages) - 1) / 2) * width,
            dist.sel(stage=stage).to_numpy() * 100,
            width=width,
            color=stage_color(stage),
            label=f"{stage_label(stage)} (H = {prediction_entropy(counts):.3f} nats)",
        )
    true_share = conf.isel(stage=0).sum("predicted").to_numpy()
    true_share = true_share / max(true_share.sum(), 1) * 100
    ax.stairs(true_share, np.arange(n_cls + 1) - 0.5, color="black", linewidth=1.2, label="true")
    ax.set_xticks(x)
    ax.set_xlabel("class")
    ax.set_ylabel("share of test predictions (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or "Predicted-class distribution on the test set")
    return fig


@fill_doc
def plot_per_class_accuracy(
    metrics: pd.DataFrame,
    dataset: str,
    imbalance: str = "none",
    *,
    stages: Sequence[str] | None = None,
) -> Figure:
    """Per-class test accuracy per stage, mean ± sd over seeds, one panel per fraction.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    dataset : str
        Dataset to show.
    imbalance : str
        Imbalance spec (``"none"`` for balanced subsets).
    %(stages_shown)s

    Returns
    -------
    matplotlib.figure.Figure
        Grouped bars (one per stage) per class, error bars sd over seeds.
    """
    sel = metrics[(metrics["dataset"] == dataset) & (metrics["imbalance"] == imbalance)]
    if sel.empty:
        raise ValueError(f"no rows for dataset {dataset!r}, imbalance {imbalance!r}")
    long = per_class_accuracy(sel)
    stages = order_stages(sel["stage"]) if stages is None else list(stages)
    fractions = sorted(long["fraction"].unique())
    nrows, ncols = grid_shape(len(fractions), max_cols=2)
    fig, axes = new_figure(nrows, ncols, panel_size=(7.0, 3.2))
    width = 0.8 / max(len(stages), 1)
    for ax, frac in zip(axes, fractions, strict=False):
        f = long[long["fraction"] == frac]
        classes = sorted(f["class"].unique())
        for k, stage in enumerate(stages):
            s = f[f["stage"] == stage].set_index("class").reindex(classes)
            if s["mean"].isna().all():
                continue
            ax.bar(
                np.arange(len(classes)) + (k - (len(stages) - 1) / 2) * width,
                s["mean"] * 100,
                width=width,
                yerr=s["sd"].fillna(0.0) * 100,
                color=stage_color(stage),
                label=stage_label(stage),
                error_kw={"elinewidth": 0.8, "capsize": 1.5},
            )
        ax.set_xticks(np.arange(len(classes)))
        ax.set_xticklabels([str(c) for c in classes])
        ax.set_xlabel("class")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"training fraction {frac:g}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    hide_unused(axes, len(fractions))
    axes[0].legend(fontsize=7, ncol=len(stages))
    fig.suptitle(f"Per-class accuracy, {group_title(dataset, imbalance)} (mean ± sd over seeds)")
    return fig


def plot_pred_entropy(metrics: pd.DataFrame, n_classes: int | None = None) -> Figure:
    """Entropy of the predicted-class distribution (``pred_entropy``) vs training fraction.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.
    n_classes : int, optional
        Number of classes for the ``ln K`` reference line (maximum entropy, perfectly
        balanced predictions); default: the number of ``acc_class_k`` columns, else 10.

    Returns
    -------
    matplotlib.figure.Figure
    """
    k = n_classes or len(class_columns(metrics)) or 10
    return plot_vs_fraction(
        metrics,
        "pred_entropy",
        ylabel="predicted-class entropy (nats)",
        title="Entropy of the predicted-class distribution (mean ± sd over seeds)",
        hline=float(np.log(k)),
        hline_label=f"ln {k} (uniform)",
    )
