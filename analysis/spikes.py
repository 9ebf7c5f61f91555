"""What each layer did during sleep: spike rasters, firing rates, active fractions.

All functions work on the sparse spike table of :mod:`brainsleep.formats` (one row per
spike: ``layer``, ``neuron``, ``step``) and build on its readers (:func:`spike_info`,
:func:`layer_spikes`, :func:`neuron_spike_counts`, :func:`firing_rates`). None of them
builds an ``n_steps x n_neurons`` array: counts come from :func:`numpy.bincount` over step
bins or neuron indices, and rasters plot the (step, neuron) pairs of a neuron subsample
directly. Memory is O(n_spikes + n_steps +
n_neurons), so runs with millions of spikes are fine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from brainsleep.formats import (
    SpikeInfo,
    firing_rates,
    layer_spikes,
    neuron_spike_counts,
    spike_info,
)

from .style import layer_color, layer_name, new_figure, note

#: Above this many points a raster panel uses single-pixel markers (fast to render);
#: below it short vertical ticks, which are easier to see.
PIXEL_MARKER_THRESHOLD = 20_000

#: Default number of bins for time series when no bin width is given.
DEFAULT_N_BINS = 200


def silent_neurons(ds: xr.Dataset, layer: int) -> int:
    """Number of neurons of a layer that never spiked.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layer : int
        Layer index.

    Returns
    -------
    int
        Equals the layer size for a recorded layer without spikes.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded (unknown, not silent).
    """
    return int(np.count_nonzero(neuron_spike_counts(ds, layer) == 0))


def _bin_edges(n_steps: int, bin_steps: int | None) -> np.ndarray:
    if bin_steps is None:
        bin_steps = max(1, -(-n_steps // DEFAULT_N_BINS))
    if bin_steps < 1:
        raise ValueError(f"bin_steps must be >= 1, got {bin_steps}")
    edges = np.arange(0, n_steps, bin_steps, dtype=np.int64)
    return np.append(edges, n_steps)


def population_rate(
    ds: xr.Dataset, layer: int, *, bin_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Population firing rate of a layer over time, per neuron, in Hz.

    For a bin of ``w`` steps holding ``c`` spikes of a layer of ``N`` neurons, the rate is
    ``c / (N * w * dt)``: the mean rate of one neuron of the layer in that bin. The last
    bin may be shorter than ``bin_steps``; its own width is used.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layer : int
        Layer index.
    bin_steps : int, optional
        Bin width in steps; by default about 200 bins over the run.

    Returns
    -------
    edges : numpy.ndarray
        int64 bin edges in steps, length ``n_bins + 1`` (first 0, last ``n_steps``).
    rate : numpy.ndarray
        float64 rate per neuron in Hz, length ``n_bins``.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    steps, _ = layer_spikes(ds, layer)
    edges = _bin_edges(info.n_steps, bin_steps)
    n_bins = len(edges) - 1
    if n_bins <= 0:
        return edges, np.zeros(0)
    width = int(edges[1] - edges[0])
    # Integer division maps a step to its bin; only the last bin can be short.
    counts = np.bincount(steps // width, minlength=n_bins)[:n_bins]
    widths = np.diff(edges)
    n_neurons = info.layer_sizes[layer]
    return edges, counts / (n_neurons * widths * info.dt)


def active_fraction_per_step(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Fraction of a layer's neurons that spiked in each step.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layer : int
        Layer index.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(n_steps,)``, values in [0, 1]. A neuron counts once per step
        even if the table held it twice (impossible in this model, removed anyway).

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    steps, neurons = layer_spikes(ds, layer)
    size = info.layer_sizes[layer]
    key = steps * size + neurons
    # The format sorts by (step, layer, neuron), so duplicates are adjacent; sort only
    # if some producer broke the order.
    if key.size > 1 and np.any(key[1:] < key[:-1]):
        key = np.sort(key)
    if key.size > 1:
        keep = np.empty(key.size, dtype=bool)
        keep[0] = True
        np.not_equal(key[1:], key[:-1], out=keep[1:])
        key = key[keep]
    per_step = np.bincount(key // size, minlength=info.n_steps)[: info.n_steps]
    return per_step / size


def bin_mean(values: np.ndarray, bin_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Average a per-step series over consecutive bins of ``bin_steps`` steps.

    Parameters
    ----------
    values : numpy.ndarray
        1-D per-step series.
    bin_steps : int
        Bin width in steps (the last bin may be shorter).

    Returns
    -------
    edges : numpy.ndarray
        Bin edges in steps, length ``n_bins + 1``.
    means : numpy.ndarray
        Mean of ``values`` in each bin.
    """
    edges = _bin_edges(len(values), bin_steps)
    if len(values) == 0:
        return edges, np.zeros(0)
    sums = np.add.reduceat(values, edges[:-1])
    return edges, sums / np.diff(edges)


