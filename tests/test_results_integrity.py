"""The results directory never comes back wrong (issue 10).

- the directory is locked before it is checked and claimed: of two configurations
  started together only one claims it;
- every artifact is recorded (size, sha256) by the marker written after it; a rerun
  redoes a step whose files do not verify, and every step after it;
- an unusable ``--out`` (an existing file, not writable, a full disk) ends in one line
  and exit 2 (the argument) or 3 (the environment), leaving nothing half-written;
- result files get the permissions the umask says, not mkstemp's 0600;
- an interrupt says what was interrupted.

Everything runs in-process on the tiny data set with ``--device reference``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainsleep.experiment.__main__ import main
from brainsleep.sleep.engine import SleepEngine

from .tiny_data import make_tiny_mnist

CELL = "cells/mnist_f0.5_none_s0"


def argv(data_dir, out, *extra):
    return [
        "--data-dir", str(data_dir),
        "--fractions", "0.5",
        "--hidden", "24", "16",
        "--epochs", "2",
        "--finetune-epochs", "1",
        "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental",
        "--record-spikes", "all",
        "--device", "reference",
        "--out", str(out),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def fingerprint_of(args) -> str:
    from brainsleep.experiment.__main__ import build_parser, config_from_args

    return config_from_args(build_parser().parse_args(args)).fingerprint()


def temp_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.name.endswith(".tmp")]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def count_calls(monkeypatch):
    """Count training runs and sleep runs (a redone stage trains or sleeps again)."""
    from brainsleep import ann
    from brainsleep.experiment import runner

    calls = {"train": 0, "sleep": 0}
    real_train, real_sleep = ann.train, SleepEngine.run

    def train(*a, **k):
        calls["train"] += 1
        return real_train(*a, **k)

    def sleep(self, *a, **k):
        calls["sleep"] += 1
        return real_sleep(self, *a, **k)

    # Both names: the pipeline fine-tunes with ann.train, and ann.train_baseline calls the
    # training module's own train.
    monkeypatch.setattr(ann, "train", train)
    monkeypatch.setattr(ann.training, "train", train)
    monkeypatch.setattr(SleepEngine, "run", sleep)
    assert runner.SleepEngine is SleepEngine  # the engine every protocol's runner holds
    return calls


def record_load_data(monkeypatch) -> list:
    """Make load_data record its calls: a refused --out must be refused before any work."""
    from brainsleep.experiment import pipeline

    calls = []
    real = pipeline.load_data
    monkeypatch.setattr(pipeline, "load_data", lambda cfg: calls.append(cfg) or real(cfg))
    return calls


def fail_writing(monkeypatch, name: str) -> None:
    """The disk fills up while ``name`` is being written: part of it, then ENOSPC."""
    from brainsleep import atomic
    from brainsleep.experiment import pipeline, results
    from brainsleep.sleep import spikes

    real = atomic.atomic_write_with

    def write(path, writer):
        if Path(path).name != name:
            return real(path, writer)

        def partial(tmp):
            with open(tmp, "wb") as f:
                f.write(b"the first bytes of " + name.encode())
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # like a real write()

        return real(path, partial)

    for module in (atomic, results, pipeline, spikes):
        if hasattr(module, "atomic_write_with"):
            monkeypatch.setattr(module, "atomic_write_with", write)


# -- 1. lock first, then check and claim ---------------------------------------------------
def _lock_is_held(lock_file: Path) -> bool:
    import fcntl

    try:
        fd = os.open(lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_config_is_claimed_only_while_holding_the_lock(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("fcntl")
    from brainsleep.experiment import results

    real = results.atomic_write_json
    held = []

    def write(path, obj):
        if Path(path).name == "config.json":
            held.append(_lock_is_held(Path(path).parent / ".lock"))
        return real(path, obj)

    monkeypatch.setattr(results, "atomic_write_json", write)
    assert main(argv(data_dir, tmp_path / "run")) == 0
    assert held == [True]


def test_two_configurations_started_together_only_one_claims(
    data_dir, tmp_path, monkeypatch, capsys
):
    """B starts while A is claiming the directory: B is refused, A's fingerprint stays."""
    from brainsleep.experiment import results

    out = tmp_path / "shared"
    a_args = argv(data_dir, out)
    b_args = argv(data_dir, out, "--seeds", "5")
    real = results.atomic_write_json
    b_codes = []

    def write(path, obj):
        if Path(path).name == "config.json" and not b_codes:
            b_codes.append(None)
            b_codes[0] = main(b_args)  # the other configuration, right now
        return real(path, obj)

    monkeypatch.setattr(results, "atomic_write_json", write)
    assert main(a_args) == 0
    assert b_codes == [2]
    assert "another run is using" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["fingerprint"] == fingerprint_of(a_args)
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["mnist_f0.5_none_s0"]
    assert set(pd.read_csv(out / "metrics.csv")["seed"]) == {0}


