"""Did activity become sparser? Sparsity measures of sleep spikes and of ANN activations.

Definitions (all on a vector ``x`` of ``n >= 2`` non-negative values, typically the
per-neuron firing rates of one layer):

Hoyer sparseness
    ``H(x) = (sqrt(n) - L1/L2) / (sqrt(n) - 1)`` with ``L1 = sum |x_i|`` and
    ``L2 = sqrt(sum x_i**2)``. ``H = 1`` when exactly one neuron is active (one-hot),
    ``H = 0`` when all are equally active. Undefined (NaN) for an all-zero vector.

Treves-Rolls activity ratio ``a``
    ``a(x) = (mean x)**2 / mean(x**2)`` (Treves & Rolls 1991; Rolls & Tovee 1995).
    ``a = 1`` for uniform activity, ``a = 1/n`` for one-hot. Note that a *large* ``a``
    means *dense* activity. NaN for an all-zero vector.

Treves-Rolls sparseness
    ``S_TR(x) = 1 - a(x)`` in ``[0, 1 - 1/n]``, larger = sparser, so it moves in the same
    direction as Hoyer. We do not apply the Vinje-Gallant rescaling
    ``(1 - a) / (1 - 1/n)``.

Active fraction per step
    Number of distinct neurons of a layer that spiked in a step divided by the layer size.

Over sleep time (:func:`activity_over_time`), in windows of several steps: the share of
neurons that spiked in the window, and the population sparseness of the neurons' spike
counts in the window (:func:`brainsleep.sparseness.population_sparseness`, Treves-Rolls
``a`` normalised as ``(1 - a) / (1 - 1/n)`` after Vinje & Gallant 2000).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
from brainsleep.formats import firing_rates, spike_info
from brainsleep.sparseness import hoyer, population_sparseness, treves_rolls

from .accuracy import aggregate_over_seeds, plot_vs_fraction
from .spikes import (
    active_fraction_per_step,
    finite_median,
    iter_window_counts,
    layer_row,
    missing_note,
    no_layer_figure,
    recorded_and_missing,
    time_axis,
)
from .style import layer_color, layer_name, new_figure


def treves_rolls_sparseness(x: np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Treves-Rolls sparseness ``1 - a`` (larger = sparser), no Vinje-Gallant rescaling.

    Parameters
    ----------
    x : array_like
        Non-negative values.
    axis : int
        Axis holding the values.

    Returns
    -------
    float or numpy.ndarray
        In ``[0, 1 - 1/n]``; NaN for an all-zero vector.
    """
    return 1.0 - treves_rolls(x, axis=axis)


@fill_doc
def sparsity_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-layer sparsity of a sleep run.

    Parameters
    ----------
    %(ds)s

    Returns
    -------
    pandas.DataFrame
        One row per layer of ``layer_sizes`` with columns ``layer, name, recorded,
        n_neurons, n_spikes, mean_rate_hz, max_rate_hz, silent, silent_frac,
        active_frac_mean`` (mean over steps of the active fraction per step),
        ``hoyer, tr_a, tr_sparseness`` (on the per-neuron rate vector; see the module
        docstring). Unrecorded layers have ``recorded=False`` and NaN measures, so they
        are not mistaken for silent ones.
    """
    info = spike_info(ds)
    rows = []
    for layer, size in enumerate(info.layer_sizes):
        row = layer_row(info, layer)
        if row["recorded"]:
            rates = firing_rates(ds, layer)
            n_silent = int(np.count_nonzero(rates == 0))
            row.update(
                n_spikes=int(round(rates.sum() * info.duration_s)),
                mean_rate_hz=float(rates.mean()) if size else np.nan,
                max_rate_hz=float(rates.max()) if size else np.nan,
                silent=n_silent,
                silent_frac=n_silent / size if size else np.nan,
                active_frac_mean=float(active_fraction_per_step(ds, layer).mean())
                if info.n_steps
                else np.nan,
                hoyer=hoyer(rates),
                tr_a=treves_rolls(rates),
                tr_sparseness=treves_rolls_sparseness(rates),
            )
        rows.append(row)
    cols = [
        "layer",
        "name",
        "recorded",
        "n_neurons",
        "n_spikes",
        "mean_rate_hz",
        "max_rate_hz",
        "silent",
        "silent_frac",
        "active_frac_mean",
        "hoyer",
        "tr_a",
        "tr_sparseness",
    ]
    return pd.DataFrame(rows).reindex(columns=cols)


@fill_doc
def activity_over_time(
    ds: xr.Dataset, layer: int, *, bin_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active fraction and population sparseness of a layer in consecutive time windows.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    bin_steps : int, optional
        Window width in steps (default: about 200 windows over the run; the last one may
        be shorter), as :func:`analysis.spikes.population_rate`.

    Returns
    -------
    edges : numpy.ndarray
        int64 window edges in steps, shape ``(n_windows + 1,)``.
    active_fraction : numpy.ndarray
        float64, shape ``(n_windows,)``: share of the layer's neurons with at least one
        spike in the window. Unlike the population rate it counts a neuron once however
        often it fires, so the two differ when active neurons fire repeatedly.
    sparseness : numpy.ndarray
        float64, shape ``(n_windows,)``: :func:`brainsleep.sparseness.population_sparseness`
        (Treves-Rolls ``a`` with the Vinje-Gallant normalisation ``(1 - a) / (1 - 1/n)``)
        of the neurons' spike counts in the window: 0 when every neuron fired equally
        often, 1 when one neuron fired alone; NaN for a window without spikes.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.

    Notes
    -----
    The counts come in bounded chunks (:func:`analysis.spikes.iter_window_counts`): memory
    O(n_spikes + chunk), never ``n_windows x n_neurons``.
    """
    info = spike_info(ds)
    size = info.layer_sizes[layer]
    edges_parts, active_parts, sparse_parts = [np.zeros(1, dtype=np.int64)], [], []
    for edges, counts in iter_window_counts(ds, layer, bin_steps=bin_steps):
        edges_parts.append(edges[1:])
        active_parts.append(np.count_nonzero(counts, axis=1) / max(size, 1))
        sparse_parts.append(np.atleast_1d(population_sparseness(counts, axis=1)))
    if not active_parts:
        return np.zeros(1, dtype=np.int64), np.zeros(0), np.zeros(0)
    return (
        np.concatenate(edges_parts),
        np.concatenate(active_parts),
        np.concatenate(sparse_parts).astype(float),
    )


