"""The on-disk formats of brainsleep, as code: the normative description.

Longer than ~500 lines on purpose: it is the one place that declares every on-disk format,
and most of it is the numpydoc that describes them; split, the formats would scatter again.

``docs/formats.md`` explains these formats in prose; this module *is* them. The engine
(:mod:`brainsleep.sleep`), the experiment (:mod:`brainsleep.experiment`) and the analysis
(:mod:`brainsleep.analysis`) all read and write through it, so a file name, a variable, a
dtype or the cell-id scheme is declared exactly once.

Four parts:

- **Results directory** of ``python -m brainsleep.experiment --out DIR``: the file names
  (:data:`CONFIG_FILE`, :data:`METRICS_CSV`, ..., :func:`weights_file`,
  :func:`spikes_file`, :func:`stage_marker`), the metrics columns (:data:`METRIC_COLUMNS`,
  read with their types by :func:`read_metrics_csv`) and ``metrics.nc`` on dimensions
  :data:`METRICS_DIMS` (:func:`metrics_dataset`, :func:`save_metrics_dataset`), the stages
  in their order (:data:`STAGES`, :func:`order_stages`) and the cell-id scheme
  (:func:`format_cell_id`, :func:`parse_cell_id`).
- **Sparse spike table** (``spikes.nc``): one row per spike, :data:`SPIKE_VARIABLES` and
  the coordinate :data:`SPIKE_TIME` (seconds) on dimension :data:`SPIKE_DIM`, attributes
  :data:`SPIKE_ATTRS`; :func:`make_spike_dataset`, :func:`save_spikes`,
  :func:`load_spikes` and the readers :func:`spike_info`, :func:`spike_times`,
  :func:`layer_spikes`, :func:`spike_counts` (per layer), :func:`neuron_spike_counts`
  (per neuron), :func:`firing_rates`. :func:`brainsleep.interop.to_neo` turns it into
  Neo ``SpikeTrain`` objects.
- **Weights** (``weights_<stage>.npz``, compressed) and **confusion matrices**
  (``confusion.nc``): :func:`save_weights`, :func:`load_weights`, :func:`save_confusion`,
  :func:`load_confusion`.
- **netCDF conventions**: every ``.nc`` file written here follows CF (global attribute
  ``Conventions`` = :data:`CF_CONVENTIONS`; ``long_name`` on every variable, ``units`` on
  every numeric one), the attributes declared next to the variables they describe
  (:data:`SPIKE_VARIABLE_ATTRS`, :data:`METRIC_ATTRS`, :data:`CONFUSION_ATTRS`), so that
  other tools (ncdump, Panoply, xarray, netCDF4) read the files without this package.

Imports only numpy, xarray and the standard library (plus :mod:`brainsleep.atomic`):
never Brian2 or torch, so the analysis can use it on a machine without them.
Every writer is atomic (temporary file, then rename): a reader never sees half a file.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import xarray as xr

# Called as ``atomic.atomic_write_with`` (looked up at call time) so that every writer of
# the results directory goes through the one function a test or a caller may wrap.
from brainsleep import atomic
from brainsleep.docstrings import fill_doc

if TYPE_CHECKING:
    import pandas as pd

# -- netCDF conventions --------------------------------------------------------------------

#: The global ``Conventions`` attribute of every netCDF file written here: the CF
#: metadata conventions (https://cfconventions.org), version 1.11.
CF_CONVENTIONS = "CF-1.11"


def _write_netcdf(ds: xr.Dataset, path: str | Path, encoding: Mapping | None = None) -> Path:
    """Write ``ds`` (a copy with the global ``Conventions`` attribute) atomically (h5netcdf)."""
    ds = ds.copy()
    ds.attrs["Conventions"] = CF_CONVENTIONS
    return atomic.atomic_write_with(
        path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    )


# -- results directory -------------------------------------------------------------------

#: ``DIR/config.json``: all arguments, versions, device, host and the config fingerprint.
CONFIG_FILE = "config.json"
#: ``DIR/metrics.csv``: tidy table, one row per (dataset, fraction, imbalance, seed, stage).
METRICS_CSV = "metrics.csv"
#: ``DIR/metrics.nc``: the same table as an xarray Dataset on dimensions
#: :data:`METRICS_DIMS` (:func:`metrics_dataset`), so ``ds.sel(stage="sleep")`` works.
METRICS_NC = "metrics.nc"
#: Dimensions of ``metrics.nc``: the cell ids (with the coordinates of :data:`CELL_KEYS`
#: along them), then the stages in :data:`STAGES` order. Files written before issue 33 had
#: the one dimension ``row``.
METRICS_DIMS: tuple[str, str] = ("cell", "stage")
#: ``DIR/log.txt``: the run log.
LOG_FILE = "log.txt"
#: ``DIR/timing.json``: the wall time of the runs that made ``DIR``, from its log (written
#: by ``python -m brainsleep.analysis export``: a compact copy keeps no log;
#: ``brainsleep.analysis.timing``).
TIMING_FILE = "timing.json"
#: ``DIR/.lock``: held by the run that owns the directory.
LOCK_FILE = ".lock"
#: ``DIR/cells/``: one folder per cell, named by :func:`format_cell_id`.
CELLS_DIR = "cells"

#: ``cells/<cell_id>/confusion.nc``: test-set confusion matrices of every stage.
CONFUSION_FILE = "confusion.nc"
#: ``cells/<cell_id>/spikes.nc``: the sparse spike table of the sleep run.
SPIKES_FILE = "spikes.nc"
#: ``cells/<cell_id>/sleep_params.json``: parameters, normalisation and engine info.
SLEEP_PARAMS_FILE = "sleep_params.json"
#: ``cells/<cell_id>/snn_curve.csv`` (``--snn-eval``): the converted network's test
#: accuracy after each step of the presentation window, one row per (network, step):
#: columns network (baseline, sleep), step, accuracy, accuracy_lowest_index, silent, ties.
SNN_CURVE_FILE = "snn_curve.csv"
#: ``cells/<cell_id>/sleep_acting_params.json``: the same for the ``sleep_acting`` stage
#: (the best search trial that changed weights, when the search chose a no-op).
SLEEP_ACTING_PARAMS_FILE = "sleep_acting_params.json"
#: ``cells/<cell_id>/search.csv``: sleep-parameter search history, one row per trial.
SEARCH_CSV = "search.csv"
#: ``cells/<cell_id>/search.journal``: the Optuna study (a killed search resumes from it).
SEARCH_JOURNAL = "search.journal"
#: ``cells/<cell_id>/search.json``: marker of the search step (best parameters, history).
SEARCH_MARKER = "search.json"
#: ``cells/<cell_id>/done.json``: written last, the cell is complete.
DONE_MARKER = "done.json"

#: The stages of a cell, in the order they run and are shown. ``sleep_acting`` (and its
#: fine-tune) exist only when the search chose a no-op sleep: the best trial whose
#: sleep changed weights, so that the cost of a sleep that acts is measured.
STAGES: tuple[str, ...] = (
    "baseline",
    "sleep",
    "sleep_finetune",
    "sleep_acting",
    "sleep_acting_finetune",
    "finetune_only",
    "strong",
)
#: Position of each stage in :data:`STAGES` (for sorting tables).
STAGE_RANK: Mapping[str, int] = {stage: i for i, stage in enumerate(STAGES)}
#: The optional step between ``baseline`` and ``sleep`` (``--search``); not a stage: it
#: has no metrics row and no weights.
SEARCH_STEP = "search"

#: Columns identifying one cell, in the order of the cell id.
CELL_KEYS: tuple[str, ...] = ("dataset", "fraction", "imbalance", "seed")

#: Columns of ``metrics.csv``, in order; the sleep stage adds ``sleep_spikes_layer<k>``
#: and stages add ``train_steps`` after these (sorted by name).
METRIC_COLUMNS: list[str] = [
    "cell",
    *CELL_KEYS,
    "stage",
    "accuracy",
    "balanced_accuracy",
    *[f"acc_class_{k}" for k in range(10)],
    "pred_entropy",
    "active_frac_h1",
    "active_frac_h2",
    "weight_hoyer",
    "n_train",
    "n_val",
]


def order_metric_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with :data:`METRIC_COLUMNS` first, in order (added empty where missing), then
    its other columns sorted by name: the column order of every ``metrics.csv``."""
    extra = sorted(c for c in df.columns if c not in METRIC_COLUMNS)
    return df.reindex(columns=METRIC_COLUMNS + extra)


