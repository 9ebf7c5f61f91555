"""Turn a results directory into ``figures/*.png`` and ``figures/summary.md``.

Every figure the directory supports is written; a figure whose data were not recorded
(no ``spikes.nc``, no ``weights_sleep.npz``, no ``acc_class_k`` column, ...) is skipped
with a reason, printed and listed in the summary. A figure that fails for another reason
is listed as failed (the CLI then exits with 1) but does not stop the others.

Per-cell figures (rasters, weights, confusion) go to ``figures/cells/<cell_id>/``. By
default only one representative cell per (dataset, imbalance, fraction), the finished one
with the lowest seed, gets them; ``all_cells=True`` draws every finished cell.

Why one file of this length: it only composes figures and tables made elsewhere in
analysis/; the length is the list of what a results directory supports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.atomic import atomic_write_bytes
from brainsleep.formats import order_stages, weights_file

from .accuracy import (
    DEFAULT_GAINS,
    aggregate_over_seeds,
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
from .results import (
    Cell,
    Results,
    load_confusion,
    load_results,
    load_spikes,
    load_weights,
)
from .search import (
    correlation_markdown,
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
from .spike_stats import MIN_SPIKES, plot_isi_cv_fano, spike_train_table
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


def _cell_figures(
    w: _Writer,
    cell: Cell,
    args: dict,
    sleep_rows: list[pd.DataFrame],
    train_rows: list[pd.DataFrame],
) -> None:
    prefix = f"cells/{cell.cell_id}/"
    if not cell.done:
        for name in CELL_FIGURES:
            w.skip(prefix + name, "cell incomplete (no done.json)")
        return
    _spike_figures(w, cell, prefix, args, sleep_rows, train_rows)
    _weight_figures(w, cell, prefix)
    _confusion_figures(w, cell, prefix)


def _spike_figures(
    w: _Writer,
    cell: Cell,
    prefix: str,
    args: dict,
    sleep_rows: list[pd.DataFrame],
    train_rows: list[pd.DataFrame],
) -> None:
    names = [prefix + n for n in SPIKE_FIGURES]
    if cell.spikes is None:
        for name in names:
            w.skip(name, "no spikes.nc (spikes not recorded, e.g. --record-spikes none)")
        return
    try:
        ds = load_spikes(cell.spikes)
        info = spike_info(ds)
    except Exception as exc:  # a corrupt file fails its figures, not the run
        for name in names:
            w.fail(name, f"cannot read spikes.nc: {type(exc).__name__}: {exc}")
        return
    if not info.recorded_layers:
        for name in names:
            w.skip(name, "spikes.nc records no layer (recorded_layers is empty)")
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


def _weight_figures(w: _Writer, cell: Cell, prefix: str) -> None:
    names = [prefix + "weight_histograms.png", prefix + "pixel_weight_change.png"]
    lacking = [s for s in ("baseline", "sleep") if s not in cell.weights]
    if lacking:
        for name in names:
            w.skip(name, "no " + ", ".join(weights_file(s) for s in lacking))
        return
    try:
        before = load_weights(cell.weights["baseline"])
        after = load_weights(cell.weights["sleep"])
    except Exception as exc:
        for name in names:
            w.fail(name, f"cannot read weights: {type(exc).__name__}: {exc}")
        return
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
    if cell.confusion is None:
        for name in names:
            w.skip(name, "no confusion.nc")
        return
    try:
        conf = load_confusion(cell.confusion)
    except Exception as exc:
        for name in names:
            w.fail(name, f"cannot read confusion.nc: {type(exc).__name__}: {exc}")
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
        for name in SEARCH_FIGURES:
            w.fail(name, f"{type(exc).__name__}: {exc}")
        return None
    if table.empty:
        for name in SEARCH_FIGURES:
            w.skip(name, "no cell with search.csv has a known dataset")
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
        for name in CELL_FIGURES:
            w.skip(f"cells/*/{name}", reason)
    args = {"max_neurons": max_neurons, "raster_steps": raster_steps, "x_unit": x_unit}
    for cell in cells:
        _cell_figures(w, cell, args, sleep_rows, train_rows)

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
    summary = atomic_write_bytes(out / "summary.md", text.encode("utf-8"))
    w.report.summary = summary
    log(f"wrote {summary}")
    return w.report


# --------------------------------------------------------------------------------------
# summary.md


def _fmt_pm(mean: float, sd: float, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    s = f"{mean * scale:+.{digits}f}" if sign else f"{mean * scale:.{digits}f}"
    if sd is not None and np.isfinite(sd):
        s += f" ± {sd * scale:.{digits}f}"
    return s


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _stage_table(
    m: pd.DataFrame, value: str, scale: float, digits: int
) -> tuple[list[str], list[list[str]]]:
    agg = aggregate_over_seeds(m, value)
    stages = order_stages(agg["stage"])
    header = ["dataset", "imbalance", "fraction", "seeds", *stages]
    rows = []
    for (d, i, f), g in agg.groupby(["dataset", "imbalance", "fraction"], sort=True):
        by_stage = g.set_index("stage")
        cells = [
            _fmt_pm(by_stage.at[s, "mean"], by_stage.at[s, "sd"], scale, digits)
            if s in by_stage.index
            else "–"
            for s in stages
        ]
        rows.append([d, i, f"{f:g}", str(int(g["n"].max())), *cells])
    return header, rows


def summary_markdown(
    results: Results,
    report: Report,
    *,
    changes: pd.DataFrame | None = None,
    sleep_table: pd.DataFrame | None = None,
    train_table: pd.DataFrame | None = None,
    search_corr: pd.DataFrame | None = None,
) -> str:
    """The text of ``summary.md``.

    Parameters
    ----------
    results : Results
        Loaded directory.
    report : Report
        Figures written / skipped / failed so far.
    changes : pandas.DataFrame, optional
        Per-cell weight change rows (see :func:`analysis.weights.weight_change_table`).
    sleep_table : pandas.DataFrame, optional
        Per-cell :func:`analysis.sparsity.sparsity_table` rows with a ``cell`` column.
    train_table : pandas.DataFrame, optional
        Per-cell :func:`analysis.spike_stats.spike_train_table` rows with a ``cell``
        column.
    search_corr : pandas.DataFrame, optional
        :func:`analysis.search.parameter_correlations` of the search trials.

    Returns
    -------
    str
        Markdown: the merged directories (if several), accuracy per stage and fraction
        (mean ± sd over seeds, %), gains of sleep (paired, percentage points), class
        balance, ANN sparsity, sleep spiking sparsity, spike-train statistics (ISI, CV,
        Fano factor), weight change, the rank correlation
        of the search parameters with the score, and the lists of written / skipped /
        failed figures.
    """
    m = results.metrics
    if results.merged:
        out = [f"# brainsleep results: {len(results.sources)} directories merged", ""]
        out += ["Cells merged from these results directories:", ""]
        for src, cfg in zip(results.sources, results.configs, strict=True):
            fp = (
                f" (config fingerprint `{cfg['fingerprint']}`)"
                if cfg and "fingerprint" in cfg
                else ""
            )
            out.append(f"- `{src}`{fp}")
        out.append("")
    else:
        out = [f"# brainsleep results: {results.root.name}", ""]
        if results.config and "fingerprint" in results.config:
            out += [f"Config fingerprint: `{results.config['fingerprint']}`", ""]
    n_cells = m.groupby(["dataset", "imbalance", "fraction", "seed"]).ngroups
    out += [
        f"{len(m)} metrics rows, {n_cells} cells, stages: "
        + ", ".join(order_stages(m["stage"]))
        + ". Mean ± sd over seeds (sample sd, ddof=1; no sd with one seed).",
        "",
    ]

    if "accuracy" in m.columns and m["accuracy"].notna().any():
        out += ["## Test accuracy (%)", ""]
        out += [_md_table(*_stage_table(m, "accuracy", 100.0, 2)), ""]

        out += ["## Gain from sleep (percentage points, paired per seed)", ""]
        header = ["dataset", "imbalance", "fraction"]
        table: dict[tuple, dict[str, str]] = {}
        for s, r in DEFAULT_GAINS:
            col = f"{s} − {r}"
            header.append(col)
            g = stage_gain(m, s, r)
            for row in g.itertuples(index=False):
                key = (row.dataset, row.imbalance, float(row.fraction))
                table.setdefault(key, {})[col] = (
                    _fmt_pm(float(row.mean), float(row.sd), 100.0, 2, sign=True)
                    + f" (n={int(row.n)})"
                )
        if table:
            rows = [
                [d, i, f"{f:g}", *(table[(d, i, f)].get(c, "–") for c in header[3:])]
                for d, i, f in sorted(table)
            ]
            out += [_md_table(header, rows), ""]
        else:
            out += ["No seed has both stages of any pair.", ""]

    if "balanced_accuracy" in m.columns and m["balanced_accuracy"].notna().any():
        out += ["## Class balance", "", "Balanced accuracy (%):", ""]
        out += [_md_table(*_stage_table(m, "balanced_accuracy", 100.0, 2)), ""]
    if "pred_entropy" in m.columns and m["pred_entropy"].notna().any():
        k = len(class_columns(m)) or 10
        out += [f"Predicted-class entropy (nats; ln {k} = {np.log(k):.3f} is uniform):", ""]
        out += [_md_table(*_stage_table(m, "pred_entropy", 1.0, 3)), ""]

    sp_cols = [c for c in ann_sparsity_columns(m) if m[c].notna().any()]
    if sp_cols:
        out += ["## ANN hidden-unit activity (fraction of units with activation > 0, test set)", ""]
        for c in sp_cols:
            out += [f"`{c}`:", "", _md_table(*_stage_table(m, c, 1.0, 3)), ""]

    spike_cols = [c for c in m.columns if c.startswith("sleep_spikes_layer")]
    if spike_cols and (m["stage"] == "sleep").any():
        sl = m[m["stage"] == "sleep"]
        agg = sl.groupby(["dataset", "imbalance", "fraction"])[spike_cols].mean()
        if agg.notna().any().any():
            out += ["## Sleep spikes per layer (mean over seeds, from metrics.csv)", ""]
            rows = [
                [d, i, f"{f:g}", *(f"{v:.0f}" if np.isfinite(v) else "–" for v in r)]
                for (d, i, f), r in zip(agg.index, agg.to_numpy(dtype=float), strict=True)
            ]
            out += [_md_table(["dataset", "imbalance", "fraction", *spike_cols], rows), ""]

    if sleep_table is not None and not sleep_table.empty:
        out += [
            "## Sleep activity per layer (figured cells)",
            "",
            "Rates over the whole sleep run. Hoyer = (√n − L1/L2)/(√n − 1) and Treves-Rolls "
            "a = (mean r)²/mean(r²) on the per-neuron rate vector r; S_TR = 1 − a "
            "(larger = sparser for both). 'not recorded' is not 'silent'.",
            "",
        ]
        rows = []
        for r in sleep_table.itertuples(index=False):
            if not r.recorded:
                rows.append([r.cell, r.name, str(r.n_neurons), *(["not recorded"] + ["–"] * 5)])
                continue
            rows.append(
                [
                    r.cell,
                    r.name,
                    str(r.n_neurons),
                    f"{r.mean_rate_hz:.3g}",
                    f"{int(r.silent)} ({100 * r.silent_frac:.1f}%)",
                    f"{r.active_frac_mean:.4f}",
                    f"{r.hoyer:.3f}",
                    f"{r.tr_a:.3f}",
                    f"{r.tr_sparseness:.3f}",
                ]
            )
        header = ["cell", "layer", "neurons", "mean rate (Hz)", "silent", "active/step"]
        out += [_md_table([*header, "Hoyer", "TR a", "S_TR"], rows), ""]

    if train_table is not None and not train_table.empty:
        out += _train_table_markdown(train_table)

    if changes is not None and not changes.empty:
        out += ["## Weight change, sleep vs baseline (mean ± sd over seeds)", ""]
        rows = []
        keys = ["dataset", "imbalance", "fraction", "layer"]
        for key, g in changes.groupby(keys, sort=True):
            d, i, f, layer = key
            rows.append(
                [
                    d,
                    i,
                    f"{f:g}",
                    layer,
                    _fmt_pm(g["rel_change"].mean(), g["rel_change"].std(), 100.0, 2),
                    _fmt_pm(g["mean_abs_change"].mean(), g["mean_abs_change"].std(), 1.0, 5),
                    _fmt_pm(g["frac_changed"].mean(), g["frac_changed"].std(), 100.0, 1),
                ]
            )
        header = ["dataset", "imbalance", "fraction", "layer", "‖ΔW‖/‖W‖ (%)"]
        out += [_md_table([*header, "mean |ΔW|", "changed (%)"], rows), ""]

    if search_corr is not None and not search_corr.empty:
        out += [
            "## Sleep-parameter search: rank correlation with the validation score",
            "",
            "Spearman ρ between each parameter and the validation score over the COMPLETE "
            "trials, seeds pooled (the figure shows |ρ|). An association within the trials "
            "the sampler chose, not a causal importance; – where a parameter was constant "
            "or fewer than 3 trials completed.",
            "",
            *correlation_markdown(search_corr),
            "",
        ]

    out += ["## Figures", ""]
    root = report.out_dir
    out += [f"- `{p.relative_to(root) if p.is_relative_to(root) else p}`" for p in report.written]
    if not report.written:
        out += ["(none)"]
    out += ["", "## Skipped figures", ""]
    out += [f"- `{n}`: {why}" for n, why in report.skipped] or ["(none)"]
    if report.failed:
        out += ["", "## Failed figures", ""]
        out += [f"- `{n}`: {why}" for n, why in report.failed]
    return "\n".join(out) + "\n"


def _train_table_markdown(table: pd.DataFrame) -> list[str]:
    """The spike-train statistics section of ``summary.md`` (recorded layers only)."""

    def num(v: float, fmt: str = ".3g") -> str:
        return format(v, fmt) if v is not None and np.isfinite(v) else "–"

    window = table["fano_window_ms"].dropna()
    out = [
        "## Spike-train statistics per layer (figured cells)",
        "",
        "From the saved spikes with Elephant (`elephant.statistics`): inter-spike intervals "
        "(ISI), their coefficient of variation CV = sd/mean (0 regular, 1 Poisson) and the "
        "Fano factor var/mean of spike counts in "
        f"{num(window.iloc[0] if len(window) else np.nan, 'g')} ms windows (1 Poisson). CV "
        f"and per-neuron Fano: median over neurons with at least {MIN_SPIKES} spikes; layer "
        "Fano: of the layer's summed count (above 1 when its neurons fire together).",
        "",
    ]
    rows = [
        [
            r.cell,
            r.name,
            str(int(r.n_spikes)),
            str(int(r.n_isi)),
            num(r.isi_median_ms),
            str(int(r.n_neurons_min_spikes)),
            num(r.cv_median),
            num(r.fano_median),
            num(r.population_fano),
        ]
        for r in table[table["recorded"].astype(bool)].itertuples(index=False)
    ]
    header = ["cell", "layer", "spikes", "ISIs", "median ISI (ms)"]
    header += [f"neurons ≥ {MIN_SPIKES} spikes", "median CV", "median Fano", "layer Fano"]
    return [*out, _md_table(header, rows), ""]
