"""Spike-train statistics and spike figures against hand computations.

ISI, CV and Fano factor (analysis.spike_stats, Elephant underneath), the active fraction
and population sparseness over time (analysis.sparsity), and what the raster and rate
histogram draw (analysis.spikes), each on a spike table whose answer is known.
"""

from __future__ import annotations

import json

import elephant.statistics as es
import matplotlib.pyplot as plt
import numpy as np
import pytest
import quantities as pq
import xarray as xr

from brainsleep.analysis import (
    LayerNotRecordedError,
    activity_over_time,
    fano_factors,
    interspike_intervals,
    isi_cv,
    iter_window_counts,
    plot_isi_cv_fano,
    plot_population_rate,
    plot_raster,
    plot_rate_distribution,
    plot_sparseness_over_time,
    population_fano_factor,
    raster_order,
    spike_train_table,
)
from brainsleep.interop import to_neo


def spikes(layer_sizes, trains, *, n_steps, dt=1e-3, recorded_layers=None) -> xr.Dataset:
    """Spike table (docs/formats.md) from ``{(layer, neuron): [steps]}``."""
    rows = [(s, layer, n) for (layer, n), steps in trains.items() for s in steps]
    rows.sort()
    step, layer, neuron = (np.asarray(v) for v in zip(*rows, strict=True)) if rows else ([],) * 3
    return xr.Dataset(
        {
            "layer": ("spike", np.asarray(layer, dtype=np.int16)),
            "neuron": ("spike", np.asarray(neuron, dtype=np.int32)),
            "step": ("spike", np.asarray(step, dtype=np.int32)),
        },
        attrs={
            "dt": dt,
            "n_steps": n_steps,
            "layer_sizes": list(layer_sizes),
            "recorded_layers": list(
                range(len(layer_sizes)) if recorded_layers is None else recorded_layers
            ),
            "params": json.dumps({}),
        },
    )


def bernoulli_spikes(n_neurons, n_steps, p, seed=0) -> xr.Dataset:
    """Independent Bernoulli trains (a spike per step with probability p): Poisson-like."""
    rng = np.random.default_rng(seed)
    trains = {(0, i): np.flatnonzero(rng.random(n_steps) < p) for i in range(n_neurons)}
    return spikes([n_neurons], trains, n_steps=n_steps)


# --------------------------------------------------------------------------------------
# ISI, CV, Fano factor


def test_regular_train_has_cv_zero_and_fano_zero():
    # neuron 0 fires every 10 steps (10 ms), neuron 1 is silent
    ds = spikes([2], {(0, 0): range(0, 1000, 10)}, n_steps=1000)
    isis = interspike_intervals(ds, 0)
    assert isis.shape == (99,)
    np.testing.assert_allclose(isis, 0.010)
    cv = isi_cv(ds, 0)
    assert cv[0] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(cv[1])  # silent
    # one spike in every 10-step window, and two in every 20-step window: no variance
    assert fano_factors(ds, 0, window_steps=10)[0] == pytest.approx(0.0, abs=1e-12)
    assert fano_factors(ds, 0, window_steps=20)[0] == pytest.approx(0.0, abs=1e-12)
    # a 15-step window holds 2, 1, 2, 1, ... spikes: var/mean = 0.25 / 1.5
    assert fano_factors(ds, 0, window_steps=15)[0] == pytest.approx(0.25 / 1.5)


def test_known_isis_and_cv():
    # neuron 0: ISIs 2, 3, 4, 5 ms; neuron 1: one ISI of 2 ms (too few spikes for a CV)
    ds = spikes([3], {(0, 0): [0, 2, 5, 9, 14], (0, 1): [3, 5]}, n_steps=20)
    np.testing.assert_allclose(np.sort(interspike_intervals(ds, 0)), [2e-3, 2e-3, 3e-3, 4e-3, 5e-3])
    cv = isi_cv(ds, 0, min_spikes=5)
    # mean 3.5 ms, population sd sqrt(1.25) ms
    assert cv[0] == pytest.approx(np.sqrt(1.25) / 3.5)
    assert np.isnan(cv[1]) and np.isnan(cv[2])
    assert np.isnan(isi_cv(ds, 0, min_spikes=6)[0])
    with pytest.raises(ValueError, match="min_spikes"):
        isi_cv(ds, 0, min_spikes=2)


def test_isi_figure_draws_the_known_histogram():
    ds = spikes([3], {(0, 0): [0, 2, 5, 9, 14], (0, 1): [3, 5]}, n_steps=20)
    fig = plot_isi_cv_fano(ds, isi_quantile=1.0)
    ax_isi = fig.axes[0]
    heights = {
        round(p.get_x() + p.get_width() / 2, 6): p.get_height()
        for p in ax_isi.patches
        if p.get_height() > 0
    }
    # bins are whole steps (1 ms here): 2 ISIs of 2 ms, one each of 3, 4 and 5 ms
    assert heights == {2.0: 2, 3.0: 1, 4.0: 1, 5.0: 1}
    assert "inter-spike interval (ms)" in ax_isi.get_xlabel()
    plt.close(fig)


