"""What each layer did during sleep: spike rasters, firing rates, spike counts in windows.

Why one file of this length: the figures and the counts behind them share one binning, one
layer selection and one set of spike readers. All functions work on the sparse spike table
of :mod:`brainsleep.formats` (one row per spike: ``layer``, ``neuron``, ``step``) and
build on its readers (:func:`spike_info`, :func:`layer_spikes`,
:func:`neuron_spike_counts`, :func:`firing_rates`). None of them builds an ``n_steps x
n_neurons`` array: counts come from :func:`numpy.bincount` over step bins or neuron
indices, rasters plot the (step, neuron) pairs directly, and per-window counts
(:func:`iter_window_counts`) come in chunks of at most :data:`WINDOW_CELLS` cells. Memory
is O(n_spikes + n_steps + n_neurons), so runs with millions of spikes are fine.

Figures show only the recorded layers (an unrecorded layer is named in a note, never drawn
as an empty panel) and put time in seconds by default (``step * dt``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
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

#: Most (window, neuron) cells :func:`iter_window_counts` holds at once (16 MiB of int64).
WINDOW_CELLS = 2**21

#: Orders of the neurons of a raster panel (see :func:`raster_order`).
RASTER_ORDERS: tuple[str, ...] = ("rate", "index")


@fill_doc
def silent_neurons(ds: xr.Dataset, layer: int) -> int:
    """Number of neurons of a layer that never spiked.

    Parameters
    ----------
    %(ds)s
    %(layer)s

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


