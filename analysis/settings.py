"""Results directories as the reports' *settings*: one directory each (a recipe,
epochs, sleep-parameter choice), its finished cells, its label and the commands that made
it, and its metrics rows with the columns every claim reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from brainsleep.formats import load_weights
from brainsleep.sparseness import weight_hoyer

from .noop import ACTED_COLUMN, sleep_acted, with_acted_stages
from .results import Results, _row_cell_ids, load_results
from .timing import wall_seconds, wall_sum_text

# -- loading ----------------------------------------------------------------------------------


@dataclass
class Setting:
    """One results directory: a recipe, epochs and sleep-parameter choice.

    Attributes
    ----------
    name : str
        Directory name (unique among the settings of a report).
    label : str
        What differs in it, e.g. ``reference recipe, searched sleep (20 trials)``.
    results : Results
        The loaded directory.
    """

    name: str
    label: str
    results: Results
    unfinished: tuple[str, ...] = ()
    #: Wall seconds of the runs that made the directory (:func:`analysis.timing.wall_seconds`,
    #: read once when loaded), None when neither its log nor a ``timing.json`` records them.
    wall_s: float | None = None

    @property
    def config(self) -> dict:
        return (self.results.config or {}).get("config", {})

    @property
    def commands(self) -> list[str]:
        """The commands that made the directory: the first run's, then those that grew it
        (``config.json`` ``grown``: e.g. a second data set added by a later run)."""
        recorded = self.results.config or {}
        argvs = [recorded.get("argv") or []]
        argvs += [g.get("argv") or [] for g in recorded.get("grown") or ()]
        return [_command(argv) for argv in argvs]

    @property
    def command(self) -> str:
        """:attr:`commands` as one shell line (``&&`` between them)."""
        return " && ".join(self.commands)

    @property
    def unfinished_text(self) -> str:
        """``""``, or a sentence naming the cells left out (no ``done.json``)."""
        if not self.unfinished:
            return ""
        return f"Not finished, left out: {', '.join(self.unfinished)}."


def total_wall_text(settings: Sequence[Setting]) -> str:
    """One sentence: the summed wall time of the settings' runs (and which lack one)."""
    return wall_sum_text({s.name: s.wall_s for s in settings})


def _command(argv: Sequence[object]) -> str:
    args = " ".join(str(a) for a in argv[1:]) if argv and "/" in str(argv[0]) else ""
    args = args or " ".join(str(a) for a in argv)
    return f"python -m brainsleep.experiment {args}".strip()


def setting_label(config: dict) -> str:
    """Describe a run's configuration in a few words (recipe, epochs, sleep, subset)."""
    if not config:
        return "configuration unknown"
    parts = [f"{config.get('recipe', '?')} recipe"]
    if config.get("epochs"):
        parts.append(f"{config['epochs']} epochs")
    if config.get("search"):
        parts.append(f"searched sleep ({config['search']} trials)")
    else:
        parts.append(f"preset {config.get('sleep_preset', '?')}")
    if config.get("subset") not in (None, "stratified"):
        parts.append(f"{config['subset']} subset")
    if config.get("finetune_epochs") is not None:
        parts.append(f"fine-tune {config['finetune_epochs']} ep")
    return ", ".join(parts)


def load_settings(paths: Sequence[str | Path]) -> list[Setting]:
    """Load each results directory as its own setting.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories (``python -m brainsleep.experiment --out DIR``).

    Returns
    -------
    list of Setting
        In the order given; names are the directory names, made unique with the parent
        directory's name when two are equal. Only finished cells' rows are kept (cells
        without ``done.json`` are named in :attr:`Setting.unfinished`).

    Raises
    ------
    analysis.results.ResultsError
        A directory is missing or has no usable ``metrics.csv``.
    """
    out: list[Setting] = []
    names = [Path(p).resolve().name for p in paths]
    for p, name in zip(paths, names, strict=True):
        res = load_results(p)
        if names.count(name) > 1:
            name = f"{Path(p).resolve().parent.name}/{name}"
        label = setting_label((res.config or {}).get("config", {}))
        # only finished cells count: an unfinished one's stages would join the means
        # over fewer seeds than the rest; the reports name what is left out. A broken
        # timing.json stops the report here, before it writes anything.
        unfinished = tuple(res.unfinished_cells())
        out.append(Setting(name, label, res.finished(), unfinished, wall_seconds(p)))
    return out


