"""``python -m brainsleep.analysis export RESULTS_DIR [...] --out DIR``: the compact copy of
results directories, small enough to commit beside the report made from it.

A study's results directory holds weights and spikes (megabytes per cell) that cannot be
committed, yet the reports that answer studies (``report``, ``sweep``, ``remedies``, the
class-incremental figures) read only ``metrics.csv`` (or ``incremental.csv``),
``config.json`` and a few small per-cell files. The compact copy keeps exactly those
(:data:`brainsleep.formats.COMPACT_FILES`, :data:`brainsleep.formats.COMPACT_CELL_FILES`),
so those reports regenerated from it are the reports of the full directory, and a later
session on another machine can add runs to them without rerunning the committed ones.
The per-cell figures of ``python -m brainsleep.analysis DIR`` that need spikes or weights
(rasters, weight histograms) are skipped on a copy, as for a run made with ``--record-spikes none``.

``metrics.csv`` rows written before the pipeline recorded ``weight_hoyer`` get it filled
in from the cell's weights file (:func:`brainsleep.sparseness.weight_hoyer`, the function
the pipeline uses); the run log stays behind, its invocations' wall times go to
``timing.json`` (:mod:`analysis.timing`); everything else is copied byte for byte. Each
copy is written to a temporary folder and renamed into place, so a killed export leaves
no half copy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from brainsleep.cli import HelpFormatter
from brainsleep.formats import (
    CELLS_DIR,
    COMPACT_CELL_FILES,
    COMPACT_FILES,
    LOCK_FILE,
    LOG_FILE,
    METRICS_CSV,
    TIMING_FILE,
    order_metric_columns,
    weights_file,
)
from brainsleep.locks import is_locked

from .claims import weight_hoyer_values
from .incremental import is_incremental_dir
from .report_command import started_as
from .results import ResultsError, load_results
from .timing import timing_of_log

#: The metrics column the copy must carry because the weights it is computed from stay
#: behind.
WEIGHT_HOYER = "weight_hoyer"


def check_sources(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> list[Path]:
    """Check every directory before anything is written.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories (``python -m brainsleep.experiment --out DIR``).
    out : path-like
        Where the copies go, one folder per directory, named like it.

    Returns
    -------
    list of pathlib.Path
        The directories, in the order given.

    Raises
    ------
    analysis.results.ResultsError
        A directory is missing or not a results directory, or a run still holds it; two
        have the same name (their copies would collide); or ``out`` is one of them or
        inside one.
    """
    sources = [Path(p) for p in paths]
    if not sources:
        raise ResultsError("no results directory given")
    seen: dict[str, Path] = {}
    dest = Path(out).resolve()
    if dest.exists() and not dest.is_dir():
        raise ResultsError(f"--out {out} is a file, not a folder")
    for src in sources:
        if not is_incremental_dir(src):
            load_results(src)  # raises with the reason when it is not a results directory
        if is_locked(src / LOCK_FILE):
            raise ResultsError(
                f"{src} is in use by a running experiment (its lock is held): its copy "
                "would read as a finished run; export it when the run has ended"
            )
        name = src.resolve().name  # "." and "run/" name their folder too
        if name in seen:
            raise ResultsError(
                f"{seen[name]} and {src} have the same name {name!r}; their copies "
                "would collide (export them to different --out folders)"
            )
        seen[name] = src
        if dest == src.resolve() or src.resolve() in dest.parents:
            raise ResultsError(f"--out {out} is inside the results directory {src}")
        copy = dest / name
        if copy == src.resolve():
            raise ResultsError(
                f"--out {out} would put the copy of {src} in its place; choose another --out"
            )
        if copy.exists() and not is_compact(copy):
            raise ResultsError(
                f"{copy} exists and holds more than a compact copy (weights, spikes or "
                "logs); it is not replaced: choose another --out"
            )
    return sources


def is_compact(path: Path) -> bool:
    """Whether ``path`` holds only what a compact copy holds (so replacing it loses
    nothing that is not in its source)."""
    for f in path.rglob("*"):
        if f.is_dir():
            continue
        rel = f.relative_to(path).parts
        top = len(rel) == 1 and rel[0] in COMPACT_FILES
        in_cell = len(rel) == 3 and rel[0] == CELLS_DIR and rel[2] in COMPACT_CELL_FILES
        if not (top or in_cell):
            return False
    return True


def compact_metrics(src: Path) -> bytes:
    """``src``'s ``metrics.csv``, with ``weight_hoyer`` filled in where it is missing.

    Parameters
    ----------
    src : pathlib.Path
        A results directory.

    Returns
    -------
    bytes
        The file unchanged when every row has ``weight_hoyer``; otherwise the table with
        the missing values computed from ``cells/<cell>/weights_<stage>.npz`` (left empty
        where that file is absent), columns in the pipeline's order.
    """
    raw = (src / METRICS_CSV).read_bytes()
    # pandas parses floats to the nearest double: values not filled in are written back
    # exactly as read (the test compares them)
    df = pd.read_csv(io.BytesIO(raw), dtype={"imbalance": str})
    if WEIGHT_HOYER in df.columns and df[WEIGHT_HOYER].notna().all():
        return raw
    df[WEIGHT_HOYER] = weight_hoyer_values(
        df, lambda cell, stage: src / CELLS_DIR / cell / weights_file(stage)
    )
    return order_metric_columns(df).to_csv(index=False).encode()


def export_one(src: Path, out: Path) -> Path:
    """Write the compact copy of one results directory to ``out / <its folder name>``.

    The copy is assembled in a temporary folder beside its destination and renamed into
    place; an earlier copy there is moved aside only once the new one is complete, and
    moved back if the rename fails.

    Returns
    -------
    pathlib.Path
        The copy.
    """
    out.mkdir(parents=True, exist_ok=True)
    name = src.resolve().name
    dest = out / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".export", dir=out))
    old = None
    try:
        for file in COMPACT_FILES:
            if (src / file).is_file():
                data = compact_metrics(src) if file == METRICS_CSV else (src / file).read_bytes()
                (tmp / file).write_bytes(data)
        if (src / LOG_FILE).is_file():  # the log stays behind: its wall times come along
            timing = timing_of_log((src / LOG_FILE).read_text(errors="replace"))
            if timing["invocations"]:
                (tmp / TIMING_FILE).write_text(json.dumps(timing, indent=1) + "\n")
        cells = src / CELLS_DIR
        for cell in sorted(p for p in cells.iterdir() if p.is_dir()) if cells.is_dir() else []:
            kept = [cell / file for file in COMPACT_CELL_FILES if (cell / file).is_file()]
            if kept:
                (tmp / CELLS_DIR / cell.name).mkdir(parents=True)
                for f in kept:
                    shutil.copyfile(f, tmp / CELLS_DIR / cell.name / f.name)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=out))
            os.replace(dest, old / name)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():  # put the earlier copy back
            os.replace(old / name, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old)
    return dest


def size_of(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Compact copies of results directories, one folder per directory under ``out``.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories; all are checked (:func:`check_sources`) before any is copied.
    out : path-like
        Destination folder (created).
    log : callable
        Receives one line per copy: its path, cells, and size against the original's.

    Returns
    -------
    list of pathlib.Path
        The copies, in the order given.

    Raises
    ------
    analysis.results.ResultsError
        See :func:`check_sources`.
    """
    sources = check_sources(paths, out)
    copies = []
    for src in sources:
        dest = export_one(src, Path(out))
        n_cells = len(list((dest / CELLS_DIR).iterdir())) if (dest / CELLS_DIR).is_dir() else 0
        log(
            f"wrote {dest}: {n_cells} cells, {size_of(dest) / 1e3:.0f} kB "
            f"(the full directory: {size_of(src) / 1e6:.1f} MB)"
        )
        copies.append(dest)
    return copies


