"""The whole pipeline on a tiny configuration: files, columns, resume, refusal, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainsleep.experiment.__main__ import main
from brainsleep.experiment.results import METRIC_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def argv(data_dir, out, build_root, *extra):
    return [
        "--data-dir", str(data_dir),
        "--fractions", "0.5",
        "--hidden", "24", "16",
        "--epochs", "3",
        "--finetune-epochs", "1",
        "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental",
        "--record-spikes", "all",
        "--build-root", str(build_root),
        "--out", str(out),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def refusal(args, tmp_path, capsys) -> str:
    """The one stderr line with which ``main(args)`` refuses bad input: exit status 2,
    nothing written to its ``--out`` (added here)."""
    out = tmp_path / "never"
    assert main([*args, "--out", str(out)]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    assert not out.exists()
    return lines[0]


def stage_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("cells/*/*"))


def no_temp_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "device", ["reference", "runtime", pytest.param("cpp_standalone", marks=pytest.mark.standalone)]
)
def test_pipeline_files_and_columns(device, data_dir, build_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv(data_dir, out, build_root, "--device", device, "--seeds", "0", "1")) == 0
    table = capsys.readouterr().out
    assert "sleep_finetune" in table and "±" in table
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    assert len(df) == 2 * 4  # two seeds x four stages
    assert set(df["stage"]) == {"baseline", "sleep", "sleep_finetune", "finetune_only"}
    assert df["accuracy"].between(0, 1).all() and df["balanced_accuracy"].between(0, 1).all()
    assert df.loc[df.stage == "sleep", "sleep_spikes_layer0"].gt(0).all()
    assert df.loc[df.stage == "baseline", "sleep_spikes_layer0"].isna().all()
    # the control got exactly as many optimiser steps as the sleep arm's fine-tuning
    steps = df.set_index(["seed", "stage"])["train_steps"]
    for seed in (0, 1):
        assert steps[(seed, "finetune_only")] == steps[(seed, "sleep_finetune")] > 0
    nc = xr.open_dataset(out / "metrics.nc", engine="h5netcdf").load()
    assert nc["accuracy"].dims == ("cell", "stage") and nc.sizes["cell"] == 2
    for row in df.itertuples():  # metrics.nc holds metrics.csv, value for value
        assert nc["accuracy"].sel(cell=row.cell, stage=row.stage) == row.accuracy
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["device"] == device and cfg["config"]["seeds"] == [0, 1]
    assert {"brian2", "torch", "numpy", "brainsleep"} <= set(cfg["versions"])
    cell = out / "cells" / "mnist_f0.5_none_s0"
    for name in (
        "weights_baseline.npz", "weights_sleep.npz", "weights_sleep_finetune.npz",
        "weights_finetune_only.npz", "confusion.nc", "spikes.nc", "done.json",
        "sleep_params.json",
    ):  # fmt: skip
        assert (cell / name).is_file(), name
    with np.load(cell / "weights_sleep.npz") as z:
        assert z["layer1"].shape == (24, 784) and z["layer3"].shape == (10, 16)
    conf = xr.open_dataarray(cell / "confusion.nc", engine="h5netcdf").load()
    assert list(conf["stage"].values) == ["baseline", "sleep", "sleep_finetune", "finetune_only"]
    assert int(conf.sel(stage="baseline").sum()) == 100  # the tiny test set
    sp = json.loads((cell / "sleep_params.json").read_text())
    assert sp["params"]["max_rate"] == pytest.approx(239.515363)
    assert (out / "log.txt").read_text().count("accuracy") >= 8
    assert no_temp_files(out)
    if device == "cpp_standalone":
        check_analysis_of(out)


def check_analysis_of(out: Path) -> None:
    """python -m analysis on real pipeline output: figures exist and are not blank."""
    import matplotlib.image as mpimg

    proc = subprocess.run(
        [sys.executable, "-m", "analysis", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    figs = out / "figures"
    for name in ("accuracy_vs_fraction.png", "sleep_gain_vs_fraction.png"):
        assert (figs / name).stat().st_size > 8000, name
    cell_figs = list((figs / "cells").rglob("*.png"))
    names = {p.name for p in cell_figs}
    assert {"raster.png", "population_rate.png", "confusion.png"} <= names
    for png in cell_figs:
        img = mpimg.imread(png)
        assert img.std() > 0.01, png  # not a blank canvas
    summary = (figs / "summary.md").read_text()
    assert "baseline" in summary and "sleep" in summary


@pytest.mark.standalone
def test_multi_cell_search_compiles_once_and_records_history(data_dir, build_root, tmp_path):
    out = tmp_path / "search"
    args = ["--device", "cpp_standalone", "--search", "3", "--record-spikes", "hidden"]
    args += ["--seeds", "0", "1"]  # two cells
    assert main(argv(data_dir, out, tmp_path / "fresh_builds", *args)) == 0
    cell = out / "cells" / "mnist_f0.5_none_s0"
    hist = pd.read_csv(cell / "search.csv")
    assert list(hist["trial"]) == [0, 1, 2]
    assert hist.loc[0, "max_rate"] == pytest.approx(239.515363)  # trial 0 = the preset
    assert (hist["state"] == "COMPLETE").all() and hist["score"].between(0, 1).all()
    assert (hist["score_name"] == "val_accuracy").all()  # a balanced subset
    assert hist["spikes_layer1"].notna().all() and (hist["seconds"] > 0).all()
    assert (cell / "search.journal").is_file()
    chosen = json.loads((cell / "search.json").read_text())["best"]
    best_trial = hist.loc[hist["score"].idxmax()]  # the lowest trial on ties
    assert chosen["max_rate"] == pytest.approx(best_trial["max_rate"])
    used = json.loads((cell / "sleep_params.json").read_text())["params"]
    assert used["max_rate"] == pytest.approx(chosen["max_rate"])
    assert (out / "cells" / "mnist_f0.5_none_s1" / "done.json").is_file()
    # two cells x (three trials + the final sleep, all with hidden spikes):
    # one code generation, one compile, one published build
    builds = [p for p in (tmp_path / "fresh_builds").iterdir() if "_standalone-" in p.name]
    assert len([p for p in builds if p.is_dir()]) == 1, builds


def test_resume_after_interrupt_redoes_nothing(data_dir, build_root, tmp_path, monkeypatch):
    from brainsleep import ann
    from brainsleep.experiment import pipeline

    full = tmp_path / "full"
    assert main(argv(data_dir, full, build_root, "--device", "reference")) == 0
    expected = pd.read_csv(full / "metrics.csv")

    out = tmp_path / "interrupted"
    real_finetune = pipeline.CellRunner.finetune

    def interrupt(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.CellRunner, "finetune", interrupt)
    assert main(argv(data_dir, out, build_root, "--device", "reference")) == 130
    assert (out / "cells/mnist_f0.5_none_s0/stage_sleep.json").exists()
    assert not (out / "cells/mnist_f0.5_none_s0/done.json").exists()
    assert no_temp_files(out)

    monkeypatch.setattr(pipeline.CellRunner, "finetune", real_finetune)
    calls = []
    real_train = ann.train
    counted = lambda *a, **k: calls.append(k) or real_train(*a, **k)  # noqa: E731
    monkeypatch.setattr(ann, "train", counted)  # fine-tuning
    monkeypatch.setattr(ann.training, "train", counted)  # the baseline (ann.train_baseline)
    assert main(argv(data_dir, out, build_root, "--device", "reference")) == 0
    assert len(calls) == 2  # only the two fine-tunings; baseline and sleep were kept
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), expected)


def test_resume_after_sigkill(data_dir, build_root, tmp_path):
    """A real kill in the middle of a run; the rerun finishes with identical metrics."""
    args = argv(
        data_dir, tmp_path / "killed", build_root, "--device", "reference", "--seeds", "0", "1"
    )
    cmd = [sys.executable, "-m", "brainsleep.experiment", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "killed/cells/mnist_f0.5_none_s0/stage_sleep.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_dir = tmp_path / "killed"
    assert not (killed_dir / "cells/mnist_f0.5_none_s1/done.json").exists()
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stderr
    fresh = tmp_path / "fresh"
    args_fresh = argv(data_dir, fresh, build_root, "--device", "reference", "--seeds", "0", "1")
    assert main(args_fresh) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(killed_dir / "metrics.csv"), pd.read_csv(fresh / "metrics.csv")
    )
    assert no_temp_files(killed_dir)


def test_resume_removes_stale_temp_files_and_lock_refuses_second_run(
    data_dir, build_root, tmp_path, capsys
):
    from filelock import FileLock

    out = tmp_path / "run"
    args = argv(data_dir, out, build_root, "--device", "reference")
    assert main(args) == 0
    stale = out / "cells" / "mnist_f0.5_none_s0" / ".weights_sleep.npz.abc123.tmp"
    stale.write_bytes(b"half a write")  # what a SIGKILL during a write leaves
    assert main(args) == 0
    assert not stale.exists()
    with FileLock(str(out / ".lock")):  # another run holds the directory
        capsys.readouterr()
        assert main(args) == 2
    assert "another run is using" in capsys.readouterr().err


def test_fingerprint_covers_engine_version(monkeypatch):
    from brainsleep.experiment.config import ExperimentConfig
    from brainsleep.sleep import standalone as devices

    before = ExperimentConfig().fingerprint()
    assert ExperimentConfig(out="elsewhere").fingerprint() == before  # not semantic
    monkeypatch.setattr(devices, "ENGINE_VERSION", devices.ENGINE_VERSION + 1)
    assert ExperimentConfig().fingerprint() != before


def test_fingerprint_covers_the_sleep_input_kinds_equations(monkeypatch):
    """An edited input kind in models/inputs.py is another configuration: its sleep stages
    are redone, never resumed from the old equations."""
    from brainsleep.experiment.config import ExperimentConfig
    from brainsleep.models.inputs import INPUT_KINDS

    before = ExperimentConfig().fingerprint()
    equations = INPUT_KINDS["masked-mean"]["equations"]
    monkeypatch.setitem(INPUT_KINDS["masked-mean"], "equations", equations + "\n")
    assert ExperimentConfig().fingerprint() != before
    monkeypatch.undo()
    assert ExperimentConfig().fingerprint() == before
    monkeypatch.setitem(INPUT_KINDS["noise"], "equations", "x = 0.5 : 1")
    assert ExperimentConfig().fingerprint() == before  # only the kind that sleeps counts
    assert ExperimentConfig(sleep_input="noise").fingerprint() != before


def test_fingerprint_follows_what_the_model_file_imports(monkeypatch):
    """src_additive.py takes NEURON from src.py: an edit of src.py is another src_additive
    model, though src_additive.py's own bytes are unchanged."""
    from brainsleep.experiment.config import ExperimentConfig
    from brainsleep.models import src

    before = ExperimentConfig(model="src_additive").fingerprint()
    monkeypatch.setitem(src.NEURON, "reset", "v = 0.5")
    assert ExperimentConfig(model="src_additive").fingerprint() != before
    monkeypatch.undo()
    assert ExperimentConfig(model="src_additive").fingerprint() == before


