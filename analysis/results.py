"""Load what ``python -m brainsleep.experiment --out DIR`` saved.

The layout, the file formats and their readers are declared once, in
:mod:`brainsleep.formats` (prose in docs/formats.md); :func:`load_spikes`,
:func:`load_weights` and :func:`load_confusion` are those readers. Nothing here simulates
or trains: it only reads ``metrics.csv`` and the per-cell files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.formats import (
    CELL_KEYS,
    CELLS_DIR,
    CONFIG_FILE,
    CONFUSION_FILE,
    DONE_MARKER,
    METRICS_CSV,
    SPIKES_FILE,
    load_confusion,
    load_spikes,
    load_weights,
    parse_cell_id,
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
    "load_spikes",
    "load_weights",
    "read_metrics",
]

#: Columns identifying one group of seeds (what is averaged over).
GROUP_KEYS: tuple[str, ...] = ("dataset", "imbalance", "fraction")

#: Columns that must be in metrics.csv for anything to be plotted.
REQUIRED_COLUMNS: tuple[str, ...] = (*CELL_KEYS, "stage")


class ResultsError(Exception):
    """The results directory is missing, empty or has no usable ``metrics.csv``."""


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

    @property
    def label(self) -> str:
        """Short description for figure titles."""
        if self.dataset is None:
            return self.cell_id
        imb = "balanced" if self.imbalance in (None, "none") else f"imbalance {self.imbalance}"
        return f"{self.dataset}, fraction {self.fraction:g}, {imb}, seed {self.seed}"


@dataclass
class Results:
    """A loaded results directory.

    Attributes
    ----------
    root : pathlib.Path
        The results directory.
    metrics : pandas.DataFrame
        ``metrics.csv`` with ``imbalance`` as str, ``fraction`` as float, ``seed`` as int.
    cells : list of Cell
        One entry per ``cells/*`` folder, sorted by (dataset, imbalance, fraction, seed).
    config : dict or None
        ``config.json`` if present and readable.
    """

    root: Path
    metrics: pd.DataFrame
    cells: list[Cell]
    config: dict | None = None


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``metrics.csv`` with the column types of docs/formats.md.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        ``cell``, ``dataset``, ``imbalance``, ``stage`` as str (``imbalance`` ``"none"``
        for balanced runs, also if the file has it empty), ``fraction`` float,
        ``seed`` int.

    Raises
    ------
    ResultsError
        Unreadable, empty, or missing one of ``dataset, fraction, imbalance, seed, stage``.
    """
    str_cols = {"cell": str, "dataset": str, "imbalance": str, "stage": str}
    try:
        # Default NA parsing stays on: the sleep_spikes_* columns are empty (NaN) outside
        # the sleep stage. "none" (lower case) is not a pandas NA token, so it survives.
        df = pd.read_csv(path, dtype=str_cols)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise ResultsError(f"{path} has no rows")
    df["imbalance"] = df["imbalance"].fillna("none").astype(str)
    df["fraction"] = df["fraction"].astype(float)
    df["seed"] = df["seed"].astype(int)
    if "cell" in df.columns:
        df["cell"] = df["cell"].astype(str)
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

    config = None
    if (root / CONFIG_FILE).is_file():
        try:
            config = json.loads((root / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            config = None  # a broken config must not stop the figures

    cells = _find_cells(root / CELLS_DIR, metrics)
    return Results(root=root, metrics=metrics, cells=cells, config=config)


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
                **meta.get(d.name, _key_from_name(d.name)),
            )
        )

    def key(c: Cell):
        return (
            c.dataset or "",
            c.imbalance or "",
            c.fraction if c.fraction is not None else np.inf,
            c.seed if c.seed is not None else 0,
            c.cell_id,
        )

    return sorted(cells, key=key)


def _key_from_name(cell_id: str) -> dict:
    """Dataset, fraction, imbalance and seed from a cell folder name; empty if not a cell id."""
    try:
        return parse_cell_id(cell_id)._asdict()
    except ValueError:
        return {}
