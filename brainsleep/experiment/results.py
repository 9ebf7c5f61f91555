"""The results directory: atomic writes, integrity records, the config guard, resume, metrics.

Integrity: every step of a cell writes its artifacts first and then a *marker* (a
``stage_<stage>.json``, ``search.json`` or ``done.json``) that records the size and
sha256 of each artifact and a checksum of its own content. A rerun trusts a step only
when its marker and every artifact it names verify (:func:`verify_marker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_with,  # noqa: F401 (pipeline, runner import it here)
    json_default,
)
from brainsleep.config_fields import GRID_FIELDS, config_differences
from brainsleep.formats import (
    CELLS_DIR,
    CONFIG_FILE,
    LOCK_FILE,
    METRIC_COLUMNS,
    METRICS_CSV,
    METRICS_NC,
    STAGE_RANK,
    order_metric_columns,
    save_metrics_dataset,
    stage_marker,
)


class ResultsDirError(RuntimeError):
    """The results directory belongs to another configuration, or ``--out`` is unusable."""


class IntegrityError(ValueError):
    """A marker file is missing, unreadable or does not match its own checksum."""


# -- integrity records ---------------------------------------------------------------------
def file_record(path: str | Path) -> dict:
    """Size and sha256 of a file, as a marker records them.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict
        ``{"size": bytes, "sha256": hex digest}``.
    """
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


def artifact_records(directory: str | Path, names: Iterable[str]) -> dict[str, dict]:
    """``{name: file_record(directory / name)}`` for files just written."""
    return {name: file_record(Path(directory) / name) for name in names}


def verify_artifacts(directory: str | Path, records: dict[str, dict]) -> list[str]:
    """Compare files with their records.

    Parameters
    ----------
    directory : str or Path
        Where the files are (names in ``records`` are relative to it).
    records : dict
        ``{name: {"size": ..., "sha256": ...}}`` as :func:`artifact_records` made them.

    Returns
    -------
    list of str
        One line per file that is missing or differs, naming the file and the problem;
        empty when everything matches.
    """
    problems = []
    for name, rec in sorted(records.items()):
        path = Path(directory) / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        except OSError as exc:
            problems.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        if size != rec.get("size"):
            problems.append(
                f"{path}: {size} bytes but {rec.get('size')} were written (truncated or replaced)"
            )
            continue
        try:
            digest = file_record(path)["sha256"]
        except OSError as exc:
            problems.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        if digest != rec.get("sha256"):
            problems.append(f"{path}: content differs from what was written (sha256 mismatch)")
    return problems


def _canonical_checksum(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def write_marker(path: str | Path, payload: dict, artifacts: Iterable[str] = ()) -> dict:
    """Write a marker: ``payload`` plus the records of ``artifacts`` plus its own checksum.

    Call it after the artifacts are complete: the marker says the step is finished.

    Parameters
    ----------
    path : str or Path
        The marker file (JSON).
    payload : dict
        JSON-able content (numpy scalars allowed); keys ``artifacts`` and ``checksum``
        are reserved.
    artifacts : iterable of str
        Names, relative to the marker's directory, of the files the step wrote.

    Returns
    -------
    dict
        What was written (as it reads back).
    """
    path = Path(path)
    body = {**payload, "artifacts": artifact_records(path.parent, artifacts)}
    body = json.loads(json.dumps(body, default=json_default))  # as it will read back
    body["checksum"] = _canonical_checksum(body)
    atomic_write_json(path, body)
    return body


def read_marker(path: str | Path) -> dict:
    """A marker's content after checking it against its own checksum.

    Raises
    ------
    IntegrityError
        When the file is missing, is not JSON, has no checksum (an older version wrote
        it) or does not match its checksum. The message names the file.
    """
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: unreadable ({exc}); truncated?") from exc
    if not isinstance(body, dict) or "checksum" not in body or "artifacts" not in body:
        raise IntegrityError(f"{path}: no integrity record (written by an older brainsleep?)")
    checksum = body.pop("checksum")
    if _canonical_checksum(body) != checksum:
        raise IntegrityError(f"{path}: content differs from what was written (checksum mismatch)")
    return body


def verify_marker(path: str | Path) -> tuple[dict | None, list[str]]:
    """Check a marker and every artifact it records.

    Returns
    -------
    payload : dict or None
        The marker's content, None when the marker itself is bad.
    problems : list of str
        One line per problem, naming the file; empty when the step can be trusted.
    """
    path = Path(path)
    try:
        body = read_marker(path)
    except IntegrityError as exc:
        return None, [str(exc)]
    return body, verify_artifacts(path.parent, body["artifacts"])


def check_directory(out: Path, fingerprint: str, config: dict | None = None) -> bool:
    """True when ``out`` holds this configuration's results (resume, or grow), False when
    new.

    Raises ResultsDirError when ``out`` holds results of a different configuration; with
    ``config`` (this run's :meth:`ExperimentConfig.to_dict`) the message names the fields
    that differ. Reads only: safe to call before anything is computed.
    """
    cfg_path = Path(out) / CONFIG_FILE
    if os.path.lexists(cfg_path):
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ResultsDirError(
                f"{cfg_path} is unreadable or corrupt; remove {out} or pick another --out"
            ) from exc
        if not isinstance(old, dict):
            raise ResultsDirError(f"{cfg_path} is corrupt; remove {out} or pick another --out")
        if old.get("fingerprint") != fingerprint:
            raise ResultsDirError(
                f"{out} holds results of a different configuration "
                f"({config_differences(old.get('config'), config)}); pick another --out or "
                "remove it"
            )
        return True
    if Path(out).is_dir() and any(p.name != LOCK_FILE for p in Path(out).iterdir()):
        raise ResultsDirError(
            f"--out {out} is a non-empty directory that holds no brainsleep results "
            "(no config.json); pick a new or empty directory"
        )
    return False


def claim_directory(out: Path, config: dict, fingerprint: str) -> bool:
    """Create or reuse ``out`` for this configuration; True when resuming.

    Reusing a directory whose configuration differs only in the grid axes (datasets,
    fractions, seeds, imbalance) grows it: ``config.json`` then lists the union of the
    grids.
    Call it while holding :func:`lock_directory`'s lock, or two configurations could
    both find the directory free and both claim it.
    """
    if check_directory(out, fingerprint, config.get("config")):
        _grow(Path(out) / CONFIG_FILE, config)
        return True
    atomic_write_json(Path(out) / CONFIG_FILE, {**config, "fingerprint": fingerprint})
    return False


def lock_directory(out: Path):
    """An exclusive lock on ``out`` for the whole run (released when the process ends).

    Raises ResultsDirError when another run holds it.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(out) / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise ResultsDirError(
            f"another run is using {out}; wait for it or pick another --out"
        ) from exc
    return lock


def check_out_path(out: Path) -> Path:
    """Check that ``out`` is, or can become, a directory; return its nearest existing part.

    Reads only.

    Raises
    ------
    ResultsDirError
        When ``out`` or one of its parents is an existing file (or anything else that is
        not a directory), or ``out`` lies in another run's ``cells/`` (that run could no
        longer be read, pooled or exported as a run).
    """
    if not str(out).strip():
        raise ResultsDirError("--out is empty; give a results directory")
    out = Path(out)
    for parent in out.absolute().parents:
        if parent.name == CELLS_DIR and (parent.parent / CONFIG_FILE).is_file():
            raise ResultsDirError(
                f"--out {out} is inside the cells of the results directory {parent.parent}; "
                "pick a place outside it"
            )
    existing = out
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == out:
            raise ResultsDirError(
                f"--out {out} is an existing file, not a directory; pick another --out"
            )
        raise ResultsDirError(f"--out {out}: {existing} is a file, not a directory")
    return existing


def probe_writable(out: Path) -> None:
    """Check that results can be written under ``out`` before any work is done.

    Creates and removes a small temporary file in ``out`` or, when ``out`` does not exist
    yet, in its nearest existing parent (so nothing is left behind either way).

    Raises
    ------
    OSError
        Naming ``out``, when the file cannot be created or written (no permission,
        read-only file system, disk full).
    ResultsDirError
        When ``out`` is not usable as a directory (see :func:`check_out_path`).
    """
    out = Path(out)
    where = check_out_path(out)
    note = "" if where == out else f" (cannot create files in {where})"
    try:
        fd, name = tempfile.mkstemp(prefix=".brainsleep-probe-", suffix=".tmp", dir=where)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc}{note}", str(out)) from exc
    try:
        os.write(fd, b"\0" * 4096)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc}{note}", str(out)) from exc
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _make_directories(out: Path) -> list[Path]:
    """``mkdir -p out``; the directories this call created, outermost first."""
    missing = []
    p = Path(out)
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise
                continue  # made by a concurrent run: not ours
            created.append(d)
    except OSError:
        _remove_empty(created)
        raise
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove directories this run created, innermost first, as long as they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return