def build_parser() -> argparse.ArgumentParser:
    """Command line of ``python -m brainsleep.analysis export``."""
    p = argparse.ArgumentParser(
        prog=f"{started_as()} export",
        formatter_class=HelpFormatter,
        description=(
            "Copy what the reports read from results directories (config.json, "
            "metrics.csv or incremental.csv, and each cell's done.json, confusion.nc, "
            "search.csv, search.json, sleep_params.json, snn_curve.csv), leaving weights and "
            "spikes behind, so that the copy can be committed and the reports (report, sweep, "
            "remedies, class-incremental figures) rerun from it; per-cell spike and weight "
            "figures are skipped on a copy."
        ),
        epilog="exit status: 0 written; 2 unusable results directory or bad arguments "
        "(checked before anything is written), or a file that could not be read or "
        "written (the copies finished before it are kept).",
    )
    p.add_argument("results_dirs", metavar="RESULTS_DIR", nargs="+", help="results directory")
    p.add_argument(
        "--out", metavar="DIR", required=True, help="one copy per RESULTS_DIR goes in DIR/<name>"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m brainsleep.analysis export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        export(args.results_dirs, args.out, log=(lambda line: None) if args.quiet else print)
    except (ResultsError, OSError, ValueError) as exc:
        print(f"analysis export: error: {exc}", file=sys.stderr)
        return 2
    return 0
