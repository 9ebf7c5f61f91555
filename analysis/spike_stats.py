"""Spike-train statistics of the sleep spikes: inter-spike intervals, CV, Fano factor.

The measures are Elephant's (Denker et al. 2018, ``elephant.statistics``), applied to the
saved spike table (:mod:`brainsleep.formats`) with spike times ``t = step * dt`` in seconds:

Inter-spike interval (ISI)
    ``elephant.statistics.isi``: differences of consecutive spike times of one neuron.
Coefficient of variation of the ISIs (CV)
    ``elephant.statistics.cv`` (``scipy.stats.variation``): ``std(ISI) / mean(ISI)``
    with the population standard deviation (``ddof=0``). 0 for a regular (clock-like)
    train, 1 for a Poisson process (Softky & Koch 1993, J. Neurosci. 13, 334-350).
Fano factor
    ``elephant.statistics.fanofactor``: ``var(N) / mean(N)`` (``ddof=0``) of the spike
    counts ``N`` in consecutive, non-overlapping windows of equal width (the windows play
    the part of Elephant's trials; a partial last window is dropped). 1 for a Poisson
    process, 0 for a train with the same count in every window. Per neuron, and for the
    layer as a whole (the summed count of the layer in each window: above 1 when the
    layer's neurons fire together).

A neuron with fewer than ``min_spikes`` spikes gets NaN for CV and Fano factor (with 2 or 3
ISIs the CV is mostly chance). :func:`brainsleep.interop.to_neo` gives the same trains as Neo
``SpikeTrain`` objects for use with Elephant or Viziphant directly; the statistics here use
plain arrays (a Neo object costs about half a millisecond to build) and group the neurons
by spike count, so that one Elephant call handles every neuron with the same number of
spikes. Memory is O(n_spikes + n_neurons). Elephant is imported on first use
(:func:`elephant_statistics`): it takes seconds, and most analysis commands never need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from brainsleep.docstrings import fill_doc
from brainsleep.formats import SpikeInfo, layer_spikes, spike_counts, spike_info

from .spikes import finite_median, layer_row, missing_note, recorded_and_missing
from .style import layer_color, layer_name, new_figure

if TYPE_CHECKING:
    pass


def elephant_statistics() -> ModuleType:
    """``elephant.statistics``, imported on first use.

    Elephant loads ``scipy.stats`` and Neo (seconds), so ``import brainsleep.analysis``
    stays fast for the commands that never compute a spike statistic.
    """
    import elephant.statistics

    return elephant.statistics


#: Neurons with fewer spikes get NaN for CV and Fano factor.
MIN_SPIKES = 5

#: Default width of the Fano-factor counting windows, in seconds.
FANO_WINDOW_S = 0.1

#: Columns of :func:`spike_train_table`.
SPIKE_TRAIN_COLUMNS: tuple[str, ...] = (
    "layer",
    "name",
    "recorded",
    "n_neurons",
    "n_spikes",
    "n_isi",
    "isi_median_ms",
    "n_neurons_min_spikes",
    "cv_median",
    "fano_median",
    "population_fano",
    "fano_window_ms",
)


def _trains_by_neuron(ds: xr.Dataset, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s) sorted by neuron, then time, and each neuron's start in them.

    Returns ``times`` (float64, ``(n_spikes,)``) and ``starts`` (int64,
    ``(n_neurons + 1,)``): neuron ``i``'s train is ``times[starts[i]:starts[i + 1]]``.
    """
    info = spike_info(ds)
    steps, neurons = layer_spikes(ds, layer)
    order = np.lexsort((steps, neurons))
    counts = np.bincount(neurons, minlength=info.layer_sizes[layer])
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return steps[order] * info.dt, starts


