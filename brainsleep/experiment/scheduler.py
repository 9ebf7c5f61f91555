"""Where the cells of an experiment run: in this process, or as tasks on Dask distributed.

One interface, :func:`run_cells`, used by :func:`brainsleep.experiment.pipeline.run_experiment`:

- no ``--workers`` and no ``--scheduler``: the cells run one after the other in this
  process, as they always did (Dask is not imported);
- ``--workers N``: a :class:`dask.distributed.LocalCluster` of N worker processes with one
  thread each (Brian2's standalone device and torch's state are per process, so a process
  runs one cell at a time);
- ``--scheduler ADDRESS``: the same tasks on an existing Dask cluster, whose workers must
  see ``--out`` and the data cache (or ``--data-dir``) on a shared filesystem, and run
  one thread each. That is checked, not assumed: :func:`connect` refuses a cluster with
  a worker of several threads before anything is written, and every task refuses to run
  on one (a worker that joined later), because two tasks in one process would share
  Brian2's and torch's per-process state and silently mix their simulations.

:func:`connect` comes first (an unreachable scheduler is reported before the results
directory is claimed); :func:`run_cells` then uses the :class:`Connection` it is given.

A task gets only small arguments (the configuration as a dict, the cell, the results
directory, the sha256 of the data files the driver saw), checks that its worker's files
are those, loads the data itself (memoised per worker process by that content), runs the
cell with
its protocol's runner (the task it is given) and returns the cell id. A cell writes
only ``cells/<cell_id>/`` (atomic writes, integrity markers); the driver keeps the
results-directory lock and rewrites the metrics after each finished cell. A worker killed
mid-task (``kill -9``, out of memory) has its task rescheduled on another worker, up to
:data:`ALLOWED_FAILURES` times; then, or when a task raises, the run stops with
:class:`CellError` naming the cell. Finished cells are kept and a rerun resumes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from brainsleep.formats import CellKey

    from .config import ExperimentConfig

log = logging.getLogger("brainsleep.experiment")

# Dask event topic on which workers report each finished search trial to the driver.
PROGRESS_TOPIC = "brainsleep-trial-done"
# Worker deaths a task may cause before the run gives it up (Dask's allowed-failures).
ALLOWED_FAILURES = 2
# Seconds between looks for a finished cell or a free worker thread.
POLL_SECONDS = 0.5
# How long connect() waits for --scheduler before giving up.
CONNECT_TIMEOUT = "30s"
# Errors that __main__ already reports in one line: re-raised as they are.
_PASS_THROUGH = ("OSError", "DeviceUnavailableError")

CellTask = Callable[[dict, "CellKey", str], str]


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the cells as one process would (one line, to the user)."""


class CellError(RuntimeError):
    """A cell failed (in this process or on a Dask worker); names the cell and the cause.

    ``args`` are ``(cell_id, message)``, so it survives pickling between processes.
    """

    def __init__(self, cell_id: str, message: str):
        super().__init__(cell_id, message)
        self.cell_id, self.message = cell_id, message

    def __str__(self) -> str:
        return f"cell {self.cell_id} failed: {self.message}"


def uses_dask(cfg: ExperimentConfig) -> bool:
    """True when ``cfg`` asks for a Dask cluster (``--workers N`` or ``--scheduler``)."""
    return bool(cfg.workers) or cfg.scheduler is not None


# -- the worker side ---------------------------------------------------------------------
_DATA: dict[str, dict] = {}  # this worker process's data, per (datasets, dir, content)
# The results directory whose log.txt this process appends to, and its handler: one at a
# time, so that a worker that outlives a run (an external --scheduler's) does not go on
# writing a later run's records into the earlier run's log (which also sets its wall time).
_LOG: dict[str, object] = {}