#: Columns of ``metrics.csv`` read as text (pandas would guess numbers or NA); every other
#: column is a number. ``imbalance`` is ``"none"`` for a balanced subset.
METRIC_TEXT_COLUMNS: tuple[str, ...] = ("cell", "dataset", "imbalance", "stage")

# The spiking networks of --snn-eval: column prefix, which network (metrics of the sleep row).
_SNN_NETWORKS = (
    ("snn_baseline_", "spiking network converted from the baseline"),
    ("snn_", "spiking network converted from the slept network"),
)
# Their columns after the prefix: (pattern, long name, units).
_SNN_METRICS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "test accuracy (ties and silent images are errors)", "1"),
    ("accuracy_lowest_index", "test accuracy, the lowest index winning ties (as max)", "1"),
    (r"accuracy_w(\d+)", "test accuracy counting the first {0} steps of each window", "1"),
    ("agreement", "fraction of test images classified as the ANN classifies them", "1"),
    ("silent", "fraction of test images without an output spike", "1"),
    ("ties", "fraction of test images with a tie for the most output spikes", "1"),
    ("images", "number of test images presented", "1"),
    ("window", "presentation window per image, in simulation steps", "1"),
    (r"spikes_layer(\d+)", "mean spikes per image of layer {0} (0: input)", "1"),
    (r"alpha(\d+)", "normalisation factor of weight layer {0}", "1"),
)

#: CF attributes of the metrics columns, as variables and coordinates of ``metrics.nc``:
#: ``(pattern, long_name, units)``. The first pattern that matches a whole column name
#: gives its ``long_name`` (``{0}``: the pattern's group) and ``units`` (None for text,
#: which has no units). Fractions, counts and indices are dimensionless: units ``"1"``.
#: A column the pipeline starts to write is declared here (``tests/test_formats.py``
#: checks the known columns, ``tests/test_run_api.py`` every column of a tiny real run);
#: :func:`metric_attrs` reads this table.
METRIC_ATTRS: tuple[tuple[str, str, str | None], ...] = (
    ("cell", "cell id: <dataset>_f<fraction>_<imbalance>_s<seed>", None),
    ("dataset", "data set", None),
    ("fraction", "share of the training set used", "1"),
    ("imbalance", "class imbalance of the subset (none: balanced)", None),
    ("seed", "seed of the cell", "1"),
    ("stage", "stage of the cell (baseline, sleep, sleep_finetune, ...)", None),
    ("accuracy", "test accuracy", "1"),
    ("balanced_accuracy", "test balanced accuracy (mean recall over classes)", "1"),
    (r"acc_class_(\d+)", "test accuracy on class {0}", "1"),
    ("pred_entropy", "entropy of the predicted-class distribution on the test set, nats", "1"),
    (
        r"active_frac_h(\d+)",
        "mean fraction of units of hidden layer {0} active on the test set",
        "1",
    ),
    (
        r"silent_frac_h(\d+)",
        "fraction of units of hidden layer {0} never active on the test set",
        "1",
    ),
    (r"pop_sparseness_h(\d+)", "population sparseness of hidden layer {0} on the test set", "1"),
    ("weight_hoyer", "Hoyer sparseness of the weights, mean over layers", "1"),
    ("weight_small_frac", "fraction of near-zero weights, mean over layers", "1"),
    ("n_train", "number of training images", "1"),
    ("n_val", "number of validation images", "1"),
    ("train_steps", "optimiser steps of the stage's training", "1"),
    ("val_accuracy", "validation accuracy", "1"),
    ("val_balanced_accuracy", "validation balanced accuracy", "1"),
    (r"sleep_spikes_layer(\d+)", "spikes of layer {0} during sleep (0: input)", "1"),
    ("sleep_weights_changed", "fraction of synapses whose weight the sleep changed", "1"),
    *(
        (prefix + pattern, f"{network}: {what}", units)
        for prefix, network in _SNN_NETWORKS
        for pattern, what, units in _SNN_METRICS
    ),
)
_METRIC_ATTR_PATTERNS = [(re.compile(p), name, units) for p, name, units in METRIC_ATTRS]


