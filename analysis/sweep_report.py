"""``python -m brainsleep.analysis sweep DIR [DIR ...] --out OUT``: what drives the effect of sleep.

Writes ``OUT/SWEEP.md`` (three answers computed from the data, the tables, the figures of
:mod:`analysis.sweep_figures`), ``sweep.csv`` and one figure per factor and map."""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.docstrings import fill_doc

from .claims import LEVEL, Interval, Setting, load_settings, percent, total_wall_text
from .effects import intervals
from .markdown import generated_header, md_table, write_csv, write_text
from .report_command import ReadmeQuote, run_command
from .style import save_figure
from .sweep import (
    _GROUP,
    CSV_COLUMNS,
    FACTOR_ORDER,
    MAP_PAIR,
    Design,
    _factor_order,
    _group_text,
    _ordered_values,
    _title,
    identify_design,
    noise_comparison,
    overlaps_zero,
    sensitivity,
    stage_metrics,
    sweep_table,
    value_text,
)
from .sweep_figures import _figure_name, plot_categories, plot_curve, plot_map
from .timing import wall_text

SWEEP_FILE = "SWEEP.md"
SWEEP_CSV = "sweep.csv"


def sensitivity_answer(sens: pd.DataFrame) -> str:
    """One sentence: the factor the gain is most sensitive to (largest range of means)."""
    if sens.empty:
        return "Most sensitive factor: not measured (no factor has two measured values)."
    top = sens.iloc[0]
    text = (
        f"The gain is most sensitive to {top['factor']}: its mean gain spans "
        f"{100 * top['range']:.1f} points over its values "
        f"({_group_text(top['dataset'], top['imbalance'], top['fraction'])}: "
        f"{100 * top['low']:+.1f} at {value_text(top['low_value'])}, "
        f"{100 * top['high']:+.1f} at {value_text(top['high_value'])})"
    )
    if len(sens) > 1:
        rest = ", ".join(f"{r.factor} {100 * r.range:.1f}" for r in sens.iloc[1:].itertuples())
        text += f"; the other factors span {rest} points"
    else:
        text += "; no other factor was measured"
    return text + "."


def where_answer(table: pd.DataFrame) -> str:
    """One sentence per group: how many settings gain with a CI above 0, and the best one.

    A setting is one results directory (the base, a one-factor run or a map cell); the
    best is the largest mean gain on the validation split (chosen there, its test gain
    reported); where the runs record no validation accuracy no best is named (the largest
    test gain would be a best chosen on the test set).
    """
    rows = table.drop_duplicates(["setting", *_GROUP])
    rows = rows[np.isfinite(rows["gain_mean"].astype(float))]
    if rows.empty:
        return "Not measured (no directory has a paired gain)."
    parts = []
    for (ds, imb, frac), g in rows.groupby(_GROUP, sort=True):
        with_ci = g[g["n_seeds"] >= 2]
        above = int((with_ci["ci_low"] > 0).sum())
        text = (
            f"{_group_text(ds, imb, frac)}: {above} of {len(with_ci)} settings (with 2 or "
            f"more seeds) gain with the {100 * LEVEL:.0f} % CI above 0"
        )
        val = g["val_gain_mean"].astype(float) if "val_gain_mean" in g else pd.Series(np.nan)
        if val.notna().all():
            best = g.loc[val.idxmax()]
            varies = "the base" if best["is_base"] else _varied_text(table, best["setting"])
            best_ci = Interval(best["gain_mean"], best["ci_low"], best["ci_high"], best["n_seeds"])
            text += f"; the best on validation, {varies}, gains {best_ci.text()} points on test"
        else:
            text += (
                "; no best is named (the runs record no validation accuracy, and the "
                "largest test gain would be a best chosen on the test set)"
            )
        parts.append(text)
    return "; ".join(parts) + "."


def _varied_text(table: pd.DataFrame, setting: str) -> str:
    """``factor = value`` for a setting's one-factor row(s) (``y, x`` for a map cell)."""
    rows = table[(table["setting"] == setting) & ~table["is_base"].astype(bool)]
    texts = []
    for r in rows.drop_duplicates("factor").itertuples():
        if r.kind == "map":
            names = str(r.factor).split(" x ")
            values = r.value if isinstance(r.value, tuple) else (r.value,)
            texts.append(
                ", ".join(f"{n} = {value_text(v)}" for n, v in zip(names, values, strict=False))
            )
        else:
            texts.append(f"{r.factor} = {value_text(r.value)}")
    return texts[0] if texts else setting


