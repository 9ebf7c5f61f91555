"""The sleep-parameter search history: ``cells/<cell_id>/search.csv``.

A cell run with ``--search`` saves one row per trial (:data:`brainsleep.formats.SEARCH_CSV`):
``trial``, ``study_trial``, ``state``, ``score``, ``score_name``, the sleep parameters
(``max_rate``, ``inc``, ``dec``, ``v_thresh_1`` .. ``v_thresh_L``, ``alpha_scale``, ...),
``spikes_layer<k>`` and ``seconds``. Only rows with state ``COMPLETE`` have a score.

Two figures and one table:

- :func:`plot_search_history`: score against trial per cell with its best-so-far line,
  one panel per (dataset, imbalance, fraction).
- :func:`parameter_correlations` / :func:`plot_parameter_correlations`: per parameter the
  Spearman rank correlation between the parameter and the validation score over all
  ``COMPLETE`` trials of a (dataset, imbalance, fraction), seeds pooled. It measures
  association within the trials the sampler chose, not a causal importance: the sampler
  concentrates trials where scores are high, and parameters may act jointly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from brainsleep.docstrings import fill_doc

from .accuracy import group_title
from .markdown import rows_table
from .results import Cell, Results
from .style import grid_shape, hide_unused, new_figure, note

__all__ = [
    "COMPLETE",
    "NON_PARAMETER_COLUMNS",
    "correlation_markdown",
    "parameter_columns",
    "parameter_correlations",
    "plot_parameter_correlations",
    "plot_search_history",
    "read_search",
    "search_table",
]

#: ``state`` of a trial that finished and has a score.
COMPLETE = "COMPLETE"

#: Columns of ``search.csv`` that are not sleep parameters (besides ``spikes_layer<k>``).
NON_PARAMETER_COLUMNS: tuple[str, ...] = (
    "trial",
    "study_trial",
    "state",
    "score",
    "score_name",
    "seconds",
)

#: Columns a search table must have.
REQUIRED_SEARCH_COLUMNS: tuple[str, ...] = ("trial", "state", "score")

#: Columns added by :func:`search_table` to identify the cell of a trial.
CELL_COLUMNS: tuple[str, ...] = ("cell", "dataset", "imbalance", "fraction", "seed")

GROUP = ["dataset", "imbalance", "fraction"]


def read_search(path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``search.csv``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    pandas.DataFrame
        One row per trial, sorted by ``trial``; ``score`` float (NaN for trials that are
        not ``COMPLETE``), ``state`` str.

    Raises
    ------
    ValueError
        Unreadable, or lacks ``trial``, ``state`` or ``score``; the message names the file.
    """
    try:
        df = pd.read_csv(path, dtype={"state": str, "score_name": str})
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in REQUIRED_SEARCH_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}")
    df["state"] = df["state"].fillna("").astype(str)
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    df.loc[df["state"] != COMPLETE, "score"] = np.nan
    return df.sort_values("trial", kind="stable").reset_index(drop=True)


def parameter_columns(table: pd.DataFrame) -> list[str]:
    """The sleep-parameter columns of a search table, in file order.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`read_search` or :func:`search_table`.

    Returns
    -------
    list of str
        Numeric columns that are not :data:`NON_PARAMETER_COLUMNS`, not cell columns and
        not ``spikes_layer<k>``.
    """
    skip = set(NON_PARAMETER_COLUMNS) | set(CELL_COLUMNS)
    return [
        c
        for c in table.columns
        if c not in skip
        and not str(c).startswith("spikes_layer")
        and pd.api.types.is_numeric_dtype(table[c])
    ]