def metric_attrs(name: str) -> dict[str, str]:
    """The CF attributes of a metrics column, from :data:`METRIC_ATTRS`.

    Parameters
    ----------
    name : str
        A column of ``metrics.csv`` (``"accuracy"``, ``"acc_class_3"``, ...).

    Returns
    -------
    dict of str to str
        ``long_name``, and ``units`` for a number; ``{"long_name": name}`` for a column
        that :data:`METRIC_ATTRS` does not declare.
    """
    for pattern, long_name, units in _METRIC_ATTR_PATTERNS:
        if match := pattern.fullmatch(name):
            attrs = {"long_name": long_name.format(*match.groups())}
            if units is not None:
                attrs["units"] = units
            return attrs
    return {"long_name": name}


def read_metrics_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``metrics.csv`` with the column types of :data:`METRIC_TEXT_COLUMNS`.

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per (cell, stage); ``cell``, ``dataset``, ``imbalance``, ``stage`` as str
        (``imbalance`` ``"none"`` for balanced runs, also where the file has it empty),
        ``fraction`` float, ``seed`` int, the other columns numbers (NaN where a stage did
        not record them). May have no rows.

    Raises
    ------
    ValueError
        The file is missing, unreadable or not CSV (``cannot read <path>: ...``), or lacks
        one of the columns :data:`CELL_KEYS` and ``stage`` (``<path> lacks column(s) ...``).
    """
    import pandas as pd

    dtypes = dict.fromkeys(METRIC_TEXT_COLUMNS, str)
    try:
        # Default NA parsing stays on: the sleep_spikes_* columns are empty (NaN) outside
        # the sleep stage. "none" (lower case) is not a pandas NA token, so it survives.
        df = pd.read_csv(path, dtype=dtypes)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in (*CELL_KEYS, "stage") if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}")
    df["imbalance"] = df["imbalance"].fillna("none").astype(str)
    df["fraction"] = df["fraction"].astype(float)
    df["seed"] = df["seed"].astype(int)
    if "cell" in df.columns:
        df["cell"] = df["cell"].astype(str)
    return df


def metrics_dataset(df: pd.DataFrame) -> xr.Dataset:
    """The metrics table on dimensions :data:`METRICS_DIMS`: what ``metrics.nc`` holds.

    Parameters
    ----------
    df : pandas.DataFrame
        As ``metrics.csv`` (:data:`METRIC_COLUMNS` and more): one row per (cell, stage).

    Returns
    -------
    xarray.Dataset
        Every column but ``cell``, ``stage`` and :data:`CELL_KEYS` a variable on
        ``(cell, stage)``, NaN where a cell has no row for a stage (an integer column with
        such a hole becomes float); cells in the order of ``df``, stages in
        :data:`STAGES` order; :data:`CELL_KEYS` as coordinates along ``cell``. Every
        variable and coordinate carries :func:`metric_attrs`. Select with
        ``ds.sel(stage="sleep")`` or ``ds["accuracy"].sel(cell=..., stage=...)``.

    Raises
    ------
    ValueError
        ``df`` lacks ``cell``, ``stage`` or a column of :data:`CELL_KEYS`, or holds two
        rows for one (cell, stage); the message names them.
    """
    missing = [c for c in ("cell", *CELL_KEYS, "stage") if c not in df.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {', '.join(missing)}")
    df = df.astype({"cell": str, "stage": str})
    twice = df[df.duplicated(["cell", "stage"])]
    if len(twice):
        cell, stage = twice.iloc[0][["cell", "stage"]]
        raise ValueError(f"metrics table has two rows for cell {cell!r}, stage {stage!r}")
    cells = list(dict.fromkeys(df["cell"]))
    values = df.drop(columns=list(CELL_KEYS)).set_index(["cell", "stage"])
    ds = xr.Dataset.from_dataframe(values).reindex(cell=cells, stage=order_stages(df["stage"]))
    keys = df.drop_duplicates("cell").set_index("cell").reindex(cells)
    ds = ds.assign_coords(
        {
            "cell": np.asarray(cells, dtype=str),
            "stage": np.asarray(ds["stage"].values, dtype=str),
            **{k: ("cell", keys[k].to_numpy()) for k in CELL_KEYS},
        }
    )
    for name in ds.variables:
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
        ds[name].attrs.update(metric_attrs(str(name)))
    return ds


def save_metrics_dataset(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``metrics.nc`` (:func:`metrics_dataset` of ``df``) atomically.

    Parameters
    ----------
    path : str or Path
        Destination, normally ``DIR/metrics.nc`` (:data:`METRICS_NC`).
    df : pandas.DataFrame
        The metrics table, as written to ``metrics.csv``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        As :func:`metrics_dataset`.
    """
    return _write_netcdf(metrics_dataset(df), path)


# -- results directory of the class-incremental protocol (--protocol class-incremental) --

