"""Load what ``python -m brainsleep.experiment --out DIR`` saved.

The layout, the file formats and their readers are declared once, in
:mod:`brainsleep.formats` (prose in docs/formats.md); :func:`load_spikes`,
:func:`load_weights` and :func:`load_confusion` are those readers. Nothing here simulates
or trains: it only reads ``metrics.csv`` and the per-cell files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.config_fields import config_differences
from brainsleep.formats import (
    CELL_KEYS,
    CELLS_DIR,
    CONFIG_FILE,
    CONFUSION_FILE,
    DONE_MARKER,
    METRICS_CSV,
    SEARCH_CSV,
    SPIKES_FILE,
    format_cell_id,
    load_confusion,
    load_spikes,
    load_weights,
    parse_cell_id,
    read_metrics_csv,
    stage_of_weights_file,
)

__all__ = [
    "CELL_KEYS",
    "GROUP_KEYS",
    "REQUIRED_COLUMNS",
    "Cell",
    "Results",
    "ResultsError",
    "load_confusion",
    "load_results",
    "load_results_many",
    "load_spikes",
    "load_weights",
    "read_metrics",
]

#: Columns identifying one group of seeds (what is averaged over).
GROUP_KEYS: tuple[str, ...] = ("dataset", "imbalance", "fraction")

#: Columns that must be in metrics.csv for anything to be plotted.
REQUIRED_COLUMNS: tuple[str, ...] = (*CELL_KEYS, "stage")


class ResultsError(Exception):
    """A results directory is missing, empty or has no usable ``metrics.csv``, or two
    directories to merge disagree about a cell."""


@dataclass
class Cell:
    """One ``cells/<cell_id>/`` folder and what it contains.

    Attributes
    ----------
    cell_id : str
        Folder name (the ``cell`` column of ``metrics.csv``).
    path : pathlib.Path
        The folder.
    dataset, imbalance : str or None
        From ``metrics.csv``; for a cell without metrics rows, read from the folder name
        (:func:`brainsleep.formats.parse_cell_id`); None when neither tells.
    fraction : float or None
    seed : int or None
    weights : dict of str to pathlib.Path
        ``weights_<stage>.npz`` files present, keyed by stage.
    confusion : pathlib.Path or None
        ``confusion.nc`` if present.
    spikes : pathlib.Path or None
        ``spikes.nc`` if present (absent with ``--record-spikes none``).
    done : bool
        ``done.json`` exists, i.e. the producer finished the cell.
    search : pathlib.Path or None
        ``search.csv`` (sleep-parameter search history) if present (only with
        ``--search``).
    """

    cell_id: str
    path: Path
    dataset: str | None = None
    fraction: float | None = None
    imbalance: str | None = None
    seed: int | None = None
    weights: dict[str, Path] = field(default_factory=dict)
    confusion: Path | None = None
    spikes: Path | None = None
    done: bool = False
    search: Path | None = None

    @property
    def label(self) -> str:
        """Short description for figure titles."""
        if self.dataset is None:
            return self.cell_id
        imb = "balanced" if self.imbalance in (None, "none") else f"imbalance {self.imbalance}"
        return f"{self.dataset}, fraction {self.fraction:g}, {imb}, seed {self.seed}"


@dataclass
class Results:
    """A loaded results directory, or several merged (:func:`load_results_many`).

    Attributes
    ----------
    root : pathlib.Path
        The results directory (the first one when merged).
    metrics : pandas.DataFrame
        ``metrics.csv`` with ``imbalance`` as str, ``fraction`` as float, ``seed`` as int
        (the union of the directories' rows when merged).
    cells : list of Cell
        One entry per ``cells/*`` folder, sorted by (dataset, imbalance, fraction, seed).
        Each cell's ``path`` is its folder in the directory it was read from.
    config : dict or None
        ``config.json`` if present and readable; when merged, the common config if every
        directory has the same one, else None (see ``configs``).
    sources : list of pathlib.Path
        The directories read, in the order given; ``[root]`` for a single directory.
    configs : list of (dict or None)
        ``config.json`` of each of ``sources``.
    """

    root: Path
    metrics: pd.DataFrame
    cells: list[Cell]
    config: dict | None = None
    sources: list[Path] = field(default_factory=list)
    configs: list[dict | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = [self.root]
            self.configs = [self.config]

    @property
    def merged(self) -> bool:
        """True when the results come from more than one directory."""
        return len(self.sources) > 1

    def unfinished_cells(self) -> list[str]:
        """Ids of the cells with ``metrics.csv`` rows but no ``done.json``: still running,
        failed or killed (a cell appends its rows stage by stage), sorted."""
        if self.metrics.empty:
            return []
        done = {c.cell_id for c in self.cells if c.done}
        return sorted(set(_row_cell_ids(self.metrics)) - done)

    def finished(self) -> Results:
        """A copy whose ``metrics`` keep only the rows of finished cells.

        A table over seeds must not mix a cell that stopped at its baseline (or failed
        in its search) with cells that ran every stage: its stages would be averaged
        over fewer seeds than the others, silently. :meth:`unfinished_cells` names what
        is left out, for the report to say so.
        """
        keep = ~_row_cell_ids(self.metrics).isin(self.unfinished_cells())
        return dataclasses.replace(self, metrics=self.metrics[keep].reset_index(drop=True))


def read_config(path: str | os.PathLike) -> object | None:
    """A results directory's ``config.json``, or None when it is missing or unreadable
    (a broken config must not stop the figures; callers check what they need)."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None


def versions_text(configs: Sequence[dict | None]) -> str:
    """The package versions that runs recorded, as one line for a report.

    Parameters
    ----------
    configs : sequence of dict or None
        Each run's ``config.json`` contents (None for a run without one).

    Returns
    -------
    str
        ``"name v1 / v2, ..."`` by package name, every distinct version listed;
        ``"unknown"`` when no run recorded any.
    """
    seen: dict[str, set[str]] = {}
    for config in configs:
        for k, v in ((config or {}).get("versions") or {}).items():
            seen.setdefault(k, set()).add(str(v))
    return ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in sorted(seen.items())) or "unknown"


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``metrics.csv`` with the column types of docs/formats.md.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        As :func:`brainsleep.formats.read_metrics_csv`: ``cell``, ``dataset``,
        ``imbalance``, ``stage`` as str (``imbalance`` ``"none"`` for balanced runs, also
        if the file has it empty), ``fraction`` float, ``seed`` int.

    Raises
    ------
    ResultsError
        Unreadable, empty, or missing one of ``dataset, fraction, imbalance, seed, stage``.
    """
    try:
        df = read_metrics_csv(path)
    except ValueError as exc:
        raise ResultsError(str(exc)) from exc
    if df.empty:
        raise ResultsError(f"{path} has no rows")
    return df


def load_results(path: str | os.PathLike) -> Results:
    """Load a results directory.

    Parameters
    ----------
    path : str or os.PathLike
        Directory written by ``python -m brainsleep.experiment --out DIR``.

    Returns
    -------
    Results
        Metrics table, cells with the paths of the files they have, config.

    Raises
    ------
    ResultsError
        The directory does not exist, is empty, or has no (usable) ``metrics.csv``.
    """
    root = Path(path)
    if not root.is_dir():
        raise ResultsError(f"results directory {root} does not exist")
    if not any(root.iterdir()):
        raise ResultsError(f"results directory {root} is empty")
    metrics_path = root / METRICS_CSV
    if not metrics_path.is_file():
        raise ResultsError(f"{root} has no metrics.csv (not a finished experiment directory?)")
    metrics = read_metrics(metrics_path)

    config = read_config(root)
    cells = _find_cells(root / CELLS_DIR, metrics)
    return Results(root=root, metrics=metrics, cells=cells, config=config)


def check_one_configuration(roots: Sequence[Path], configs: Sequence[object | None]) -> None:
    """Refuse to merge directories of different configurations.

    Directories merge when they differ only in their grid axes (seeds, fractions, data
    sets, imbalance: the same fingerprint, as a run grown later or its seeds added as
    another directory); another recipe, search or sleep length would be averaged in as
    if it were more seeds of one setting.

    Raises
    ------
    ResultsError
        Two fingerprints differ (the message names both directories and what differs),
        or a directory has no fingerprint to compare (one line).
    """
    prints = [c.get("fingerprint") if isinstance(c, dict) else None for c in configs]
    if len(roots) < 2:
        return
    for root, fp in zip(roots, prints, strict=True):
        if fp is None:
            raise ResultsError(
                f"{root}: no configuration fingerprint in its config.json, so it cannot be "
                "told whether it is one configuration with the others; report it alone"
            )
    for root, fp, config in zip(roots[1:], prints[1:], configs[1:], strict=True):
        if fp != prints[0]:
            what = config_differences(configs[0].get("config"), config.get("config"))
            raise ResultsError(
                f"{roots[0]} and {root} hold different configurations ({what}); merge only "
                "directories of one configuration (differing in seeds, fractions, data "
                "sets or imbalance), or report them apart"
            )


def load_results_many(paths: Sequence[str | os.PathLike]) -> Results:
    """Load several results directories and merge their cells into one :class:`Results`.

    The cell, not the directory, is the unit: the merged metrics are the union of the
    directories' rows and the merged cells the union of their ``cells/*`` folders, each
    cell keeping the paths of its files in the directory it came from. A cell id found in
    two directories is kept once if its ``metrics.csv`` rows are identical in both (a
    finished copy is preferred to an unfinished one); otherwise the merge is refused.
    A directory given twice is read once.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Results directories (at least one), in order of precedence.

    Returns
    -------
    Results
        ``root`` is the first directory, ``sources`` all of them; for a single directory
        the same as :func:`load_results`.

    Raises
    ------
    ResultsError
        No directory given; a directory is unusable (see :func:`load_results`); the
        directories hold different configurations (:func:`check_one_configuration`); or
        a cell id has different metrics rows in two directories (the message names the
        cell and both directories, on one line).
    """
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            unique.append(Path(p))
    if not unique:
        raise ResultsError("no results directory given")
    loaded = [load_results(p) for p in unique]
    if len(loaded) == 1:
        return loaded[0]
    check_one_configuration([r.root for r in loaded], [r.config for r in loaded])

    columns: list[str] = []
    for r in loaded:
        columns += [c for c in r.metrics.columns if c not in columns]
    owner: dict[str, int] = {}  # cell id -> index of the directory that provides it
    rows: dict[str, pd.DataFrame] = {}
    cells: dict[str, Cell] = {}
    keep_rows: list[pd.DataFrame] = []
    for i, r in enumerate(loaded):
        ids = _row_cell_ids(r.metrics)
        by_cell = {cid: g for cid, g in r.metrics.groupby(ids, sort=False)}
        folders = {c.cell_id: c for c in r.cells}
        for cid in [*by_cell, *(c for c in folders if c not in by_cell)]:
            new_rows = by_cell.get(cid, r.metrics.iloc[:0])
            if cid in owner:
                j = owner[cid]
                if not _same_rows(rows[cid], new_rows, columns):
                    raise ResultsError(
                        f"cell {cid} is in both {loaded[j].root} and {r.root} with "
                        "different metrics.csv rows; cannot merge them"
                    )
                old = cells.get(cid)
                new = folders.get(cid)
                if new is not None and (old is None or (new.done and not old.done)):
                    cells[cid] = new
                continue
            owner[cid] = i
            rows[cid] = new_rows
            if not new_rows.empty:
                keep_rows.append(new_rows)
            if cid in folders:
                cells[cid] = folders[cid]

    metrics = pd.concat(keep_rows, ignore_index=True).reindex(columns=columns)
    configs = [r.config for r in loaded]
    config = configs[0] if all(c == configs[0] for c in configs) else None
    return Results(
        root=loaded[0].root,
        metrics=metrics,
        cells=sorted(cells.values(), key=_cell_order),
        config=config,
        sources=[r.root for r in loaded],
        configs=configs,
    )


def _row_cell_ids(metrics: pd.DataFrame) -> pd.Series:
    """The cell id of every metrics row (``cell`` column, else built from the keys)."""
    if "cell" in metrics.columns:
        return metrics["cell"].astype(str)
    return pd.Series(
        [
            format_cell_id(d, float(f), str(i), int(s))
            for d, f, i, s in metrics[list(CELL_KEYS)].itertuples(index=False)
        ],
        index=metrics.index,
        dtype=str,
    )


def _same_rows(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> bool:
    """Whether two sets of metrics rows of one cell are equal (NaN equals NaN).

    Rows are compared in stage order over the union of the columns; a column one
    directory lacks counts as empty there.
    """
    if len(a) != len(b):
        return False
    a = a.reindex(columns=columns).sort_values("stage", kind="stable").reset_index(drop=True)
    b = b.reindex(columns=columns).sort_values("stage", kind="stable").reset_index(drop=True)
    for col in columns:
        x, y = a[col].to_numpy(dtype=object), b[col].to_numpy(dtype=object)
        na_x, na_y = pd.isna(x), pd.isna(y)
        if (na_x != na_y).any():
            return False
        if any(u != v for u, v in zip(x[~na_x], y[~na_y], strict=True)):
            return False
    return True


def _cell_order(c: Cell) -> tuple:
    return (
        c.dataset or "",
        c.imbalance or "",
        c.fraction if c.fraction is not None else np.inf,
        c.seed if c.seed is not None else 0,
        c.cell_id,
    )


def _find_cells(cells_dir: Path, metrics: pd.DataFrame) -> list[Cell]:
    if not cells_dir.is_dir():
        return []
    meta: dict[str, dict] = {}
    if "cell" in metrics.columns:
        first = metrics.drop_duplicates("cell").set_index("cell")
        for cid, row in first.iterrows():
            meta[str(cid)] = {
                "dataset": str(row["dataset"]),
                "fraction": float(row["fraction"]),
                "imbalance": str(row["imbalance"]),
                "seed": int(row["seed"]),
            }
    cells = []
    for d in sorted(p for p in cells_dir.iterdir() if p.is_dir()):
        weights = {
            stage: f
            for f in sorted(d.iterdir())
            if (stage := stage_of_weights_file(f.name)) is not None and f.is_file()
        }
        cells.append(
            Cell(
                cell_id=d.name,
                path=d,
                weights=weights,
                confusion=(d / CONFUSION_FILE) if (d / CONFUSION_FILE).is_file() else None,
                spikes=(d / SPIKES_FILE) if (d / SPIKES_FILE).is_file() else None,
                done=(d / DONE_MARKER).is_file(),
                search=(d / SEARCH_CSV) if (d / SEARCH_CSV).is_file() else None,
                **meta.get(d.name, _key_from_name(d.name)),
            )
        )

    return sorted(cells, key=_cell_order)


def _key_from_name(cell_id: str) -> dict:
    """Dataset, fraction, imbalance and seed from a cell folder name; empty if not a cell id."""
    try:
        return parse_cell_id(cell_id)._asdict()
    except ValueError:
        return {}