def _grow(path: Path, record: dict) -> None:
    """Add this run's grid values to those ``config.json`` lists (atomically)."""

    old = json.loads(path.read_text())
    before, given = old.get("config") or {}, record.get("config") or {}
    merged, added = dict(before), {}

    def as_list(value) -> list:  # imbalance is one spec per run: a list once grown
        return list(value) if isinstance(value, list | tuple) else [value]

    for name in GRID_FIELDS:
        values = as_list(before.get(name)) if name in before else []
        new = [v for v in as_list(given.get(name)) if v not in values]
        if new:
            merged[name], added[name] = values + new, new
    if added:
        grown = [*old.get("grown", []), {"added": added, "argv": record.get("argv")}]
        atomic_write_json(path, {**old, "config": merged, "grown": grown})


def take_directory(out: Path, config: dict, fingerprint: str):
    """Create ``out`` if needed, lock it, then check and claim it under the lock.

    When anything fails, what this call created (the lock file, the directories) is
    removed again and the error is raised.

    Parameters
    ----------
    out : Path
        The results directory.
    config : dict
        What ``config.json`` records (the fingerprint is added).
    fingerprint : str
        The configuration's fingerprint.

    Returns
    -------
    lock : filelock.FileLock
        Held; release it when the run ends.
    resumed : bool
        True when ``out`` already held this configuration's results.

    Raises
    ------
    ResultsDirError
        Another run holds ``out``, or ``out`` belongs to another configuration.
    OSError
        ``out``, its lock file or ``config.json`` cannot be written.
    """
    out = Path(out)
    created = _make_directories(out)
    lock_path = out / LOCK_FILE
    lock_existed = os.path.lexists(lock_path)
    try:
        lock = lock_directory(out)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        resumed = claim_directory(out, config, fingerprint)
    except BaseException:
        if not lock_existed:
            with contextlib.suppress(OSError):
                lock_path.unlink()
        lock.release()
        _remove_empty(created)
        raise
    return lock, resumed


