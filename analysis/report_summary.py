"""``summary.md`` of the per-run report (:func:`analysis.report.write_report`): accuracy,
gains, class balance, sparsity, spike-train statistics and weight change per stage, as
markdown tables (mean ± sd over seeds), and what was written, skipped or failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainsleep.formats import order_stages

from .accuracy import DEFAULT_GAINS, aggregate_over_seeds, stage_gain
from .balance import class_columns
from .figure_writer import Report
from .markdown import rows_table
from .results import Results
from .search import correlation_markdown
from .sparsity import ann_sparsity_columns
from .spike_stats import MIN_SPIKES


def _fmt_pm(mean: float, sd: float, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    s = f"{mean * scale:+.{digits}f}" if sign else f"{mean * scale:.{digits}f}"
    if sd is not None and np.isfinite(sd):
        s += f" ± {sd * scale:.{digits}f}"
    return s


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
        out += [rows_table(*_stage_table(m, "accuracy", 100.0, 2)), ""]

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
            out += [rows_table(header, rows), ""]
        else:
            out += ["No seed has both stages of any pair.", ""]

    if "balanced_accuracy" in m.columns and m["balanced_accuracy"].notna().any():
        out += ["## Class balance", "", "Balanced accuracy (%):", ""]
        out += [rows_table(*_stage_table(m, "balanced_accuracy", 100.0, 2)), ""]
    if "pred_entropy" in m.columns and m["pred_entropy"].notna().any():
        k = len(class_columns(m)) or 10
        out += [f"Predicted-class entropy (nats; ln {k} = {np.log(k):.3f} is uniform):", ""]
        out += [rows_table(*_stage_table(m, "pred_entropy", 1.0, 3)), ""]

    sp_cols = [c for c in ann_sparsity_columns(m) if m[c].notna().any()]
    if sp_cols:
        out += ["## ANN hidden-unit activity (fraction of units with activation > 0, test set)", ""]
        for c in sp_cols:
            out += [f"`{c}`:", "", rows_table(*_stage_table(m, c, 1.0, 3)), ""]

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
            out += [rows_table(["dataset", "imbalance", "fraction", *spike_cols], rows), ""]

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
        out += [rows_table([*header, "Hoyer", "TR a", "S_TR"], rows), ""]

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
        out += [rows_table([*header, "mean |ΔW|", "changed (%)"], rows), ""]

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
    return [*out, rows_table(header, rows), ""]
