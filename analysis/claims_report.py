"""``python -m brainsleep.analysis report DIR [DIR ...] --out OUT``: the claims report.

Writes ``OUT/REPORT.md`` (a verdict per claim of the paper, the tables behind them, the
settings and the commands that made them), its figures, ``claims.csv`` (the claims'
tables) and ``metrics_summary.csv`` (mean and 95 % CI per setting, cell group, stage and
metric), entirely from results directories; see :mod:`analysis.claims` for the tests.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.docstrings import fill_doc
from brainsleep.formats import order_stages

from .accuracy import setup_fraction_axis
from .claims import (
    LEVEL,
    SOURCES,
    ClaimResult,
    Setting,
    evaluate_claims,
    load_settings,
    long_metrics,
    mean_ci,
    minority_accuracy,
    summary_levels,
    total_wall_text,
)
from .effects import layer_mean
from .markdown import generated_header, md_table, write_csv, write_text
from .noop import ACTED, ACTED_FINETUNE
from .readme_block import markers
from .report_command import ReadmeQuote, run_command
from .style import (
    ERR_KW,
    grid_shape,
    hide_unused,
    new_figure,
    note,
    save_figure,
    stage_color,
    stage_label,
)
from .timing import wall_text

REPORT_FILE = "REPORT.md"
CLAIMS_CSV = "claims.csv"
SUMMARY_CSV = "metrics_summary.csv"


def _ci_arrays(values: Sequence[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """Means and (2, n) error-bar half widths (0 where there is no interval)."""
    ivs = [mean_ci(v) for v in values]
    mean = np.array([iv.mean for iv in ivs])
    lo = np.array([iv.mean - iv.lo if iv.n > 1 else 0.0 for iv in ivs])
    hi = np.array([iv.hi - iv.mean if iv.n > 1 else 0.0 for iv in ivs])
    return mean, np.vstack([lo, hi])


def plot_accuracy(metrics: pd.DataFrame, value: str = "accuracy") -> Figure:
    """Test accuracy against training fraction per stage, mean and 95 % CI over seeds.

    One panel per setting and data set (balanced subsets). A panel whose setting has a
    single fraction shows the stages side by side at that fraction (a categorical axis),
    never offset as if they were other fractions.
    """
    m = metrics[metrics["imbalance"] == "none"]
    groups = list(m.groupby(["setting", "dataset"], sort=False))
    fig, axes = new_figure(*grid_shape(max(len(groups), 1)), sharey=True)
    if not groups:
        note(axes[0], "no balanced cells")
    for ax, ((setting, dataset), g) in zip(axes, groups, strict=False):
        stages = order_stages(g["stage"].unique())
        fractions = np.sort(g["fraction"].unique())
        if len(fractions) == 1:
            for k, st in enumerate(stages):
                mean, err = _ci_arrays([g.loc[g["stage"] == st, value]])
                ax.errorbar(
                    [k], 100 * mean, yerr=100 * err, fmt="o", color=stage_color(st), **ERR_KW
                )
            ax.set_xlim(-0.5, len(stages) - 0.5)
            ax.set_xticks(range(len(stages)))
            ax.set_xticklabels([stage_label(s) for s in stages], rotation=30, ha="right")
            ax.set_xlabel(f"stage (fraction {100 * fractions[0]:g} %)")
        else:
            for st in stages:
                s = g[g["stage"] == st]
                fr = np.sort(s["fraction"].unique())
                mean, err = _ci_arrays([s.loc[s["fraction"] == f, value] for f in fr])
                ax.errorbar(
                    fr,
                    100 * mean,
                    yerr=100 * err,
                    fmt="-o",
                    color=stage_color(st),
                    label=stage_label(st),
                    **ERR_KW,
                )
            setup_fraction_axis(ax, fractions)
            ax.set_xlabel("fraction of the training set")
            ax.legend(fontsize=7)
        ax.axhline(10, color="#999999", ls=":", lw=1)  # chance on 10 classes
        ax.set_title(f"{setting}: {dataset}", fontsize=9)
        ax.set_ylabel(f"test {value.replace('_', ' ')} (%)")
        ax.grid(alpha=0.3)
    hide_unused(axes, max(len(groups), 1))
    fig.suptitle(f"Test {value.replace('_', ' ')}: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def plot_balance(metrics: pd.DataFrame) -> Figure:
    """Per-class test accuracy before and after sleep on imbalanced subsets.

    One panel per setting, data set, imbalance and fraction; bars are stages (baseline,
    sleep, and when run sleep + fine-tune and fine-tune only), error bars the 95 % CI over
    seeds; minority classes are shaded.
    """
    from brainsleep.subsets import parse_imbalance

    m = metrics[metrics["imbalance"] != "none"]
    groups = list(m.groupby(["setting", "dataset", "imbalance", "fraction"], sort=False))
    fig, axes = new_figure(*grid_shape(max(len(groups), 1), max_cols=2), panel_size=(6.4, 3.4))
    if not groups:
        note(axes[0], "no imbalanced cells")
    classes = sorted(int(c.split("_")[-1]) for c in metrics.columns if c.startswith("acc_class_"))
    for ax, ((setting, dataset, imb, frac), g) in zip(axes, groups, strict=False):
        stages = [s for s in order_stages(g["stage"].unique()) if s != "strong"]
        width = 0.8 / max(len(stages), 1)
        for c, k in parse_imbalance(imb).items():
            if k < 1:
                ax.axvspan(c - 0.45, c + 0.45, color="#eeeeee", zorder=0)
        for j, st in enumerate(stages):
            s = g[g["stage"] == st]
            mean, err = _ci_arrays([s[f"acc_class_{c}"] for c in classes])
            # an accuracy lies in [0, 1]: a 3-seed t interval can reach past it, so the
            # bars stop at the bounds (the tables keep the interval as computed)
            err = np.vstack([np.minimum(err[0], mean), np.minimum(err[1], 1.0 - mean)])
            x = np.array(classes) + (j - (len(stages) - 1) / 2) * width
            ax.bar(
                x,
                100 * mean,
                width,
                yerr=100 * err,
                color=stage_color(st),
                label=stage_label(st),
                capsize=2,
            )
        ax.set_xticks(classes)
        ax.set_xlabel("class (shaded: minority)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{setting}: {dataset}, {imb}, fraction {100 * frac:g} %", fontsize=9)
        ax.legend(fontsize=7)
    hide_unused(axes, max(len(groups), 1))
    fig.suptitle(
        f"Per-class accuracy on imbalanced subsets ({100 * LEVEL:.0f} % CI over seeds, "
        "cut at 0 and 100 %)"
    )
    return fig


def plot_sparsity(metrics: pd.DataFrame) -> Figure:
    """Hidden-unit activity and weight sparseness, baseline vs sleep, one row per case.

    Left: population sparseness of the hidden activity; right: the fraction of near-zero
    weights (both higher = sparser; the measures claim 4 is judged on). Results made
    before they were recorded show the fraction of active hidden units and the Hoyer
    sparseness instead. Each row is one setting, data set, imbalance and
    fraction (the claims' *case*); mean and 95 % CI over seeds, baseline and sleep side by
    side, so that twenty settings stay readable in one figure.
    """

    m = metrics.assign(
        active_frac=layer_mean(metrics, "active_frac_"),
        pop_sparseness=layer_mean(metrics, "pop_sparseness_"),
    )
    m = m[m["stage"].isin(["baseline", "sleep"])]
    cases = list(m.groupby(["setting", "dataset", "imbalance", "fraction"], sort=True))
    n = max(len(cases), 1)
    # the measures the claim is judged on where recorded; the older ones otherwise
    robust = m["pop_sparseness"].notna().any() and "weight_small_frac" in m.columns
    fig, axes = new_figure(1, 2, panel_size=(5.2, 0.8 + 0.24 * n))
    panels = (
        (
            ("pop_sparseness", "population sparseness of hidden activity (higher = sparser)"),
            ("weight_small_frac", "fraction of near-zero weights (higher = sparser)"),
        )
        if robust
        else (
            ("active_frac", "active hidden units (fraction; lower = sparser)"),
            ("weight_hoyer", "weight Hoyer sparseness (higher = sparser)"),
        )
    )
    labels = []
    for (setting, dataset, imb, frac), _g in cases:
        extra = "" if imb == "none" else f", {imb}"
        labels.append(f"{setting}: {dataset} {100 * frac:.3g} %{extra}")
    for ax, (value, title) in zip(axes, panels, strict=True):
        if not cases or m[value].notna().sum() == 0:
            note(ax, "not recorded" if cases else "no cells")
            continue
        for offset, st in ((-0.15, "baseline"), (0.15, "sleep")):
            means, errs = [], []
            for _keys, g in cases:
                mean, err = _ci_arrays([g.loc[g["stage"] == st, value]])
                means.append(mean[0])
                errs.append(err[:, 0])
            ax.errorbar(
                means,
                np.arange(n) + offset,
                xerr=np.array(errs).T,
                fmt="o",
                color=stage_color(st),
                label=stage_label(st),
                **ERR_KW,
            )
        ax.set_yticks(range(n))
        ax.set_yticklabels(labels if ax is axes[0] else [], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(title, fontsize=8)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Sparsity before and after sleep ({100 * LEVEL:.0f} % CI over seeds)")
    return fig


FIGURES = {
    "accuracy_vs_fraction.png": plot_accuracy,
    "balance_per_class.png": plot_balance,
    "sparsity.png": plot_sparsity,
}


# -- markdown ---------------------------------------------------------------------------------


def _settings_table(settings: Sequence[Setting], metrics: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for s in settings:
        m = metrics[metrics["setting"] == s.name]
        rows.append(
            {
                "setting": s.name,
                "what": s.label,
                "device": (s.results.config or {}).get("device", "?"),
                "data sets": ", ".join(sorted(m["dataset"].unique())),
                "fractions (%)": ", ".join(f"{100 * f:g}" for f in sorted(m["fraction"].unique())),
                "imbalance": ", ".join(sorted(m["imbalance"].unique())),
                "seeds": ", ".join(str(x) for x in sorted(m["seed"].unique())),
                "stages": ", ".join(order_stages(m["stage"].unique())),
                "wall time": wall_text(s.wall_s),
            }
        )
    return pd.DataFrame(rows)


#: What each claim's cases are, before its rule (:data:`analysis.claims.RULES`).
SCOPES = {
    "limited": "Fractions <= 10 %, balanced subsets; primary effect: sleep - baseline (accuracy).",
    "recovery": "Fractions > 10 %, balanced subsets; primary effect: sleep - baseline "
    "(accuracy, a cost). Beyond the rule below: a cost above 5 points is *cost larger than "
    "claimed*; *as claimed* also needs sleep + fine-tune not below the step-matched "
    "fine-tune-only control by more than the margin (CI), else *not recovered*.",
    "balance": "Imbalanced subsets; primary effect: the gain in balanced accuracy (mean "
    "per-class recall). *As claimed* also needs the minority classes' accuracy (the mean "
    "over the classes the imbalance spec shrinks) to rise with its CI above 0, else "
    "*majority classes only*.",
    "sparsity": "All cells; two effects, each judged by the rule: the population sparseness "
    "(Treves-Rolls, normalised) of hidden ReLU outputs on test images, mean over images "
    "and hidden layers, and the fraction of near-zero weights (|w| < 0.1 x the layer's "
    "median |w|), both x 100, higher = sparser. *As claimed* needs both; the fraction of "
    "active units, of silent units and the Hoyer sparseness are shown, not judged on.",
}

#: Other results reports: (file under the report's directory, one line on what it is).
OTHER_REPORTS = (
    ("conversion_fidelity.md", "the ANN-to-SNN conversion, Diehl et al. 2015 reproduced"),
    ("class_incremental/summary.md", "sleep after each task of a class-incremental sequence"),
    (
        "class_incremental/search/summary.md",
        "the same with searched sleep (an upper bound: searched on earlier tasks' labels)",
    ),
    ("remedies/REMEDIES.md", "standard remedies for little or imbalanced data, with sleep"),
    ("input_sweep/SWEEP.md", "what the sleep input is made of (reference recipe)"),
    ("input_sweep_strong/SWEEP.md", "the same on strong-recipe networks"),
    ("input_sweep_optimum/SWEEP.md", "the pooled optimum input, tested"),
)


def _rule_text(key: str) -> str:
    from .claims import RULES

    unit, scale = ("", 100.0) if key == "sparsity" else ("points", 100.0)
    return f"{SCOPES[key]} {RULES[key].text(unit or '(x 100)', scale)}."


def _other_reports(out: Path) -> list[str]:
    lines = []
    for name, what in OTHER_REPORTS:
        if (out / name).is_file():
            lines.append(f"- [{name}]({name}): {what}.")
    return lines


def report_markdown(
    settings: Sequence[Setting],
    metrics: pd.DataFrame,
    claims: Sequence[ClaimResult],
    command: str,
    figures: Sequence[str],
    others: Sequence[str] = (),
) -> str:
    """The text of ``REPORT.md``; ``others``: lines linking the other results reports."""
    lines = [
        *generated_header("Does sleep help? The paper's claims, tested", command, settings),
        "",
        "Claims of Bazhenov, Dewasurendra, Krishnan & Delanois (arXiv 2402.10956). Every "
        "effect is a paired difference within a cell (same subset, initialisation and "
        f"seed), in points of test accuracy: mean [{100 * LEVEL:.0f} % CI] over seeds "
        "(Student t); `[-]` where there is one seed. A *case* is one setting (results "
        "directory), data set, imbalance and training fraction. Sleep parameters were chosen on a "
        "validation split carved from the same labelled budget, never on the test set.",
        "",
        "## Verdicts",
        "",
        md_table(
            pd.DataFrame(
                {
                    "#": range(1, len(claims) + 1),
                    "claim": [c.statement for c in claims],
                    "verdict": [f"**{c.verdict}**" for c in claims],
                    "why": [c.why for c in claims],
                }
            )
        ),
        "",
        "Outcomes are judged per case and corrected for the number of cases each claim "
        "tests (Holm); *refuted* means no case came out as claimed and every case was "
        "decided against it; sleeps that changed no weight are no-ops and never count as "
        "sleep (see each claim's *no-op sleeps* column).",
        "",
        *(["## Other results reports", "", *others, ""] if others else []),
        "## Settings",
        "",
        md_table(_settings_table(settings, metrics)),
        "",
        total_wall_text(settings),
        "",
        "Commands that produced them:",
        "",
    ]
    lines += [f"- `{s.name}`: `{s.command}` {s.unfinished_text}".rstrip() for s in settings]
    for i, c in enumerate(claims, start=1):
        lines += ["", f"## {i}. {c.statement}", "", f"**Verdict: {c.verdict}.** {c.why}", ""]
        lines += [f"*Source:* {SOURCES[c.key]}", "", f"*Rule:* {_rule_text(c.key)}", ""]
        lines.append(md_table(c.table) if not c.table.empty else "No cells test this claim.")
        fig = {
            "limited": "accuracy_vs_fraction.png",
            "recovery": "accuracy_vs_fraction.png",
            "balance": "balance_per_class.png",
            "sparsity": "sparsity.png",
        }[c.key]
        if fig in figures and c.key != "recovery":
            lines += ["", f"![{fig}]({fig})"]
    lines += [
        "",
        "## Files",
        "",
        f"- `{CLAIMS_CSV}`: the tables above, one row per setting, data set, imbalance "
        "and fraction.",
        f"- `{SUMMARY_CSV}`: mean and {100 * LEVEL:.0f} % CI over seeds per setting, cell "
        "group, stage and metric.",
    ]
    return "\n".join(lines) + "\n"


#: The README's results block lies between these lines (``--readme FILE`` rewrites it).
README_BLOCK = "claims-report"
README_BEGIN, README_END = markers(README_BLOCK, "report")
#: What the full report adds to the verdicts the README quotes.
README_LINK = "tables per setting, figures, the settings' commands and versions"


@fill_doc
def write_claims_report(
    paths: Sequence[str | Path], out: str | Path, command: str | None = None, log=print
) -> Path:
    """Test the paper's claims on results directories and write the report.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories, one setting each (:func:`analysis.claims.load_settings`).
    out : path-like
        Output directory (created).
    command : str, optional
        The command line to state in the report (default: this process's).
    log : callable
        Receives one line per file written.

    Returns
    -------
    pathlib.Path
        ``out/REPORT.md``.

    Raises
    ------
    %(report_raises)s
    """
    settings = load_settings(paths)
    metrics = long_metrics(settings)
    metrics = metrics.assign(minority_accuracy=minority_accuracy(metrics))
    claims = evaluate_claims(metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    drawn = metrics[~metrics["stage"].isin([ACTED, ACTED_FINETUNE])]
    for name, make in FIGURES.items():
        save_figure(make(drawn), out / name)
        written.append(name)
        log(f"wrote {out / name}")
    table = (
        pd.concat(
            [c.table.assign(claim=c.key) for c in claims if not c.table.empty], ignore_index=True
        )
        if any(not c.table.empty for c in claims)
        else pd.DataFrame(columns=["claim"])
    )
    write_csv(out / CLAIMS_CSV, table, log, float_format=None)
    write_csv(out / SUMMARY_CSV, summary_levels(metrics), log)
    if command is None:
        command = f"{ANALYSIS_COMMAND} " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = report_markdown(settings, metrics, claims, command, written, _other_reports(out))
    return write_text(out / REPORT_FILE, text, log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m brainsleep.analysis report``; returns the exit status."""
    return run_command(
        "report",
        "Test the paper's claims on results directories (one setting each: a recipe, "
        "epochs and sleep-parameter choice) and write REPORT.md, its figures, claims.csv "
        "and metrics_summary.csv.",
        write_claims_report,
        argv,
        ReadmeQuote(README_BLOCK, "Verdicts", README_LINK),
    )