def test_poisson_like_train_has_fano_and_cv_near_one():
    p = 0.02
    ds = bernoulli_spikes(5, 200_000, p, seed=1)
    # Bernoulli counts in windows: Fano = 1 - p; geometric ISIs: CV = sqrt(1 - p)
    fano = fano_factors(ds, 0, window_steps=100)
    np.testing.assert_allclose(fano, 1 - p, atol=0.1)
    np.testing.assert_allclose(isi_cv(ds, 0), np.sqrt(1 - p), atol=0.05)
    assert population_fano_factor(ds, 0, window_steps=100) == pytest.approx(1 - p, abs=0.1)


def test_synchronous_neurons_raise_the_layer_fano_factor():
    # 20 neurons firing together in bursts: each alone looks like its train, the layer count
    # per window is 20 times as variable
    rng = np.random.default_rng(2)
    burst_steps = np.flatnonzero(rng.random(50_000) < 0.01)
    ds = spikes([20], {(0, i): burst_steps for i in range(20)}, n_steps=50_000)
    single = fano_factors(ds, 0, window_steps=100)
    layer = population_fano_factor(ds, 0, window_steps=100)
    assert layer == pytest.approx(20 * single[0])


def test_fano_uses_full_windows_only():
    # 25 steps, windows of 10: the spike at step 22 falls in the dropped partial window
    ds = spikes([1], {(0, 0): [0, 1, 2, 10, 22]}, n_steps=25)
    # counts [3, 1]: mean 2, var 1
    assert fano_factors(ds, 0, window_steps=10, min_spikes=1)[0] == pytest.approx(0.5)
    assert np.isnan(fano_factors(ds, 0, window_steps=13, min_spikes=1)[0])  # 1 window
    with pytest.raises(ValueError, match="window_steps"):
        fano_factors(ds, 0, window_steps=0)


# elephant's isi on a neo SpikeTrain passes copy=False to quantities 0.16, which warns
@pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")
def test_statistics_equal_elephant_on_neo_spike_trains():
    ds = bernoulli_spikes(4, 5_000, 0.03, seed=3)
    trains = to_neo(ds, 0)  # the one Neo export (brainsleep.interop)
    assert len(trains) == 4
    steps = ds["step"].values[ds["neuron"].values == 2]
    np.testing.assert_allclose(trains[2].rescale("s").magnitude, steps * 1e-3)
    assert float(trains[2].t_stop.rescale("s")) == pytest.approx(5.0)
    cv = isi_cv(ds, 0)
    fano = fano_factors(ds, 0, window_steps=100)
    for i, st in enumerate(trains):
        assert cv[i] == pytest.approx(es.cv(es.isi(st).magnitude))
        # neo's time_slice includes both ends: cut half a step before each window edge
        edges = (np.arange(51) * 100 - 0.5) * 1e-3 * pq.s
        windows = [st.time_slice(edges[k], edges[k + 1]) for k in range(50)]
        assert fano[i] == pytest.approx(es.fanofactor(windows))


def test_unrecorded_layer_is_refused_and_marked():
    ds = spikes([3, 2], {(0, 0): [0, 5, 9]}, n_steps=20, recorded_layers=[0])
    with pytest.raises(LayerNotRecordedError):
        isi_cv(ds, 1)
    with pytest.raises(LayerNotRecordedError):
        fano_factors(ds, 1)
    table = spike_train_table(ds, window_steps=5).set_index("layer")
    assert not table.loc[1, "recorded"] and np.isnan(table.loc[1, "n_isi"])
    assert table.loc[0, "n_isi"] == 2 and table.loc[0, "isi_median_ms"] == pytest.approx(4.5)
    assert table.loc[0, "fano_window_ms"] == pytest.approx(5.0)


# --------------------------------------------------------------------------------------
# active fraction and population sparseness over time


def windows_example() -> xr.Dataset:
    # 4 neurons, windows of 10 steps:
    # w0: neuron 0 fires twice            -> active 1/4, sparseness 1
    # w1: every neuron fires once         -> active 1,   sparseness 0
    # w2: nothing                         -> active 0,   sparseness NaN
    # w3: neurons 0 and 1 fire once each  -> active 1/2, a = 1/2, S = (1 - 1/2)/(1 - 1/4)
    trains = {(0, 0): [1, 5, 12, 31], (0, 1): [13, 33], (0, 2): [14], (0, 3): [15]}
    return spikes([4], trains, n_steps=40)


def test_active_fraction_and_sparseness_per_window():
    edges, active, sparse = activity_over_time(windows_example(), 0, bin_steps=10)
    np.testing.assert_array_equal(edges, [0, 10, 20, 30, 40])
    np.testing.assert_allclose(active, [0.25, 1.0, 0.0, 0.5])
    np.testing.assert_allclose(sparse, [1.0, 0.0, np.nan, 2 / 3])