def search_table(results: Results | Iterable[Cell]) -> pd.DataFrame:
    """All trials of every cell with a ``search.csv``, with the cell's keys.

    Parameters
    ----------
    results : Results or iterable of Cell
        Cells to read; those without ``search.csv`` or without a known dataset are left out.

    Returns
    -------
    pandas.DataFrame
        The rows of every ``search.csv`` with :data:`CELL_COLUMNS` in front; empty when no
        cell has a search.

    Raises
    ------
    ValueError
        A ``search.csv`` is unreadable (see :func:`read_search`).
    """
    cells = results.cells if isinstance(results, Results) else list(results)
    parts = []
    for c in cells:
        if c.search is None or c.dataset is None:
            continue
        t = read_search(c.search)
        for k, v in zip(
            CELL_COLUMNS, (c.cell_id, c.dataset, c.imbalance, c.fraction, c.seed), strict=True
        ):
            t.insert(list(CELL_COLUMNS).index(k), k, v)
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=list(CELL_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def _groups(table: pd.DataFrame) -> list[tuple[str, str, float]]:
    keys = table[GROUP].drop_duplicates().itertuples(index=False)
    return sorted((str(d), str(i), float(f)) for d, i, f in keys)


def _select(table: pd.DataFrame, group: tuple[str, str, float]) -> pd.DataFrame:
    d, i, f = group
    return table[(table["dataset"] == d) & (table["imbalance"] == i) & (table["fraction"] == f)]


def _group_panels(
    table: pd.DataFrame, panel_size: tuple[float, float]
) -> tuple[Figure, list[tuple[Axes, tuple[str, str, float], pd.DataFrame]]]:
    """A figure with a panel per (dataset, imbalance, fraction) of ``table``, the unused
    ones hidden, and each panel with its group and that group's rows."""
    groups = _groups(table)
    fig, axes = new_figure(*grid_shape(len(groups)), panel_size=panel_size)
    hide_unused(axes, len(groups))
    return fig, [(ax, grp, _select(table, grp)) for ax, grp in zip(axes, groups, strict=False)]


def _panel_title(group: tuple[str, str, float]) -> str:
    d, i, f = group
    return f"{group_title(d, i)}, fraction {f:g}"


def _score_label(table: pd.DataFrame) -> str:
    if "score_name" in table.columns:
        names = sorted({str(n) for n in table["score_name"].dropna()})
        if names:
            return " / ".join(names)
    return "validation score"


def parameter_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation of each parameter with the score, per group.

    Over all ``COMPLETE`` trials of a (dataset, imbalance, fraction), seeds pooled.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`search_table`.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, imbalance, fraction, parameter, rho, abs_rho, n``: ``rho`` the
        signed Spearman correlation, ``abs_rho`` its magnitude, ``n`` the number of trials
        with both a score and a value of the parameter. ``rho`` is NaN with fewer than
        3 such trials or when the parameter or the score is constant (e.g. a fixed
        parameter). Rows in group order, parameters in file order.
    """
    params = parameter_columns(table)
    rows = []
    if "state" not in table.columns:
        return pd.DataFrame(columns=[*GROUP, "parameter", "rho", "abs_rho", "n"])
    done = table[(table["state"] == COMPLETE) & table["score"].notna()]
    for group in _groups(table):
        g = _select(done, group)
        for p in params:
            sel = g[[p, "score"]].dropna()
            x = sel[p].to_numpy(dtype=float)
            y = sel["score"].to_numpy(dtype=float)
            rho = np.nan
            if len(sel) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rho = float(spearmanr(x, y).statistic)
            rows.append([*group, p, rho, abs(rho), len(sel)])
    return pd.DataFrame(rows, columns=[*GROUP, "parameter", "rho", "abs_rho", "n"])


@fill_doc
def plot_search_history(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Score against trial per cell, with the best score so far.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`search_table`.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (dataset, imbalance, fraction); per cell (seed) its ``COMPLETE``
        trials as dots and the running maximum as a step line. Trials that did not
        complete are ticks at the bottom of the panel.
    """
    fig, panels = _group_panels(table, (5.2, 3.6))
    for ax, group, g in panels:
        for k, (cell, t) in enumerate(g.groupby("cell", sort=True)):
            t = t.sort_values("trial")
            color = f"C{k % 10}"
            seed = t["seed"].iloc[0]
            ok = t[(t["state"] == COMPLETE) & t["score"].notna()]
            ax.plot(ok["trial"], ok["score"], "o", color=color, markersize=3.5, alpha=0.7)
            if not ok.empty:
                best = ok["score"].cummax()
                ax.step(
                    ok["trial"],
                    best,
                    where="post",
                    color=color,
                    linewidth=1.5,
                    label=f"seed {seed}" if pd.notna(seed) else str(cell),
                )
            bad = t[~t.index.isin(ok.index)]
            if not bad.empty:
                ax.plot(
                    bad["trial"],
                    np.zeros(len(bad)),
                    "|",
                    color=color,
                    markersize=8,
                    transform=ax.get_xaxis_transform(),
                )
        if g["score"].notna().sum() == 0:
            note(ax, "no COMPLETE trial")
        ax.set_xlabel("trial")
        ax.set_ylabel(_score_label(g))
        ax.set_title(_panel_title(group), fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right", title="best so far", title_fontsize=8)
    fig.suptitle(
        title or "Sleep-parameter search: validation score per trial (dots) and best so far (line)"
    )
    return fig


@fill_doc
def plot_parameter_correlations(corr: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Bar chart of |Spearman ρ| between each parameter and the validation score.

    Parameters
    ----------
    corr : pandas.DataFrame
        From :func:`parameter_correlations`.
    %(title)s

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (dataset, imbalance, fraction); a horizontal bar per parameter,
        blue where higher values go with higher scores (ρ > 0), red where they go with
        lower scores; parameters without a correlation (constant, < 3 trials) are marked
        ``n/a``.
    """
    n_params = max(corr["parameter"].nunique(), 1)
    fig, panels = _group_panels(corr, (5.2, 1.2 + 0.32 * n_params))
    for ax, group, g in panels:
        y = np.arange(len(g))
        rho = g["rho"].to_numpy(dtype=float)
        colors = ["#1f77b4" if r > 0 else "#d62728" for r in np.nan_to_num(rho)]
        ax.barh(y, np.nan_to_num(np.abs(rho)), color=colors)
        for yi, r in zip(y, rho, strict=True):
            label = "n/a" if not np.isfinite(r) else f"{r:+.2f}"
            ax.text(
                abs(r) + 0.01 if np.isfinite(r) else 0.01,
                yi,
                label,
                va="center",
                fontsize=7,
                color="#555555",
            )
        ax.set_yticks(y, g["parameter"].tolist(), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.1)
        ax.set_xlabel("|Spearman ρ| with the validation score")
        n = int(g["n"].max()) if len(g) else 0
        ax.set_title(f"{_panel_title(group)} (n = {n} trials)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        title
        or "Rank correlation with the validation score over COMPLETE search trials "
        "(seeds pooled; association, not causal importance)",
        fontsize=10,
    )
    return fig


def correlation_markdown(corr: pd.DataFrame) -> list[str]:
    """Lines of the ``summary.md`` table of :func:`parameter_correlations`.

    Parameters
    ----------
    corr : pandas.DataFrame
        From :func:`parameter_correlations`.

    Returns
    -------
    list of str
        A markdown table, one row per (dataset, imbalance, fraction), one column per
        parameter, signed ρ with two decimals (``–`` where undefined); empty list when
        ``corr`` is empty.
    """
    if corr.empty:
        return []
    params = list(dict.fromkeys(corr["parameter"]))
    header = ["dataset", "imbalance", "fraction", "trials", *params]
    rows = []
    for group in _groups(corr):
        g = _select(corr, group).set_index("parameter")
        vals = [
            f"{g.at[p, 'rho']:+.2f}" if p in g.index and np.isfinite(g.at[p, "rho"]) else "–"
            for p in params
        ]
        d, i, f = group
        rows.append([d, i, f"{f:g}", int(g["n"].max()), *vals])
    return rows_table(header, rows).split("\n")
