"""brainsleep.load_run: a results directory in a notebook (issue 33).

One tiny run is made in-process (reference device, with the strong control), then read the
way a notebook would: the README example as written, the networks against the metrics the
pipeline recorded, the files against the formats' CF declarations, and bad input.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import brainsleep
from brainsleep import formats
from brainsleep.experiment.__main__ import main

# The README example, exactly as the README shows it (run from the directory that holds
# results/default, the Makefile's default --out).
EXAMPLE = """\
import brainsleep
from brainsleep.interop import to_neo

run = brainsleep.load_run("results/default")  # the --out of a run
print(run.config["recipe"], run.config["hidden"])  # config.json: the run's arguments
print(run.metrics.groupby("stage")["accuracy"].mean())  # pandas: a row per cell and stage
cell = run.cells[0]  # e.g. "mnist_f0.1_none_s0"
net = run.network(cell, "sleep")  # torch module, slept weights
spikes = run.spikes(cell)  # xarray: layer, neuron, step, time
trains = to_neo(spikes, layer=1)  # Neo SpikeTrains, one per neuron
"""

CELL = "mnist_f0.5_none_s0"


@pytest.fixture(scope="module")
def workdir(data_dir, build_root, tmp_path_factory) -> Path:
    """A directory holding ``results/default``: one cell, every stage, spikes of all layers."""
    root = tmp_path_factory.mktemp("notebook")
    out = root / "results" / "default"
    argv = [
        "--data-dir", str(data_dir), "--fractions", "0.5", "--hidden", "24", "16",
        "--epochs", "3", "--finetune-epochs", "1", "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental", "--record-spikes", "all", "--strong",
        "--device", "reference", "--seeds", "0", "--build-root", str(build_root),
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    return root


@pytest.fixture(scope="module")
def run(workdir) -> brainsleep.Run:
    return brainsleep.load_run(workdir / "results" / "default")


def test_the_readme_example_runs_as_written(workdir, monkeypatch, capsys):
    pytest.importorskip("neo")
    import torch

    monkeypatch.chdir(workdir)
    namespace: dict = {}
    exec(compile(EXAMPLE, "README example", "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.startswith("reference [24, 16]\n") and "sleep_finetune" in printed
    assert namespace["cell"] == CELL
    assert isinstance(namespace["net"], torch.nn.Module) and not namespace["net"].training
    spikes = namespace["spikes"]
    assert isinstance(spikes, xr.Dataset) and spikes["time"].attrs["units"] == "s"
    assert len(namespace["trains"]) == 24  # hidden layer 1
    per_train = sum(len(t) for t in namespace["trains"])
    assert per_train == int((spikes["layer"] == 1).sum()) > 0


def test_tables_configuration_and_cells(run):
    assert run.cells == [CELL]
    assert run.config["hidden"] == [24, 16] and run.info["fingerprint"]
    assert isinstance(run.metrics, pd.DataFrame)
    assert set(run.metrics["stage"]) == {
        "baseline", "sleep", "sleep_finetune", "finetune_only", "strong"
    }  # fmt: skip
    assert run.stages(CELL) == ["baseline", "sleep", "sleep_finetune", "finetune_only", "strong"]
    ds = run.metrics_dataset()
    assert float(ds["accuracy"].sel(cell=CELL, stage="strong")) == pytest.approx(
        run.metrics.set_index("stage").loc["strong", "accuracy"]
    )
    assert list(run.confusion(CELL)["stage"].values) == run.stages(CELL)


def test_each_network_scores_what_the_pipeline_recorded(run, data_dir):
    """Rebuilt from config.json (recipe, layer sizes) and the weights, every stage's network
    gives the test accuracy of its metrics row."""
    from brainsleep.ann import score
    from brainsleep.data import as_float, load_dataset

    data = load_dataset("mnist", data_dir=data_dir)
    x, y = as_float(data.test_images), np.asarray(data.test_labels)
    recorded = run.metrics.set_index("stage")
    for stage in run.stages(CELL):
        net = run.network(CELL, stage)
        assert score(net, x, y) == pytest.approx(recorded.loc[stage, "accuracy"], abs=1e-12)
        got = score(net, x, y, balanced=True)
        assert got == pytest.approx(recorded.loc[stage, "balanced_accuracy"], abs=1e-12)
    assert recorded.loc["strong", "accuracy"] > 0.5  # a network that learnt, not chance


@pytest.mark.parametrize(("stage", "recipe"), [("sleep", "reference"), ("strong", "strong")])
def test_each_network_computes_as_its_recipe(run, stage, recipe):
    """The strong control is trained with the strong recipe whatever --recipe says: its
    network has a linear output and inverted dropout, the reference's a ReLU output and
    dropout scaled at test time (accuracy alone cannot tell: the argmax agrees)."""
    import torch

    from brainsleep.ann import get_recipe

    net, want = run.network(CELL, stage), get_recipe(recipe)
    assert (net.dropout, net.dropout_style) == (want.dropout, want.dropout_style)
    assert (net.output_relu, net.output_grad) == (want.output_relu, want.output_grad)
    x = torch.rand(64, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = net(x.to(next(net.parameters()).dtype))
    assert bool((out < 0).any()) is (not want.output_relu)


def test_a_real_runs_files_are_cf_style_compressed_and_declared(run):
    out, cell = run.path, run.path / formats.CELLS_DIR / CELL
    for path in (out / formats.METRICS_NC, cell / formats.SPIKES_FILE, cell / "confusion.nc"):
        ds = xr.load_dataset(path, engine="h5netcdf")
        assert ds.attrs["Conventions"] == formats.CF_CONVENTIONS
        for name in ds.variables:
            attrs = ds[name].attrs
            # declared in formats.py, not the fallback that only repeats the name
            assert attrs.get("long_name", name) != name, (path.name, name)
            if ds[name].dtype.kind in "iuf":
                assert "units" in attrs, (path.name, name)
    metrics = xr.load_dataset(out / formats.METRICS_NC, engine="h5netcdf")
    assert metrics["accuracy"].dims == ("cell", "stage")
    sleep = metrics.sel(stage="sleep")
    assert float(sleep["accuracy"][0]) == run.metrics.set_index("stage").loc["sleep", "accuracy"]
    spikes = xr.load_dataset(cell / formats.SPIKES_FILE, engine="h5netcdf")
    np.testing.assert_array_equal(spikes["time"].values, spikes["step"].values * spikes.attrs["dt"])
    with zipfile.ZipFile(cell / formats.weights_file("sleep")) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, p: brainsleep.load_run(p / "absent"), "absent does not exist; give the --out"),
        (lambda r, p: brainsleep.load_run(p), "is not a brainsleep run (no config.json)"),
        (lambda r, p: r.network("mnist_f0.1_none_s9", "sleep"), "has no cell 'mnist_f0.1_"),
        (lambda r, p: r.network(CELL, "slept"), "has no weights for stage 'slept'; stages with"),
        (lambda r, p: r.spikes(CELL, "sleep_acting"), "has no spikes_sleep_acting.nc"),
        (lambda r, p: r.confusion("nope"), "its cells: mnist_f0.5_none_s0 (run.cells)"),
    ],
    ids=["no-directory", "not-a-run", "unknown-cell", "unknown-stage", "no-spikes", "confusion"],
)
def test_bad_input_is_one_line_naming_it(run, workdir, call, message):
    with pytest.raises(brainsleep.RunError) as info:
        call(run, workdir)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_config_hidden_that_disagrees_with_the_weights_is_named(run, tmp_path):
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    record = json.loads((copy / formats.CONFIG_FILE).read_text())
    record["config"]["hidden"] = [24, 17]
    (copy / formats.CONFIG_FILE).write_text(json.dumps(record))
    with pytest.raises(brainsleep.RunError, match=r"layer sizes \[784, 24, 16, 10\]"):
        brainsleep.load_run(copy).network(CELL, "sleep")


def test_loading_a_run_and_its_tables_imports_neither_torch_nor_brian2(run):
    code = (
        "import sys, brainsleep\n"
        f"r = brainsleep.load_run({str(run.path)!r})\n"
        f"r.metrics; r.metrics_dataset(); r.spikes({CELL!r}); r.confusion({CELL!r})\n"
        "print(sorted(m for m in ('torch', 'brian2') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


def test_the_readme_shows_the_example_this_file_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"```python\n{EXAMPLE}```" in readme