#: ``DIR/incremental.csv``: one row per (dataset, seed, variant, after_task, task), plus
#: one ``overall`` row per (dataset, seed, variant, after_task); columns
#: :data:`INCREMENTAL_COLUMNS`. A class-incremental run writes it instead of metrics.csv.
INCREMENTAL_CSV = "incremental.csv"

#: The variants of the class-incremental protocol, in the order they run and are shown:
#: tasks trained one after the other without sleep; with sleep after each task; with
#: sleep and a brief fine-tune on the task; all tasks seen so far trained together.
INCREMENTAL_VARIANTS: tuple[str, ...] = ("sequential", "sleep", "sleep_finetune", "joint")
#: The ``task`` value of the row that pools the test images of every task seen so far.
OVERALL_TASK = "overall"
#: Columns of ``incremental.csv``, in order. ``after_task``: 1-based position of the task
#: just learnt; ``task``: the classes of the task evaluated (``"0-1"``) or
#: :data:`OVERALL_TASK`; ``task_index``: its 1-based position (0 on overall rows);
#: ``accuracy``: on that task's test images, of the network the variant goes on with;
#: ``forgetting``: the task's best accuracy at an earlier step since it was learnt minus
#: ``accuracy`` (tasks learnt before ``after_task`` only; the overall row: their mean);
#: ``accuracy_trained``: right after training on the task, before sleep;
#: ``accuracy_slept``: right after sleep, before fine-tuning (empty without sleep);
#: ``n_test``: test images evaluated; ``n_train``: images the step trained on.
INCREMENTAL_COLUMNS: list[str] = [
    "cell",
    "dataset",
    "seed",
    "variant",
    "after_task",
    "task",
    "task_index",
    "accuracy",
    "forgetting",
    "accuracy_trained",
    "accuracy_slept",
    "n_test",
    "n_train",
]
#: Added after :data:`INCREMENTAL_COLUMNS` by runs with ``--snn-eval``: the converted
#: spiking network's accuracy on the task's evaluated test images (the first N of the
#: tasks seen so far) before and after the step's sleep (empty for steps without sleep
#: and tasks not seen yet).
INCREMENTAL_SNN_COLUMNS: list[str] = ["snn_accuracy_trained", "snn_accuracy_slept"]


def incremental_step(variant: str, task: int) -> str:
    """Name of one step of a class-incremental cell: ``<variant>_t<task>``.

    The step's files are named after it: its marker :func:`stage_marker` (``stage_sleep_t2.json``),
    its weights :func:`weights_file` (``weights_sleep_t2.npz``), and for a step that sleeps
    ``sleep_params_<step>.json`` and ``spikes_<step>.nc``; a search before its sleep
    writes ``search_<step>.csv``, ``search_<step>.journal`` and the marker
    ``stage_search_<step>.json``.

    Parameters
    ----------
    variant : str
        One of :data:`INCREMENTAL_VARIANTS`.
    task : int
        1-based position of the task just learnt.

    Returns
    -------
    str
        The step name.
    """
    return f"{variant}_t{int(task)}"


_WEIGHTS_FILE = re.compile(r"^weights_(?P<stage>.+)\.npz$")
_CELL_ID = re.compile(
    r"^(?P<dataset>.+?)_f(?P<fraction>[0-9.eE+-]+?)_(?P<imbalance>[^_]+)_s(?P<seed>-?[0-9]+)$"
)


def weights_file(stage: str) -> str:
    """File name of a stage's ANN weights: ``weights_<stage>.npz``.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.

    Returns
    -------
    str
        The name inside the cell folder.
    """
    return f"weights_{stage}.npz"


def spikes_file(stage: str) -> str:
    """File name of the spike table of a stage's (or step's) sleep.

    Parameters
    ----------
    stage : str
        ``"sleep"``, ``"sleep_acting"`` or a class-incremental step that sleeps
        (:func:`incremental_step`, e.g. ``"sleep_t2"``).

    Returns
    -------
    str
        :data:`SPIKES_FILE` for ``"sleep"``, ``spikes_<stage>.nc`` otherwise.
    """
    return SPIKES_FILE if stage == "sleep" else f"spikes_{stage}.nc"


def stage_of_weights_file(name: str) -> str | None:
    """The stage a ``weights_<stage>.npz`` file name belongs to.

    Parameters
    ----------
    name : str
        A file name (no directory).

    Returns
    -------
    str or None
        The stage, or None when ``name`` is not a weights file name.
    """
    match = _WEIGHTS_FILE.match(name)
    return match.group("stage") if match else None


def stage_marker(step: str) -> str:
    """File name of the marker that says a step of a cell is finished.

    Parameters
    ----------
    step : str
        A stage of :data:`STAGES`, or :data:`SEARCH_STEP`.

    Returns
    -------
    str
        ``stage_<step>.json``; :data:`SEARCH_MARKER` for the search step.
    """
    return SEARCH_MARKER if step == SEARCH_STEP else f"stage_{step}.json"


def order_stages(stages: Iterable[str]) -> list[str]:
    """Distinct stages in :data:`STAGES` order, then unknown ones alphabetically.

    Parameters
    ----------
    stages : iterable of str
        Stage names, repeats allowed (e.g. a ``stage`` column).

    Returns
    -------
    list of str
        Each stage once.
    """
    present = list(dict.fromkeys(stages))
    known = [s for s in STAGES if s in present]
    return known + sorted(s for s in present if s not in STAGE_RANK)


class CellKey(NamedTuple):
    """What identifies a cell: the fields of :data:`CELL_KEYS` (a cell of the grid)."""

    dataset: str
    fraction: float
    imbalance: str
    seed: int

    @property
    def cell_id(self) -> str:
        """:func:`format_cell_id` of the key."""
        return format_cell_id(*self)


