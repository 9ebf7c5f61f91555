"""``python -m analysis export RESULTS_DIR [...] --out DIR``: the compact copy of results
directories, small enough to commit beside the report made from it.

A study's results directory holds weights and spikes (megabytes per cell) that cannot be
committed, yet every report (``report``, ``sweep``, ``remedies``, the class-incremental
figures) reads only ``metrics.csv`` (or ``incremental.csv``), ``config.json`` and a few
small per-cell files. The compact copy keeps exactly those
(:data:`brainsleep.formats.COMPACT_FILES`, :data:`brainsleep.formats.COMPACT_CELL_FILES`),
so a report regenerated from it is the report of the full directory, and a later session
on another machine can add runs to a report without rerunning the committed ones.

``metrics.csv`` rows written before the pipeline recorded ``weight_hoyer`` get it filled
in from the cell's weights file (:func:`brainsleep.sparseness.weight_hoyer`, the function
the pipeline uses); everything else is copied byte for byte. Each copy is written to a
temporary folder and renamed into place, so a killed export leaves no half copy.
"""

from __future__ import annotations

import argparse
import io
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
    METRICS_CSV,
    load_weights,
    order_metric_columns,
    weights_file,
)
from brainsleep.sparseness import weight_hoyer

from .incremental import is_incremental_dir
from .results import ResultsError, load_results

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
        A directory is missing or not a results directory; two have the same name (their
        copies would collide); or ``out`` is one of them or inside one.
    """
    sources = [Path(p) for p in paths]
    if not sources:
        raise ResultsError("no results directory given")
    seen: dict[str, Path] = {}
    dest = Path(out).resolve()
    for src in sources:
        if not is_incremental_dir(src):
            load_results(src)  # raises with the reason when it is not a results directory
        if src.name in seen:
            raise ResultsError(
                f"{seen[src.name]} and {src} have the same name {src.name!r}; their copies "
                "would collide (export them to different --out folders)"
            )
        seen[src.name] = src
        if dest == src.resolve() or src.resolve() in dest.parents:
            raise ResultsError(f"--out {out} is inside the results directory {src}")
    return sources


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
    if WEIGHT_HOYER not in df.columns:
        df[WEIGHT_HOYER] = float("nan")
    values = df[WEIGHT_HOYER].astype(float)
    for i, (cell, stage) in enumerate(zip(df["cell"], df["stage"], strict=True)):
        path = src / CELLS_DIR / str(cell) / weights_file(str(stage))
        if pd.isna(values.iloc[i]) and path.is_file():
            values.iloc[i] = weight_hoyer(load_weights(path).values())
    df[WEIGHT_HOYER] = values
    return order_metric_columns(df).to_csv(index=False).encode()


def export_one(src: Path, out: Path) -> Path:
    """Write the compact copy of one results directory to ``out / src.name``.

    The copy is assembled in a temporary folder beside its destination and renamed into
    place; an earlier copy there is replaced only once the new one is complete.

    Returns
    -------
    pathlib.Path
        The copy.
    """
    out.mkdir(parents=True, exist_ok=True)
    dest = out / src.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name}.", suffix=".export", dir=out))
    try:
        for name in COMPACT_FILES:
            if (src / name).is_file():
                data = compact_metrics(src) if name == METRICS_CSV else (src / name).read_bytes()
                (tmp / name).write_bytes(data)
        cells = src / CELLS_DIR
        for cell in sorted(p for p in cells.iterdir() if p.is_dir()) if cells.is_dir() else []:
            kept = [cell / name for name in COMPACT_CELL_FILES if (cell / name).is_file()]
            if kept:
                (tmp / CELLS_DIR / cell.name).mkdir(parents=True)
                for f in kept:
                    shutil.copyfile(f, tmp / CELLS_DIR / cell.name / f.name)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{src.name}.", suffix=".old", dir=out))
            os.replace(dest, old / src.name)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    """Command line of ``python -m analysis export``."""
    p = argparse.ArgumentParser(
        prog=f"python -m {__package__ or 'brainsleep.analysis'} export",
        formatter_class=HelpFormatter,
        description=(
            "Copy what the reports read from results directories (config.json, "
            "metrics.csv or incremental.csv, and each cell's done.json, confusion.nc, "
            "search.csv, search.json, sleep_params.json), leaving weights and spikes "
            "behind, so that the copy can be committed and every report rerun from it."
        ),
        epilog="exit status: 0 written, 2 unusable results directory or bad arguments "
        "(nothing written).",
    )
    p.add_argument("results_dirs", metavar="RESULTS_DIR", nargs="+", help="results directory")
    p.add_argument(
        "--out", metavar="DIR", required=True, help="one copy per RESULTS_DIR goes in DIR/<name>"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m analysis export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        export(args.results_dirs, args.out, log=(lambda line: None) if args.quiet else print)
    except ResultsError as exc:
        print(f"analysis export: error: {exc}", file=sys.stderr)
        return 2
    return 0