def test_claim_lost_after_the_lock_exits_2_and_removes_what_this_run_created(
    data_dir, tmp_path, monkeypatch, capsys
):
    """The directory was free at the read-only check, another configuration claimed it
    while we loaded the data: exit 2 after taking the lock, and our lock file is gone."""
    from brainsleep.experiment import pipeline

    out = tmp_path / "contested"
    real = pipeline.load_data

    def load_while_another_claims(cfg):
        data = real(cfg)
        out.mkdir()
        (out / "config.json").write_text(json.dumps({"fingerprint": "another-configuration"}))
        return data

    monkeypatch.setattr(pipeline, "load_data", load_while_another_claims)
    assert main(argv(data_dir, out)) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "different configuration" in line
    assert sorted(os.listdir(out)) == ["config.json"]


# -- 2. artifacts are verified on resume ---------------------------------------------------
def test_integrity_records_detect_missing_truncated_and_changed_files(tmp_path):
    from brainsleep.experiment.results import verify_artifacts, verify_marker, write_marker

    (tmp_path / "a.bin").write_bytes(b"0123456789" * 100)
    (tmp_path / "b.bin").write_bytes(b"abc")
    write_marker(tmp_path / "stage.json", {"row": {"x": 1.5}}, artifacts=["a.bin", "b.bin"])
    body, problems = verify_marker(tmp_path / "stage.json")
    assert problems == [] and body["row"] == {"x": 1.5}

    (tmp_path / "a.bin").write_bytes(b"0123456789" * 50)  # truncated
    (tmp_path / "b.bin").write_bytes(b"abd")  # same size, other content
    _, problems = verify_marker(tmp_path / "stage.json")
    assert len(problems) == 2
    assert "a.bin" in problems[0] and "500 bytes but 1000" in problems[0]
    assert "b.bin" in problems[1] and "sha256" in problems[1]
    (tmp_path / "b.bin").unlink()
    assert "missing" in verify_artifacts(tmp_path, body["artifacts"])[1]

    text = (tmp_path / "stage.json").read_text()
    (tmp_path / "stage.json").write_text(text[: len(text) // 2])  # the marker itself
    body, problems = verify_marker(tmp_path / "stage.json")
    assert body is None and "stage.json" in problems[0]
    (tmp_path / "stage.json").write_text(text.replace("1.5", "2.5"))
    _, problems = verify_marker(tmp_path / "stage.json")
    assert "checksum" in problems[0]


@pytest.fixture(scope="module")
def finished(data_dir, tmp_path_factory):
    """One finished cell with every kind of artifact (search on, spikes recorded)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(argv(data_dir, out, "--search", "2")) == 0
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    """Same size, different bytes in the middle (what a bad disk or a stray write does)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[0:1] = b"X"
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    path.write_bytes(bytes(data))


# (corrupted file, how, trainings redone, sleeps redone: 2 search trials + 1 sleep)
REDO_CASES = [
    # A redone search takes its finished trials back from its Optuna journal (the
    # journal is keyed by the baseline weights and split, which are identical here):
    # only the final sleep runs again.
    ("weights_baseline.npz", _truncate, 3, 1),
    ("search.csv", _truncate, 2, 1),
    ("search.json", _truncate, 2, 1),
    ("weights_sleep.npz", _truncate, 2, 1),
    ("spikes.nc", _truncate, 2, 1),
    ("sleep_params.json", _garble, 2, 1),
    ("stage_sleep.json", _truncate, 2, 1),
    ("weights_finetune_only.npz", _garble, 1, 0),
    ("confusion.nc", _truncate, 0, 0),
    ("done.json", _truncate, 0, 0),
]


def _check_cell_readable(cell: Path, reference: Path) -> None:
    """Every file of the cell loads, and holds what the uninterrupted run wrote."""
    for npz in sorted(reference.glob("weights_*.npz")):
        with np.load(npz) as want, np.load(cell / npz.name) as got:
            assert sorted(got.files) == sorted(want.files), npz.name
            for key in want.files:
                np.testing.assert_array_equal(got[key], want[key], err_msg=npz.name)
    for name in ("spikes.nc", "confusion.nc"):
        with xr.open_dataset(reference / name, engine="h5netcdf") as want:
            with xr.open_dataset(cell / name, engine="h5netcdf") as got:
                xr.testing.assert_identical(got.load(), want.load())
    for js in sorted(reference.glob("*.json")):
        got = json.loads((cell / js.name).read_text())
        want = json.loads(js.read_text())
        for key in ("row", "confusion", "best", "history", "params", "normalization", "subset"):
            assert got.get(key) == want.get(key), (js.name, key)
    pd.testing.assert_frame_equal(
        pd.read_csv(cell / "search.csv"), pd.read_csv(reference / "search.csv")
    )


@pytest.mark.parametrize(
    ("name", "corrupt", "trainings", "sleeps"), REDO_CASES, ids=[c[0] for c in REDO_CASES]
)
def test_rerun_redoes_what_does_not_verify(
    name, corrupt, trainings, sleeps, finished, data_dir, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    corrupt(out / CELL / name)
    calls = count_calls(monkeypatch)
    capsys.readouterr()
    assert main(argv(data_dir, out, "--search", "2")) == 0
    err = capsys.readouterr().err
    _check_cell_readable(out / CELL, finished / CELL)
    assert calls == {"train": trainings, "sleep": sleeps}
    # a warning names the file and what is wrong with it
    warned = [line for line in err.splitlines() if name in line]
    assert warned and any(w in warned[0] for w in ("bytes but", "sha256", "unreadable")), err
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "metrics.csv"), pd.read_csv(finished / "metrics.csv")
    )
    from brainsleep.experiment.results import verify_marker

    for marker in sorted((out / CELL).glob("*.json")):
        if marker.name != "sleep_params.json":
            assert verify_marker(marker)[1] == [], marker.name
    assert not temp_files(out)
    if name in ("weights_sleep.npz", "done.json"):  # trusted again: a third run redoes nothing
        calls.update(train=0, sleep=0)
        assert main(argv(data_dir, out, "--search", "2")) == 0
        assert calls == {"train": 0, "sleep": 0}


# -- 3. an unusable --out: one line, exit 2 or 3, nothing left behind ----------------------
@pytest.mark.parametrize("where", ["file", "below_a_file"])
def test_out_that_is_a_file_exit_2_before_any_work(where, data_dir, tmp_path, monkeypatch, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("not a directory\n")
    out = existing if where == "file" else existing / "results"
    loads = record_load_data(monkeypatch)
    assert main(argv(data_dir, out)) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert str(existing) in line and "file" in line and "Traceback" not in err
    assert existing.read_text() == "not a directory\n"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    assert loads == []


def _read_only(monkeypatch, root: Path) -> None:
    """Make ``root`` behave like a read-only directory (works as root, unlike chmod)."""
    real_open, real_mkdir = os.open, os.mkdir
    prefix = str(root.resolve())

    def inside(path) -> bool:
        p = os.path.abspath(os.fspath(path))
        return p == prefix or p.startswith(prefix + os.sep)

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        writes = flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR | os.O_TRUNC)
        if writes and dir_fd is None and inside(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_mkdir(path, mode=0o777, *, dir_fd=None):
        if dir_fd is None and inside(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.mark.parametrize("where", ["existing", "missing"])
def test_read_only_out_exit_3_before_any_work(where, data_dir, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if where == "missing":  # an existing --out must be empty or hold brainsleep results
        (ro / "kept.txt").write_text("x")
    out = ro if where == "existing" else ro / "new" / "results"
    loads = record_load_data(monkeypatch)
    _read_only(monkeypatch, ro)
    assert main(argv(data_dir, out)) == 3
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert line.startswith(f"error: cannot write {out}: Permission denied")
    left = sorted(os.listdir(ro))  # no probe file, no directory
    assert left == ([] if where == "existing" else ["kept.txt"])
    assert loads == []


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_read_only_parent_by_permissions_exit_3(data_dir, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        out = ro / "results"
        assert main(argv(data_dir, out)) == 3
        (line,) = error_lines(capsys.readouterr().err)
        assert line.startswith(f"error: cannot write {out}: Permission denied")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_disk_full_during_a_run_exit_3_no_temp_files_then_resume(
    data_dir, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    calls = count_calls(monkeypatch)
    fail_writing(monkeypatch, "weights_sleep.npz")
    assert main(argv(data_dir, out)) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert error_lines(err) == [
        f"error: cannot write {out / CELL / 'weights_sleep.npz'}: No space left on device"
    ]
    assert not temp_files(out)
    assert not (out / CELL / "stage_sleep.json").exists()
    assert calls == {"train": 1, "sleep": 1}
    # space again: the rerun keeps the baseline and finishes
    monkeypatch.undo()
    calls = count_calls(monkeypatch)
    assert main(argv(data_dir, out)) == 0
    assert calls == {"train": 2, "sleep": 1}
    assert len(pd.read_csv(out / "metrics.csv")) == 4
    assert not temp_files(out)


def test_disk_full_writing_config_leaves_nothing(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "run"
    fail_writing(monkeypatch, "config.json")
    assert main(argv(data_dir, out)) == 3
    err = capsys.readouterr().err
    assert error_lines(err) == [
        f"error: cannot write {out / 'config.json'}: No space left on device"
    ]
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []  # neither the directories nor the lock file


# -- 4. permissions follow the umask -------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_result_files_follow_the_umask(umask, mode, data_dir, tmp_path):
    from brainsleep.atomic import atomic_write_bytes

    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "single.bin", b"x")
        out = tmp_path / "run"
        assert main(argv(data_dir, out)) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "single.bin").stat().st_mode & 0o777 == mode
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
    assert {"config.json", "metrics.csv", "weights_sleep.npz", "spikes.nc"} <= {
        p.name for p in files
    }
    modes = {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(mode)}, modes
    assert not [p for p in tmp_path.iterdir() if "probe" in p.name]


# -- 5. an interrupt says what it interrupted ----------------------------------------------
def test_interrupt_prints_its_message_exit_130(data_dir, tmp_path, monkeypatch, capsys):
    from brainsleep.experiment import pipeline

    why = "interrupted while compiling the sleep network; rerunning compiles again"

    def interrupted(self):
        raise KeyboardInterrupt(why)

    monkeypatch.setattr(pipeline.CellRunner, "run", interrupted)
    out = tmp_path / "run"
    assert main(argv(data_dir, out)) == 130
    err = capsys.readouterr().err
    assert why in err
    assert "interrupted: finished stages are kept; rerun the same command" in err
    assert not temp_files(out)


# --------------------------------------------- found by a review as a new user (issue 10)


def test_steps_of_another_configuration_are_redone(finished, data_dir, tmp_path, capsys):
    """A different configuration must not adopt old steps: with config.json lost the
    directory is refused; with config.json rewritten for it, every step is redone."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    args = argv(data_dir, out, "--search", "2", "--epochs", "3")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").unlink()
    capsys.readouterr()
    assert main(args) == 2
    assert "holds no brainsleep results" in error_lines(capsys.readouterr().err)[0]
    config["fingerprint"] = fingerprint_of(args)
    (out / "config.json").write_text(json.dumps(config))
    assert main(args) == 0
    assert "stage_baseline.json was written by another configuration" in capsys.readouterr().err
    marker = json.loads((out / CELL / "stage_baseline.json").read_text())
    assert marker["fingerprint"] == fingerprint_of(args)


@pytest.mark.parametrize("content", [b"\xf1\xff\x00", b"[1, 2]", "directory"])
def test_corrupt_config_json_is_one_line_exit_2(content, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    if content == "directory":
        (out / "config.json").mkdir()
    else:
        (out / "config.json").write_bytes(content)
    assert main(argv(data_dir, out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert "config.json" in line and "corrupt" in line


def test_foreign_directory_and_empty_out_are_refused(data_dir, tmp_path, capsys, monkeypatch):
    """--out "" (the current directory) or a directory of the user's own files is not
    taken over; and a resume deletes only the writer's own temporary files."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(argv(data_dir, mine)) == 2
    assert "non-empty directory" in error_lines(capsys.readouterr().err)[0]
    assert sorted(os.listdir(mine)) == ["notes.txt"]
    assert main(argv(data_dir, "")) == 2
    assert "--out is empty" in error_lines(capsys.readouterr().err)[0]

    from brainsleep.experiment.results import remove_stale_temp_files

    (mine / "keep.tmp").write_text("the user's")
    (mine / ".weights.npz.abc123.tmp").write_text("half-written")
    assert remove_stale_temp_files(mine) == 1
    assert sorted(os.listdir(mine)) == ["keep.tmp", "notes.txt"]


def test_a_failing_cell_is_one_line_naming_it(data_dir, tmp_path, capsys, monkeypatch):
    """An error inside a step (here: the model breaks the weights) stops the run with one
    line naming the cell, exit 1, finished steps kept; before: a traceback."""
    from brainsleep.experiment import runner
    from brainsleep.sleep import ModelNumericsError

    def broken(self, *a, **k):
        raise ModelNumericsError("model src produced NaN/inf weights in layer 2")

    assert runner.SleepEngine is SleepEngine
    monkeypatch.setattr(SleepEngine, "run", broken)
    out = tmp_path / "run"
    assert main(argv(data_dir, out)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert line.startswith(
        "error: cell mnist_f0.5_none_s0 failed: ModelNumericsError: model src produced NaN/inf"
    )
    assert (out / CELL / "stage_baseline.json").is_file()  # kept for the rerun


def test_search_trial_with_nan_weights_scores_zero(data_dir, tmp_path, monkeypatch):
    """Parameters that break the network lose their trial; they do not end the run."""
    from brainsleep.experiment import pipeline, runner
    from brainsleep.sleep import ModelNumericsError

    real_run, real_trial = SleepEngine.run, pipeline.CellRunner.trial
    trials, failed = [], []

    def trial(self, *a, **k):
        trials.append(1)
        return real_trial(self, *a, **k)

    def second_trial_fails(self, *a, **k):
        # only the sleep of trial 1 (not the model checks at start-up, whose trial runs
        # happen once per process: counting every call made this test depend on order)
        if len(trials) == 2 and not failed:
            failed.append(1)
            raise ModelNumericsError("model src produced NaN/inf weights in layer 1")
        return real_run(self, *a, **k)

    assert runner.SleepEngine is SleepEngine
    monkeypatch.setattr(pipeline.CellRunner, "trial", trial)
    monkeypatch.setattr(SleepEngine, "run", second_trial_fails)
    out = tmp_path / "run"
    assert main(argv(data_dir, out, "--search", "2")) == 0
    hist = pd.read_csv(out / CELL / "search.csv")
    assert hist.loc[hist["trial"] == 1, "score"].item() == 0.0


def test_edited_model_file_or_other_data_is_another_configuration(data_dir, tmp_path, capsys):
    """Same arguments, different content: an edited --model file or other IDX files in
    the same --data-dir must not resume the old results (before: silently resumed)."""
    repo = Path(__file__).resolve().parents[1]
    model = tmp_path / "rule.py"
    model.write_text((repo / "models" / "src.py").read_text())
    out = tmp_path / "run"
    args = argv(data_dir, out, "--model", str(model), "--device", "runtime")
    before = fingerprint_of(args)
    model.write_text(model.read_text().replace("W_SHARPNESS = 0.001", "W_SHARPNESS = 0.002"))
    assert fingerprint_of(args) != before

    other = make_tiny_mnist(tmp_path / "other", n_train_per_class=41)
    assert fingerprint_of(argv(other, out)) != fingerprint_of(argv(data_dir, out))
    assert main(argv(data_dir, out, "--finetune-epochs", "0")) == 0
    # the same directory with other files under the same --data-dir path is refused
    moved = tmp_path / "data"
    shutil.copytree(data_dir, moved)
    first = tmp_path / "run2"
    assert main(argv(moved, first, "--finetune-epochs", "0")) == 0
    shutil.rmtree(moved)
    shutil.copytree(other, moved)
    capsys.readouterr()
    assert main(argv(moved, first, "--finetune-epochs", "0")) == 2
    assert "different configuration" in error_lines(capsys.readouterr().err)[0]
