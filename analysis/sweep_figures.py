"""The figures of a sweep, from :func:`analysis.sweep.sweep_table`: a sensitivity curve per
numeric factor, a bar chart per categorical one, a heatmap per map (gains with 95 % CIs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .claims import LEVEL, percent
from .style import ERR_KW, grid_shape, hide_unused, new_figure, note
from .sweep import _GROUP, NOISE, _ordered_values, _sorted, _title, value_text

FACTOR_LABELS = {
    "sleep_input": "sleep input",
    "sleep_steps": "sleep length T (steps)",
    "patch": "masked-mean patch size (pixels)",
    "max_rate": "max_rate (input Poisson rate)",
    "decay": "decay (membrane potential, per step)",
}
#: Numeric factors drawn on a log axis.
LOG_FACTORS = frozenset({"max_rate", "sleep_steps"})


def _fraction_colors(fractions: Sequence[float]) -> dict[float, tuple]:
    cmap = colormaps["viridis"]
    n = max(len(fractions) - 1, 1)
    return {f: cmap(0.85 * i / n) for i, f in enumerate(sorted(fractions))}


def _errors(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Means and (2, n) half widths in points (0 where there is no interval)."""
    m = rows["gain_mean"].to_numpy(float)
    lo = np.nan_to_num(m - rows["ci_low"].to_numpy(float))
    hi = np.nan_to_num(rows["ci_high"].to_numpy(float) - m)
    return 100 * m, 100 * np.vstack([lo, hi])


def _panels(
    rows: pd.DataFrame, keys: list[str], sort: bool = True, **kw
) -> tuple[Figure, list, list]:
    """A figure with one panel per group of ``rows`` (``sort=False``: in row order)."""
    groups = list(rows.groupby(keys, sort=sort))
    fig, axes = new_figure(*grid_shape(max(len(groups), 1)), **kw)
    hide_unused(axes, max(len(groups), 1))
    if not groups:
        note(axes[0], "not measured")
    return fig, axes, groups