def remove_stale_temp_files(out: Path) -> int:
    """Delete temporary files a killed run left behind (call while holding the lock).

    Every write goes to a hidden ``.<name>.<random>.tmp`` first (the atomic writer's
    names) and is renamed when complete, so such a file found when no run holds the
    directory is an interrupted write, never a result. Other ``*.tmp`` files are not ours
    and are left alone.
    """
    stale = [p for p in Path(out).rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def collect_metrics(out: Path) -> pd.DataFrame:
    """All finished stage rows of all cells, in a stable order."""
    rows = []
    for stage_file in sorted(Path(out).glob(f"{CELLS_DIR}/*/{stage_marker('*')}")):
        try:
            rows.append(read_marker(stage_file)["row"])
        except IntegrityError:
            continue  # a broken stage: its cell redoes it (and the metrics are rewritten)
    if not rows:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    df = order_metric_columns(pd.DataFrame(rows))
    df["stage_order"] = df["stage"].map(STAGE_RANK)
    df = df.sort_values(["dataset", "imbalance", "fraction", "seed", "stage_order"])
    return df.drop(columns="stage_order").reset_index(drop=True)


def write_metrics(out: Path, df: pd.DataFrame) -> None:
    """metrics.csv (one row per cell and stage) and metrics.nc (dimensions cell and stage,
    :func:`brainsleep.formats.metrics_dataset`), both atomically."""
    out = Path(out)
    atomic_write_bytes(out / METRICS_CSV, df.to_csv(index=False).encode())
    save_metrics_dataset(out / METRICS_NC, df)


def summary_table(df: pd.DataFrame) -> str:
    """Mean +- sd over seeds per (dataset, imbalance, fraction, stage), as text; ``-`` in
    place of the sd where a group has one seed."""
    if df.empty:
        return "(no finished cells)"
    g = df.groupby(["dataset", "imbalance", "fraction", "stage"], sort=False)
    agg = g.agg(
        n=("seed", "nunique"),
        acc=("accuracy", "mean"),
        acc_sd=("accuracy", "std"),
        bal=("balanced_accuracy", "mean"),
        bal_sd=("balanced_accuracy", "std"),
    ).reset_index()
    agg["o"] = agg["stage"].map(STAGE_RANK)
    agg = agg.sort_values(["dataset", "imbalance", "fraction", "o"])
    lines = [
        f"{'dataset':<14}{'imbalance':<12}{'fraction':>9}  {'stage':<15}{'n':>3}  "
        f"{'accuracy %':>16}  {'balanced acc %':>16}"
    ]
    for r in agg.itertuples():
        lines.append(
            f"{r.dataset:<14}{r.imbalance:<12}{r.fraction:>9.4g}  {r.stage:<15}{r.n:>3}  "
            f"{100 * r.acc:>8.2f} ± {_sd_text(r.acc_sd)}  {100 * r.bal:>8.2f} ± "
            f"{_sd_text(r.bal_sd)}"
        )
    if (agg["n"] == 1).any():
        lines.append("(± -: one seed, no spread to show; add seeds with --seeds 0 1 2)")
    return "\n".join(lines)


def _sd_text(sd: float) -> str:
    """The sd in points, or ``-`` when there is none (one seed), never a fake ``0.00``."""
    return f"{'-':<5}" if np.isnan(sd) else f"{100 * sd:<5.2f}"