def _groups_by_count(
    times: np.ndarray, starts: np.ndarray, min_count: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each spike count ``k >= min_count``: the neurons with ``k`` spikes and their trains.

    Yields ``(neurons, trains)`` with ``trains`` of shape ``(len(neurons), k)``; all groups
    together hold each spike once, so the memory is O(n_spikes).
    """
    counts = np.diff(starts)
    for k in np.unique(counts[counts >= max(min_count, 1)]):
        neurons = np.flatnonzero(counts == k)
        yield neurons, times[starts[neurons][:, None] + np.arange(k)]


@fill_doc
def interspike_intervals(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Every inter-spike interval of a layer, pooled over its neurons.

    Parameters
    ----------
    %(ds)s
    %(layer)s

    Returns
    -------
    numpy.ndarray
        float64 ISIs in seconds, shape ``(n_spikes - n_neurons_that_spiked,)``, from
        ``elephant.statistics.isi`` on each neuron's train (multiples of ``dt``); empty
        when no neuron spiked twice.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    es = elephant_statistics()
    times, starts = _trains_by_neuron(ds, layer)
    parts = [np.ravel(es.isi(trains, axis=1)) for _, trains in _groups_by_count(times, starts, 2)]
    return np.concatenate(parts) if parts else np.zeros(0)


@fill_doc
def isi_cv(ds: xr.Dataset, layer: int, *, min_spikes: int = MIN_SPIKES) -> np.ndarray:
    """Coefficient of variation of each neuron's inter-spike intervals.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    min_spikes : int
        Neurons with fewer spikes get NaN (at least 3: two ISIs).

    Returns
    -------
    numpy.ndarray
        float64, shape ``(layer_sizes[layer],)``: ``elephant.statistics.cv`` of the ISIs,
        ``std / mean`` with ``ddof=0``; 0 for a regular train, about 1 for Poisson.

    Raises
    ------
    ValueError
        ``min_spikes < 3``.
    LayerNotRecordedError
        The layer was not recorded.
    """
    if min_spikes < 3:
        raise ValueError(f"min_spikes must be >= 3 (two ISIs), got {min_spikes}")
    es = elephant_statistics()
    times, starts = _trains_by_neuron(ds, layer)
    cv = np.full(len(starts) - 1, np.nan)
    for neurons, trains in _groups_by_count(times, starts, min_spikes):
        cv[neurons] = es.cv(es.isi(trains, axis=1), axis=1)
    return cv


def fano_window_steps(dt: float, window_s: float = FANO_WINDOW_S) -> int:
    """Counting window in whole steps nearest to ``window_s`` seconds (at least 1)."""
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    return max(1, int(round(window_s / dt)))


def _fano_windows(info: SpikeInfo, window_steps: int | None) -> tuple[int, int]:
    """The Fano-factor window width in steps (given, else :func:`fano_window_steps`) and
    the number of full windows in the run; ValueError for a width below 1."""
    width = fano_window_steps(info.dt) if window_steps is None else int(window_steps)
    if width < 1:
        raise ValueError(f"window_steps must be >= 1, got {width}")
    return width, info.n_steps // width


def _windowed_trains(
    steps: np.ndarray, neurons: np.ndarray, n_windows: int, width: int, min_spikes: int
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Each neuron's train cut into ``n_windows`` windows of ``width`` steps.

    Yields ``(neuron, trains)`` for every neuron with at least ``min_spikes`` spikes in the
    full windows, ``trains[k]`` holding its spike steps in window ``k`` (the empty windows
    share one empty array). Spikes past the last full window are dropped. The work is one
    Python step per (neuron, non-empty window) plus a C-level list of ``n_windows`` per
    neuron; nothing of size ``n_neurons x n_windows`` is held at once.
    """
    keep = steps < n_windows * width
    steps, neurons = steps[keep], neurons[keep]
    order = np.lexsort((steps, neurons))
    steps, neurons = steps[order], neurons[order]
    # runs of spikes of one neuron in one window
    key = neurons * n_windows + steps // width
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(key)) + 1, [key.size]])
    run_neuron = (key[cuts[:-1]] // n_windows).tolist()
    run_window = (key[cuts[:-1]] % n_windows).tolist()
    bounds = cuts.tolist()
    empty = steps[:0]
    run, n_runs = 0, len(run_neuron)
    while run < n_runs:
        neuron = run_neuron[run]
        trains = [empty] * n_windows
        first = run
        while run < n_runs and run_neuron[run] == neuron:
            trains[run_window[run]] = steps[bounds[run] : bounds[run + 1]]
            run += 1
        if bounds[run] - bounds[first] >= min_spikes:
            yield neuron, trains


@fill_doc
def fano_factors(
    ds: xr.Dataset,
    layer: int,
    *,
    window_steps: int | None = None,
    min_spikes: int = MIN_SPIKES,
) -> np.ndarray:
    """Fano factor of each neuron's spike counts in consecutive windows.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    window_steps : int, optional
        Window width in steps (default :data:`FANO_WINDOW_S` via
        :func:`fano_window_steps`). Only the ``n_steps // window_steps`` full windows are
        used, so every window has the same duration.
    min_spikes : int
        Neurons with fewer spikes (in the full windows) get NaN.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(layer_sizes[layer],)``: ``elephant.statistics.fanofactor`` over
        the windows, ``var / mean`` with ``ddof=0``; NaN for every neuron when there are
        fewer than 2 windows.

    Notes
    -----
    Elephant takes one list of per-window trains per neuron, so the time is
    O(n_spikes + n_counted_neurons x n_windows), with the second term at C speed (list
    building and Elephant's ``len`` of each window); the memory stays O(n_spikes +
    n_windows).

    Raises
    ------
    ValueError
        ``window_steps < 1``.
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    width, n_windows = _fano_windows(info, window_steps)
    steps, neurons = layer_spikes(ds, layer)
    fano = np.full(info.layer_sizes[layer], np.nan)
    if n_windows < 2:
        return fano
    es = elephant_statistics()
    for neuron, trains in _windowed_trains(steps, neurons, n_windows, width, max(min_spikes, 1)):
        fano[neuron] = es.fanofactor(trains)
    return fano


@fill_doc
def population_fano_factor(ds: xr.Dataset, layer: int, *, window_steps: int | None = None) -> float:
    """Fano factor of a layer's summed spike count in consecutive windows.

    Parameters
    ----------
    %(ds)s
    %(layer)s
    window_steps : int, optional
        Window width in steps (default as :func:`fano_factors`); full windows only.

    Returns
    -------
    float
        ``elephant.statistics.fanofactor`` of the layer's count per window: about 1 for
        independent Poisson neurons, above 1 when they fire together or in bursts. NaN
        without spikes or with fewer than 2 windows.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    width, n_windows = _fano_windows(info, window_steps)
    steps, _ = layer_spikes(ds, layer)
    if n_windows < 2:
        return float("nan")
    layer_train = list(_windowed_trains(steps, np.zeros_like(steps), n_windows, width, 1))
    if not layer_train:
        return float("nan")
    return float(elephant_statistics().fanofactor(layer_train[0][1]))


@fill_doc
def spike_train_table(
    ds: xr.Dataset,
    *,
    min_spikes: int = MIN_SPIKES,
    window_steps: int | None = None,
) -> pd.DataFrame:
    """ISI, CV and Fano factor of every layer, one row per layer.

    Parameters
    ----------
    %(ds)s
    min_spikes : int
        Spikes a neuron needs for its CV and Fano factor.
    window_steps : int, optional
        Fano-factor window in steps (default :data:`FANO_WINDOW_S`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SPIKE_TRAIN_COLUMNS`: ``n_isi`` (pooled ISIs), ``isi_median_ms``,
        ``n_neurons_min_spikes`` (neurons with at least ``min_spikes`` spikes),
        ``cv_median`` and ``fano_median`` over those neurons, ``population_fano`` (of the
        layer's summed count), ``fano_window_ms``. Unrecorded layers have
        ``recorded=False`` and NaN measures; a measure without data is NaN.
    """
    info = spike_info(ds)
    width, _ = _fano_windows(info, window_steps)
    rows = []
    for layer in range(len(info.layer_sizes)):
        row = {**layer_row(info, layer), "fano_window_ms": width * info.dt * 1e3}
        if row["recorded"]:
            isis = interspike_intervals(ds, layer)
            cv = isi_cv(ds, layer, min_spikes=min_spikes)
            fano = fano_factors(ds, layer, window_steps=width, min_spikes=min_spikes)
            row.update(
                n_spikes=spike_counts(ds)[layer],
                n_isi=int(isis.size),
                isi_median_ms=float(np.median(isis) * 1e3) if isis.size else np.nan,
                n_neurons_min_spikes=int(np.count_nonzero(np.isfinite(cv))),
                cv_median=finite_median(cv),
                fano_median=finite_median(fano),
                population_fano=population_fano_factor(ds, layer, window_steps=width),
            )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(SPIKE_TRAIN_COLUMNS))