def _worker_data(cfg: ExperimentConfig) -> dict:
    """:func:`~brainsleep.experiment.pipeline.load_data`, once per worker process and
    data content: files changed under a long-lived worker are loaded again, never
    served from the memo of the old ones."""
    from .cells import load_data
    from .config import data_hashes

    key = json.dumps([cfg.datasets, cfg.data_dir, data_hashes(tuple(cfg.datasets), cfg.data_dir)])
    if key not in _DATA:
        _DATA.clear()  # one data set in memory at a time (its files changed, or another run)
        _DATA[key] = load_data(cfg)
    return _DATA[key]


# Why a worker must run one thread, and what to do: the refusals of connect() and of
# every task.
_ONE_THREAD = (
    "Brian2 and torch keep per-process state, so two tasks in one process would mix their "
    "simulations: start workers with one thread each (dask worker --nthreads 1; "
    "SLURMCluster(processes=cores))"
)


def _check_one_thread() -> None:
    """Refuse to run a task on a worker with several threads (see the module's notes)."""
    from distributed import get_worker

    worker = get_worker()
    if worker.state.nthreads != 1:
        raise ClusterError(
            f"Dask worker {worker.address} runs {worker.state.nthreads} threads; {_ONE_THREAD}"
        )


def checked_task(task: CellTask, cfg_dict: dict, cell: CellKey, out: str, data: dict) -> str:
    """Run ``task(cfg_dict, cell, out)`` on this worker after checking it: one thread,
    and data files whose sha256 are ``data`` (the driver's
    :func:`~brainsleep.experiment.config.data_hashes`, as the fingerprint records them)."""
    from .config import data_hashes

    _check_one_thread()
    here = data_hashes(tuple(cfg_dict["datasets"]), cfg_dict.get("data_dir"))
    if here != data:
        changed = sorted(k for k in data if here.get(k) != data[k])
        raise ClusterError(
            f"the {', '.join(changed)} files in {cfg_dict.get('data_dir')} on this worker "
            "differ from the ones this run started with (changed since, or another copy): "
            "make the workers see the same files and rerun the command"
        )
    return task(cfg_dict, cell, out)


def _worker_log(out: Path) -> None:
    """Append this process's ``brainsleep`` log records to ``out/log.txt``, and to no
    other run's log from now on."""
    key = str(out.resolve())
    if _LOG.get("key") == key:
        return
    logger = logging.getLogger("brainsleep")
    logger.setLevel(logging.INFO)
    from brainsleep.formats import LOG_FILE

    if (old := _LOG.get("handler")) is not None:
        logger.removeHandler(old)
        old.close()
    handler = logging.FileHandler(out / LOG_FILE)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [pid %(process)d]: %(message)s")
    )
    logger.addHandler(handler)
    _LOG.update(key=key, handler=handler)


def worker_setup(cfg_dict: dict, out: str) -> tuple[ExperimentConfig, Path, dict]:
    """What every task does first in a worker process: one torch thread, no progress
    bars, this process's log records in ``out/log.txt``; ``(cfg, out, data)`` with the
    data of the run loaded once per process (:func:`_worker_data`)."""
    import torch

    from .config import ExperimentConfig

    torch.set_num_threads(1)
    cfg = ExperimentConfig(**{**cfg_dict, "progress": False})
    path = Path(out)
    _worker_log(path)
    return cfg, path, _worker_data(cfg)


def in_worker() -> bool:
    """True inside a Dask worker (a cell task), so trials can go to the cluster too."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def map_on_cluster(fn: Callable, items: Sequence) -> list:
    """``[fn(x) for x in items]`` as tasks on the cluster of this worker, in item order.

    The calling task secedes from its worker thread while it waits (Dask's
    ``worker_client``), so the thread can run one of the tasks.
    """
    from distributed import worker_client

    with worker_client() as client:
        return client.gather(client.map(fn, list(items), pure=False))


def report_trial(cell: CellKey) -> None:
    """Tell the driver's progress bar that a search trial of ``cell`` finished."""
    from distributed import get_worker

    get_worker().log_event(PROGRESS_TOPIC, {"cell": cell.cell_id})


