"""brainsleep.formats: the on-disk formats round-trip, refuse malformed files, stay light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from brainsleep import formats
from brainsleep.formats import (
    CellKey,
    LayerNotRecordedError,
    format_cell_id,
    load_confusion,
    load_spikes,
    load_weights,
    make_spike_dataset,
    neuron_spike_counts,
    parse_cell_id,
    save_confusion,
    save_spikes,
    save_weights,
    spike_counts,
    spike_info,
)

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("brian2", "torch")


def small_spikes(seed: int = 0) -> xr.Dataset:
    """Layers of 6, 5, 4 neurons over 50 steps; layer 1 not recorded; input given unsorted."""
    rng = np.random.default_rng(seed)
    per_layer = []
    for size in (6, 5, 4):
        n = int(rng.integers(20, 40))
        per_layer.append((rng.integers(0, 50, n), rng.integers(0, size, n)))
    per_layer[1] = None
    attrs = {
        "dt": 1e-3,
        "n_steps": 50,
        "device": "reference",
        "seed": seed,
        "layer_sizes": [6, 5, 4],
        "params": json.dumps({"dt": 1e-3}),
        "model": "src",
    }
    return make_spike_dataset(per_layer, attrs)


# -- the analysis side stays free of Brian2 and torch ------------------------------------
ANALYSIS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import pandas as pd

    import brainsleep.analysis as analysis
    from brainsleep import formats

    root = Path(sys.argv[1])
    cell = formats.format_cell_id("mnist", 0.5, "none", 0)
    d = root / formats.CELLS_DIR / cell
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(4, 6)), rng.normal(size=(3, 4))]
    for stage in ("baseline", "sleep"):
        formats.save_weights(d / formats.weights_file(stage), w)
    ds = formats.make_spike_dataset(
        [(np.arange(5), np.arange(5)), None, (np.arange(3), np.zeros(3))],
        {"dt": 1e-3, "n_steps": 10, "layer_sizes": [6, 4, 3]},
    )
    formats.save_spikes(ds, d / formats.SPIKES_FILE)
    formats.save_confusion(d / formats.CONFUSION_FILE, ["baseline"], np.eye(10)[None])
    (d / formats.DONE_MARKER).write_text("{}")
    rows = [
        {"cell": cell, "dataset": "mnist", "fraction": 0.5, "imbalance": "none", "seed": 0,
         "stage": s, "accuracy": 0.9}
        for s in ("baseline", "sleep")
    ]
    pd.DataFrame(rows).to_csv(root / formats.METRICS_CSV, index=False)

    res = analysis.load_results(root)
    c = res.cells[0]
    spikes = analysis.load_spikes(c.spikes)
    weights = analysis.load_weights(c.weights["sleep"])
    conf = analysis.load_confusion(c.confusion)
    rates = analysis.firing_rates(spikes, 0)
    analysis.save_figure(analysis.plot_raster(spikes), root / "raster.png")
    print(json.dumps({
        "heavy": sorted(m for m in ("brian2", "torch") if m in sys.modules),
        "cells": [x.cell_id for x in res.cells],
        "weights": list(weights),
        "spikes": int(spikes.sizes["spike"]),
        "confusion": list(conf.dims),
        "rate": float(rates[0]),
    }))
    """
)


def test_analysis_loads_results_without_brian2_or_torch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", ANALYSIS_SCRIPT, str(tmp_path)],
        cwd=tmp_path,  # not the checkout: the installed brainsleep.analysis
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the loaders really ran ...
    assert out["cells"] == ["mnist_f0.5_none_s0"]
    assert out["weights"] == ["layer1", "layer2"]
    assert out["spikes"] == 8 and out["confusion"] == ["stage", "true", "predicted"]
    assert out["rate"] == pytest.approx(100.0)  # 1 spike in 10 steps of 1 ms
    # ... and pulled in neither simulator nor trainer
    assert out["heavy"] == []


@pytest.mark.parametrize("module", ["brainsleep", "brainsleep.atomic", "brainsleep.formats"])
def test_light_modules_import_nothing_heavy(module):
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == "[]"


