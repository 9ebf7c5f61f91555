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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from brainsleep.formats import firing_rates, spike_info
from brainsleep.sparseness import hoyer, treves_rolls

from .accuracy import aggregate_over_seeds, plot_vs_fraction
from .spikes import active_fraction_per_step, bin_mean, time_axis
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


def sparsity_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-layer sparsity of a sleep run.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.

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
        row = {
            "layer": layer,
            "name": layer_name(layer, info.n_layers),
            "recorded": layer in info.recorded_layers,
            "n_neurons": size,
        }
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


def plot_active_fraction(
    ds: xr.Dataset,
    layers: list[int] | None = None,
    *,
    bin_steps: int | None = None,
    x_unit: str = "step",
    title: str | None = None,
) -> Figure:
    """Fraction of neurons active per step, averaged in bins, one line per recorded layer.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layers : list of int, optional
        Layers to show (default: every recorded layer).
    bin_steps : int, optional
        Steps per plotted point (default: about 200 points over the run).
    x_unit : {"step", "ms", "s"}
        x axis unit.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Unrecorded layers are listed in the legend title rather than drawn as zeros.
    """
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    wanted = list(range(info.n_layers)) if layers is None else list(layers)
    shown = [v for v in wanted if v in info.recorded_layers]
    missing = [v for v in wanted if v not in info.recorded_layers]
    if bin_steps is None:
        bin_steps = max(1, -(-info.n_steps // 200))
    fig, (ax,) = new_figure(1, 1, panel_size=(9.0, 3.6))
    for layer in shown:
        frac = active_fraction_per_step(ds, layer)
        edges, mean = bin_mean(frac, bin_steps)
        ax.stairs(
            mean,
            edges * scale,
            color=layer_color(layer),
            baseline=None,
            linewidth=1.3,
            label=f"{layer_name(layer, info.n_layers)} (mean {frac.mean():.3g})",
        )
    ax.set_xlim(0, info.n_steps * scale)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"{xlabel}  (mean over bins of {bin_steps} steps)")
    ax.set_ylabel("fraction of neurons active per step")
    ax.grid(alpha=0.3)
    legend_title = f"not recorded: layers {missing}" if missing else None
    if shown or missing:
        ax.legend(fontsize=8, title=legend_title, title_fontsize=8)
    fig.suptitle(title or "Active fraction per step during sleep")
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