def _binned_steps(
    steps: np.ndarray, n_steps: int, bin_steps: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The bin edges over a run of ``n_steps`` and the bin of each spike step: only the last
    bin can be short, so integer division by the first bin's width finds it."""
    edges = _bin_edges(n_steps, bin_steps)
    width = int(edges[1] - edges[0]) if len(edges) > 1 else 1
    return edges, steps // width


def layer_row(info: SpikeInfo, layer: int) -> dict:
    """The columns every per-layer table opens with: ``layer, name, recorded, n_neurons``."""
    return {
        "layer": layer,
        "name": layer_name(layer, info.n_layers),
        "recorded": layer in info.recorded_layers,
        "n_neurons": info.layer_sizes[layer],
    }


def finite_median(x: np.ndarray) -> float:
    """Median of the finite values of ``x``; NaN when there is none (no warning)."""
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


@fill_doc
def population_rate(
    ds: xr.Dataset, layer: int, *, bin_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Population firing rate of a layer over time, per neuron, in Hz.

    For a bin of ``w`` steps holding ``c`` spikes of a layer of ``N`` neurons, the rate is
    ``c / (N * w * dt)``: the mean rate of one neuron of the layer in that bin. The last
    bin may be shorter than ``bin_steps``; its own width is used.

    Parameters
    ----------
    %(ds)s
    %(layer)s
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
    edges, bins = _binned_steps(steps, info.n_steps, bin_steps)
    n_bins = len(edges) - 1
    if n_bins <= 0:
        return edges, np.zeros(0)
    counts = np.bincount(bins, minlength=n_bins)[:n_bins]
    widths = np.diff(edges)
    n_neurons = info.layer_sizes[layer]
    return edges, counts / (n_neurons * widths * info.dt)


@fill_doc
def active_fraction_per_step(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Fraction of a layer's neurons that spiked in each step.

    Parameters
    ----------
    %(ds)s
    %(layer)s

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


@fill_doc
def iter_window_counts(
    ds: xr.Dataset, layer: int, *, bin_steps: int | None = None, max_cells: int = WINDOW_CELLS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Spike count of every neuron of a layer in consecutive time windows, in chunks.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    bin_steps : int, optional
        Window width in steps (default: about 200 windows over the run); the last window
        may be shorter (see :func:`population_rate`).
    max_cells : int
        At most this many (window, neuron) cells per chunk (at least one window).

    Yields
    ------
    edges : numpy.ndarray
        int64 edges in steps of the chunk's windows, shape ``(n_windows_chunk + 1,)``.
    counts : numpy.ndarray
        int64, shape ``(n_windows_chunk, layer_sizes[layer])``: spikes of neuron ``j`` in
        window ``i`` of the chunk.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.

    Notes
    -----
    Each chunk is dense but bounded by ``max_cells``; over the whole run the memory is
    O(n_spikes + max_cells), never ``n_windows x n_neurons``.
    """
    info = spike_info(ds)
    steps, neurons = layer_spikes(ds, layer)
    size = info.layer_sizes[layer]
    edges, bins = _binned_steps(steps, info.n_steps, bin_steps)
    n_bins = len(edges) - 1
    if n_bins <= 0:
        return
    if bins.size > 1 and np.any(bins[1:] < bins[:-1]):  # the format sorts by step
        order = np.argsort(bins, kind="stable")
        bins, neurons = bins[order], neurons[order]
    per_chunk = max(1, int(max_cells) // max(size, 1))
    for b0 in range(0, n_bins, per_chunk):
        b1 = min(n_bins, b0 + per_chunk)
        lo, hi = np.searchsorted(bins, [b0, b1])
        key = (bins[lo:hi] - b0) * size + neurons[lo:hi]
        counts = np.bincount(key, minlength=(b1 - b0) * size).reshape(b1 - b0, size)
        yield edges[b0 : b1 + 1], counts


@fill_doc
def raster_order(ds: xr.Dataset, layer: int, by: str = "rate") -> np.ndarray:
    """Neurons of a layer in the order a raster shows them, top row first.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    by : {"rate", "index"}
        ``"rate"``: most spikes first; ties by earlier first spike, then by index; silent
        neurons last (in index order). ``"index"``: neuron index (for the output layer,
        the class the neuron stands for).

    Returns
    -------
    numpy.ndarray
        int64 permutation of ``range(layer_sizes[layer])``. Deterministic: the same table
        gives the same order.

    Raises
    ------
    ValueError
        Unknown ``by``.
    LayerNotRecordedError
        The layer was not recorded.
    """
    if by not in RASTER_ORDERS:
        raise ValueError(f"by must be one of {RASTER_ORDERS}, got {by!r}")
    info = spike_info(ds)
    size = info.layer_sizes[layer]
    steps, neurons = layer_spikes(ds, layer)
    if by == "index":
        return np.arange(size, dtype=np.int64)
    counts = np.bincount(neurons, minlength=size)
    first = np.full(size, info.n_steps, dtype=np.int64)  # silent: after every spike
    if steps.size:
        order = np.argsort(steps, kind="stable")
        uniq, at = np.unique(neurons[order], return_index=True)
        first[uniq] = steps[order][at]
    return np.lexsort((np.arange(size), first, -counts)).astype(np.int64)


# --------------------------------------------------------------------------------------
# figures


def time_axis(info: SpikeInfo, x_unit: str) -> tuple[float, str]:
    """Factor from steps to ``x_unit`` and the matching axis label.

    Parameters
    ----------
    info : SpikeInfo
        Run attributes (for ``dt``).
    x_unit : {"s", "ms", "step"}
        Wanted unit: simulated time ``step * dt`` in seconds or milliseconds, or the
        sleep step itself.

    Returns
    -------
    scale : float
        Multiply a step index by this to get the x value.
    label : str
        Axis label with the unit.

    Raises
    ------
    ValueError
        Unknown ``x_unit``.
    """
    if x_unit == "step":
        return 1.0, "sleep step"
    if x_unit == "ms":
        return info.dt * 1e3, "time in sleep (ms)"
    if x_unit == "s":
        return info.dt, "time in sleep (s)"
    raise ValueError(f"x_unit must be 's', 'ms' or 'step', got {x_unit!r}")


def recorded_and_missing(
    info: SpikeInfo, layers: Sequence[int] | None
) -> tuple[list[int], list[int]]:
    """Split the wanted layers into recorded ones (drawn) and unrecorded ones (named).

    Parameters
    ----------
    info : SpikeInfo
        Run attributes.
    layers : sequence of int, optional
        Wanted layers; default every layer of ``layer_sizes``.

    Returns
    -------
    shown : list of int
        Wanted layers that were recorded, in the given order.
    missing : list of int
        Wanted layers that were not recorded (not the same as silent).
    """
    wanted = list(range(info.n_layers)) if layers is None else [int(v) for v in layers]
    shown = [v for v in wanted if v in info.recorded_layers]
    return shown, [v for v in wanted if v not in shown]


def missing_note(info: SpikeInfo, missing: Sequence[int]) -> str:
    """``"not recorded: hidden 2 (layer 2)"`` for the unrecorded layers, or ``""``."""
    if not missing:
        return ""
    return "not recorded: " + ", ".join(layer_name(v, info.n_layers) for v in missing)


def no_layer_figure(info: SpikeInfo, missing: Sequence[int], title: str) -> Figure:
    """A figure that says no layer to show was recorded (and which were asked for)."""
    fig, (ax,) = new_figure(1, 1, panel_size=(6.0, 2.0))
    note(ax, "no recorded layer to show\n" + missing_note(info, missing))
    ax.set_xlabel("(nothing recorded)")
    ax.set_ylabel("(nothing recorded)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(title)
    return fig


def _is_output(info: SpikeInfo, layer: int) -> bool:
    return info.n_layers > 1 and layer == info.n_layers - 1


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


@fill_doc
def plot_raster(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    window: tuple[float, float] | None = None,
    x_unit: str = "s",
    max_neurons: int | None = None,
    order: str = "rate",
    title: str | None = None,
) -> Figure:
    """Spike raster of every neuron of the recorded layers, layers stacked (input on top).

    Parameters
    ----------
    %(ds)s
    layers : sequence of int, optional
        Layers to show (default: every layer of ``layer_sizes``). Only recorded layers get
        a panel; unrecorded ones are named in the figure title. A recorded layer without
        spikes in the window says "silent".
    window : (float, float), optional
        Time range ``[start, stop)`` in ``x_unit`` units; default the whole run.
    x_unit : {"s", "ms", "step"}
        x axis in simulated time (``step * dt``) or in sleep steps.
    max_neurons : int, optional
        Draw at most this many neurons per layer: the first ``max_neurons`` rows of
        :func:`raster_order`, i.e. the most active ones (reproducible, no random draw).
        Default: every neuron.
    order : {"rate", "index"}
        Row order within a layer (:func:`raster_order`): ``"rate"`` puts the neurons with
        most spikes on top (ties: earlier first spike on top) and gathers the silent ones
        in a grey band at the bottom. The output layer is always in index order (neuron
        ``k`` stands for class ``k``), labelled by class.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Not shown; save it with :func:`analysis.style.save_figure`.

    Raises
    ------
    ValueError
        Unknown ``order`` or ``x_unit``, or an empty ``window``.

    Notes
    -----
    Spikes are drawn from the sparse (step, neuron) pairs, never from a dense matrix; with
    more than ``PIXEL_MARKER_THRESHOLD`` points in a panel, single-pixel markers are used.
    """
    if order not in RASTER_ORDERS:
        raise ValueError(f"order must be one of {RASTER_ORDERS}, got {order!r}")
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    start, stop = _window_steps(info, window, scale)
    shown, missing = recorded_and_missing(info, layers)
    title = title or "Spike raster during sleep"
    if missing:
        title += f"  ({missing_note(info, missing)})"
    if not shown:
        return no_layer_figure(info, missing, title)
    ratios = [min(1.0, max(0.7, info.layer_sizes[v] / 400)) for v in shown]
    fig, axes = new_figure(
        len(shown),
        1,
        panel_size=(9.0, 2.2 * float(np.mean(ratios))),
        sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )
    for ax, layer in zip(axes, shown, strict=True):
        size = info.layer_sizes[layer]
        name = layer_name(layer, info.n_layers)
        output = _is_output(info, layer)
        rows = raster_order(ds, layer, "index" if output else order)
        counts = neuron_spike_counts(ds, layer)
        n_total = int(counts.sum())
        n_silent = int(np.count_nonzero(counts == 0))
        if max_neurons is not None and size > max_neurons:
            rows = rows[: max(int(max_neurons), 0)]
        n_rows = len(rows)
        # lookup maps a neuron index to its row counted from the bottom (-1: not drawn);
        # O(layer size), never O(steps x neurons).
        lookup = np.full(size, -1, dtype=np.int64)
        lookup[rows] = n_rows - 1 - np.arange(n_rows)
        steps, neurons = layer_spikes(ds, layer, window=(start, stop))
        y = lookup[neurons]
        keep = y >= 0
        x, y = steps[keep] * scale, y[keep]
        silent_rows = int(np.count_nonzero(counts[rows] == 0))
        if order == "rate" and not output and silent_rows:
            ax.axhspan(-0.5, silent_rows - 0.5, color="#dddddd", zorder=0, linewidth=0)
            ax.text(
                0.99,
                (silent_rows / 2) / max(n_rows, 1),
                f"{silent_rows} silent neurons",
                transform=ax.transAxes,
                ha="right",
                va="center",
                fontsize=8,
                color="#555555",
            )
        if len(x) > PIXEL_MARKER_THRESHOLD:
            ax.plot(x, y, ",", color=layer_color(layer), rasterized=True)
        elif len(x):
            ax.plot(
                x,
                y,
                "|",
                color=layer_color(layer),
                markersize=6 if n_rows <= 50 else 3,
                markeredgewidth=0.8,
            )
        else:
            note(ax, "silent: no spikes in this window")
        in_window = "" if window is None else f" ({len(steps)} in this window)"
        shown_rows = "" if n_rows == size else f", the {n_rows} most active drawn"
        ax.set_title(
            f"{name}: {size} neurons{shown_rows}, {n_total} spikes{in_window}, {n_silent} silent",
            fontsize=9,
            loc="left",
        )
        ax.set_ylim(-0.5, n_rows - 0.5)
        if output:
            ax.set_yticks(np.arange(n_rows), [str(v) for v in rows[::-1]], fontsize=6)
            ax.set_ylabel("class")
        elif order == "rate":
            ax.set_ylabel("neurons\n(most active on top)")
        else:
            ax.set_ylabel("neuron index")
    axes[-1].set_xlim(start * scale, stop * scale)
    if order == "rate":
        xlabel += (
            "\nrows: neurons by spike count, most on top (ties: earlier first spike on "
            "top); grey band: silent neurons"
        )
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title)
    return fig


@fill_doc
def plot_population_rate(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    bin_steps: int | None = None,
    x_unit: str = "s",
    title: str | None = None,
) -> Figure:
    """Population firing rate per neuron over time, one stacked panel per recorded layer.

    Parameters
    ----------
    %(ds)s
    %(layers_shown)s
    bin_steps : int, optional
        Bin width in steps (default: about 200 bins); see :func:`population_rate`.
    %(x_unit)s
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
    """
    info = spike_info(ds)
    scale, xlabel = time_axis(info, x_unit)
    shown, missing = recorded_and_missing(info, layers)
    title = title or "Population firing rate during sleep"
    if missing:
        title += f"  ({missing_note(info, missing)})"
    if not shown:
        return no_layer_figure(info, missing, title)
    fig, axes = new_figure(len(shown), 1, panel_size=(9.0, 1.8), sharex=True)
    for ax, layer in zip(axes, shown, strict=True):
        name = layer_name(layer, info.n_layers)
        ax.set_ylabel("Hz / neuron")
        edges, rate = population_rate(ds, layer, bin_steps=bin_steps)
        ax.stairs(rate, edges * scale, color=layer_color(layer), baseline=None, linewidth=1.2)
        mean_rate = float(np.sum(rate * np.diff(edges)) / max(info.n_steps, 1))
        ax.set_title(f"{name}: mean {mean_rate:.3g} Hz per neuron", fontsize=9, loc="left")
        ax.set_ylim(bottom=0)
    width = int(_bin_edges(info.n_steps, bin_steps)[1]) if info.n_steps else 0
    axes[-1].set_xlabel(f"{xlabel}  (bins of {width} steps = {width * info.dt * 1e3:g} ms)")
    axes[-1].set_xlim(0, info.n_steps * scale)
    fig.suptitle(title)
    return fig


def count_bins(max_count: int, bins: int) -> np.ndarray:
    """Histogram edges in spikes for per-neuron spike counts, the silent neurons apart.

    The first bin ``[0.5 - w, 0.5)`` holds exactly the silent neurons (count 0); the next
    ones ``[0.5, 0.5 + w), [0.5 + w, 0.5 + 2w), ...`` hold whole counts, ``w`` spikes each,
    so no bin is empty merely because counts are integers.

    Parameters
    ----------
    max_count : int
        Largest count to cover (>= 0).
    bins : int
        Wanted number of bins for the non-silent neurons (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 edges in spikes; ``w = ceil(max_count / bins)`` (at least 1).
    """
    w = max(1, -(-int(max_count) // max(int(bins), 1)))
    n_active_bins = max(1, -(-int(max_count) // w))
    return np.concatenate([[0.5 - w], 0.5 + w * np.arange(n_active_bins + 1)])


@fill_doc
def plot_rate_distribution(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """Histogram of per-neuron firing rates over the whole run, one panel per layer.

    Parameters
    ----------
    %(ds)s
    %(layers_shown)s
    bins : int
        Most bins for the neurons that spiked (see :func:`count_bins`).
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Linear axes: x the rate in Hz, y the number of neurons. Silent neurons are their
        own grey bar at 0 Hz; the other bins are whole spike counts (a rate is
        ``count / (n_steps * dt)``, so ``1 / (n_steps * dt)`` Hz is one spike in the run,
        the resolution written in each panel).
    """
    info = spike_info(ds)
    shown, missing = recorded_and_missing(info, layers)
    title = title or "Per-neuron firing rates during sleep"
    if missing:
        title += f"  ({missing_note(info, missing)})"
    if not shown:
        return no_layer_figure(info, missing, title)
    fig, axes = new_figure(1, len(shown), panel_size=(3.6, 3.0))
    one_spike = 1.0 / info.duration_s if info.duration_s > 0 else 0.0
    for ax, layer in zip(axes, shown, strict=True):
        ax.set_title(layer_name(layer, info.n_layers), fontsize=9)
        ax.set_xlabel("firing rate (Hz)")
        counts = neuron_spike_counts(ds, layer)
        rates = firing_rates(ds, layer)
        max_count = int(counts.max()) if counts.size else 0
        edges = count_bins(max_count, bins)
        hist, _ = np.histogram(counts, bins=edges)
        w = edges[2] - edges[1]
        centre = (edges[:-1] + edges[1:]) / 2 * one_spike
        bar_w = np.diff(edges) * one_spike * (0.85 if w == 1 else 1.0)
        ax.bar(centre[1:], hist[1:], width=bar_w[1:], color=layer_color(layer), lw=0)
        ax.bar(
            centre[:1],
            hist[:1],
            width=bar_w[:1],
            facecolor="white",
            edgecolor="#444444",
            hatch="///",
            lw=0.6,
            label="silent (0 Hz)",
        )
        ax.set_xlim(edges[0] * one_spike, edges[-1] * one_spike)
        if w == 1 and max_count <= 10:  # one bar per spike count: tick each
            ticks = np.arange(max_count + 1) * one_spike
            ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        else:
            ax.set_xticks([t for t in ax.get_xticks() if t >= 0])
            ax.set_xlim(edges[0] * one_spike, edges[-1] * one_spike)
        ax.set_ylim(0, max(int(hist.max()), 1) * 1.4)  # room for the text
        n_silent = int(hist[0])
        mean = float(rates.mean()) if rates.size else float("nan")
        ax.text(
            0.97,
            0.95,
            f"hatched: silent, {n_silent} of {rates.size}\nmean {mean:.3g} Hz\n"
            f"1 spike in the run = {one_spike:.3g} Hz",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    axes[0].set_ylabel("neurons")
    fig.suptitle(title)
    return fig