# -- the driver side ---------------------------------------------------------------------
def run_cells(
    cfg: ExperimentConfig,
    out: Path,
    cells: Sequence[CellKey],
    run_here: Callable[[CellKey], None],
    on_done: Callable[[CellKey], None],
    *,
    task: CellTask,
    connection: Connection | None = None,
    allowed_failures: int = ALLOWED_FAILURES,
) -> None:
    """Run every cell, in this process or on Dask; call ``on_done`` after each one.

    Parameters
    ----------
    cfg : ExperimentConfig
        The validated configuration; ``workers`` and ``scheduler`` choose where cells run.
    out : pathlib.Path
        The results directory (the caller holds its lock).
    cells : sequence of CellKey
        The cells, in the order they are started.
    run_here : callable
        Runs one cell in this process (used without Dask).
    on_done : callable
        Called in this process with each finished cell, in the order they finish.
    task : callable
        The Dask task ``task(cfg_dict, cell, out) -> cell_id`` of the protocol's runner
        (:func:`brainsleep.experiment.pipeline.cell_task`,
        :func:`brainsleep.experiment.incremental.incremental_cell_task`); importable by
        the workers.
    connection : Connection, optional
        From :func:`connect` (made and closed here when not given).
    allowed_failures : int, optional
        Worker deaths one task may cause before the run stops (local cluster only; an
        existing scheduler keeps its own ``distributed.scheduler.allowed-failures``);
        used only when no ``connection`` is given.

    Raises
    ------
    CellError
        A task raised (other than OSError and DeviceUnavailableError, re-raised as they
        are), or killed its worker more than ``allowed_failures`` times.
    ClusterError
        No ``connection`` given and :func:`connect` refuses the cluster.
    """
    if not uses_dask(cfg):
        for k, cell in enumerate(cells, start=1):
            log.info("cell %d/%d: %s", k, len(cells), cell.cell_id)
            run_here(cell)
            on_done(cell)
        return
    if connection is not None:
        _run_on_dask(connection.client, cfg, out, cells, on_done, task)
        return
    own = connect(cfg, allowed_failures)
    try:
        _run_on_dask(own.client, cfg, out, cells, on_done, task)
    finally:
        own.close()


