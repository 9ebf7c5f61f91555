"""Turn a results directory into ``figures/*.png`` and ``figures/summary.md``.

Every figure the directory supports is written; a figure whose data were not recorded
(no ``spikes.nc``, no ``weights_sleep.npz``, no ``acc_class_k`` column, ...) is skipped
with a reason, printed and listed in the summary. A figure that fails for another reason
is listed as failed (the CLI then exits with 1) but does not stop the others.

Per-cell figures (rasters, weights, confusion) go to ``figures/cells/<cell_id>/``. By
default only one representative cell per (dataset, imbalance, fraction), the finished one
with the lowest seed, gets them; ``all_cells=True`` draws every finished cell.

It only composes figures and tables made elsewhere in analysis/; the text of
``summary.md`` is :mod:`analysis.report_summary`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from brainsleep.formats import weights_file

from .accuracy import (
    DEFAULT_GAINS,
    plot_accuracy_vs_fraction,
    plot_gain_vs_fraction,
    stage_gain,
)
from .balance import (
    class_columns,
    plot_confusion,
    plot_per_class_accuracy,
    plot_pred_entropy,
    plot_predicted_distribution,
)
from .conversion import has_snn, plot_snn_fidelity
from .figure_writer import Report, _Writer, slug  # noqa: F401  (re-exported)
from .markdown import write_text
from .report_summary import summary_markdown
from .results import (
    Cell,
    Results,
    load_confusion,
    load_results,
    load_spikes,
    load_weights,
)
from .search import (
    parameter_correlations,
    plot_parameter_correlations,
    plot_search_history,
    search_table,
)
from .sparsity import (
    ann_sparsity_columns,
    plot_ann_sparsity,
    plot_sparseness_over_time,
    sparsity_table,
)
from .spike_stats import plot_isi_cv_fano, spike_train_table
from .spikes import (
    plot_population_rate,
    plot_raster,
    plot_rate_distribution,
    spike_info,
    time_axis,
)
from .weights import (
    plot_pixel_weight_change,
    plot_weight_change_by_fraction,
    plot_weight_histograms,
    weight_change_table,
)

#: Figure files made from a cell's ``spikes.nc``, in this order.
SPIKE_FIGURES: tuple[str, ...] = (
    "raster.png",
    "population_rate.png",
    "rate_distribution.png",
    "isi_cv_fano.png",
    "sparseness_over_time.png",
)

#: Figure files written for each selected cell, in this order.
CELL_FIGURES: tuple[str, ...] = (
    *SPIKE_FIGURES,
    "weight_histograms.png",
    "pixel_weight_change.png",
    "confusion.png",
    "predicted_classes.png",
)

#: Figures of the sleep-parameter search, written only when a cell has ``search.csv``.
SEARCH_FIGURES: tuple[str, ...] = (
    "search_history.png",
    "search_parameter_correlation.png",
)


def _has_values(metrics: pd.DataFrame, column: str) -> str | None:
    if column not in metrics.columns:
        return f"metrics.csv has no {column} column"
    if metrics[column].notna().sum() == 0:
        return f"metrics.csv column {column} is empty"
    return None


def select_cells(results: Results, all_cells: bool = False) -> list[Cell]:
    """Cells that get per-cell figures.

    Parameters
    ----------
    results : Results
        Loaded directory.
    all_cells : bool
        Every cell instead of one per (dataset, imbalance, fraction).

    Returns
    -------
    list of Cell
        Per group the finished cell with the lowest seed (an unfinished one only when no
        cell of the group finished; its figures are then skipped).
    """
    if all_cells:
        return list(results.cells)
    best: dict[tuple, Cell] = {}
    for c in results.cells:
        if c.dataset is None:
            continue
        key = (c.dataset, c.imbalance, c.fraction)
        cur = best.get(key)
        if cur is None or (c.done, -(c.seed or 0)) > (cur.done, -(cur.seed or 0)):
            best[key] = c
    return [best[k] for k in sorted(best, key=lambda k: (k[0], k[1], k[2]))]


def _spike_figures(
    w: _Writer,
    cell: Cell,
    prefix: str,
    args: dict,
    sleep_rows: list[pd.DataFrame],
    train_rows: list[pd.DataFrame],
) -> None:
    names = [prefix + n for n in SPIKE_FIGURES]
    missing = "no spikes.nc (spikes not recorded, e.g. --record-spikes none)"
    missing = missing if cell.spikes is None else None
    read = w.load(names, missing, "spikes.nc", lambda: _read_spikes(cell.spikes))
    if read is None:
        return
    ds, info = read
    if not info.recorded_layers:
        w.skip(names, "spikes.nc records no layer (recorded_layers is empty)")
        return
    x_unit = args["x_unit"]
    window = None
    if args["raster_steps"]:
        scale, _ = time_axis(info, x_unit)
        window = (0.0, min(args["raster_steps"], info.n_steps) * scale)
    title = cell.label
    w.figure(
        names[0],
        lambda: plot_raster(
            ds,
            window=window,
            x_unit=x_unit,
            max_neurons=args["max_neurons"],
            title=f"Spike raster during sleep\n{title}",
        ),
    )
    w.figure(
        names[1],
        lambda: plot_population_rate(
            ds, x_unit=x_unit, title=f"Population firing rate during sleep\n{title}"
        ),
    )
    w.figure(
        names[2],
        lambda: plot_rate_distribution(ds, title=f"Per-neuron firing rates during sleep\n{title}"),
    )
    try:
        trains = spike_train_table(ds)
    except Exception as exc:  # the statistics fail their figure, not the run
        w.fail(names[3], f"spike-train statistics: {type(exc).__name__}: {exc}")
    else:
        w.figure(
            names[3],
            lambda: plot_isi_cv_fano(ds, title=f"Spike-train statistics during sleep\n{title}"),
            None
            if (trains["n_isi"].fillna(0) > 0).any()
            else "no neuron of a recorded layer spiked twice (no inter-spike interval)",
        )
        trains.insert(0, "cell", cell.cell_id)
        train_rows.append(trains)
    w.figure(
        names[4],
        lambda: plot_sparseness_over_time(
            ds,
            x_unit=x_unit,
            title=f"Activity and population sparseness during sleep\n{title}",
        ),
    )
    try:
        t = sparsity_table(ds)
    except Exception as exc:
        w.log(f"FAILED sparsity table of cell {cell.cell_id}: {exc}")
    else:
        t.insert(0, "cell", cell.cell_id)
        sleep_rows.append(t)


def _read_spikes(path: Path) -> tuple:
    """A cell's spike Dataset and its :class:`~brainsleep.formats.SpikeInfo`."""
    ds = load_spikes(path)
    return ds, spike_info(ds)