def test_window_counts_in_chunks_equal_one_pass():
    ds = bernoulli_spikes(7, 1_000, 0.05, seed=4)
    whole = list(iter_window_counts(ds, 0, bin_steps=30))
    chunks = list(iter_window_counts(ds, 0, bin_steps=30, max_cells=14))  # 2 windows each
    assert len(whole) == 1 and len(chunks) == 17
    np.testing.assert_array_equal(whole[0][1], np.concatenate([c for _, c in chunks]))
    assert whole[0][1].sum() == ds.sizes["spike"]
    np.testing.assert_array_equal(whole[0][0], np.concatenate([[0]] + [e[1:] for e, _ in chunks]))


def test_sparseness_figure_is_not_the_population_rate():
    ds = windows_example()
    fig = plot_sparseness_over_time(ds, bin_steps=10)
    left, right = fig.axes[0], fig.axes[1]
    # window 0: two spikes of one neuron -> the active fraction counts it once
    np.testing.assert_allclose(left.patches[0].get_data().values, [0.25, 1.0, 0.0, 0.5])
    assert "sparseness" in right.get_ylabel()
    assert right.get_ylim()[0] < 0 < 1 < right.get_ylim()[1]
    plt.close(fig)


# --------------------------------------------------------------------------------------
# rasters and rate histograms


def raster_example() -> xr.Dataset:
    # input (5 neurons): neuron 3 fires 3 times, neurons 1 and 4 once (4 first), 0 and 2 silent
    # hidden (4 neurons): not recorded; output (3 neurons): neuron 2 fires once
    trains = {(0, 3): [1, 4, 8], (0, 1): [6], (0, 4): [2], (2, 2): [5]}
    return spikes([5, 4, 3], trains, n_steps=10, recorded_layers=[0, 2])


def test_raster_order_by_count_then_first_spike():
    ds = raster_example()
    np.testing.assert_array_equal(raster_order(ds, 0), [3, 4, 1, 0, 2])
    np.testing.assert_array_equal(raster_order(ds, 0, by="index"), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="by must be"):
        raster_order(ds, 0, by="random")


def test_raster_draws_every_spike_of_recorded_layers_only():
    ds = raster_example()
    fig = plot_raster(ds, x_unit="ms")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2  # the unrecorded hidden layer gets no panel ...
    assert "not recorded: hidden 1 (layer 1)" in fig.get_suptitle()  # ... but is named
    (line,) = axes[0].lines
    x, y = line.get_xdata(), line.get_ydata()
    assert len(x) == 5  # every spike of the input layer
    # top row (y = 4) is neuron 3 with its 3 spikes, at 1, 4 and 8 ms
    np.testing.assert_allclose(sorted(x[y == 4]), [1.0, 4.0, 8.0])
    np.testing.assert_allclose(x[y == 3], [2.0])  # neuron 4: first of the one-spike ones
    assert axes[-1].get_xlabel().startswith("time in sleep (ms)")
    assert "2 silent" in axes[0].get_title(loc="left")
    # the output layer stays in class order: neuron 2 is the bottom row (classes 0, 1, 2)
    (out_line,) = axes[1].lines
    np.testing.assert_allclose(out_line.get_ydata(), [0])
    assert [t.get_text() for t in axes[1].get_yticklabels()] == ["2", "1", "0"]
    plt.close(fig)
    fig = plot_raster(ds, max_neurons=2, x_unit="s")
    (line,) = fig.axes[0].lines
    assert len(line.get_xdata()) == 4  # neurons 3 and 4 only
    plt.close(fig)


def test_rate_histogram_keeps_silent_neurons_apart_on_linear_axes():
    ds = raster_example()
    fig = plot_rate_distribution(ds)
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "linear"
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 5  # every neuron once
    silent = [p for p in ax.patches if p.get_hatch()]
    assert [p.get_height() for p in silent] == [2]
    # one spike in 10 ms is 100 Hz: the bars sit on whole spike counts 1 and 3
    centres = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches}
    assert centres[0] == 2 and centres[100] == 2 and centres[300] == 1
    assert len(fig.axes) == 2  # unrecorded layer not drawn
    plt.close(fig)


def test_figures_without_recorded_layers_say_so():
    ds = spikes([3, 2], {}, n_steps=10, recorded_layers=[])
    for make in (plot_raster, plot_population_rate, plot_rate_distribution):
        fig = make(ds)
        texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        assert "no recorded layer" in texts
        plt.close(fig)


def test_isi_figure_names_layers_without_isis():
    ds = spikes([3, 2], {(0, 0): [0, 3, 7, 9, 12], (1, 1): [4]}, n_steps=20)
    fig = plot_isi_cv_fano(ds, window_steps=5)
    assert "no neuron spiked twice (no ISI) in: output (layer 1)" in fig.get_suptitle()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3  # one row: the input layer
    plt.close(fig)