def format_cell_id(dataset: str, fraction: float, imbalance: str, seed: int) -> str:
    """The cell id: folder name under ``cells/`` and the ``cell`` column of the metrics.

    Parameters
    ----------
    dataset : str
        Data set name, e.g. ``"mnist"``.
    fraction : float
        Share of the training set, written with ``:g`` (``0.01`` -> ``"0.01"``).
    imbalance : str
        Imbalance spec as :func:`brainsleep.subsets.format_imbalance` writes it (digits,
        ``-``, ``:``, ``,``, ``.``; never ``_``), ``"none"`` for balanced subsets.
    seed : int
        Seed of the cell.

    Returns
    -------
    str
        ``<dataset>_f<fraction:g>_<imbalance>_s<seed>``, e.g. ``mnist_f0.01_none_s0``.
    """
    return f"{dataset}_f{fraction:g}_{imbalance}_s{seed}"


def parse_cell_id(cell_id: str) -> CellKey:
    """Read dataset, fraction, imbalance and seed back from a cell id.

    Parameters
    ----------
    cell_id : str
        As :func:`format_cell_id` wrote it.

    Returns
    -------
    CellKey
        ``fraction`` as float, ``seed`` as int; ``format_cell_id(*key) == cell_id``.

    Raises
    ------
    ValueError
        When ``cell_id`` is not of the form ``<dataset>_f<fraction>_<imbalance>_s<seed>``
        (or would not be written back the same way); the message quotes it.
    """
    match = _CELL_ID.match(str(cell_id))
    key = None
    if match:
        try:
            key = CellKey(
                match.group("dataset"),
                float(match.group("fraction")),
                match.group("imbalance"),
                int(match.group("seed")),
            )
        except ValueError:
            key = None
    if key is None or format_cell_id(*key) != cell_id:
        raise ValueError(
            f"cell id {cell_id!r} is not <dataset>_f<fraction>_<imbalance>_s<seed> "
            "(e.g. mnist_f0.01_none_s0)"
        )
    return key


# -- the compact copy of a results directory (python -m brainsleep.analysis export) --

#: Top-level files kept in a compact copy: everything the reports read except weights
#: and spikes, so that a study's results can be committed beside its report (a few kB
#: per cell) and a later session can add runs to the report without rerunning these.
COMPACT_FILES: tuple[str, ...] = (CONFIG_FILE, METRICS_CSV, INCREMENTAL_CSV, TIMING_FILE)
#: Per-cell files kept in a compact copy (``cells/<cell_id>/``).
COMPACT_CELL_FILES: tuple[str, ...] = (
    DONE_MARKER,
    CONFUSION_FILE,
    SEARCH_CSV,
    SEARCH_MARKER,
    SLEEP_PARAMS_FILE,
    SLEEP_ACTING_PARAMS_FILE,
    SNN_CURVE_FILE,
)


# -- sparse spike table ------------------------------------------------------------------

#: The one dimension of the spike table: one entry per spike.
SPIKE_DIM = "spike"
#: Variables on :data:`SPIKE_DIM` and their dtypes. ``layer``: 0 = input layer, 1..L =
#: weight-layer outputs; ``neuron``: index inside the layer; ``step``: 0-based step.
#: Rows are sorted by (step, layer, neuron).
SPIKE_VARIABLES: Mapping[str, type[np.integer]] = {
    "layer": np.int16,
    "neuron": np.int32,
    "step": np.int32,
}
#: Attributes (netCDF-safe): ``dt`` (float, s), ``n_steps`` (int), ``device`` (str),
#: ``seed`` (int), ``layer_sizes`` (ints, input first), ``recorded_layers`` (ints; a layer
#: missing here was not recorded, which is not the same as silent), ``params`` (str,
#: JSON of the SleepParams record), ``model`` (str, name or path of the model file).
SPIKE_ATTRS: tuple[str, ...] = (
    "dt",
    "n_steps",
    "device",
    "seed",
    "layer_sizes",
    "recorded_layers",
    "params",
    "model",
)
#: The attributes a reader needs; :func:`load_spikes` refuses a file without them.
REQUIRED_SPIKE_ATTRS: tuple[str, ...] = ("dt", "n_steps", "layer_sizes")
#: Coordinate on :data:`SPIKE_DIM`: the time of each spike in seconds, ``step * dt``
#: (float64, :func:`spike_times`). ``step`` stays the exact record; this is its value with
#: units, for tools that know nothing of steps. Added on load to files written without it.
SPIKE_TIME = "time"
#: CF attributes of the spike table's variables (and of :data:`SPIKE_TIME`).
SPIKE_VARIABLE_ATTRS: Mapping[str, Mapping[str, str]] = {
    "layer": {"long_name": "layer of the spiking neuron (0: input, 1..L: outputs)", "units": "1"},
    "neuron": {"long_name": "index of the spiking neuron in its layer", "units": "1"},
    "step": {"long_name": "simulation step of the spike, 0-based (time = step * dt)", "units": "1"},
    SPIKE_TIME: {"long_name": "time of the spike from the start of the sleep", "units": "s"},
}
#: netCDF encoding of the variables of ``spikes.nc``: gzip with byte shuffling (the float
#: ``time`` would otherwise nearly double the file) and no fill value (nothing is missing).
SPIKE_ENCODING: Mapping[str, object] = {
    "zlib": True,
    "complevel": 4,
    "shuffle": True,
    "_FillValue": None,
}


class LayerNotRecordedError(ValueError):
    """The layer's spikes were not recorded (not in ``recorded_layers``).

    Distinct from a silent layer, which was recorded and produced no spikes.
    """