def noise_answer(comparison: pd.DataFrame) -> str:
    """One sentence: does the data-free noise input do as well as masked-mean?"""
    if comparison.empty:
        return (
            "Noise (no data) against masked-mean: not measured (both inputs, run on the "
            "same cells, are needed)."
        )
    cases = []
    outcome = Counter()
    for (ds, imb, frac), iv in comparison["effect"].items():
        if iv.n < 2:
            what = "one seed, no interval"
        elif overlaps_zero(iv):
            what = "no difference shown"
        elif iv.hi < 0:
            what = "worse"
        else:
            what = "better"
        outcome[what] += 1
        cases.append(f"{_group_text(ds, imb, frac)}: {iv.text()} ({what})")
    n = sum(outcome.values())
    every = "the one case" if n == 1 else f"all {n} cases"
    ci = f"the {100 * LEVEL:.0f} % CI of the difference in gain"
    if outcome["no difference shown"] == n:
        # an interval over 0 is absence of evidence, not evidence of equality: say how
        # large a difference the intervals still allow
        allowed = max(max(abs(iv.lo), abs(iv.hi)) for iv in comparison["effect"])
        text = (
            f"Noise (no data) cannot be told apart from masked-mean: {ci} overlaps 0 in "
            f"{every}, but still allows differences of up to {100 * allowed:.1f} points"
        )
    elif outcome["worse"] == n:
        text = f"Noise (no data) does worse than masked-mean: {ci} is below 0 in {every}"
    elif outcome["better"] == n:
        text = f"Noise (no data) does better than masked-mean: {ci} is above 0 in {every}"
    else:
        counts = ", ".join(f"{k} in {v}" for k, v in outcome.items())
        text = f"Noise (no data) does not consistently match masked-mean ({counts} of {n} cases)"
    return f"{text} (noise - masked-mean, points: {'; '.join(cases)})."


def _factor_rows(table: pd.DataFrame, factor: str, numeric: bool) -> pd.DataFrame:
    rows = table[(table["kind"] == "factor") & (table["factor"] == factor)]
    order = {v: i for i, v in enumerate(_ordered_values(rows, numeric))}
    rows = rows.assign(_o=rows["value"].map(order)).sort_values(
        ["dataset", "imbalance", "fraction", "_o"]
    )
    return pd.DataFrame(
        {
            factor: [
                value_text(v) + (" (base)" if b else "")
                for v, b in zip(rows["value"], rows["is_base"], strict=True)
            ],
            "directory": rows["setting"],
            "data set": [
                _title(d, i) for d, i in zip(rows["dataset"], rows["imbalance"], strict=True)
            ],
            "fraction": [percent(f) for f in rows["fraction"]],
            "seeds": rows["n_seeds"],
            "gain (points)": [iv.text() for iv in intervals(rows, "gain_mean")],
        }
    )


def sweep_markdown(
    design: Design,
    table: pd.DataFrame,
    answers: tuple[str, str],
    settings: Sequence[Setting],
    command: str,
    figures: dict[str, str],
) -> str:
    """The text of ``SWEEP.md``."""
    sens = sensitivity(table)
    lines = [
        *generated_header(
            "What drives the effect of sleep? One factor at a time", command, settings
        ),
        "",
        "The gain is sleep - baseline test accuracy, a paired difference within each cell "
        "(same data set, fraction, subset, initialisation and seed), in points: mean "
        f"[{100 * LEVEL:.0f} % CI] over seeds (Student t); `[-]` where there is one seed. "
        "Each directory's factors come from its config.json: the fields that differ "
        "across the directories given; the base is the directory with every factor at its "
        "most common value.",
        "",
        "## Answers",
        "",
        f"- **Most sensitive factor.** {answers[0]}",
        f"- **Noise vs masked-mean.** {answers[1]}",
        f"- **Where sleep helps.** {answers[2]}",
        "",
        "## Directories",
        "",
    ]
    roles = {
        "base": "base",
        "factor": "one factor",
        "map": "two factors (map)",
        "unused": "not used (varies more than two factors, or repeats another)",
    }
    lines.append(
        md_table(
            pd.DataFrame(
                {
                    "directory": [r.setting.name for r in design.runs],
                    "role": [roles[r.role] for r in design.runs],
                    "varies": [
                        ", ".join(f"{k} = {value_text(v)}" for k, v in r.varied.items()) or "-"
                        for r in design.runs
                    ],
                    "wall time": [wall_text(r.setting.wall_s) for r in design.runs],
                }
            )
        )
    )
    lines += [f"\n`{s.name}`: {s.unfinished_text}" for s in settings if s.unfinished]
    lines += ["", total_wall_text(settings)]
    base = ", ".join(f"{f} = {value_text(design.base[f])}" for f in design.factors)
    lines += ["", f"Base values: {base or 'no factor varies'}.", "", "## Factors", ""]
    factors = _factor_order([*FACTOR_ORDER, *design.factors])
    maps = list(dict.fromkeys([*(f"{y} x {x}" for y, x in design.maps), " x ".join(MAP_PAIR)]))
    measured = set(table["factor"])
    lines.append(md_table(_factor_summary(design, table, sens, factors, maps)))
    for f in factors:
        lines += ["", f"## {f}", ""]
        if f not in measured:
            lines.append("Not measured: no directory varies it alone.")
            continue
        if f in figures:
            lines += [f"![{figures[f]}]({figures[f]})", ""]
        lines.append(md_table(_factor_rows(table, f, design.numeric(f))))
    for m in maps:
        lines += ["", f"## Map: {m}", ""]
        if m not in measured:
            lines.append("Not measured: no directory varies both.")
            continue
        lines += [f"![{figures[m]}]({figures[m]})", "", "Mean gain (points) per grid cell:", ""]
        lines.append(md_table(_map_rows(table, m)))
    lines += [
        "",
        "## Files",
        "",
        f"- `{SWEEP_CSV}`: one row per factor value, data set and fraction: "
        + ", ".join(CSV_COLUMNS)
        + ", imbalance, setting (directory), is_base, kind (factor or map); gains in "
        "accuracy (1 = 100 points).",
    ]
    return "\n".join(lines) + "\n"