def test_shipped_models_and_input_kinds_match_the_fingerprint_tables():
    """Results made before the model-content and input-kind fields existed keep their
    fingerprint only while the shipped equations are unchanged. If this fails, you changed
    the science of a shipped model or input kind: bump ENGINE_VERSION (so old results
    directories are redone, not resumed) and update the tables in
    brainsleep/experiment/config.py."""
    from brainsleep.experiment import config
    from brainsleep.models.inputs import INPUT_KINDS
    from brainsleep.sleep.model import model_content_digest

    shipped = {model_content_digest(name) for name in ("src", "src_additive")}
    assert shipped == config.SHIPPED_MODEL_CONTENT
    kinds = {kind: config._input_kind_hash(kind) for kind in INPUT_KINDS}
    assert kinds == config.SHIPPED_INPUT_KINDS


def test_changed_configuration_is_refused(data_dir, build_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv(data_dir, out, build_root, "--device", "reference")) == 0
    before = (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    # (more seeds would grow the directory: see tests/test_study_scale.py)
    assert main(argv(data_dir, out, build_root, "--device", "reference", "--epochs", "4")) == 2
    err = capsys.readouterr().err
    assert err.count("different configuration") == 1
    (line,) = [x for x in err.splitlines() if "different configuration" in x]
    assert line.startswith("error: ") and "pick another --out" in line
    assert "epochs: 3 -> 4" in line  # names the difference
    assert (out / "metrics.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--dataset", "cifar"], "unknown data set 'cifar'"),
        (["--device", "tpu"], "invalid choice"),
        (["--sleep-preset", "nope"], "unknown sleep preset 'nope'"),
        (["--fractions", "0"], "fraction 0.0 is outside (0, 1]"),
        (["--fractions", "1.5"], "outside (0, 1]"),
        (["--imbalance", "5-9:abc"], "--imbalance"),
        (["--model", "no_such_model"], "unknown sleep model"),
        (["--search", "3", "--val-fraction", "0"], "validation split"),
        (["--hidden", "24"], "v_thresh has 3 values but the network has 2"),
        (["--sleep-params", "/nonexistent.json"], "no such file"),
    ],
)
def test_bad_input_exit_2_nothing_written(extra, match, data_dir, build_root, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) if extra[:2] == ["--device", "tpu"] else _nullcontext() as exc:
        code = main(argv(data_dir, out, build_root, *extra))
    if extra[:2] == ["--device", "tpu"]:
        code = exc.value.code
    assert code == 2
    err = capsys.readouterr().err
    assert match in err
    assert not out.exists()