@fill_doc
def plot_sparseness_over_time(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    bin_steps: int | None = None,
    x_unit: str = "s",
    title: str | None = None,
) -> Figure:
    """Active fraction and population sparseness over sleep time, one row per layer.

    Parameters
    ----------
    %(ds)s
    %(layers_shown)s
    bin_steps : int, optional
        Window width in steps (default: about 200 windows).
    %(x_unit)s
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Left column: share of neurons that spiked in the window (see
        :func:`activity_over_time`); right column: population sparseness of the window's
        spike counts, on a fixed [0, 1] axis, with gaps where a window had no spike.
    """
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    shown, missing = recorded_and_missing(info, layers)
    title = title or "Activity and population sparseness during sleep"
    title += (
        "\nleft: fraction of the layer's neurons with ≥ 1 spike in the window"
        "\nright: population sparseness (Treves-Rolls) of the window's spike counts"
    )
    if missing:
        title += f"  ({missing_note(info, missing)})"
    if not shown:
        return no_layer_figure(info, missing, title)
    fig, axes = new_figure(len(shown), 2, panel_size=(5.4, 1.7), sharex=True)
    width = 0
    for row, layer in enumerate(shown):
        ax_a, ax_s = axes[2 * row], axes[2 * row + 1]
        name = layer_name(layer, info.n_layers)
        edges, active, sparse = activity_over_time(ds, layer, bin_steps=bin_steps)
        width = int(edges[1] - edges[0]) if len(edges) > 1 else 0
        x = edges * scale
        color = layer_color(layer)
        ax_a.stairs(active, x, color=color, baseline=None, linewidth=1.2)
        ax_a.set_ylim(bottom=0)
        ax_a.set_ylabel("fraction active")
        mean_active = float(np.mean(active)) if active.size else float("nan")
        ax_a.set_title(
            f"{name}: {info.layer_sizes[layer]} neurons, mean {100 * mean_active:.3g}% active",
            fontsize=9,
            loc="left",
        )
        ax_s.stairs(sparse, x, color=color, baseline=None, linewidth=1.2)
        ax_s.set_ylim(-0.03, 1.08)
        ax_s.set_ylabel("sparseness (TR)")
        n_empty = int(np.count_nonzero(~np.isfinite(sparse)))
        gap = f", {n_empty} windows without spikes (gaps)" if n_empty else ""
        ax_s.set_title(f"{name}: median {finite_median(sparse):.3g}{gap}", fontsize=9, loc="left")
        for ax in (ax_a, ax_s):
            ax.grid(alpha=0.3)
    window = f"windows of {width} steps = {width * info.dt * 1e3:g} ms"
    axes[-2].set_xlabel(f"{xlabel}\n({window})")
    axes[-1].set_xlabel(f"{xlabel}\n(0: every neuron fired equally, 1: one neuron alone)")
    axes[-1].set_xlim(0, info.n_steps * scale)
    fig.suptitle(title)
    return fig


def ann_sparsity_columns(metrics: pd.DataFrame) -> list[str]:
    """The ``active_frac_hK`` columns of a metrics table, by hidden layer number."""
    cols = [c for c in metrics.columns if c.startswith("active_frac_h")]
    return sorted(cols, key=lambda c: int("".join(ch for ch in c if ch.isdigit()) or 0))


def ann_sparsity_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Hidden-unit activation sparsity of the ANN per stage, mean ± sd over seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table with ``active_frac_h1``, ``active_frac_h2`` (fraction of
        hidden units with activation > 0 on the test set).

    Returns
    -------
    pandas.DataFrame
        Long table ``dataset, imbalance, fraction, stage, column, mean, sd, n``.
    """
    parts = []
    for col in ann_sparsity_columns(metrics):
        agg = aggregate_over_seeds(metrics, col)
        agg.insert(4, "column", col)
        parts.append(agg)
    if not parts:
        return pd.DataFrame(
            columns=["dataset", "imbalance", "fraction", "stage", "column", "mean", "sd", "n"]
        )
    return pd.concat(parts, ignore_index=True)


def plot_ann_sparsity(metrics: pd.DataFrame) -> Figure:
    """Fraction of active hidden units of the ANN (test set) per stage vs training fraction.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` table.

    Returns
    -------
    matplotlib.figure.Figure
        One column per hidden layer, one row per (dataset, imbalance); lower = sparser.
    """
    cols = ann_sparsity_columns(metrics)
    if not cols:
        raise KeyError("metrics has no active_frac_h* columns")
    labels = [f"active fraction, hidden {c.removeprefix('active_frac_h')}" for c in cols]
    return plot_vs_fraction(
        metrics,
        cols,
        ylabel=labels,
        title="ANN hidden-unit activity on the test set (fraction with activation > 0)",
    )