def _factor_summary(
    design: Design,
    table: pd.DataFrame,
    sens: pd.DataFrame,
    factors: Sequence[str],
    maps: Sequence[str],
) -> pd.DataFrame:
    """One row per factor and map: base value, values measured, largest range of means."""
    ranges = dict(zip(sens["factor"], sens["range"], strict=True))
    rows = []
    for f in [*factors, *maps]:
        sub = table[table["factor"] == f]
        is_map = f in maps
        if sub.empty:
            values = rng = "not measured"
            if f in design.factors:
                values = rng = "not measured alone (only with another factor)"
        elif is_map:
            values = f"{sub['value'].nunique()} grid cells"
            rng = "(see the map)"
        else:
            values = ", ".join(value_text(v) for v in _ordered_values(sub, design.numeric(f)))
            rng = f"{100 * ranges[f]:.1f}" if f in ranges else "one value only"
        base = "-" if is_map or f not in design.base else value_text(design.base[f])
        rows.append(
            {
                "factor": f,
                "base value": base,
                "values": values,
                "largest range of mean gain (points)": rng,
            }
        )
    return pd.DataFrame(rows)


def _map_rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = table[(table["kind"] == "map") & (table["factor"] == name)]
    y_f, x_f = name.split(" x ")
    out = []
    for (ds, imb, frac), g in rows.groupby(_GROUP, sort=True):
        for r in sorted(g.itertuples(), key=lambda r: r.value):
            out.append(
                {
                    "data set": _title(ds, imb),
                    "fraction": percent(frac),
                    y_f: value_text(r.value[0]),
                    x_f: value_text(r.value[1]),
                    "seeds": r.n_seeds,
                    "gain (points)": Interval(r.gain_mean, r.ci_low, r.ci_high, r.n_seeds).text(),
                }
            )
    return pd.DataFrame(out)


@fill_doc
def write_sweep_report(
    paths: Sequence[str | Path], out: str | Path, command: str | None = None, log=print
) -> Path:
    """Analyse a one-factor-at-a-time sweep and write ``SWEEP.md``, ``sweep.csv`` and figures.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories of the sweep (the base among them).
    out : path-like
        Output directory (created).
    %(report_command_log)s

    Returns
    -------
    pathlib.Path
        ``out/SWEEP.md``.

    Raises
    ------
    %(report_raises)s
    """
    settings = load_settings(paths)
    metrics = stage_metrics(settings)
    design = identify_design(settings)
    table = sweep_table(design, metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    for f in _factor_order(set(table.loc[table["kind"] == "factor", "factor"])):
        plot = plot_curve if design.numeric(f) else plot_categories
        figures[f] = _figure_name(f)
        save_figure(plot(table, f, design.base.get(f)), out / figures[f])
    for pair in design.maps:
        name = f"{pair[0]} x {pair[1]}"
        figures[name] = _figure_name(f"map_{pair[0]}_x_{pair[1]}")
        save_figure(plot_map(table, pair, design.base), out / figures[name])
    for name in figures.values():
        log(f"wrote {out / name}")
    csv = table.assign(value=[value_text(v, 12) for v in table["value"]])
    write_csv(out / SWEEP_CSV, csv, log)
    answers = (
        sensitivity_answer(sensitivity(table)),
        noise_answer(noise_comparison(design, metrics)),
        where_answer(table),
    )
    if command is None:
        command = f"{ANALYSIS_COMMAND} sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    text = sweep_markdown(design, table, answers, settings, command, figures)
    return write_text(out / SWEEP_FILE, text, log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m brainsleep.analysis sweep``; returns the exit status."""
    return run_command(
        "sweep",
        "Sensitivity of the gain of sleep to the factors a one-factor-at-a-time sweep "
        "varies (studies/input_sweep.toml): SWEEP.md, sweep.csv and a figure per factor.",
        write_sweep_report,
        argv,
        ReadmeQuote(
            "input-sweep", "Answers", "sensitivity curves with CIs, the map, every directory"
        ),
    )
