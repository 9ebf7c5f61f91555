"""Tests of analysis/: known answers on hand-made spike tables, weights and metrics, plus an
end-to-end run of ``python -m analysis`` on a fake results directory laid out as in
docs/formats.md."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import brainsleep.analysis as analysis
from brainsleep.analysis import (
    STAGE_COLORS,
    LayerNotRecordedError,
    active_fraction_per_step,
    aggregate_over_seeds,
    confusion_fractions,
    firing_rates,
    hoyer,
    per_class_accuracy,
    pixel_weight_change,
    population_rate,
    predicted_distribution,
    prediction_entropy,
    save_figure,
    silent_neurons,
    sparsity_table,
    spike_info,
    stage_gain,
    treves_rolls,
    treves_rolls_sparseness,
    weight_change_table,
)
from brainsleep.analysis.report import CELL_FIGURES as REPORT_CELL_FIGURES
from brainsleep.analysis.report import SPIKE_FIGURES
from brainsleep.analysis.results import ResultsError, load_results

REPO = Path(__file__).resolve().parents[1]
STAGES = ["baseline", "sleep", "sleep_finetune", "finetune_only", "strong"]

try:  # h5netcdf >= 1.8 needs h5py (or pyfive) to write netCDF files
    import h5py  # noqa: F401

    HAVE_H5 = True
except ImportError:
    HAVE_H5 = False

needs_netcdf = pytest.mark.skipif(
    not HAVE_H5, reason="h5py missing: h5netcdf cannot write spikes.nc / confusion.nc"
)


# --------------------------------------------------------------------------------------
# builders


def make_spikes(
    layer_sizes: list[int],
    steps,
    layers,
    neurons,
    *,
    n_steps: int,
    dt: float = 1e-3,
    recorded_layers: list[int] | None = None,
    sort: bool = True,
) -> xr.Dataset:
    """Spike Dataset as in docs/formats.md from parallel (step, layer, neuron) arrays."""
    steps = np.asarray(steps, dtype=np.int32)
    layers = np.asarray(layers, dtype=np.int16)
    neurons = np.asarray(neurons, dtype=np.int32)
    if sort:
        order = np.lexsort((neurons, layers, steps))
        steps, layers, neurons = steps[order], layers[order], neurons[order]
    return xr.Dataset(
        {
            "layer": ("spike", layers),
            "neuron": ("spike", neurons),
            "step": ("spike", steps),
        },
        attrs={
            "dt": float(dt),
            "n_steps": int(n_steps),
            "device": "runtime",
            "seed": 0,
            "layer_sizes": list(layer_sizes),
            "recorded_layers": list(
                range(len(layer_sizes)) if recorded_layers is None else recorded_layers
            ),
            "params": json.dumps({"dt": dt}),
            "model": "test",
        },
    )


def every_step_spikes(n_steps: int = 50, dt: float = 1e-3) -> xr.Dataset:
    """Layer 1 (3 neurons): neuron 2 fires every step. Layer 0 (4 neurons): silent."""
    steps = np.arange(n_steps)
    return make_spikes(
        [4, 3],
        steps,
        np.ones(n_steps),
        np.full(n_steps, 2),
        n_steps=n_steps,
        dt=dt,
    )


def random_spikes(
    layer_sizes, n_steps, rate_per_step, seed=0, recorded_layers=None, dt=1e-3
) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    parts = []
    for layer, size in enumerate(layer_sizes):
        if recorded_layers is not None and layer not in recorded_layers:
            continue
        n = rng.binomial(n_steps * size, rate_per_step)
        flat = rng.choice(n_steps * size, size=n, replace=False)
        parts.append((flat // size, np.full(n, layer), flat % size))
    steps, layers, neurons = (np.concatenate(x) for x in zip(*parts, strict=True))
    return make_spikes(
        layer_sizes,
        steps,
        layers,
        neurons,
        n_steps=n_steps,
        dt=dt,
        recorded_layers=recorded_layers,
    )


def metrics_row(dataset, fraction, imbalance, seed, stage, acc, n_classes=10):
    row = {
        "cell": f"{dataset}_f{fraction:g}_{imbalance.replace(':', '-')}_s{seed}",
        "dataset": dataset,
        "fraction": fraction,
        "imbalance": imbalance,
        "seed": seed,
        "stage": stage,
        "accuracy": acc,
        "balanced_accuracy": acc - 0.01,
    }
    for k in range(n_classes):
        row[f"acc_class_{k}"] = min(1.0, acc + 0.02 * (k - 4.5))
    row["pred_entropy"] = 2.0 + 0.01 * STAGES.index(stage)
    row["active_frac_h1"] = 0.5 - 0.05 * (stage == "sleep")
    row["active_frac_h2"] = 0.4 - 0.05 * (stage == "sleep")
    row["n_train"] = int(60000 * fraction)
    row["n_val"] = 1000
    for layer in range(4):
        row[f"sleep_spikes_layer{layer}"] = 1000.0 * (layer + 1) if stage == "sleep" else np.nan
    return row


STAGE_OFFSET = {
    "baseline": 0.0,
    "sleep": 0.03,
    "sleep_finetune": 0.05,
    "finetune_only": 0.04,
    "strong": 0.10,
}


def fake_metrics(fractions=(0.01, 0.1), seeds=(0, 1), imbalances=("none",)) -> pd.DataFrame:
    """acc = 0.6 + 0.2*[fraction is the 2nd] + stage offset + 0.01*seed (known answers)."""
    rows = []
    for imb in imbalances:
        for fi, fr in enumerate(fractions):
            for seed in seeds:
                for stage in STAGES:
                    acc = 0.6 + 0.2 * fi + STAGE_OFFSET[stage] + 0.01 * seed
                    rows.append(metrics_row("mnist", fr, imb, seed, stage, acc))
    return pd.DataFrame(rows)


def make_results_dir(
    root: Path,
    *,
    spikes: bool = True,
    confusion: bool = True,
    imbalances=("none",),
    sizes=(784, 32, 16, 10),
) -> pd.DataFrame:
    """A results directory per docs/formats.md with small networks."""
    root.mkdir(parents=True, exist_ok=True)
    m = fake_metrics(imbalances=imbalances)
    m.to_csv(root / "metrics.csv", index=False)
    (root / "config.json").write_text(json.dumps({"fingerprint": "abc123"}))
    (root / "log.txt").write_text("fake run\n")
    rng = np.random.default_rng(1)
    for cell_id, g in m.groupby("cell"):
        d = root / "cells" / cell_id
        d.mkdir(parents=True)
        base = {
            f"layer{i + 1}": rng.normal(0, 0.1, (sizes[i + 1], sizes[i]))
            for i in range(len(sizes) - 1)
        }
        for stage in STAGES:
            w = {k: v * (1.0 if stage == "baseline" else 0.9) for k, v in base.items()}
            np.savez(d / f"weights_{stage}.npz", **w)
        if confusion:
            conf = np.zeros((len(STAGES), 10, 10), dtype=np.int64)
            for s in range(len(STAGES)):
                conf[s] = rng.integers(0, 5, (10, 10)) + np.diag(np.full(10, 80 + 3 * s))
            xr.DataArray(
                conf,
                dims=("stage", "true", "predicted"),
                coords={"stage": STAGES, "true": np.arange(10), "predicted": np.arange(10)},
                name="confusion",
            ).to_netcdf(d / "confusion.nc", engine="h5netcdf")
        if spikes:
            seed = int(g["seed"].iloc[0])
            ds = random_spikes(list(sizes), 300, 0.02, seed=seed, recorded_layers=[0, 1, 3])
            ds.to_netcdf(d / "spikes.nc", engine="h5netcdf")
        (d / "done.json").write_text("{}")
    return m


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_real_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 8_000, f"{path} is only {path.stat().st_size} bytes"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img[..., :3].std() > 0.01, f"{path} is a single colour"


# --------------------------------------------------------------------------------------
# spikes: rates, active fractions, recorded vs silent


def test_neuron_firing_every_step_has_rate_one_over_dt():
    ds = every_step_spikes(n_steps=50, dt=1e-3)
    rates = firing_rates(ds, 1)
    np.testing.assert_allclose(rates, [0.0, 0.0, 1000.0])
    assert silent_neurons(ds, 1) == 2
    np.testing.assert_allclose(active_fraction_per_step(ds, 1), np.full(50, 1 / 3))
    edges, rate = population_rate(ds, 1, bin_steps=10)
    np.testing.assert_array_equal(edges, [0, 10, 20, 30, 40, 50])
    np.testing.assert_allclose(rate, np.full(5, 1000.0 / 3))


def test_rates_use_dt_from_attrs():
    ds = every_step_spikes(n_steps=20, dt=0.5e-3)
    assert firing_rates(ds, 1)[2] == pytest.approx(2000.0)


def test_silent_layer_is_recorded_with_zero_rate():
    ds = every_step_spikes()
    np.testing.assert_array_equal(firing_rates(ds, 0), np.zeros(4))
    assert silent_neurons(ds, 0) == 4
    assert active_fraction_per_step(ds, 0).sum() == 0
    row = sparsity_table(ds).set_index("layer").loc[0]
    assert row["recorded"] and row["silent"] == 4 and row["mean_rate_hz"] == 0
    assert np.isnan(row["hoyer"])  # undefined for an all-zero vector


def test_unrecorded_layer_is_not_silent():
    ds = random_spikes([6, 5, 4], 40, 0.2, recorded_layers=[0, 2])
    with pytest.raises(LayerNotRecordedError):
        firing_rates(ds, 1)
    with pytest.raises(LayerNotRecordedError):
        silent_neurons(ds, 1)
    table = sparsity_table(ds).set_index("layer")
    assert not table.loc[1, "recorded"] and np.isnan(table.loc[1, "silent"])
    assert table.loc[2, "recorded"] and table.loc[2, "n_spikes"] > 0


def test_spike_info_accepts_netcdf_style_attributes():
    ds = every_step_spikes()
    # after a netCDF round trip a 1-element list is a numpy scalar, [] a float array
    ds.attrs["recorded_layers"] = np.int64(1)
    ds.attrs["layer_sizes"] = np.array([4, 3])
    info = spike_info(ds)
    assert info.recorded_layers == (1,) and info.layer_sizes == (4, 3)
    ds.attrs["recorded_layers"] = np.array([], dtype=float)
    assert spike_info(ds).recorded_layers == ()


def test_population_rate_short_last_bin():
    # 2 neurons, 10 steps, bins of 4: [0,4) 3 spikes, [4,8) 1 spike, [8,10) 2 spikes
    ds = make_spikes([2], [0, 1, 3, 5, 8, 9], [0] * 6, [0, 1, 0, 1, 0, 1], n_steps=10, dt=1e-3)
    edges, rate = population_rate(ds, 0, bin_steps=4)
    np.testing.assert_array_equal(edges, [0, 4, 8, 10])
    np.testing.assert_allclose(rate, [3 / (2 * 4e-3), 1 / (2 * 4e-3), 2 / (2 * 2e-3)])


def test_active_fraction_dedupes_and_handles_unsorted():
    # neuron 1 listed twice in step 2; rows deliberately out of order
    ds = make_spikes([4], [2, 0, 2, 2, 1], [0] * 5, [1, 3, 1, 0, 3], n_steps=4, dt=1e-3, sort=False)
    np.testing.assert_allclose(active_fraction_per_step(ds, 0), [0.25, 0.25, 0.5, 0.0])


# --------------------------------------------------------------------------------------
# sparsity measures


def test_hoyer_known_values():
    assert hoyer([0, 0, 5, 0]) == pytest.approx(1.0)
    assert hoyer([3, 3, 3, 3]) == pytest.approx(0.0)
    # [1,1,0,0]: L1/L2 = 2/sqrt(2) = sqrt(2); (2 - sqrt 2)/(2 - 1)
    assert hoyer([1, 1, 0, 0]) == pytest.approx(2 - np.sqrt(2))
    # [3,4]: L1 = 7, L2 = 5; (sqrt2 - 1.4)/(sqrt2 - 1)
    assert hoyer([3, 4]) == pytest.approx((np.sqrt(2) - 1.4) / (np.sqrt(2) - 1))
    assert np.isnan(hoyer([0, 0, 0]))
    np.testing.assert_allclose(hoyer(np.array([[0, 1], [1, 1]])), [1.0, 0.0], atol=1e-12)


def test_treves_rolls_known_values():
    assert treves_rolls([1, 1, 0, 0]) == pytest.approx(0.5)  # (1/2)^2 / (1/2)
    assert treves_rolls([0, 0, 0, 7]) == pytest.approx(0.25)  # one-hot: 1/n
    assert treves_rolls([2, 2, 2]) == pytest.approx(1.0)  # uniform
    assert treves_rolls([1, 2, 3]) == pytest.approx(4 / (14 / 3))  # 6/7
    assert treves_rolls_sparseness([1, 2, 3]) == pytest.approx(1 / 7)
    assert np.isnan(treves_rolls([0, 0]))


def test_sparsity_table_on_every_step_neuron():
    row = sparsity_table(every_step_spikes()).set_index("layer").loc[1]
    assert row["n_spikes"] == 50 and row["silent"] == 2
    assert row["hoyer"] == pytest.approx(1.0)
    assert row["tr_a"] == pytest.approx(1 / 3)
    assert row["tr_sparseness"] == pytest.approx(2 / 3)
    assert row["active_frac_mean"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------
# weights


def test_weight_change_table_known():
    before = {"layer1": np.ones((2, 3)), "layer2": np.zeros((1, 2))}
    after = {"layer1": np.array([[1.0, 1.0, 3.0], [1.0, 1.0, 1.0]]), "layer2": np.zeros((1, 2))}
    t = weight_change_table(before, after).set_index("layer")
    assert t.loc["layer1", "norm_before"] == pytest.approx(np.sqrt(6))
    assert t.loc["layer1", "norm_delta"] == pytest.approx(2.0)
    assert t.loc["layer1", "rel_change"] == pytest.approx(2 / np.sqrt(6))
    assert t.loc["layer1", "mean_abs_change"] == pytest.approx(2 / 6)
    assert t.loc["layer1", "frac_changed"] == pytest.approx(1 / 6)
    assert t.loc["layer1", "frac_increased"] == pytest.approx(1 / 6)
    assert t.loc["layer2", "frac_changed"] == 0 and np.isnan(t.loc["layer2", "rel_change"])


def test_pixel_weight_change_map():
    before = {"layer1": np.zeros((3, 784))}
    w = np.zeros((3, 784))
    w[:, 0] = 1.0  # pixel (0,0) gains 1 in every hidden unit -> +3
    w[1, 783] = -0.5  # pixel (27,27) loses 0.5 in one unit
    w[0, 30], w[1, 30] = 1.0, -1.0  # pixel (1,2): +1 and -1 cancel
    img = pixel_weight_change(before, {"layer1": w})
    assert img.shape == (28, 28)
    expected = np.zeros((28, 28))
    expected[0, 0], expected[27, 27] = 3.0, -0.5
    np.testing.assert_allclose(img, expected)
    # non-MNIST input: square fallback
    sq = pixel_weight_change({"layer1": np.zeros((2, 4))}, {"layer1": np.eye(2, 4)})
    np.testing.assert_allclose(sq, [[1, 1], [0, 0]])


# --------------------------------------------------------------------------------------
# class balance and accuracy aggregation


def test_aggregate_over_seeds_mean_sd():
    m = fake_metrics()
    agg = aggregate_over_seeds(m, "accuracy")
    row = agg[(agg["fraction"] == 0.01) & (agg["stage"] == "baseline")].iloc[0]
    assert row["mean"] == pytest.approx(0.605)
    assert row["sd"] == pytest.approx(np.std([0.60, 0.61], ddof=1))
    assert row["n"] == 2
    assert list(agg["stage"].iloc[:5]) == STAGES  # stage order kept
    one_seed = aggregate_over_seeds(fake_metrics(seeds=(0,)), "accuracy")
    assert one_seed["sd"].isna().all() and (one_seed["n"] == 1).all()


def test_stage_gain_is_paired_per_seed():
    m = fake_metrics(seeds=(0, 1, 2))
    # make seed 2's sleep gain differ so the sd is non-zero
    sel = (m["seed"] == 2) & (m["stage"] == "sleep")
    m.loc[sel, "accuracy"] += 0.03
    g = stage_gain(m, "sleep", "baseline").set_index("fraction")
    assert g.loc[0.01, "mean"] == pytest.approx((0.03 + 0.03 + 0.06) / 3)
    assert g.loc[0.01, "sd"] == pytest.approx(np.std([0.03, 0.03, 0.06], ddof=1))
    assert g.loc[0.01, "n"] == 3
    g2 = stage_gain(m, "sleep_finetune", "finetune_only")
    np.testing.assert_allclose(g2["mean"], [0.01, 0.01])
    assert stage_gain(m, "sleep", "missing_stage").empty


def test_per_class_accuracy_and_entropy():
    m = fake_metrics()
    long = per_class_accuracy(m)
    r = long[(long["fraction"] == 0.01) & (long["stage"] == "sleep") & (long["class"] == 0)]
    # acc_class_0 = acc - 0.09; sleep acc at fraction 0.01 = 0.63, 0.64
    assert r["mean"].iloc[0] == pytest.approx(0.635 - 0.09)
    assert r["n"].iloc[0] == 2
    assert prediction_entropy(np.full(10, 7)) == pytest.approx(np.log(10))
    assert prediction_entropy([5, 0, 0]) == pytest.approx(0.0)
    assert prediction_entropy([1, 1]) == pytest.approx(np.log(2))


def test_confusion_normalisation():
    conf = xr.DataArray(
        np.array([[[8, 2], [0, 0]], [[5, 5], [1, 3]]]),
        dims=("stage", "true", "predicted"),
        coords={"stage": ["baseline", "sleep"]},
    )
    frac = confusion_fractions(conf)
    np.testing.assert_allclose(frac.sel(stage="baseline"), [[0.8, 0.2], [0.0, 0.0]])
    np.testing.assert_allclose(frac.sel(stage="sleep"), [[0.5, 0.5], [0.25, 0.75]])
    dist = predicted_distribution(conf)
    np.testing.assert_allclose(dist.sel(stage="sleep"), [6 / 14, 8 / 14])


# --------------------------------------------------------------------------------------
# figures


def test_plot_functions_return_labelled_figures(tmp_path):
    ds = random_spikes([20, 15, 10], 100, 0.1, recorded_layers=[0, 2])
    m = fake_metrics(imbalances=("none", "3:0.1"))
    rng = np.random.default_rng(0)
    before = {"layer1": rng.normal(size=(5, 784)), "layer2": rng.normal(size=(3, 5))}
    after = {k: v * 0.9 for k, v in before.items()}
    conf = xr.DataArray(
        rng.integers(0, 9, (2, 10, 10)),
        dims=("stage", "true", "predicted"),
        coords={"stage": ["baseline", "sleep"]},
    )
    figs = {
        "raster": analysis.plot_raster(ds, x_unit="ms", window=(10, 60)),
        "rate": analysis.plot_population_rate(ds, bin_steps=10),
        "ratedist": analysis.plot_rate_distribution(ds),
        "sparseness": analysis.plot_sparseness_over_time(ds),
        "isi": analysis.plot_isi_cv_fano(ds),
        "acc": analysis.plot_accuracy_vs_fraction(m),
        "gain": analysis.plot_gain_vs_fraction(m),
        "entropy": analysis.plot_pred_entropy(m),
        "annsp": analysis.plot_ann_sparsity(m),
        "perclass": analysis.plot_per_class_accuracy(m, "mnist", "3:0.1"),
        "hist": analysis.plot_weight_histograms(before, after),
        "pixel": analysis.plot_pixel_weight_change(before, after),
        "conf": analysis.plot_confusion(conf),
        "pred": analysis.plot_predicted_distribution(conf),
    }
    for name, fig in figs.items():
        assert fig.get_suptitle(), name
        visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
        assert any(ax.get_xlabel() for ax in visible), name
        assert any(ax.get_ylabel() for ax in visible), name
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert not plt.fignum_exists(fig.number), f"{name} not closed"
        assert_real_png(path)
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"
    # one accuracy panel per (dataset, imbalance), stage colours from STAGE_COLORS
    acc_axes = [ax for ax in figs["acc"].axes if ax.get_visible()]
    assert len(acc_axes) == 2
    handles, labels = acc_axes[0].get_legend_handles_labels()
    colors = {lab: h.lines[0].get_color() for h, lab in zip(handles, labels, strict=True)}
    assert colors["sleep"] == STAGE_COLORS["sleep"]
    assert colors["fine-tune only"] == STAGE_COLORS["finetune_only"]


def test_raster_names_unrecorded_and_marks_silent_layers():
    ds = make_spikes([5, 4, 3], [0, 1], [0, 0], [1, 2], n_steps=10, recorded_layers=[0, 2])
    fig = analysis.plot_raster(ds)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 2 and titles[1].startswith("output (layer 2)")  # no empty panel
    assert "not recorded: hidden 1 (layer 1)" in fig.get_suptitle()
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert any("silent" in t for t in texts)
    plt.close(fig)


def test_save_figure_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "sub" / "f.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, path)
    first = path.read_bytes()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], color="red")
    save_figure(fig, path)
    assert path.read_bytes() != first
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]


# --------------------------------------------------------------------------------------
# large spike sets: sparse all the way


@pytest.mark.slow
def test_large_spike_set_is_never_densified():
    n_steps, n_neurons, n_spikes = 10**6, 10**5, 2 * 10**6
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, n_steps, n_spikes)).astype(np.int32)
    neurons = rng.integers(0, n_neurons, n_spikes).astype(np.int32)
    ds = xr.Dataset(
        {
            "layer": ("spike", np.zeros(n_spikes, np.int16)),
            "neuron": ("spike", neurons),
            "step": ("spike", steps),
        },
        attrs={"dt": 1e-3, "n_steps": n_steps, "layer_sizes": [n_neurons], "recorded_layers": [0]},
    )
    # a dense n_steps x n_neurons bool array would be 100 GB (800 GB as float64)
    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        figs = [
            analysis.plot_raster(ds),
            analysis.plot_population_rate(ds),
            analysis.plot_sparseness_over_time(ds),
        ]
        for fig in figs:
            fig.canvas.draw()
            plt.close(fig)
        frac = active_fraction_per_step(ds, 0)
        isis = analysis.interspike_intervals(ds, 0)
        cv = analysis.isi_cv(ds, 0)
        pop_fano = analysis.population_fano_factor(ds, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB: something was densified"
    assert elapsed < 120, f"took {elapsed:.0f} s"
    assert frac.shape == (n_steps,)
    assert frac.sum() * n_neurons == pytest.approx(n_spikes, rel=1e-3)  # few duplicates
    # one Elephant call per neuron (1e5 here, tens of seconds): outside the timed block
    fano = analysis.fano_factors(ds, 0, window_steps=20_000)  # 50 windows
    # independent uniform spikes: Poisson-like statistics
    assert isis.size == n_spikes - np.count_nonzero(np.bincount(neurons, minlength=n_neurons))
    assert np.nanmedian(cv) == pytest.approx(1.0, abs=0.1)
    assert np.nanmedian(fano) == pytest.approx(1.0, abs=0.1)
    assert pop_fano == pytest.approx(1.0, abs=0.1)


# --------------------------------------------------------------------------------------
# loading and the command line


def test_load_results_finds_cells(tmp_path):
    make_results_dir(tmp_path / "r", spikes=False, confusion=False)
    res = load_results(tmp_path / "r")
    assert len(res.cells) == 4 and all(c.done for c in res.cells)
    c = res.cells[0]
    assert (c.dataset, c.fraction, c.imbalance, c.seed) == ("mnist", 0.01, "none", 0)
    assert set(c.weights) == set(STAGES) and c.spikes is None and c.confusion is None
    assert res.metrics["imbalance"].eq("none").all()
    assert res.config == {"fingerprint": "abc123"}


def bad_results_dir(tmp_path, kind, stray, text):
    """A results directory that is missing, empty, or holds only ``stray`` (no metrics.csv)."""
    d = tmp_path / "r"
    if kind != "missing":
        d.mkdir()
    if kind == "no_metrics":
        (d / stray).write_text(text)
    return d


@pytest.mark.parametrize("kind", ["missing", "empty", "no_metrics"])
def test_load_results_errors(tmp_path, kind):
    with pytest.raises(ResultsError):
        load_results(bad_results_dir(tmp_path, kind, "log.txt", "x"))


@pytest.mark.parametrize("kind", ["missing", "empty", "no_metrics"])
def test_cli_bad_directory_exits_2(tmp_path, kind):
    d = bad_results_dir(tmp_path, kind, "config.json", "{}")
    proc = run_cli(str(d))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("analysis: error:"), proc.stderr
    assert not (d / "figures").exists()


def test_cli_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "RESULTS_DIR" in proc.stdout


TOP_FIGURES = [
    "accuracy_vs_fraction.png",
    "balanced_accuracy_vs_fraction.png",
    "sleep_gain_vs_fraction.png",
    "pred_entropy_vs_fraction.png",
    "ann_sparsity_vs_fraction.png",
    "weight_change_vs_fraction.png",
]
CELL_FIGURES = list(REPORT_CELL_FIGURES)


@pytest.mark.slow
@needs_netcdf
def test_cli_end_to_end(tmp_path):
    d = tmp_path / "results"
    make_results_dir(d)
    proc = run_cli(str(d))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fig_dir = d / "figures"
    for name in [*TOP_FIGURES, "per_class_accuracy_mnist_none.png"]:
        assert_real_png(fig_dir / name)
    # one representative cell (lowest seed) per fraction gets the per-cell figures
    for cell in ["mnist_f0.01_none_s0", "mnist_f0.1_none_s0"]:
        for name in CELL_FIGURES:
            assert_real_png(fig_dir / "cells" / cell / name)
    assert not (fig_dir / "cells" / "mnist_f0.01_none_s1").exists()
    assert not [ln for ln in proc.stdout.splitlines() if ln.startswith("skipped ")]

    summary = (fig_dir / "summary.md").read_text()
    # baseline at fraction 0.01: seeds 0.60, 0.61 -> 60.50 ± 0.71 %
    assert "| mnist | none | 0.01 | 2 | 60.50 ± 0.71 | 63.50 ± 0.71 |" in summary
    # fraction 0.1, strong: 0.90, 0.91
    assert "90.50 ± 0.71" in summary
    # paired gains: sleep − baseline = +3 pp, sleep_finetune − finetune_only = +1 pp
    assert "| mnist | none | 0.01 | +3.00 ± 0.00 (n=2) | +1.00 ± 0.00 (n=2) |" in summary
    assert "abc123" in summary
    assert "not recorded" in summary  # layer 2 was not recorded in spikes.nc
    assert "Hoyer" in summary and "## Skipped figures\n\n(none)" in summary


@pytest.mark.slow
def test_cli_without_spikes_says_raster_skipped(tmp_path):
    # no spikes.nc and no confusion.nc; imbalanced runs next to balanced ones
    d = tmp_path / "results"
    make_results_dir(d, spikes=False, confusion=False, imbalances=("none", "3:0.1"))
    proc = run_cli(str(d), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fig_dir = d / "figures"
    for name in [
        *TOP_FIGURES,
        "per_class_accuracy_mnist_none.png",
        "per_class_accuracy_mnist_3-0.1.png",
    ]:
        assert_real_png(fig_dir / name)
    cell = "mnist_f0.01_3-0.1_s0"
    assert_real_png(fig_dir / "cells" / cell / "pixel_weight_change.png")
    assert not (fig_dir / "cells" / cell / "raster.png").exists()
    skipped = [ln for ln in proc.stdout.splitlines() if ln.startswith("skipped ")]
    assert f"skipped cells/{cell}/raster.png: no spikes.nc" in "\n".join(skipped)
    assert any("confusion.png: no confusion.nc" in ln for ln in skipped)
    # 4 figured cells x (spike figures + 2 confusion figures)
    assert len(skipped) == 4 * (len(SPIKE_FIGURES) + 2)
    summary = (fig_dir / "summary.md").read_text()
    assert f"`cells/{cell}/raster.png`: no spikes.nc" in summary
    assert "| mnist | 3:0.1 | 0.1 | 2 |" in summary


@needs_netcdf
def test_report_skips_isi_figure_when_no_neuron_spiked_twice(tmp_path):
    from brainsleep.analysis.report import write_report

    d = tmp_path / "results"
    make_results_dir(d, spikes=False, confusion=False, sizes=(6, 4, 3))
    for cell in (d / "cells").iterdir():  # every neuron fires once: rates, but no ISI
        ds = make_spikes(
            [6, 4, 3],
            np.arange(13),
            [0] * 6 + [1] * 4 + [2] * 3,
            [*range(6), *range(4), *range(3)],
            n_steps=20,
        )
        ds.to_netcdf(cell / "spikes.nc", engine="h5netcdf")
    report = write_report(d, log=lambda line: None)
    cell = "mnist_f0.01_none_s0"
    skipped = dict(report.skipped)
    assert "spiked twice" in skipped[f"cells/{cell}/isi_cv_fano.png"]
    written = {p.name for p in report.written if p.parent.name == cell}
    assert {"raster.png", "rate_distribution.png", "sparseness_over_time.png"} <= written
    summary = report.summary.read_text()
    assert "## Spike-train statistics per layer" in summary
    # 6 input spikes, no ISI, no neuron with enough spikes for a CV
    assert f"| {cell} | input (layer 0) | 6 | 0 | – | 0 | – | – |" in summary


def test_cli_incomplete_cell_is_skipped(tmp_path):
    d = tmp_path / "results"
    make_results_dir(d, spikes=False, confusion=False)
    # seed 0 of fraction 0.01 unfinished: seed 1 is figured instead
    (d / "cells" / "mnist_f0.01_none_s0" / "done.json").unlink()
    from brainsleep.analysis.report import select_cells

    chosen = [c.cell_id for c in select_cells(load_results(d))]
    assert chosen == ["mnist_f0.01_none_s1", "mnist_f0.1_none_s0"]