def long_metrics(settings: Sequence[Setting]) -> pd.DataFrame:
    """Every setting's ``metrics.csv`` rows with ``setting``, ``recipe`` and ``weight_hoyer``,
    whether each cell's sleep acted, and the stages the claims are judged on.

    ``recipe`` is the run's training recipe (``config.json``; empty if unknown).
    ``sleep_acted`` (1, 0 or NaN per row) and the derived stages ``sleep_acted`` and
    ``sleep_acted_finetune``: see :mod:`analysis.noop`.

    ``weight_hoyer`` is the Hoyer sparseness of all the stage's weights (mean over layers;
    0 dense, 1 one nonzero weight). The pipeline records it in ``metrics.csv``; for rows
    written before it did, it is computed from the cell's ``weights_<stage>.npz`` when that
    is there, else NaN. A compact copy of a directory (``python -m brainsleep.analysis export``) has
    no weights, so it relies on the recorded column.
    """
    frames = []
    for s in settings:
        m = s.results.metrics.copy()
        m.insert(0, "setting", s.name)
        # the recipe of the baseline stage: with the strong recipe, the baseline is the bar
        m["recipe"] = ((s.results.config or {}).get("config") or {}).get("recipe", "")
        m["sleep_input"] = s.config.get("sleep_input") or "masked-mean"
        weights_of = {
            (cell.cell_id, stage): path
            for cell in s.results.cells
            for stage, path in cell.weights.items()
        }
        m["weight_hoyer"] = weight_hoyer_values(m, lambda c, st, w=weights_of: w.get((c, st)))
        searches = {cell.cell_id: cell.path / "search.json" for cell in s.results.cells}
        m[ACTED_COLUMN] = sleep_acted(m, lambda _, c, f=searches: f.get(c))
        frames.append(m)
    if not frames:
        return pd.DataFrame()
    return with_acted_stages(pd.concat(frames, ignore_index=True))


def weight_hoyer_values(
    metrics: pd.DataFrame, weights_path: Callable[[str, str], Path | None]
) -> list[float]:
    """The ``weight_hoyer`` of every metrics row: the value the pipeline recorded, else
    :func:`weight_sparseness` of the stage's weights file, else NaN.

    Parameters
    ----------
    metrics : pandas.DataFrame
        ``metrics.csv`` rows (``weight_hoyer`` may be missing or partly empty: rows written
        before the pipeline recorded it).
    weights_path : callable
        ``weights_path(cell_id, stage)``: the stage's ``weights_<stage>.npz``, or None
        when there is none.

    Returns
    -------
    list of float
        One value per row, in order.
    """
    recorded = metrics["weight_hoyer"] if "weight_hoyer" in metrics.columns else None
    values = []
    for i, key in enumerate(zip(_row_cell_ids(metrics), metrics["stage"], strict=True)):
        path = weights_path(*key)
        if recorded is not None and not pd.isna(recorded.iloc[i]):
            values.append(float(recorded.iloc[i]))
        elif path is not None and Path(path).is_file():
            values.append(weight_sparseness(path))
        else:
            values.append(math.nan)
    return values


def weight_sparseness(path: str | Path) -> float:
    """Hoyer sparseness of a weights file's matrices, averaged over layers.

    Parameters
    ----------
    path : path-like
        ``weights_<stage>.npz`` (:func:`brainsleep.formats.save_weights`).

    Returns
    -------
    float
        In [0, 1], larger is sparser (:func:`brainsleep.sparseness.weight_hoyer`, what the
        pipeline records as ``weight_hoyer``).
    """
    return weight_hoyer(load_weights(path).values())