@dataclass(frozen=True)
class SpikeInfo:
    """The attributes of a spike Dataset that readers need, normalised.

    Attributes
    ----------
    dt : float
        Simulation step in seconds.
    n_steps : int
        Number of simulated steps.
    layer_sizes : tuple of int
        Neurons per layer, input first.
    recorded_layers : tuple of int
        Layers whose spikes were recorded.
    """

    dt: float
    n_steps: int
    layer_sizes: tuple[int, ...]
    recorded_layers: tuple[int, ...]

    @property
    def duration_s(self) -> float:
        """Simulated time in seconds (``n_steps * dt``)."""
        return self.n_steps * self.dt

    @property
    def n_layers(self) -> int:
        """Number of layers including the input layer."""
        return len(self.layer_sizes)


def _int_list(value) -> tuple[int, ...]:
    # netCDF round trips turn a 1-element list into a scalar and [] into an empty float
    # array, so normalise through atleast_1d.
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)).ravel())


@fill_doc
def spike_times(ds: xr.Dataset) -> np.ndarray:
    """The time of every spike in seconds: ``step * dt``.

    Parameters
    ----------
    %(ds)s

    Returns
    -------
    numpy.ndarray
        float64, shape ``(n_spikes,)``, in the table's order.

    Raises
    ------
    KeyError
        ``dt`` is not among the attributes.
    """
    if "dt" not in ds.attrs:
        raise KeyError("spike Dataset lacks attribute 'dt'")
    return ds["step"].values.astype(np.float64) * float(ds.attrs["dt"])