# --------------------------------------------------------------------------------------
# figures


def time_axis(info: SpikeInfo, x_unit: str) -> tuple[float, str]:
    """Factor from steps to ``x_unit`` and the matching axis label.

    Parameters
    ----------
    info : SpikeInfo
        Run attributes (for ``dt``).
    x_unit : {"step", "ms", "s"}
        Wanted unit.

    Returns
    -------
    scale : float
        Multiply a step index by this to get the x value.
    label : str
        Axis label with the unit.
    """
    if x_unit == "step":
        return 1.0, "sleep step"
    if x_unit == "ms":
        return info.dt * 1e3, "time (ms)"
    if x_unit == "s":
        return info.dt, "time (s)"
    raise ValueError(f"x_unit must be 'step', 'ms' or 's', got {x_unit!r}")


def _layers(info: SpikeInfo, layers: Sequence[int] | None) -> list[int]:
    return list(range(info.n_layers)) if layers is None else [int(v) for v in layers]


def _window_steps(
    info: SpikeInfo, window: tuple[float, float] | None, scale: float
) -> tuple[int, int]:
    if window is None:
        return 0, info.n_steps
    start = max(0, int(np.floor(window[0] / scale)))
    stop = min(info.n_steps, int(np.ceil(window[1] / scale)))
    if stop <= start:
        raise ValueError(f"empty time window {window}")
    return start, stop


def plot_raster(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    window: tuple[float, float] | None = None,
    x_unit: str = "step",
    max_neurons: int = 200,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    """Spike raster, one panel per layer, layers stacked (input on top).

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layers : sequence of int, optional
        Layers to show (default: all layers of ``layer_sizes``). Unrecorded layers get a
        panel saying so; recorded layers without spikes say "silent".
    window : (float, float), optional
        Time range ``[start, stop)`` in ``x_unit`` units; default the whole run.
    x_unit : {"step", "ms", "s"}
        x axis in sleep steps or in simulated time (``step * dt``).
    max_neurons : int
        At most this many neurons per layer are shown, drawn at random without
        replacement (``seed``) and kept in index order; the y axis is then the rank in the
        subsample.
    seed : int
        Seed of the neuron subsample.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Not shown; save it with :func:`analysis.style.save_figure`.

    Notes
    -----
    Spikes are drawn from the sparse (step, neuron) pairs, never from a dense matrix; with
    more than ``PIXEL_MARKER_THRESHOLD`` points in a panel, single-pixel markers are used.
    """
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    start, stop = _window_steps(info, window, scale)
    shown = _layers(info, layers)
    fig, axes = new_figure(len(shown), 1, panel_size=(9.0, 2.0), sharex=True)
    rng = np.random.default_rng(seed)
    layer_all = ds["layer"].values
    step_all = ds["step"].values
    in_window = (step_all >= start) & (step_all < stop)
    for ax, layer in zip(axes, shown, strict=True):
        size = info.layer_sizes[layer]
        name = layer_name(layer, info.n_layers)
        ax.set_ylabel("neuron")
        if layer not in info.recorded_layers:
            ax.set_title(f"{name}: not recorded", fontsize=9, loc="left")
            note(ax, "not recorded")
            ax.set_yticks([])
            continue
        mask = in_window & (layer_all == layer)
        steps = step_all[mask]
        neurons = ds["neuron"].values[mask]
        if size > max_neurons:
            chosen = np.sort(rng.choice(size, size=max_neurons, replace=False))
            # lookup maps a neuron index to its rank in the subsample (-1: not shown);
            # O(layer size), not O(steps x neurons).
            lookup = np.full(size, -1, dtype=np.int64)
            lookup[chosen] = np.arange(max_neurons)
            y = lookup[neurons]
            keep = y >= 0
            steps, y = steps[keep], y[keep]
            ax.set_ylabel(f"neuron\n({max_neurons} of {size})")
            n_rows = max_neurons
        else:
            y = neurons
            n_rows = size
        x = steps * scale
        n_pts = len(x)
        if n_pts > PIXEL_MARKER_THRESHOLD:
            ax.plot(x, y, ",", color=layer_color(layer), rasterized=True)
        elif n_pts:
            ax.plot(x, y, "|", color=layer_color(layer), markersize=3, markeredgewidth=0.8)
        else:
            note(ax, "silent: no spikes in this window")
        n_layer_spikes = int(np.count_nonzero(layer_all == layer))
        ax.set_title(
            f"{name}: {size} neurons, {n_layer_spikes} spikes in the run", fontsize=9, loc="left"
        )
        ax.set_ylim(-0.5, n_rows - 0.5)
    axes[-1].set_xlim(start * scale, stop * scale)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title or "Spike raster during sleep")
    return fig


