"""A results directory in a notebook: :func:`load_run` and :class:`Run`.

One object per directory written by ``python -m brainsleep.experiment --out DIR``::

    import brainsleep

    run = brainsleep.load_run("results/default")
    run.metrics                        # pandas: metrics.csv, one row per cell and stage
    run.config["hidden"]               # config.json: the run's arguments
    run.cells                          # cell ids, e.g. ["mnist_f0.1_none_s0"]
    net = run.network(run.cells[0], "sleep")   # torch module with the slept weights
    spikes = run.spikes(run.cells[0])          # xarray Dataset: the sleep's spike table

It only reads, through :mod:`brainsleep.formats` (the file formats' one home); torch is
imported by :meth:`Run.network` alone, so loading a run and its tables stays light. Bad
input (a directory that is not a run, an unknown cell or stage, a file the run does not
have) raises :class:`RunError` with one line naming it and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from brainsleep.docstrings import fill_doc
from brainsleep.formats import (
    CELLS_DIR,
    CONFIG_FILE,
    CONFUSION_FILE,
    INCREMENTAL_CSV,
    METRIC_COLUMNS,
    METRICS_CSV,
    load_confusion,
    load_spikes,
    load_weights,
    metrics_dataset,
    order_stages,
    parse_cell_id,
    read_metrics_csv,
    spikes_file,
    stage_of_weights_file,
    weights_file,
)

if TYPE_CHECKING:
    import os

    from brainsleep.ann import MLP

__all__ = ["Run", "RunError", "load_run"]

#: The stage trained with its own recipe whatever the run's ``--recipe``: the strong
#: baseline (``--strong``) is always the ``strong`` recipe (the pipeline's
#: ``CellRunner.strong``).
_STAGE_RECIPES = {"strong": "strong"}
# Cells named in an error message before "...".
_MAX_LISTED = 6


class RunError(ValueError):
    """Bad input to :class:`Run`: not a results directory, an unknown cell or stage, or a
    file the run does not have. The message is one line naming it and what to do."""


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def _cell_sort_key(cell_id: str) -> tuple:
    try:
        key = parse_cell_id(cell_id)
    except ValueError:
        return (1, cell_id)
    return (0, key.dataset, key.imbalance, key.fraction, key.seed)


def load_run(path: str | os.PathLike) -> Run:
    """Open a results directory of ``python -m brainsleep.experiment --out DIR``.

    Parameters
    ----------
    path : str or os.PathLike
        The directory (its ``config.json`` marks it as a run; a compact copy made by
        ``python -m brainsleep.analysis export`` is one too, without weights or spikes).

    Returns
    -------
    Run
        Reads files on demand: tables and cells as they are when asked for.

    Raises
    ------
    RunError
        ``path`` does not exist, is not a directory, or holds no readable
        ``config.json``.
    """
    return Run(path)


class Run:
    """One results directory, for notebooks and scripts.

    Parameters
    ----------
    path : str or os.PathLike
        The ``--out`` directory of a run (see :func:`load_run`).

    Attributes
    ----------
    path : pathlib.Path
        The directory.
    info : dict
        ``config.json`` as written: ``argv``, ``config``, ``versions``, ``device``,
        ``host``, ``fingerprint``.
    config : dict
        ``info["config"]``: the run's arguments (``recipe``, ``hidden``, ``seeds``,
        ``sleep_steps``, ...), the names of ``python -m brainsleep.experiment --help``.

    Raises
    ------
    RunError
        As :func:`load_run`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            what = "is not a directory" if self.path.exists() else "does not exist"
            raise RunError(
                f"{self.path} {what}; give the --out directory of a python -m "
                "brainsleep.experiment run"
            )
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise RunError(
                f"{self.path} is not a brainsleep run (no {CONFIG_FILE}); give the --out "
                "directory of a python -m brainsleep.experiment run"
            )
        try:
            info = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunError(f"{config_path} is unreadable or corrupt ({exc})") from exc
        if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
            raise RunError(f"{config_path} holds no run configuration (no 'config' record)")
        self.info: dict = info
        self.config: dict = info["config"]

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}: {len(self.cells)} cells, protocol {self.protocol})"

    # -- tables --------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        """``"limited"`` (stages, ``metrics.csv``) or ``"class-incremental"``
        (``incremental.csv``), from the configuration."""
        return str(self.config.get("protocol", "limited"))

    @property
    def metrics(self) -> pd.DataFrame:
        """The run's table, read on each access (a run still going shows its new rows).

        ``metrics.csv`` (one row per cell and stage, the column types of
        :func:`brainsleep.formats.read_metrics_csv`); for a class-incremental run
        ``incremental.csv``. Empty (with the columns of ``metrics.csv``) before the first
        stage has finished.
        """
        if self.protocol == "class-incremental" and (self.path / INCREMENTAL_CSV).is_file():
            return pd.read_csv(self.path / INCREMENTAL_CSV, dtype={"cell": str, "task": str})
        if not (self.path / METRICS_CSV).is_file():
            return pd.DataFrame(columns=METRIC_COLUMNS)
        try:
            return read_metrics_csv(self.path / METRICS_CSV)
        except ValueError as exc:
            raise RunError(str(exc)) from exc

    def metrics_dataset(self) -> xr.Dataset:
        """:attr:`metrics` on dimensions ``(cell, stage)``, as ``metrics.nc`` holds it.

        Returns
        -------
        xarray.Dataset
            :func:`brainsleep.formats.metrics_dataset` of :attr:`metrics`, e.g.
            ``run.metrics_dataset()["accuracy"].sel(stage="sleep")``.

        Raises
        ------
        RunError
            A class-incremental run (its table has no stages; use :attr:`metrics`).
        """
        if self.protocol == "class-incremental":
            raise RunError(
                f"{self.path} is a class-incremental run: its table has no stages; use run.metrics"
            )
        return metrics_dataset(self.metrics)

    # -- cells ---------------------------------------------------------------------------
    @property
    def cells(self) -> list[str]:
        """Ids of the cells that have a folder, sorted by (dataset, imbalance, fraction,
        seed): ``<dataset>_f<fraction>_<imbalance>_s<seed>``."""
        root = self.path / CELLS_DIR
        if not root.is_dir():
            return []
        return sorted((p.name for p in root.iterdir() if p.is_dir()), key=_cell_sort_key)

    def _cell_dir(self, cell: str) -> Path:
        cells = self.cells
        if cell not in cells:
            listed = f"its cells: {_listing(cells)}" if cells else "it has no cells yet"
            raise RunError(f"{self.path} has no cell {cell!r}; {listed} (run.cells)")
        return self.path / CELLS_DIR / cell

    @fill_doc
    def stages(self, cell: str) -> list[str]:
        """The stages (or class-incremental steps) of a cell that have weights.

        Parameters
        ----------
        %(run_cell)s

        Returns
        -------
        list of str
            In :data:`brainsleep.formats.STAGES` order, others after them by name.

        Raises
        ------
        RunError
            ``cell`` is not a cell of the run.
        """
        names = [stage_of_weights_file(p.name) for p in self._cell_dir(cell).iterdir()]
        return order_stages(n for n in names if n is not None)

    @fill_doc
    def weights(self, cell: str, stage: str) -> dict[str, np.ndarray]:
        """The ANN weights of a cell after a stage.

        Parameters
        ----------
        %(run_cell)s
        stage : str
            A stage of :meth:`stages` (``"baseline"``, ``"sleep"``, ...).

        Returns
        -------
        dict of str to numpy.ndarray
            ``layer1`` .. ``layerL``, each float64 ``(n_out, n_in)``
            (:func:`brainsleep.formats.load_weights`).

        Raises
        ------
        RunError
            Unknown cell, or no weights file for ``stage`` (the message lists the stages
            that have one).
        ValueError
            The weights file is corrupt.
        """
        path = self._cell_dir(cell) / weights_file(stage)
        if not path.is_file():
            have = self.stages(cell)
            if have:
                listed = f"stages with weights: {', '.join(have)} (run.stages(cell))"
            else:
                listed = (
                    "it has no weights files (a compact copy keeps none: open the "
                    "original results directory)"
                )
            raise RunError(
                f"cell {cell} of {self.path} has no weights for stage {stage!r}; {listed}"
            )
        return load_weights(path)

    @fill_doc
    def network(self, cell: str, stage: str) -> MLP:
        """The torch network of a cell after a stage, ready for inference.

        Built with the run's recipe (``config["recipe"]``; the ``strong`` stage with the
        ``strong`` recipe) and layer sizes (``config["hidden"]`` between the input and
        output widths of the weights), then given the stage's weights; in eval mode, so
        dropout is the recipe's test-time scaling. The recipe sets how the network
        computes (dropout style, output ReLU); training-only settings do not matter here.

        Parameters
        ----------
        %(run_cell)s
        stage : str
            A stage of :meth:`stages`.

        Returns
        -------
        brainsleep.ann.MLP
            A ``torch.nn.Module``: ``net(x)`` maps images ``(batch, 784)`` in [0, 1] to
            class scores ``(batch, 10)``.

        Raises
        ------
        RunError
            Unknown cell, no weights for ``stage``, or weights whose hidden widths differ
            from ``config["hidden"]``.
        """
        from brainsleep import ann

        arrays = list(self.weights(cell, stage).values())
        sizes = (arrays[0].shape[1], *(w.shape[0] for w in arrays))
        hidden = self.config.get("hidden")
        if hidden is not None and list(sizes[1:-1]) != [int(h) for h in hidden]:
            raise RunError(
                f"weights of cell {cell}, stage {stage!r} have layer sizes {list(sizes)}, "
                f"but {self.path / CONFIG_FILE} says hidden {list(hidden)}; the results "
                "directory was changed by hand?"
            )
        recipe = ann.get_recipe(_STAGE_RECIPES.get(stage, self.config.get("recipe", "reference")))
        model = ann.build_model(recipe, sizes)  # initial weights replaced just below
        ann.set_weights(model, arrays)
        return model.eval()

    @fill_doc
    def spikes(self, cell: str, stage: str = "sleep") -> xr.Dataset:
        """The spike table of a cell's sleep (``spikes.nc``).

        Parameters
        ----------
        %(run_cell)s
        stage : str
            The stage (or class-incremental step) that slept: ``"sleep"`` (default),
            ``"sleep_acting"``, ``"sleep_t2"``, ...

        Returns
        -------
        xarray.Dataset
            One entry per spike on dimension ``spike``: ``layer``, ``neuron``, ``step`` and
            the coordinate ``time`` in seconds; ``dt``, ``n_steps``, ``layer_sizes`` in the
            attributes (:func:`brainsleep.formats.load_spikes`). Neo trains:
            :func:`brainsleep.interop.to_neo`.

        Raises
        ------
        RunError
            Unknown cell, or the cell has no spike table for ``stage`` (recorded with
            ``--record-spikes none``, not slept yet, or a compact copy).
        """
        path = self._cell_dir(cell) / spikes_file(stage)
        if not path.is_file():
            raise RunError(
                f"cell {cell} of {self.path} has no {path.name} (no spikes of stage "
                f"{stage!r}: run with --record-spikes hidden or all, or the stage has not "
                "slept yet)"
            )
        return load_spikes(path)

    @fill_doc
    def confusion(self, cell: str) -> xr.DataArray:
        """The test-set confusion matrices of a cell's stages (``confusion.nc``).

        Parameters
        ----------
        %(run_cell)s

        Returns
        -------
        xarray.DataArray
            int64 counts on ``(stage, true, predicted)``:
            ``run.confusion(cell).sel(stage="sleep")``.

        Raises
        ------
        RunError
            Unknown cell, or the cell has no ``confusion.nc`` yet (written when the cell
            finishes).
        """
        path = self._cell_dir(cell) / CONFUSION_FILE
        if not path.is_file():
            raise RunError(
                f"cell {cell} of {self.path} has no {CONFUSION_FILE} yet (it is written "
                "when the cell finishes)"
            )
        return load_confusion(path)