def _describe_spikes(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its :data:`SPIKE_TIME` coordinate (when it has ``dt``) and the CF
    attributes of :data:`SPIKE_VARIABLE_ATTRS`; changes ``ds`` in place (give a copy)."""
    if SPIKE_TIME not in ds.variables and "dt" in ds.attrs and "step" in ds:
        ds = ds.assign_coords({SPIKE_TIME: (SPIKE_DIM, spike_times(ds))})
    for name, attrs in SPIKE_VARIABLE_ATTRS.items():
        if name in ds.variables:
            ds[name].attrs.update(attrs)
    return ds


def make_spike_dataset(
    per_layer: Sequence[tuple[np.ndarray, np.ndarray] | None], attrs: Mapping
) -> xr.Dataset:
    """Build the spike table from per-layer spike lists.

    Parameters
    ----------
    per_layer : sequence
        For each layer (0 = input) a tuple ``(steps, neurons)`` of integer arrays of equal
        length ``(n_spikes_of_layer,)``, or None when the layer was not recorded.
    attrs : mapping
        Dataset attributes (:data:`SPIKE_ATTRS` except ``recorded_layers``, which is set
        here from ``per_layer``).

    Returns
    -------
    xarray.Dataset
        :data:`SPIKE_VARIABLES` on dimension :data:`SPIKE_DIM` (``layer`` int16,
        ``neuron`` and ``step`` int32), sorted by (step, layer, neuron), with the
        coordinate :data:`SPIKE_TIME` (float64 seconds; only when ``attrs`` has ``dt``)
        and the attributes of :data:`SPIKE_VARIABLE_ATTRS`; attribute ``recorded_layers``
        an int64 array.
    """
    layers, neurons, steps = [], [], []
    recorded = []
    for layer, item in enumerate(per_layer):
        if item is None:
            continue
        recorded.append(layer)
        s, n = item
        steps.append(np.asarray(s, dtype=SPIKE_VARIABLES["step"]))
        neurons.append(np.asarray(n, dtype=SPIKE_VARIABLES["neuron"]))
        layers.append(np.full(len(s), layer, dtype=SPIKE_VARIABLES["layer"]))
    if steps:
        step = np.concatenate(steps)
        neuron = np.concatenate(neurons)
        layer_arr = np.concatenate(layers)
        order = np.lexsort((neuron, layer_arr, step))
        step, neuron, layer_arr = step[order], neuron[order], layer_arr[order]
    else:
        step = np.zeros(0, SPIKE_VARIABLES["step"])
        neuron = np.zeros(0, SPIKE_VARIABLES["neuron"])
        layer_arr = np.zeros(0, SPIKE_VARIABLES["layer"])
    ds = xr.Dataset(
        {
            "layer": (SPIKE_DIM, layer_arr),
            "neuron": (SPIKE_DIM, neuron),
            "step": (SPIKE_DIM, step),
        }
    )
    ds.attrs.update(attrs)
    ds.attrs["recorded_layers"] = np.asarray(recorded, dtype=np.int64)
    return _describe_spikes(ds)


def save_spikes(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a spike table to netCDF (h5netcdf engine) atomically.

    The file is CF-style (:data:`CF_CONVENTIONS`, :data:`SPIKE_VARIABLE_ATTRS`), holds the
    :data:`SPIKE_TIME` coordinate (added here if ``ds`` lacks it) and is compressed
    (:data:`SPIKE_ENCODING`); ``ds`` itself is not changed.

    Parameters
    ----------
    ds : xarray.Dataset
        As :func:`make_spike_dataset` builds it.
    path : str or Path
        Destination, normally ``cells/<cell_id>/spikes.nc`` (:func:`spikes_file`).

    Returns
    -------
    Path
        ``path``.
    """
    ds = _describe_spikes(ds.copy())
    encoding = {
        name: dict(SPIKE_ENCODING) for name in ds.variables if ds[name].dims == (SPIKE_DIM,)
    }
    return _write_netcdf(ds, path, encoding)


def load_spikes(path: str | Path) -> xr.Dataset:
    """Read a spike table written by :func:`save_spikes` (fully loaded, file closed).

    Parameters
    ----------
    path : str or Path
        A ``spikes.nc`` file.

    Returns
    -------
    xarray.Dataset
        :data:`SPIKE_VARIABLES` on :data:`SPIKE_DIM` with their stored dtypes and the
        coordinate :data:`SPIKE_TIME` in seconds (computed from ``step`` for files written
        without it); list attributes may come back as numpy scalars or arrays (read them
        with :func:`spike_info`).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not netCDF, or lacks a variable of :data:`SPIKE_VARIABLES` (on
        :data:`SPIKE_DIM`) or an attribute of :data:`REQUIRED_SPIKE_ATTRS`; the message
        names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no spike file at {path}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as exc:
        raise ValueError(f"spike file {path} is not a readable netCDF file: {exc}") from exc
    for name in SPIKE_VARIABLES:
        if name not in ds:
            raise ValueError(f"spike file {path} lacks the variable {name!r}")
        if ds[name].dims != (SPIKE_DIM,):
            raise ValueError(
                f"spike file {path}: variable {name!r} has dims {ds[name].dims}, "
                f"not ({SPIKE_DIM!r},)"
            )
    for name in REQUIRED_SPIKE_ATTRS:
        if name not in ds.attrs:
            raise ValueError(f"spike file {path} lacks the attribute {name!r}")
    return _describe_spikes(ds)


@fill_doc
def spike_info(ds: xr.Dataset) -> SpikeInfo:
    """Read ``dt``, ``n_steps``, ``layer_sizes`` and ``recorded_layers`` from the attributes.

    Parameters
    ----------
    %(ds)s

    Returns
    -------
    SpikeInfo
        ``recorded_layers`` is every layer when the attribute is absent.

    Raises
    ------
    KeyError
        ``dt``, ``n_steps`` or ``layer_sizes`` is missing.
    """
    attrs = ds.attrs
    for key in REQUIRED_SPIKE_ATTRS:
        if key not in attrs:
            raise KeyError(f"spike Dataset lacks attribute {key!r}")
    sizes = _int_list(attrs["layer_sizes"])
    if "recorded_layers" in attrs:
        recorded = _int_list(attrs["recorded_layers"])
    else:
        recorded = tuple(range(len(sizes)))
    return SpikeInfo(
        dt=float(attrs["dt"]),
        n_steps=int(attrs["n_steps"]),
        layer_sizes=sizes,
        recorded_layers=recorded,
    )


def _check_layer(info: SpikeInfo, layer: int) -> None:
    if not 0 <= layer < info.n_layers:
        raise IndexError(f"layer {layer} out of range (network has {info.n_layers} layers)")
    if layer not in info.recorded_layers:
        raise LayerNotRecordedError(
            f"layer {layer} was not recorded (recorded_layers={list(info.recorded_layers)})"
        )


@fill_doc
def layer_spikes(
    ds: xr.Dataset, layer: int, *, window: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Steps and neuron indices of the spikes of one layer.

    Parameters
    ----------
    %(ds)s
    layer : int
        Layer index (0 = input).
    window : (int, int), optional
        Half-open step range ``[start, stop)``; all steps when omitted.

    Returns
    -------
    steps, neurons : numpy.ndarray
        int64 arrays of equal length ``(n_spikes_of_layer,)``, in the table's order.

    Raises
    ------
    IndexError
        ``layer`` is not a layer of ``layer_sizes``.
    LayerNotRecordedError
        The layer is not in ``recorded_layers``.
    """
    info = spike_info(ds)
    _check_layer(info, layer)
    mask = ds["layer"].values == layer
    if window is not None:
        step_all = ds["step"].values
        mask &= (step_all >= window[0]) & (step_all < window[1])
    steps = ds["step"].values[mask].astype(np.int64)
    neurons = ds["neuron"].values[mask].astype(np.int64)
    return steps, neurons


@fill_doc
def spike_counts(ds: xr.Dataset) -> dict[int, int]:
    """Total spike count of each recorded layer.

    Parameters
    ----------
    %(ds)s

    Returns
    -------
    dict of int to int
        ``{layer: number of spikes}`` for every layer of ``recorded_layers``, in that
        order (0 for a silent layer; unrecorded layers are absent).
    """
    info = spike_info(ds)
    counts = np.bincount(ds["layer"].values.astype(np.int64), minlength=info.n_layers)
    return {layer: int(counts[layer]) for layer in info.recorded_layers}


@fill_doc
def neuron_spike_counts(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Number of spikes of every neuron of a layer over the whole run.

    Parameters
    ----------
    %(ds)s
    %(layer)s

    Returns
    -------
    numpy.ndarray
        int64, shape ``(layer_sizes[layer],)``.

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    _, neurons = layer_spikes(ds, layer)
    return np.bincount(neurons, minlength=info.layer_sizes[layer])


@fill_doc
def firing_rates(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Mean firing rate of every neuron of a layer, in Hz.

    ``rate_i = (number of spikes of neuron i) / (n_steps * dt)``.

    Parameters
    ----------
    %(ds)s
    %(layer)s

    Returns
    -------
    numpy.ndarray
        float64, shape ``(layer_sizes[layer],)``. A neuron firing every step has rate
        ``1 / dt``; a silent neuron has 0 (so does every neuron of a 0-step run).

    Raises
    ------
    LayerNotRecordedError
        The layer was not recorded.
    """
    info = spike_info(ds)
    counts = neuron_spike_counts(ds, layer)
    if info.n_steps <= 0:
        return np.zeros(counts.shape, dtype=float)
    return counts / info.duration_s


# -- weights -------------------------------------------------------------------------------

#: Keys of a weights file are ``layer1`` .. ``layerL`` (weight layer k maps layer k-1 of the
#: spike table to layer k).
WEIGHT_KEY_PREFIX = "layer"
_WEIGHT_KEY = re.compile(rf"^{WEIGHT_KEY_PREFIX}(?P<k>[1-9][0-9]*)$")


def weight_key(k: int) -> str:
    """Key of weight layer ``k`` (1-based) in a weights file: ``layer<k>``.

    Parameters
    ----------
    k : int
        1 for the input-to-first-hidden weights.

    Returns
    -------
    str
        The key.
    """
    return f"{WEIGHT_KEY_PREFIX}{int(k)}"


def weight_layer_index(key: str) -> int:
    """The layer number ``k`` of a weights-file key ``layer<k>``.

    Parameters
    ----------
    key : str
        As :func:`weight_key` writes it.

    Returns
    -------
    int
        ``k`` (>= 1).

    Raises
    ------
    ValueError
        ``key`` is not ``layer<k>``.
    """
    match = _WEIGHT_KEY.match(str(key))
    if match is None:
        raise ValueError(f"weights key {key!r} is not layer<k> (k = 1, 2, ...)")
    return int(match.group("k"))


def save_weights(path: str | Path, weights: Sequence[np.ndarray]) -> Path:
    """Write ANN weights as a compressed ``.npz`` (``numpy.savez_compressed``) atomically.

    Parameters
    ----------
    path : str or Path
        Destination, normally ``cells/<cell_id>/weights_<stage>.npz``
        (:func:`weights_file`).
    weights : sequence of numpy.ndarray
        One matrix per weight layer, input side first, each ``(n_out, n_in)``; stored
        with their dtype (float64 from :func:`brainsleep.ann.get_weights`).

    Returns
    -------
    Path
        ``path``.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            arrays = {weight_key(k + 1): np.asarray(w) for k, w in enumerate(weights)}
            np.savez_compressed(f, **arrays)

    return atomic.atomic_write_with(path, write)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Read a weights file written by :func:`save_weights`.

    Compressed and uncompressed archives read alike (files written before issue 33 were
    made with ``numpy.savez``, uncompressed).

    Parameters
    ----------
    path : str or Path
        A ``weights_<stage>.npz`` file.

    Returns
    -------
    dict of str to numpy.ndarray
        ``layer1`` .. ``layerL`` in layer order, each ``(n_out, n_in)`` with the stored
        dtype (float64); ``list(result.values())`` is what
        :func:`brainsleep.ann.set_weights` takes.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not an ``.npz`` archive, its keys are not exactly ``layer1`` ..
        ``layerL``, a matrix is not 2-D, or consecutive matrices do not chain
        (``n_in`` of layer k+1 != ``n_out`` of layer k); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with loaded as z:
            arrays = {key: np.asarray(z[key]) for key in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"weights file {path} is not a readable .npz file: {exc}") from exc
    try:
        order = sorted(arrays, key=weight_layer_index)
    except ValueError as exc:
        raise ValueError(f"weights file {path}: {exc}") from exc
    expected = [weight_key(k) for k in range(1, len(arrays) + 1)]
    if not arrays or order != expected:
        raise ValueError(f"weights file {path} has keys {sorted(arrays)}, expected {expected}")
    out = {key: arrays[key] for key in order}
    for key, w in out.items():
        if w.ndim != 2:
            raise ValueError(f"weights file {path}: {key} has shape {w.shape}, not (n_out, n_in)")
    shapes = [w.shape for w in out.values()]
    for k in range(1, len(shapes)):
        if shapes[k][1] != shapes[k - 1][0]:
            raise ValueError(
                f"weights file {path}: {order[k]} {shapes[k]} does not follow "
                f"{order[k - 1]} {shapes[k - 1]}"
            )
    return out


# -- confusion matrices --------------------------------------------------------------------

#: Name of the DataArray in ``confusion.nc``.
CONFUSION_VAR = "confusion"
#: Its dimensions: the stages of the cell, true class, predicted class.
CONFUSION_DIMS: tuple[str, str, str] = ("stage", "true", "predicted")
#: CF attributes of ``confusion.nc`` (``stage``: :func:`metric_attrs`).
CONFUSION_ATTRS: Mapping[str, Mapping[str, str]] = {
    CONFUSION_VAR: {
        "long_name": "test images of each true class predicted as each class",
        "units": "1",
    },
    "true": {"long_name": "true class", "units": "1"},
    "predicted": {"long_name": "predicted class", "units": "1"},
    "stage": metric_attrs("stage"),
}


def save_confusion(path: str | Path, stages: Sequence[str], matrices: np.ndarray) -> Path:
    """Write the test-set confusion matrices of a cell's stages atomically.

    The file is CF-style (:data:`CF_CONVENTIONS`, :data:`CONFUSION_ATTRS`).

    Parameters
    ----------
    path : str or Path
        Destination, normally ``cells/<cell_id>/confusion.nc``.
    stages : sequence of str
        The stages, in the order of ``matrices``.
    matrices : numpy.ndarray
        int64 counts, shape ``(n_stages, n_classes, n_classes)``, rows true classes.

    Returns
    -------
    Path
        ``path``.
    """
    matrices = np.asarray(matrices, dtype=np.int64)
    n_classes = matrices.shape[1]
    da = xr.DataArray(
        matrices,
        dims=CONFUSION_DIMS,
        coords={
            "stage": list(stages),
            "true": np.arange(n_classes),
            "predicted": np.arange(n_classes),
        },
        name=CONFUSION_VAR,
    )
    ds = da.to_dataset()
    for name, attrs in CONFUSION_ATTRS.items():
        ds[name].attrs.update(attrs)
    return _write_netcdf(ds, path)


def load_confusion(path: str | Path) -> xr.DataArray:
    """Read ``confusion.nc``.

    Parameters
    ----------
    path : str or Path
        The netCDF file.

    Returns
    -------
    xarray.DataArray
        ``confusion`` (int64 counts on the test set) with dims :data:`CONFUSION_DIMS`; a
        file holding a single, differently named variable is read as that.

    Raises
    ------
    ValueError
        The file holds no ``confusion`` variable and not exactly one variable.
    """
    ds = xr.load_dataset(path, engine="h5netcdf")
    if CONFUSION_VAR in ds:
        return ds[CONFUSION_VAR]
    names = list(ds.data_vars)
    if len(names) == 1:
        return ds[names[0]].rename(CONFUSION_VAR)
    raise ValueError(f"{path} has no variable {CONFUSION_VAR!r} (variables: {names})")