def test_bad_model_file_exit_2(data_dir, build_root, tmp_path, capsys):
    bad = tmp_path / "bad_model.py"
    bad.write_text("NEURON = {}\n")
    assert main(argv(data_dir, tmp_path / "o", build_root, "--model", str(bad))) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_edited_model_file_via_cli(data_dir, build_root, tmp_path):
    out = tmp_path / "variant"
    assert (
        main(argv(data_dir, out, build_root, "--device", "runtime", "--model", "src_additive")) == 0
    )
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["model"].endswith("src_additive.py")


def test_help_explains_every_flag():
    proc = subprocess.run(
        [sys.executable, "-m", "brainsleep.experiment", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0
    flags = """--device --pref --dataset --fractions --subset --imbalance --seeds --recipe
        --model --sleep-preset --sleep-params --sleep-steps --search --finetune-epochs
        --record-spikes --out""".split()
    for flag in flags:
        assert flag in proc.stdout
    assert "default" in proc.stdout


def fake_no_gpu(tmp_path: Path, monkeypatch) -> None:
    """Put an ``nvidia-smi`` that fails as on a machine whose driver is gone first on PATH:
    no usable GPU here, whatever this machine has."""
    fake = tmp_path / "fake_bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "NVIDIA-SMI has failed: no driver"\nexit 9\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")


def never_called(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} started although the device is unavailable")

    return refuse


def test_cuda_without_gpu_stops_at_once_in_one_line(data_dir, tmp_path, capsys, monkeypatch):
    """--device cuda_standalone without a usable GPU: one line saying so and what to do,
    before any training, code generation or compiling (issue 34: it used to compile for
    ~14 minutes first); exit code 3 (unavailable); nothing written, no build cache."""
    from brainsleep import ann
    from brainsleep.sleep import devices, standalone

    fake_no_gpu(tmp_path, monkeypatch)
    monkeypatch.setattr(devices, "get_standalone_build", never_called("compiling"))
    monkeypatch.setattr(standalone, "get_standalone_build", never_called("compiling"))
    monkeypatch.setattr(ann, "train_baseline", never_called("training"))
    monkeypatch.setattr(ann, "train", never_called("training"))
    out, builds = tmp_path / "never", tmp_path / "builds"
    start = time.perf_counter()
    assert main(argv(data_dir, out, builds, "--device", "cuda_standalone")) == 3
    assert time.perf_counter() - start < 120  # validation only (imports on a busy machine)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: cuda_standalone needs an NVIDIA GPU")
    assert "nvidia-smi failed (NVIDIA-SMI has failed: no driver)" in err[0]
    assert "--device cpp_standalone" in err[0]
    assert not out.exists() and not builds.exists()


def test_study_with_a_cuda_run_and_no_gpu_is_unavailable(data_dir, tmp_path, capsys, monkeypatch):
    """A study is checked whole before its first run: a run on cuda_standalone without a
    GPU stops it with the same exit code 3 and one line naming the run; nothing runs."""
    from brainsleep import ann

    fake_no_gpu(tmp_path, monkeypatch)
    monkeypatch.setattr(ann, "train_baseline", never_called("training"))
    spec = tmp_path / "mixed.toml"
    spec.write_text(
        f'[defaults]\ndata-dir = "{data_dir}"\nfractions = [0.5]\nhidden = [24, 16]\n'
        '[[runs]]\nname = "cpu"\ndevice = "reference"\n'
        '[[runs]]\nname = "gpu"\ndevice = "cuda_standalone"\n'
    )
    root = tmp_path / "root"
    assert main(["--study", str(spec), "--out", str(root), "--no-progress"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run 'gpu'" in err[0] and "needs an NVIDIA GPU" in err[0], err
    assert not root.exists()


def test_device_without_toolchain_is_unavailable_too(data_dir, tmp_path, capsys, monkeypatch):
    """The same status for every device that cannot work here: cpp_standalone without a
    C++ compiler is refused at start with exit code 3, one line, nothing written."""
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("CXX", "no-such-compiler")
    out = tmp_path / "never"
    assert main(argv(data_dir, out, tmp_path / "b", "--device", "cpp_standalone")) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a C++ compiler" in err[0], err
    assert not out.exists()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