def _hist_panel(ax, values: np.ndarray, bins, color: str, ref: float | None, text: str) -> None:
    counts, _, _ = ax.hist(values, bins=bins, color=color, edgecolor="white", linewidth=0.3)
    if ref is not None:  # the distributions centre on the Poisson value: text on the left
        ax.axvline(ref, color="#333333", linestyle="--", linewidth=1)
        text += f"\ndashed: Poisson ({ref:g})"
        ax.text(0.03, 0.95, text, transform=ax.transAxes, ha="left", va="top", fontsize=8)
    else:
        ax.text(0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.set_ylim(0, max(float(np.max(counts)), 1.0) * 1.5)  # room for the text


@fill_doc
def plot_isi_cv_fano(
    ds: xr.Dataset,
    layers: Sequence[int] | None = None,
    *,
    min_spikes: int = MIN_SPIKES,
    window_steps: int | None = None,
    isi_quantile: float = 0.99,
    title: str | None = None,
) -> Figure:
    """ISI histogram, CV of ISIs and Fano factor per layer: one row per layer with ISIs.

    Parameters
    ----------
    %(ds)s
    layers : sequence of int, optional
        Layers to consider (default all). Unrecorded layers, and recorded layers in which
        no neuron spiked twice (no ISI), are named in a note rather than drawn empty.
    min_spikes : int
        Spikes a neuron needs for its CV and Fano factor.
    window_steps : int, optional
        Fano-factor window in steps (default :data:`FANO_WINDOW_S`).
    isi_quantile : float
        The ISI axis ends at this quantile of the layer's ISIs; the share beyond it is
        written in the panel.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        Columns: pooled ISI histogram (ms, bins of whole steps), per-neuron CV histogram,
        per-neuron Fano-factor histogram; dashed lines at the Poisson values (CV 1,
        Fano 1). Linear axes throughout.
    """
    info = spike_info(ds)
    width = fano_window_steps(info.dt) if window_steps is None else int(window_steps)
    shown, missing = recorded_and_missing(info, layers)
    stats = {}
    no_isi = []
    for layer in shown:
        isis = interspike_intervals(ds, layer)
        if isis.size:
            stats[layer] = isis
        else:
            no_isi.append(layer)
    notes = []
    if no_isi:
        names = ", ".join(layer_name(v, info.n_layers) for v in no_isi)
        notes.append(f"no neuron spiked twice (no ISI) in: {names}")
    if missing:
        notes.append(missing_note(info, missing))
    title = title or "Spike-train statistics during sleep"
    fig, axes = new_figure(max(len(stats), 1), 3, panel_size=(4.0, 2.4))
    if not stats:
        for ax in axes[1:]:
            ax.set_visible(False)
        axes[0].text(0.5, 0.5, "\n".join(notes) or "no layer", ha="center", va="center")
        axes[0].set_xlabel("ISI (ms)")
        axes[0].set_ylabel("ISIs")
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        fig.suptitle(title)
        return fig
    for row, (layer, isis) in enumerate(stats.items()):
        ax_isi, ax_cv, ax_ff = axes[3 * row : 3 * row + 3]
        color = layer_color(layer)
        name = layer_name(layer, info.n_layers)
        steps = np.rint(isis / info.dt).astype(np.int64)
        top = max(int(np.ceil(np.quantile(steps, isi_quantile))), 1)
        bin_w = max(1, -(-top // 60))
        edges_ms = (np.arange(0, top + bin_w + 1, bin_w) + 0.5) * info.dt * 1e3
        beyond = np.count_nonzero(steps > top) / steps.size
        _hist_panel(
            ax_isi,
            isis * 1e3,
            np.concatenate([[0.0], edges_ms]),
            color,
            None,
            f"{isis.size} ISIs\nmedian {np.median(isis) * 1e3:.3g} ms\n"
            f"{100 * beyond:.1f}% beyond the axis",
        )
        ax_isi.set_xlim(0, edges_ms[-1])
        ax_isi.set_title(name, fontsize=9, loc="left")
        ax_isi.set_ylabel("ISIs")
        cv = isi_cv(ds, layer, min_spikes=min_spikes)
        cv = cv[np.isfinite(cv)]
        fano = fano_factors(ds, layer, window_steps=width, min_spikes=min_spikes)
        fano = fano[np.isfinite(fano)]
        pop = population_fano_factor(ds, layer, window_steps=width)
        for ax, vals, label, extra in (
            (ax_cv, cv, "CV", ""),
            (ax_ff, fano, "Fano", f"\nlayer count: Fano {pop:.3g}"),
        ):
            ax.set_ylabel("neurons")
            if vals.size:
                hi = max(2.0, float(np.quantile(vals, 0.99)) * 1.05)
                _hist_panel(
                    ax,
                    np.clip(vals, 0, hi),
                    np.linspace(0, hi, 41),
                    color,
                    1.0,
                    f"{vals.size} neurons with ≥ {min_spikes} spikes\n"
                    f"median {label} {np.median(vals):.3g}{extra}",
                )
                ax.set_xlim(0, hi)
            else:
                ax.text(
                    0.5,
                    0.5,
                    f"no neuron with ≥ {min_spikes} spikes{extra}",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#555555",
                )
                ax.set_yticks([])
    last = 3 * (len(stats) - 1)
    axes[last].set_xlabel("inter-spike interval (ms)")
    axes[last + 1].set_xlabel("CV of a neuron's ISIs")
    axes[last + 2].set_xlabel(f"Fano factor of counts in {width * info.dt * 1e3:g} ms windows")
    fig.suptitle(title + ("\n" + "; ".join(notes) if notes else ""))
    return fig