@dataclass
class Connection:
    """A Dask client and the local cluster it owns (None for ``--scheduler``)."""

    client: object
    cluster: object | None = None

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def connect(cfg: ExperimentConfig, allowed_failures: int = ALLOWED_FAILURES) -> Connection:
    """Start the local cluster (``--workers``) or reach ``--scheduler``, and check it.

    Call it before anything is written: the dashboard address goes to stderr.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or has a worker with more than one thread.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if cfg.scheduler is not None:
        try:
            client = Client(cfg.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler --scheduler {cfg.scheduler} ({exc}); is it "
                "running, and is the address (tcp://host:port) right?"
            ) from exc
        where = f"Dask scheduler {cfg.scheduler}"
    else:
        with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
            cluster = LocalCluster(
                n_workers=cfg.workers,
                threads_per_worker=1,
                processes=True,
                silence_logs=logging.ERROR,
            )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        where = f"local Dask cluster of {cfg.workers} worker process(es)"
    connection = Connection(client, cluster)
    many = {w: n for w, n in client.nthreads().items() if n != 1}
    if many:
        connection.close()
        worker, n = next(iter(many.items()))
        raise ClusterError(
            f"--scheduler {cfg.scheduler}: {len(many)} worker(s) run several threads "
            f"({worker}: {n}); {_ONE_THREAD}"
        )
    if (problem := _import_brian2_on_workers(client)) is not None:
        connection.close()
        raise ClusterError(
            f"{where}: a worker cannot import Brian2 ({problem}); install brainsleep's "
            "requirements in the workers' environment"
        )
    print(f"cells run on a {where}; dashboard: {client.dashboard_link}", file=sys.stderr)
    return connection


def _import_brian2_on_workers(client) -> str | None:
    """Register :class:`~.worker_setup.ImportBrian2` (workers that join later run it when
    they start); what went wrong on a worker, or None."""
    from .worker_setup import ImportBrian2

    try:
        replies = client.register_plugin(ImportBrian2()) or {}
    except Exception as exc:  # a plugin that raised, as some distributed versions report it
        return f"{type(exc).__name__}: {exc}"
    for worker, reply in replies.items():
        if reply.get("status") != "OK":
            return f"worker {worker}: {reply.get('exception')}"
    return None


def _failure(cell: CellKey, exc: BaseException) -> BaseException:
    """The exception the driver raises for a failed task."""
    from distributed import KilledWorker

    if isinstance(exc, CellError):
        failed = exc  # raised by CellRunner on the worker: it names the cell already
    elif isinstance(exc, KilledWorker):
        failed = CellError(
            cell.cell_id,
            "its worker process died each time it ran it (killed, or out of memory?); "
            "finished cells are kept, rerun to resume",
        )
    else:
        failed = CellError(cell.cell_id, f"{type(exc).__name__}: {exc}")
    log.error("%s", failed)  # one line in log.txt and on stderr, whatever __main__ does
    if any(t.__name__ in _PASS_THROUGH for t in type(exc).__mro__):
        return exc  # __main__ reports these in one line with its own exit code
    return failed


def _run_on_dask(
    client,
    cfg: ExperimentConfig,
    out: Path,
    cells: Sequence[CellKey],
    on_done: Callable[[CellKey], None],
    task: CellTask,
) -> None:
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    from .config import data_hashes

    futures: dict = {}
    bar = None
    try:
        cfg_dict = cfg.to_dict()
        data = data_hashes(tuple(cfg.datasets), cfg.data_dir)
        run = uuid.uuid4().hex[:8]  # unique keys on a shared scheduler
        waiting = list(cells)

        def submit_more(running: int) -> list:
            """Submit cells until every worker thread has one (at least one in flight).

            Why a window, not everything at once: Dask blames a dead worker on every task
            it holds, queued ones included, so a cell that kills its worker would also use
            up the allowed failures of innocent cells queued behind it."""
            slots = max(1, sum(client.nthreads().values()))  # workers may come and go
            new = []
            while waiting and running + len(new) < slots:
                cell = waiting.pop(0)
                fut = client.submit(
                    checked_task,
                    task,
                    cfg_dict,
                    cell,
                    str(out),
                    data,
                    key=f"brainsleep-{run}-{cell.cell_id}",
                    pure=False,
                )
                futures[fut] = cell
                new.append(fut)
            return new

        bar = tqdm(total=len(cells), unit="cell", desc="cells", disable=not cfg.progress)
        trials = [0]

        def trial_done(event) -> None:  # runs in the client's thread: one bar, two counts
            trials[0] += 1
            bar.set_postfix(trials=trials[0])

        if cfg.search:
            client.subscribe_topic(PROGRESS_TOPIC, trial_done)
        running = as_completed(submit_more(0))
        while waiting or running.count():
            # Poll rather than block on the next result: a worker that joins a shared
            # scheduler mid-run gets a cell within a second, not when a cell finishes.
            if not running.has_ready():
                time.sleep(POLL_SECONDS)
            else:
                fut = next(running)
                cell = futures[fut]
                try:
                    fut.result()
                except Exception as exc:
                    raise _failure(cell, exc) from exc
                log.info("cell done: %s", cell.cell_id)
                on_done(cell)
                bar.update()
            running.update(submit_more(running.count()))  # count(): not yet returned
    finally:
        if bar is not None:
            bar.close()
        if futures:
            client.cancel(list(futures))