# -- spike table -------------------------------------------------------------------------
def test_spikes_round_trip(tmp_path):
    ds = small_spikes()
    keys = np.stack([ds["step"].values, ds["layer"].values, ds["neuron"].values], axis=1)
    assert [tuple(k) for k in keys] == sorted(tuple(k) for k in keys)  # (step, layer, neuron)
    path = save_spikes(ds, tmp_path / formats.SPIKES_FILE)
    back = load_spikes(path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    for name, dtype in formats.SPIKE_VARIABLES.items():
        assert back[name].dims == (formats.SPIKE_DIM,)
        assert back[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    assert spike_info(back) == spike_info(ds)
    assert spike_info(back).recorded_layers == (0, 2)
    for key in ("device", "seed", "params", "model", "dt", "n_steps"):
        assert back.attrs[key] == ds.attrs[key]
    assert spike_counts(back) == spike_counts(ds)


def test_spike_counts_per_layer_and_per_neuron():
    ds = small_spikes(seed=3)
    totals = spike_counts(ds)
    assert list(totals) == [0, 2]  # layer 1 was not recorded: absent, not 0
    for layer, total in totals.items():
        per_neuron = neuron_spike_counts(ds, layer)
        assert per_neuron.shape == (spike_info(ds).layer_sizes[layer],)
        assert per_neuron.dtype == np.int64 and per_neuron.sum() == total
    with pytest.raises(LayerNotRecordedError, match="layer 1 was not recorded"):
        neuron_spike_counts(ds, 1)


def test_sleep_spikes_is_the_formats_module():
    """brainsleep.sleep's spike functions are the formats' own, not copies."""
    pytest.importorskip("brian2")
    from brainsleep.sleep import spikes

    for name in ("load_spikes", "save_spikes", "spike_counts", "make_spike_dataset"):
        assert getattr(spikes, name) is getattr(formats, name)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not_netcdf", "not a readable netCDF"),
        ("no_step", "lacks the variable 'step'"),
        ("no_dt", "lacks the attribute 'dt'"),
    ],
)
def test_malformed_spike_file_raises_a_clear_error(tmp_path, kind, message):
    path = tmp_path / "spikes.nc"
    ds = small_spikes()
    if kind == "not_netcdf":
        path.write_bytes(b"not netcdf at all")
    elif kind == "no_step":
        ds.drop_vars("step").to_netcdf(path, engine="h5netcdf")
    else:
        del ds.attrs["dt"]
        ds.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match=message) as info:
        load_spikes(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_spikes(tmp_path / "absent.nc")


# -- weights -------------------------------------------------------------------------------
def test_weights_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    weights = [rng.normal(size=(5, 8)), rng.normal(size=(4, 5)), rng.normal(size=(3, 4))]
    path = save_weights(tmp_path / formats.weights_file("sleep"), weights)
    assert path.name == "weights_sleep.npz"
    back = load_weights(path)
    assert list(back) == ["layer1", "layer2", "layer3"]
    for w, b in zip(weights, back.values(), strict=True):
        assert b.dtype == np.float64 and b.shape == w.shape
        assert b.tobytes() == w.tobytes()  # bit-identical
    assert list(tmp_path.iterdir()) == [path]


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"w1": np.zeros((2, 3))}, r"not layer<k>"),
        ({"layer1": np.zeros((2, 3)), "layer3": np.zeros((1, 2))}, r"expected \['layer1'"),
        ({"layer1": np.zeros(3)}, r"not \(n_out, n_in\)"),
        ({"layer1": np.zeros((2, 3)), "layer2": np.zeros((1, 5))}, "does not follow"),
        ({}, "expected"),
    ],
)
def test_malformed_weights_file_raises_a_clear_error(tmp_path, arrays, message):
    path = _npz(tmp_path / "weights_x.npz", **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_weights(path)
    assert str(path) in str(info.value)


def test_unreadable_weights_file_raises_a_clear_error(tmp_path):
    text = tmp_path / "weights_text.npz"
    text.write_bytes(b"this is no zip archive")
    single = tmp_path / "weights_single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros((2, 2)))
    for path in (text, single):
        with pytest.raises(ValueError, match="not a readable .npz file"):
            load_weights(path)
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "absent.npz")


# -- confusion -----------------------------------------------------------------------------
def test_confusion_round_trip(tmp_path):
    mats = np.arange(2 * 10 * 10, dtype=np.int64).reshape(2, 10, 10)
    path = save_confusion(tmp_path / formats.CONFUSION_FILE, ["baseline", "sleep"], mats)
    back = load_confusion(path)
    assert back.name == formats.CONFUSION_VAR and back.dims == formats.CONFUSION_DIMS
    assert list(back["stage"].values) == ["baseline", "sleep"]
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back.values, mats)


# -- layout --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        CellKey("mnist", 0.01, "none", 0),
        CellKey("fashion-mnist", 0.5, "5-9:0.1", 12),
        CellKey("mnist", 1e-05, "0,3:0.25", 3),
        CellKey("my_data_f1", 1.0, "none", 7),
    ],
)
def test_cell_id_round_trip(key):
    cell_id = format_cell_id(*key)
    assert parse_cell_id(cell_id) == key
    assert format_cell_id(*parse_cell_id(cell_id)) == cell_id


def test_cell_id_scheme_is_the_pipelines():
    assert format_cell_id("mnist", 0.01, "none", 0) == "mnist_f0.01_none_s0"
    assert format_cell_id("mnist", 0.1, "5-9:0.1", 2) == "mnist_f0.1_5-9:0.1_s2"