def plot_curve(table: pd.DataFrame, factor: str, base_value: object) -> Figure:
    """Gain of sleep against a numeric factor's value, one line per fraction.

    One panel per data set (and imbalance); error bars are the 95 % CI over seeds; the
    base value is marked with a dashed line; log x for :data:`LOG_FACTORS`.
    """
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    fig, axes, groups = _panels(rows, ["dataset", "imbalance"], sharey=True)
    colors = _fraction_colors(rows["fraction"].unique())
    for ax, ((ds, imb), g) in zip(axes, groups, strict=False):
        for frac, h in g.groupby("fraction"):
            h = h.assign(x=h["value"].astype(float)).sort_values("x")
            y, err = _errors(h)
            ax.errorbar(
                h["x"], y, yerr=err, fmt="-o", color=colors[frac], label=percent(frac), **ERR_KW
            )
        xs = np.sort(g["value"].astype(float).unique())
        if factor in LOG_FACTORS and xs.min() > 0:
            ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs], rotation=30)
        ax.minorticks_off()
        if isinstance(base_value, int | float):
            ax.axvline(float(base_value), color="#999999", ls="--", lw=1)
            ax.text(
                float(base_value),
                0.98,
                " base",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=7,
                color="#555555",
            )
        ax.axhline(0, color="#999999", ls=":", lw=1)
        ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
        ax.set_ylabel("sleep - baseline (points)")
        ax.set_title(_title(ds, imb), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(title="fraction", fontsize=7, title_fontsize=7)
    fig.suptitle(f"Gain of sleep vs {factor}: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def category_label(factor: str, value: object, base_value: object) -> str:
    """Tick label of a categorical value: the noise input is marked as data-free."""
    text = value_text(value)
    if factor == "sleep_input" and value == NOISE:
        text += "\n(no data)"
    if value == base_value:
        text += "\n(base)"
    return text


def plot_categories(table: pd.DataFrame, factor: str, base_value: object) -> Figure:
    """Gain of sleep per value of a categorical factor (the sleep input): grouped bars.

    One panel per data set (and imbalance), one bar per fraction, 95 % CI error bars.
    The data-free ``noise`` input is hatched and labelled ``(no data)`` in red.
    """
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    fig, axes, groups = _panels(rows, ["dataset", "imbalance"], panel_size=(6.0, 3.6))
    colors = _fraction_colors(rows["fraction"].unique())
    values = _ordered_values(rows, numeric=False)
    fractions = sorted(rows["fraction"].unique())
    width = 0.8 / max(len(fractions), 1)
    for ax, ((ds, imb), g) in zip(axes, groups, strict=False):
        for j, frac in enumerate(fractions):
            h = g[g["fraction"] == frac].set_index("value").reindex(values)
            y, err = _errors(h)
            x = np.arange(len(values)) + (j - (len(fractions) - 1) / 2) * width
            bars = ax.bar(x, y, width, yerr=err, color=colors[frac], label=percent(frac), capsize=2)
            for bar, v in zip(bars, values, strict=True):
                if factor == "sleep_input" and v == NOISE:
                    bar.set_hatch("//")
                    bar.set_edgecolor("#d62728")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([category_label(factor, v, base_value) for v in values], fontsize=8)
        for tick, v in zip(ax.get_xticklabels(), values, strict=True):
            if factor == "sleep_input" and v == NOISE:
                tick.set_color("#d62728")
                tick.set_fontweight("bold")
        ax.axhline(0, color="#999999", ls=":", lw=1)
        ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
        ax.set_ylabel("sleep - baseline (points)")
        ax.set_title(_title(ds, imb), fontsize=9)
        ax.legend(title="fraction", fontsize=7, title_fontsize=7)
    fig.suptitle(f"Gain of sleep per {factor}: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def plot_map(table: pd.DataFrame, pair: tuple[str, str], base: dict) -> Figure:
    """Mean gain of sleep on a two-factor grid (``pair`` = y factor, x factor).

    One panel per data set, imbalance and fraction; each cell is annotated with its mean
    gain in points, cells not run are grey, the base cell is outlined.
    """
    y_f, x_f = pair
    rows = table[(table["kind"] == "map") & (table["factor"] == f"{y_f} x {x_f}")]
    rows = rows.assign(y=[v[0] for v in rows["value"]], x=[v[1] for v in rows["value"]])
    fig, axes, groups = _panels(rows, _GROUP, panel_size=(4.6, 3.8))
    xs, ys = _sorted(rows["x"].unique()), _sorted(rows["y"].unique())
    finite = rows["gain_mean"].astype(float).abs()
    vmax = 100 * float(finite.max()) if finite.notna().any() and finite.max() > 0 else 1.0
    cmap = colormaps["RdBu"].with_extremes(bad="#dddddd")
    for ax, ((ds, imb, frac), g) in zip(axes, groups, strict=False):
        grid = np.full((len(ys), len(xs)), np.nan)
        for r in g.itertuples():
            grid[ys.index(r.y), xs.index(r.x)] = 100 * r.gain_mean
        im = ax.imshow(grid, cmap=cmap, vmin=-vmax, vmax=vmax, origin="lower", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = grid[i, j]
                text = "not run" if np.isnan(v) else f"{v:+.1f}"
                dark = not np.isnan(v) and abs(v) > 0.6 * vmax
                color = "#ffffff" if dark else ("#777777" if np.isnan(v) else "#000000")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        if base.get(y_f) in ys and base.get(x_f) in xs:
            ax.add_patch(
                Rectangle(
                    (xs.index(base[x_f]) - 0.5, ys.index(base[y_f]) - 0.5),
                    1,
                    1,
                    fill=False,
                    lw=2,
                    ec="#000000",
                )
            )
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([value_text(v) for v in xs])
        ax.set_yticks(range(len(ys)))
        ax.set_yticklabels([value_text(v) for v in ys])
        ax.set_xlabel(FACTOR_LABELS.get(x_f, x_f))
        ax.set_ylabel(FACTOR_LABELS.get(y_f, y_f))
        ax.set_title(f"{_title(ds, imb)} at {percent(frac)}", fontsize=9)
        fig.colorbar(im, ax=ax, label="sleep - baseline (points)")
    # one panel is narrower than the title: break it there
    sep = "\n" if len(groups) == 1 else " "
    fig.suptitle(f"Mean gain of sleep over {y_f} x {x_f}{sep}(outlined: base)")
    return fig


def _figure_name(factor: str) -> str:
    return f"sweep_{factor.replace(' ', '_')}.png"