#: The weight files the per-cell weight figures compare.
_WEIGHT_STAGES = ("baseline", "sleep")


def _weight_figures(w: _Writer, cell: Cell, prefix: str) -> None:
    names = [prefix + "weight_histograms.png", prefix + "pixel_weight_change.png"]
    lacking = [s for s in _WEIGHT_STAGES if s not in cell.weights]
    missing = "no " + ", ".join(weights_file(s) for s in lacking) if lacking else None
    pair = w.load(
        names, missing, "weights", lambda: [load_weights(cell.weights[s]) for s in _WEIGHT_STAGES]
    )
    if pair is None:
        return
    before, after = pair
    title = cell.label
    w.figure(
        names[0],
        lambda: plot_weight_histograms(
            before, after, title=f"Weights before (baseline) and after sleep\n{title}"
        ),
    )
    w.figure(
        names[1],
        lambda: plot_pixel_weight_change(
            before,
            after,
            title=f"Net layer-1 weight change per pixel (sleep − baseline)\n{title}",
        ),
    )


def _confusion_figures(w: _Writer, cell: Cell, prefix: str) -> None:
    names = [prefix + "confusion.png", prefix + "predicted_classes.png"]
    missing = "no confusion.nc" if cell.confusion is None else None
    conf = w.load(names, missing, "confusion.nc", lambda: load_confusion(cell.confusion))
    if conf is None:
        return
    title = cell.label
    w.figure(
        names[0],
        lambda: plot_confusion(conf, title=f"Confusion matrices (row-normalised)\n{title}"),
    )
    w.figure(
        names[1],
        lambda: plot_predicted_distribution(conf, title=f"Predicted-class distribution\n{title}"),
    )