def plot_population_rate(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    bin_steps: int | None = None,
    x_unit: str = "step",
    title: str | None = None,
) -> Figure:
    """Population firing rate per neuron over time, one stacked panel per layer.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layers : sequence of int, optional
        Layers to show (default all); unrecorded ones get a "not recorded" panel.
    bin_steps : int, optional
        Bin width in steps (default: about 200 bins); see :func:`population_rate`.
    x_unit : {"step", "ms", "s"}
        x axis unit.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    shown = _layers(info, layers)
    fig, axes = new_figure(len(shown), 1, panel_size=(9.0, 1.8), sharex=True)
    for ax, layer in zip(axes, shown, strict=True):
        name = layer_name(layer, info.n_layers)
        ax.set_ylabel("Hz / neuron")
        if layer not in info.recorded_layers:
            ax.set_title(f"{name}: not recorded", fontsize=9, loc="left")
            note(ax, "not recorded")
            ax.set_yticks([])
            continue
        edges, rate = population_rate(ds, layer, bin_steps=bin_steps)
        ax.stairs(rate, edges * scale, color=layer_color(layer), baseline=None, linewidth=1.2)
        mean_rate = float(np.sum(rate * np.diff(edges)) / max(info.n_steps, 1))
        ax.set_title(f"{name}: mean {mean_rate:.3g} Hz per neuron", fontsize=9, loc="left")
        ax.set_ylim(bottom=0)
    width = int(_bin_edges(info.n_steps, bin_steps)[1]) if info.n_steps else 0
    axes[-1].set_xlabel(f"{xlabel}  (bins of {width} steps = {width * info.dt * 1e3:g} ms)")
    axes[-1].set_xlim(0, info.n_steps * scale)
    fig.suptitle(title or "Population firing rate during sleep")
    return fig


def plot_rate_distribution(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """Histogram of per-neuron firing rates, one panel per recorded layer.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike Dataset.
    layers : sequence of int, optional
        Layers to show (default all; unrecorded ones get a "not recorded" panel).
    bins : int
        Number of histogram bins.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        y axis logarithmic (neuron counts); the silent-neuron count is written in each
        panel.
    """
    info = spike_info(ds)
    shown = _layers(info, layers)
    fig, axes = new_figure(1, len(shown), panel_size=(3.6, 3.0))
    for ax, layer in zip(axes, shown, strict=True):
        name = layer_name(layer, info.n_layers)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("firing rate (Hz)")
        if layer not in info.recorded_layers:
            note(ax, "not recorded")
            continue
        rates = firing_rates(ds, layer)
        hi = float(rates.max()) if rates.size else 0.0
        ax.hist(rates, bins=bins, range=(0.0, hi if hi > 0 else 1.0), color=layer_color(layer))
        ax.set_yscale("log")
        n_silent = int(np.count_nonzero(rates == 0))
        ax.text(
            0.97,
            0.95,
            f"silent: {n_silent} / {rates.size}\nmean: {rates.mean():.3g} Hz",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    axes[0].set_ylabel("neurons")
    fig.suptitle(title or "Per-neuron firing rates during sleep")
    return fig
