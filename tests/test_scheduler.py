"""Cells on Dask distributed: same metrics as in-process, failing and killed tasks, flags."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainsleep.experiment.__main__ import build_parser, config_from_args, main
from brainsleep.experiment.pipeline import cell_task, cells
from brainsleep.experiment.results import collect_metrics, take_directory, write_metrics
from brainsleep.experiment.scheduler import CellError, run_cells

from .test_experiment import argv

REPO = Path(__file__).resolve().parents[1]
SEEDS = ("--seeds", "0", "1")  # two cells


# -- tasks the workers import from this module -------------------------------------------
def raise_for_seed_1(cfg_dict: dict, cell, out: str) -> str:
    """A task that fails for the cell of seed 1 and runs the others."""
    if cell.seed == 1:
        raise ValueError("boom")
    return cell_task(cfg_dict, cell, out)


def kill_once(cfg_dict: dict, cell, out: str, marker: str) -> str:
    """Seed 1's first attempt: the worker kills itself (SIGKILL) after the baseline stage."""
    if cell.seed == 1 and not Path(marker).exists():
        from brainsleep.experiment.pipeline import CellRunner

        Path(marker).write_text(str(os.getpid()))

        def die(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        CellRunner.sleep = die  # only in this process, which is about to die
    return cell_task(cfg_dict, cell, out)


def always_die(cfg_dict: dict, cell, out: str) -> str:
    """Seed 1 kills its worker every time."""
    if cell.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return cell_task(cfg_dict, cell, out)


def alone_on_its_worker(cfg_dict: dict, cell, out: str) -> str:
    """Fails unless its worker holds no other cell still to run (ready or executing)."""
    from distributed import get_worker

    time.sleep(1.0)  # time for the scheduler to hand out anything it would
    held = [
        key
        for key, ts in get_worker().state.tasks.items()
        if str(key).startswith("brainsleep-") and ts.state != "memory"
    ]
    if len(held) != 1:
        raise ValueError(f"the worker holds {held}")
    return cell.cell_id


# -- fixtures ----------------------------------------------------------------------------
def run_args(data_dir, out, build_root, *extra) -> list[str]:
    return argv(data_dir, out, build_root, "--device", "reference", *SEEDS, *extra)


@pytest.fixture(scope="module")
def in_process(data_dir, build_root, tmp_path_factory) -> Path:
    """The reference run, in this process as without the flags.

    (Dask cannot be checked for in ``sys.modules``: with it installed, xarray's netCDF
    writer imports ``dask.distributed`` itself to look for a client.)
    """
    out = tmp_path_factory.mktemp("inproc") / "run"
    res = subprocess.run(
        [sys.executable, "-m", "brainsleep.experiment", *run_args(data_dir, out, build_root)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "cell 2/2: mnist_f0.5_none_s1" in res.stderr and "Dask" not in res.stderr
    return out


def config(data_dir, out, build_root, *extra):
    return config_from_args(build_parser().parse_args(run_args(data_dir, out, build_root, *extra)))


def run_with_task(cfg, out: Path, task, **kwargs) -> None:
    """run_cells with a test task, as __main__ and the pipeline run it: the directory
    claimed and locked, the metrics rewritten after each cell."""
    lock, _ = take_directory(out, {"config": cfg.to_dict()}, cfg.fingerprint())

    def run_here(cell):  # pragma: no cover - these tests always use Dask
        raise AssertionError("ran in-process")

    def on_done(cell):
        write_metrics(out, collect_metrics(out))

    try:
        run_cells(cfg, out, cells(cfg), run_here, on_done, task=task, **kwargs)
    finally:
        lock.release()


# -- tests -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_same_metrics_as_in_process(workers, in_process, data_dir, build_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(data_dir, out, build_root, "--workers", str(workers))) == 0
    assert "local Dask cluster" in capsys.readouterr().err
    # byte for byte, no column left out
    assert (out / "metrics.csv").read_bytes() == (in_process / "metrics.csv").read_bytes()
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(
        p.name for p in (in_process / "cells").iterdir()
    )


@pytest.mark.slow
def test_failing_task_stops_with_the_cell_and_a_rerun_resumes(
    in_process, data_dir, build_root, tmp_path
):
    out = tmp_path / "run"
    cfg = config(data_dir, out, build_root, "--workers", "1")
    with pytest.raises(CellError, match=r"cell mnist_f0\.5_none_s1 failed: ValueError: boom"):
        run_with_task(cfg, out, raise_for_seed_1)
    done = out / "cells" / "mnist_f0.5_none_s0" / "done.json"
    assert done.exists()  # the finished cell is kept (one worker: submission order)
    assert not (out / "cells" / "mnist_f0.5_none_s1" / "done.json").exists()
    before = done.stat().st_mtime_ns
    assert main(run_args(data_dir, out, build_root, "--workers", "1")) == 0
    assert done.stat().st_mtime_ns == before  # resumed, not redone
    assert (out / "metrics.csv").read_bytes() == (in_process / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_killed_worker_is_rescheduled(in_process, data_dir, build_root, tmp_path):
    out = tmp_path / "run"
    marker = tmp_path / "killed_once"
    cfg = config(data_dir, out, build_root, "--workers", "2")
    run_with_task(cfg, out, functools.partial(kill_once, marker=str(marker)))
    assert marker.exists()  # a worker did die mid-cell (after its baseline stage)
    assert (out / "metrics.csv").read_bytes() == (in_process / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_worker_that_keeps_dying_stops_the_run(data_dir, build_root, tmp_path):
    out = tmp_path / "run"
    cfg = config(data_dir, out, build_root, "--workers", "1")
    with pytest.raises(CellError, match=r"cell mnist_f0\.5_none_s1 failed: its worker"):
        run_with_task(cfg, out, always_die, allowed_failures=1)
    assert (out / "cells" / "mnist_f0.5_none_s0" / "done.json").exists()


def test_a_worker_is_given_one_cell_at_a_time(data_dir, build_root, tmp_path):
    """A worker that dies is blamed for every cell it holds: queued innocent cells must
    not be handed to it ahead of time (test_worker_that_keeps_dying_stops_the_run was
    flaky before, blaming seed 0 for seed 1's deaths)."""
    out = tmp_path / "run"
    cfg = config(data_dir, out, build_root, "--workers", "1", "--seeds", "0", "1", "2")
    run_with_task(cfg, out, alone_on_its_worker)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "-1"], "--workers must be an integer >= 0"),
        (["--workers", "2", "--scheduler", "tcp://localhost:8786"], "give one of them"),
        (["--scheduler", "localhost"], "expected a Dask scheduler address"),
    ],
)
def test_bad_parallel_flags(extra, message, data_dir, build_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(data_dir, out, build_root, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_parallel_flags_do_not_change_the_fingerprint(data_dir, build_root, tmp_path):
    plain = config(data_dir, tmp_path, build_root)
    assert config(data_dir, tmp_path, build_root, "--workers", "3").fingerprint() == (
        plain.fingerprint()
    )
    scheduled = config(data_dir, tmp_path, build_root, "--scheduler", "tcp://10.0.0.1:8786")
    assert scheduled.scheduler == "tcp://10.0.0.1:8786"
    assert scheduled.fingerprint() == plain.fingerprint()


def test_a_worker_logs_into_the_current_run_only(tmp_path, monkeypatch):
    """A worker that outlives a run (an external scheduler's) wrote every later run's
    records into the earlier run's log.txt too, stretching that run's wall time."""
    import logging

    from brainsleep.experiment import scheduler

    monkeypatch.setattr(scheduler, "_LOG", {})
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    log = logging.getLogger("brainsleep.experiment")
    try:
        scheduler._worker_log(a)
        log.info("record of run a")
        scheduler._worker_log(b)
        log.info("record of run b")
        scheduler._worker_log(b)  # a second task of the same run: nothing changes
        log.info("another record of run b")
    finally:
        handler = scheduler._LOG.get("handler")
        logging.getLogger("brainsleep").removeHandler(handler)
        handler.close()
    text_a, text_b = (a / "log.txt").read_text(), (b / "log.txt").read_text()
    assert "record of run a" in text_a and "run b" not in text_a
    assert "record of run b" in text_b and "another record of run b" in text_b
    assert "run a" not in text_b


def brian2_state() -> tuple[bool, bool]:
    """Run on a worker: (Brian2 already imported, this task runs off the main thread)."""
    import threading

    return "brian2" in sys.modules, threading.current_thread() is not threading.main_thread()


def test_workers_import_brian2_in_their_main_thread_before_any_task():
    """Brian2 2.10 installs a SIGINT handler at import, which only a main thread may do;
    tasks run in a worker thread, so every cell failed on the 3.12 stack ('signal only
    works in main thread') until workers imported Brian2 at start, in their main thread."""
    from brainsleep.experiment.config import ExperimentConfig
    from brainsleep.experiment.scheduler import connect

    connection = connect(ExperimentConfig(workers=1))
    try:
        imported, in_thread = connection.client.submit(brian2_state, pure=False).result()
        names = connection.client.run(lambda dask_worker: sorted(dask_worker.plugins))
    finally:
        connection.close()
    assert in_thread  # the condition that breaks a first import of Brian2 2.10
    assert imported
    assert all("brainsleep-import-brian2" in p for p in names.values())


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            {"tcp://w:1": {"status": "OK"}, "tcp://w:2": {"status": "error", "exception": "boom"}},
            "worker tcp://w:2: boom",
        ),
        (ImportError("No module named 'brian2'"), "ImportError: No module named 'brian2'"),
        ({"tcp://w:1": {"status": "OK"}}, None),
    ],
)
def test_a_worker_that_cannot_import_brian2_is_named(reply, said):
    from brainsleep.experiment.scheduler import _import_brian2_on_workers

    class Client:
        def register_plugin(self, plugin):
            assert plugin.name == "brainsleep-import-brian2"
            if isinstance(reply, Exception):
                raise reply
            return reply

    assert _import_brian2_on_workers(Client()) == said