def _search_figures(w: _Writer, results: Results) -> pd.DataFrame | None:
    """Search history and parameter correlation figures; the correlation table or None."""
    if not any(c.search is not None for c in results.cells):
        return None
    try:
        table = search_table(results)
        corr = parameter_correlations(table)
    except Exception as exc:  # a broken search.csv fails these figures only
        w.fail(SEARCH_FIGURES, f"{type(exc).__name__}: {exc}")
        return None
    if table.empty:
        w.skip(SEARCH_FIGURES, "no cell with search.csv has a known dataset")
        return None
    w.figure(SEARCH_FIGURES[0], lambda: plot_search_history(table))
    w.figure(
        SEARCH_FIGURES[1],
        lambda: plot_parameter_correlations(corr),
        None if not corr.empty else "search.csv has no parameter columns",
    )
    return corr


def _weight_changes(results: Results) -> pd.DataFrame:
    parts = []
    for c in results.cells:
        if not c.done or c.dataset is None or not {"baseline", "sleep"} <= set(c.weights):
            continue
        t = weight_change_table(
            load_weights(c.weights["baseline"]), load_weights(c.weights["sleep"])
        )
        for k, v in (
            ("dataset", c.dataset),
            ("imbalance", c.imbalance),
            ("fraction", c.fraction),
            ("seed", c.seed),
            ("cell", c.cell_id),
        ):
            t[k] = v
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def write_report(
    results: Results | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    all_cells: bool = False,
    max_neurons: int | None = None,
    raster_steps: int | None = None,
    x_unit: str = "s",
    log: Callable[[str], None] = print,
) -> Report:
    """Write every supported figure and ``summary.md``.

    Parameters
    ----------
    results : Results or path
        Loaded results or a results directory (loaded with
        :func:`analysis.results.load_results`, which raises ``ResultsError``).
    out_dir : path, optional
        Figure directory (default ``<results>/figures``); required when ``results`` was
        merged from several directories.
    all_cells : bool
        Per-cell figures for every finished cell, not one per (dataset, imbalance,
        fraction).
    max_neurons : int, optional
        Rasters draw at most this many neurons per layer, the most active ones
        (:func:`analysis.spikes.plot_raster`); default every neuron.
    raster_steps : int, optional
        Rasters show only the first ``raster_steps`` steps (default the whole run).
    x_unit : {"s", "ms", "step"}
        Time axis of the spike figures: simulated time (``step * dt``) or sleep steps.
    log : callable
        Receives one line per written, skipped or failed figure.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        Bad ``x_unit``, or no ``out_dir`` for merged results.
    """
    if not isinstance(results, Results):
        from .incremental import is_incremental_dir, write_incremental_report

        if is_incremental_dir(results):  # --protocol class-incremental: its own figures
            return write_incremental_report([results], out_dir, log=log)
        results = load_results(results)
    if x_unit not in ("s", "ms", "step"):
        raise ValueError(f"x_unit must be 's', 'ms' or 'step', got {x_unit!r}")
    if out_dir is None and results.merged:
        raise ValueError("out_dir is required for results merged from several directories")
    out = Path(out_dir) if out_dir is not None else results.root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out, log)
    m = results.metrics

    # --- metrics.csv figures (all cells)
    w.figure(
        "accuracy_vs_fraction.png", lambda: plot_accuracy_vs_fraction(m), _has_values(m, "accuracy")
    )
    w.figure(
        "balanced_accuracy_vs_fraction.png",
        lambda: plot_accuracy_vs_fraction(m, "balanced_accuracy"),
        _has_values(m, "balanced_accuracy"),
    )
    gains = {
        (s, r): stage_gain(m, s, r) if "accuracy" in m.columns else pd.DataFrame()
        for s, r in DEFAULT_GAINS
    }
    w.figure(
        "sleep_gain_vs_fraction.png",
        lambda: plot_gain_vs_fraction(m),
        None
        if any(not g.empty for g in gains.values())
        else "no seed has both stages of a pair (sleep & baseline, sleep_finetune & finetune_only)",
    )
    w.figure(
        "pred_entropy_vs_fraction.png", lambda: plot_pred_entropy(m), _has_values(m, "pred_entropy")
    )
    sp_cols = ann_sparsity_columns(m)
    w.figure(
        "ann_sparsity_vs_fraction.png",
        lambda: plot_ann_sparsity(m),
        None
        if sp_cols and any(_has_values(m, c) is None for c in sp_cols)
        else "metrics.csv has no active_frac_h* values",
    )
    if has_snn(m):  # opt-in (--snn-eval N): not listed as skipped when not asked for
        w.figure("snn_fidelity.png", lambda: plot_snn_fidelity(m), None)
    groups = sorted(
        (str(d), str(i))
        for d, i in m[["dataset", "imbalance"]].drop_duplicates().itertuples(index=False)
    )
    for dataset, imbalance in groups:
        w.figure(
            f"per_class_accuracy_{slug(dataset)}_{slug(imbalance)}.png",
            lambda d=dataset, i=imbalance: plot_per_class_accuracy(m, d, i),
            None if class_columns(m) else "metrics.csv has no acc_class_k columns",
        )

    # --- weights over all finished cells
    try:
        changes = _weight_changes(results)
    except Exception as exc:
        changes = pd.DataFrame()
        w.fail("weight_change_vs_fraction.png", f"{type(exc).__name__}: {exc}")
    else:
        w.figure(
            "weight_change_vs_fraction.png",
            lambda: plot_weight_change_by_fraction(changes),
            None
            if not changes.empty
            else "no finished cell has weights_baseline and weights_sleep",
        )

    # --- sleep-parameter search (opt-in, --search): not listed as skipped without one
    search_corr = _search_figures(w, results)

    # --- per-cell figures
    sleep_rows: list[pd.DataFrame] = []
    train_rows: list[pd.DataFrame] = []
    cells = select_cells(results, all_cells)
    if not cells:
        reason = (
            "no cells/ folders"
            if not results.cells
            else "no cells/ folder matches a metrics.csv 'cell' value"
        )
        w.skip([f"cells/*/{name}" for name in CELL_FIGURES], reason)
    args = {"max_neurons": max_neurons, "raster_steps": raster_steps, "x_unit": x_unit}
    for cell in cells:
        prefix = f"cells/{cell.cell_id}/"
        if not cell.done:
            w.skip([prefix + name for name in CELL_FIGURES], "cell incomplete (no done.json)")
            continue
        _spike_figures(w, cell, prefix, args, sleep_rows, train_rows)
        _weight_figures(w, cell, prefix)
        _confusion_figures(w, cell, prefix)

    sleep_table = pd.concat(sleep_rows, ignore_index=True) if sleep_rows else pd.DataFrame()
    train_table = pd.concat(train_rows, ignore_index=True) if train_rows else pd.DataFrame()
    text = summary_markdown(
        results,
        w.report,
        changes=changes,
        sleep_table=sleep_table,
        train_table=train_table,
        search_corr=search_corr,
    )
    w.report.summary = write_text(out / "summary.md", text, log)
    return w.report