@pytest.mark.parametrize(
    "bad",
    ["mnist_none_s0", "mnist_f0.01_none", "mnist_fabc_none_s0", "mnist_f0.010_none_s0", ""],
)
def test_malformed_cell_id_raises(bad):
    with pytest.raises(ValueError, match="is not <dataset>_f<fraction>_<imbalance>_s<seed>"):
        parse_cell_id(bad)


def test_file_names_and_stage_order():
    # docs/formats.md states the stages in order; the code's tuple must be that list
    doc = (Path(__file__).parents[1] / "docs" / "formats.md").read_text()
    stated = doc[doc.index("- `stage` is one of") :].split("in that order")[0]
    assert formats.STAGES == tuple(re.findall(r"`(\w+)`", stated)[1:])
    assert formats.STAGES[0] == "baseline"
    assert formats.stage_marker("sleep") == "stage_sleep.json"
    assert formats.stage_marker(formats.SEARCH_STEP) == formats.SEARCH_MARKER == "search.json"
    for stage in formats.STAGES:
        assert formats.stage_of_weights_file(formats.weights_file(stage)) == stage
    assert formats.stage_of_weights_file("spikes.nc") is None
    assert formats.order_stages(["zeta", "strong", "sleep", "baseline", "sleep", "alpha"]) == [
        "baseline",
        "sleep",
        "strong",
        "alpha",
        "zeta",
    ]


# -- files others can open (issue 33): CF attributes, spike times, compression -----------
def _check_cf(ds: xr.Dataset, path: Path) -> None:
    """Global Conventions; long_name everywhere; units on every numeric variable."""
    assert ds.attrs["Conventions"] == formats.CF_CONVENTIONS, path
    for name in ds.variables:
        attrs = ds[name].attrs
        assert attrs.get("long_name") and attrs["long_name"] != name, (path.name, name)
        if ds[name].dtype.kind in "iuf":
            assert "units" in attrs, (path.name, name)


def test_every_netcdf_file_is_cf_style(tmp_path):
    spikes = save_spikes(small_spikes(), tmp_path / "spikes.nc")
    mats = np.ones((2, 10, 10), dtype=np.int64)
    confusion = save_confusion(tmp_path / "confusion.nc", ["baseline", "sleep"], mats)
    metrics = formats.save_metrics_dataset(tmp_path / "metrics.nc", _metrics_table())
    for path in (spikes, confusion, metrics):
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            _check_cf(ds.load(), path)
    with xr.open_dataset(spikes, engine="h5netcdf") as ds:
        assert ds["time"].attrs["units"] == "s"


def test_spike_time_is_step_times_dt_and_survives_the_file(tmp_path):
    ds = small_spikes()
    assert ds["time"].dims == (formats.SPIKE_DIM,) and ds["time"].dtype == np.float64
    np.testing.assert_array_equal(ds["time"].values, ds["step"].values * 1e-3)
    back = load_spikes(save_spikes(ds, tmp_path / "spikes.nc"))
    np.testing.assert_array_equal(back["time"].values, ds["time"].values)
    assert back["step"].dtype == np.int32  # the exact record stays


def test_spike_file_without_time_gets_it_on_load(tmp_path):
    ds = small_spikes().drop_vars("time")  # as written before issue 33
    ds.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    back = load_spikes(tmp_path / "old.nc")
    np.testing.assert_array_equal(back["time"].values, formats.spike_times(back))
    assert back["time"].attrs["units"] == "s"


def test_spike_file_is_compressed_and_smaller_than_plain(tmp_path):
    rng = np.random.default_rng(1)
    n = 20_000
    steps = np.sort(rng.integers(0, 2000, n))
    ds = make_spike_dataset(
        [(steps, rng.integers(0, 50, n))], {"dt": 1e-3, "n_steps": 2000, "layer_sizes": [50]}
    )
    path = save_spikes(ds, tmp_path / "spikes.nc")
    back = xr.open_dataset(path, engine="h5netcdf")
    with back:
        assert back["step"].encoding.get("zlib") and back["time"].encoding.get("zlib")
    ds.to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    assert path.stat().st_size < (tmp_path / "plain.nc").stat().st_size / 2


def test_weights_are_compressed_and_old_uncompressed_files_still_load(tmp_path):
    import zipfile

    weights = [np.zeros((40, 50)), np.ones((10, 40))]  # compressible
    path = save_weights(tmp_path / "weights_sleep.npz", weights)
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert path.stat().st_size < sum(w.nbytes for w in weights) / 10
    old = _npz(tmp_path / "weights_old.npz", layer1=weights[0], layer2=weights[1])
    with zipfile.ZipFile(old) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    for a, b in zip(load_weights(old).values(), load_weights(path).values(), strict=True):
        assert a.tobytes() == b.tobytes()


