"""Conversion fidelity: the spiking network's accuracy against its ANN's.

Reads the ``snn_*`` columns that ``--snn-eval N`` adds to each cell's ``sleep`` row of
``metrics.csv`` (:mod:`brainsleep.sleep.inference`): SNN accuracy for the baseline
(``snn_baseline_accuracy``) and the slept network (``snn_accuracy``), the same counted
over the first ``w`` steps of each presentation (``snn_accuracy_w<w>``), agreement with
the ANN, silent and tied images. The ANN accuracies are the ``accuracy`` of the
``baseline`` and ``sleep`` rows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import new_figure, stage_color

_WINDOW = re.compile(r"^snn_(baseline_)?accuracy_w(\d+)$")
_KEYS = ["cell", "dataset", "imbalance", "fraction", "seed"]


def has_snn(metrics: pd.DataFrame) -> bool:
    """Whether any row carries an SNN evaluation."""
    return "snn_accuracy" in metrics.columns and metrics["snn_accuracy"].notna().any()


def fidelity_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and network (baseline, sleep): ANN and SNN accuracy and more.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell, dataset, imbalance, fraction, seed, network, ann_accuracy,
        snn_accuracy, agreement, silent, ties, window`` (NaN where not recorded).
    """
    rows = metrics[metrics["stage"] == "sleep"].dropna(subset=["snn_accuracy"])
    ann = metrics.set_index(["cell", "stage"])["accuracy"]
    out = []
    for _, r in rows.iterrows():
        for network, prefix, stage in (
            ("baseline", "snn_baseline_", "baseline"),
            ("sleep", "snn_", "sleep"),
        ):
            out.append(
                {
                    **{k: r[k] for k in _KEYS},
                    "network": network,
                    "ann_accuracy": ann.get((r["cell"], stage), np.nan),
                    **{
                        name: r.get(f"{prefix}{name}", np.nan)
                        for name in ("accuracy", "agreement", "silent", "ties", "window")
                    },
                }
            )
    table = pd.DataFrame(out)
    return table.rename(columns={"accuracy": "snn_accuracy"}) if not table.empty else table


def accuracy_by_window(metrics: pd.DataFrame) -> pd.DataFrame:
    """Long table: ``network, window, snn_accuracy`` per cell (from ``snn_*accuracy_w*``)."""
    rows = metrics[metrics["stage"] == "sleep"]
    out = []
    for col in metrics.columns:
        m = _WINDOW.match(col)
        if not m:
            continue
        network = "baseline" if m.group(1) else "sleep"
        for _, r in rows.dropna(subset=[col]).iterrows():
            out.append(
                {"cell": r["cell"], "network": network, "window": int(m.group(2)), "acc": r[col]}
            )
    return pd.DataFrame(out)


def plot_snn_fidelity(metrics: pd.DataFrame) -> Figure:
    """SNN accuracy against presentation length, with the ANN's accuracy as a dashed line.

    One panel per (dataset, imbalance, fraction); mean and sample sd over cells (seeds)
    for the baseline and the slept network.
    """
    table = fidelity_table(metrics)
    windows = accuracy_by_window(metrics)
    if table.empty or windows.empty:
        raise ValueError("metrics.csv has no SNN evaluation (run with --snn-eval N)")
    groups = sorted(table[["dataset", "imbalance", "fraction"]].drop_duplicates().itertuples(False))
    fig, axes = new_figure(1, len(groups))
    for ax, (dataset, imbalance, fraction) in zip(axes, groups, strict=False):
        cells = table[
            (table["dataset"] == dataset)
            & (table["imbalance"] == imbalance)
            & (table["fraction"] == fraction)
        ]["cell"].unique()
        for network in ("baseline", "sleep"):
            w = windows[windows["cell"].isin(cells) & (windows["network"] == network)]
            g = w.groupby("window")["acc"].agg(["mean", "std", "count"]).reset_index()
            color = stage_color(network)
            ax.errorbar(
                g["window"],
                g["mean"],
                yerr=g["std"].fillna(0),
                marker="o",
                color=color,
                capsize=3,
                label=f"SNN {network} (n={int(g['count'].max())})",
            )
            ann = table[table["cell"].isin(cells) & (table["network"] == network)]
            ax.axhline(ann["ann_accuracy"].mean(), ls="--", color=color, label=f"ANN {network}")
        ax.set_title(f"{dataset} {imbalance}, {fraction:g} of the data", fontsize=9)
        ax.set_xlabel("steps each image is shown")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.suptitle("Conversion fidelity: spiking network vs its ANN", fontsize=10)
    return fig