# -- metrics.nc: dimensions (cell, stage) ---------------------------------------------------
def _metrics_table():
    import pandas as pd

    rows = []
    for seed in (0, 1):
        cell = format_cell_id("mnist", 0.1, "none", seed)
        stages = ["baseline", "sleep"] + (["strong"] if seed == 1 else [])
        for k, stage in enumerate(stages):
            row = {"cell": cell, "dataset": "mnist", "fraction": 0.1, "imbalance": "none"}
            row.update(seed=seed, stage=stage, accuracy=0.5 + 0.1 * k + 0.01 * seed)
            row.update(n_train=100 + seed, acc_class_3=0.25)
            if stage == "sleep":
                row["sleep_spikes_layer1"] = 10 * (seed + 1)
            rows.append(row)
    return formats.order_metric_columns(pd.DataFrame(rows)).dropna(axis=1, how="all")


def test_metrics_dataset_has_cell_and_stage_dimensions(tmp_path):
    df = _metrics_table()
    path = formats.save_metrics_dataset(tmp_path / formats.METRICS_NC, df)
    ds = xr.load_dataset(path, engine="h5netcdf")
    assert ds["accuracy"].dims == formats.METRICS_DIMS
    assert list(ds["cell"].values) == ["mnist_f0.1_none_s0", "mnist_f0.1_none_s1"]
    assert list(ds["stage"].values) == ["baseline", "sleep", "strong"]  # STAGES order
    sleep = ds.sel(stage="sleep")
    np.testing.assert_allclose(sleep["accuracy"].values, [0.6, 0.61])
    np.testing.assert_allclose(sleep["sleep_spikes_layer1"].values, [10, 20])
    assert np.isnan(ds["accuracy"].sel(cell="mnist_f0.1_none_s0", stage="strong"))
    assert list(ds["seed"].values) == [0, 1] and ds["seed"].dims == ("cell",)
    assert list(ds["dataset"].values) == ["mnist", "mnist"]
    # every row of the table is in the dataset, value for value
    for row in df.itertuples(index=False):
        assert ds["accuracy"].sel(cell=row.cell, stage=row.stage) == row.accuracy
    assert ds["acc_class_3"].attrs == {"long_name": "test accuracy on class 3", "units": "1"}


def test_metrics_dataset_refuses_a_stage_twice():
    import pandas as pd

    df = _metrics_table()
    with pytest.raises(ValueError, match="two rows for cell 'mnist_f0.1_none_s0', stage 'sleep'"):
        formats.metrics_dataset(pd.concat([df, df.iloc[[1]]]))


def test_metrics_dataset_of_an_empty_table():
    ds = formats.metrics_dataset(_metrics_table().iloc[:0])
    assert dict(ds.sizes) == {"cell": 0, "stage": 0}


# Every column a results directory of this repository has held (results/, docs/results/)
# plus those the pipeline writes now: each has its long_name and units declared.
KNOWN_METRIC_COLUMNS = [
    *formats.METRIC_COLUMNS,
    *[f"{p}_h{k}" for p in ("active_frac", "silent_frac", "pop_sparseness") for k in (1, 2)],
    "weight_small_frac", "train_steps", "val_accuracy", "val_balanced_accuracy",
    "sleep_spikes_layer0", "sleep_spikes_layer3", "sleep_weights_changed",
    *[
        f"{prefix}{name}"
        for prefix in ("snn_", "snn_baseline_")
        for name in (
            "accuracy", "accuracy_lowest_index", "accuracy_w25", "accuracy_w100",
            "agreement", "alpha1", "alpha3", "images", "silent", "ties", "window",
            "spikes_layer0", "spikes_layer3",
        )
    ],
]  # fmt: skip


@pytest.mark.parametrize("column", KNOWN_METRIC_COLUMNS)
def test_every_metrics_column_is_declared(column):
    attrs = formats.metric_attrs(column)
    assert attrs["long_name"] != column
    text = column in formats.METRIC_TEXT_COLUMNS
    assert ("units" in attrs) is not text


def test_metric_attrs_tell_the_two_spiking_networks_apart():
    base = formats.metric_attrs("snn_baseline_accuracy_w25")["long_name"]
    slept = formats.metric_attrs("snn_accuracy_w25")["long_name"]
    assert base != slept and "baseline" in base and "first 25 steps" in slept
    assert formats.metric_attrs("no_such_column") == {"long_name": "no_such_column"}


def test_spikes_file_names():
    assert formats.spikes_file("sleep") == formats.SPIKES_FILE
    assert formats.spikes_file("sleep_acting") == "spikes_sleep_acting.nc"
    assert formats.spikes_file(formats.incremental_step("sleep", 2)) == "spikes_sleep_t2.nc"
