"""``python -m brainsleep.analysis remedies DIR [DIR ...] --out OUT``: remedies for little or
imbalanced data, with and without sleep (``studies/remedies.toml``).

A directory whose ``config.json`` names remedies (``--remedy``) gives *remedy alone* (its
baseline stage) and *remedy + sleep* (its sleep stage); a plain directory gives the
baseline and *sleep alone*. Every other stage present is an arm too (the step-matched
fine-tune-only control, sleep + fine-tune, the strong recipe). Per setting (data set,
fraction, imbalance and training recipe: a remedy on the strong recipe, as logit-adjust
needs, ranks against sleep on the same strong networks) the arms are ranked by mean test
accuracy, balanced accuracy on imbalanced subsets, with Student-t 95 % CIs over seeds
(:func:`analysis.claims.level_of`). Then: does sleep add anything on top of the best
remedy? The paired difference remedy + sleep - remedy alone within the remedy's cells
(:func:`analysis.claims.paired`, the claims report's seed pairing); it *adds* only when
its CI is above 0.

Writes ``OUT/REMEDIES.md``, ``remedies.csv`` (the ranking), ``sleep_adds.csv`` (the
paired differences) and ``remedies.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.docstrings import fill_doc
from brainsleep.formats import order_stages

from .claims import (
    LEVEL,
    NEAR_CHANCE,
    Interval,
    Setting,
    level_of,
    load_settings,
    paired,
    percent,
    total_wall_text,
)
from .effects import intervals
from .markdown import generated_header, md_table, write_csv, write_text
from .report_command import ReadmeQuote, run_command
from .style import ERR_KW, note, save_figure, stage_color
from .sweep import _title, above_zero, config_of, stage_metrics
from .sweep_figures import _panels
from .timing import wall_text

REMEDIES_FILE = "REMEDIES.md"
REMEDIES_CSV = "remedies.csv"
SLEEP_ADDS_CSV = "sleep_adds.csv"
FIGURE = "remedies.png"
# A setting is a data set, imbalance and fraction trained with one recipe: remedies on the
# strong recipe (logit-adjust needs its cross-entropy) rank against sleep on strong networks.
GROUP = ["dataset", "imbalance", "fraction", "recipe"]

#: Arm label and kind of each stage, in a plain run and in a remedy's run (``{r}``).
ARMS: dict[str, tuple[str, str, str, str]] = {
    # stage: (plain label, plain kind, remedy label, remedy kind)
    "baseline": ("baseline", "baseline", "{r} alone", "remedy"),
    "sleep": ("sleep alone", "sleep", "{r} + sleep", "remedy + sleep"),
    "sleep_finetune": (
        "sleep + fine-tune",
        "sleep + fine-tune",
        "{r} + sleep + fine-tune",
        "remedy + sleep + fine-tune",
    ),
    "finetune_only": ("fine-tune only", "control", "{r} + fine-tune only", "remedy control"),
    "strong": ("strong recipe", "strong", "strong recipe ({r} run)", "strong"),
}
KIND_COLORS = {
    "baseline": stage_color("baseline"),
    "sleep": stage_color("sleep"),
    "sleep + fine-tune": stage_color("sleep_finetune"),
    "control": stage_color("finetune_only"),
    "strong": stage_color("strong"),
    "remedy": "#2ca02c",
    "remedy + sleep": "#d62728",
    "remedy + sleep + fine-tune": "#e377c2",
    "remedy control": "#bcbd22",
}
#: Columns of ``remedies.csv``.
CSV_COLUMNS = [*GROUP, "metric", "rank", "arm", "kind", "remedy", "setting", "stage"]
CSV_COLUMNS += ["n_seeds", "mean", "ci_low", "ci_high", "val_mean", "ranked_on"]
#: What ranks a group's arms, and chooses its best remedy: validation, never test.
RANKED_ON_VALIDATION = "validation"
#: A group whose runs record no validation score: shown by test, nothing chosen.
NOT_RANKED = "test, shown only (no validation recorded: nothing is chosen)"


def remedy_of(setting: Setting) -> str:
    """The remedies a directory trained with, joined by ``+``; ``""`` for a plain run."""
    return "+".join(config_of(setting).get("remedies") or ())


def recipe_of(setting: Setting) -> str:
    """The training recipe of a directory (``reference`` when its config does not say)."""
    return str(config_of(setting).get("recipe") or "reference")


def metric_for(imbalance: str) -> str:
    """``accuracy`` on balanced subsets, ``balanced_accuracy`` on imbalanced ones."""
    return "accuracy" if imbalance == "none" else "balanced_accuracy"


def arm_of(remedy: str, stage: str) -> tuple[str, str]:
    """Label and kind of a stage of a run with ``remedy`` (``""``: none)."""
    plain, plain_kind, named, kind = ARMS.get(stage, (stage, stage, f"{{r}} {stage}", stage))
    return (named.format(r=remedy), kind) if remedy else (plain, plain_kind)


def ranking(settings: Sequence[Setting], metrics: pd.DataFrame) -> pd.DataFrame:
    """Every arm of every setting with its mean and 95 % CI over seeds, ranked.

    Parameters
    ----------
    settings : sequence of Setting
        The directories (their config names the remedies).
    metrics : pandas.DataFrame
        :func:`analysis.sweep.stage_metrics` rows.

    Returns
    -------
    pandas.DataFrame
        :data:`CSV_COLUMNS`; ``rank`` 1 is the best mean within a data set, imbalance and
        fraction (ties share the lower rank). An arm label two directories would share
        gets the directory's name in brackets.
    """
    remedy = {s.name: remedy_of(s) for s in settings}
    recipe = {s.name: recipe_of(s) for s in settings}
    recs = []
    for imbalanced in (False, True):
        sub = metrics[(metrics["imbalance"] != "none") == imbalanced]
        metric = "balanced_accuracy" if imbalanced else "accuracy"
        if sub.empty or metric not in sub.columns:
            continue
        val_metric = f"val_{metric}"
        for stage in order_stages(sub["stage"].unique()):
            val = (
                level_of(sub, stage, val_metric)["effect"]
                if val_metric in sub.columns
                else pd.Series(dtype=object)
            )
            for (setting, ds, imb, frac), iv in level_of(sub, stage, metric)["effect"].items():
                v = val.get((setting, ds, imb, frac))
                arm, kind = arm_of(remedy[setting], stage)
                recs.append(
                    {
                        "dataset": ds,
                        "imbalance": imb,
                        "fraction": frac,
                        "recipe": recipe[setting],
                        "metric": metric,
                        "arm": arm,
                        "kind": kind,
                        "remedy": remedy[setting] or "none",
                        "setting": setting,
                        "stage": stage,
                        "n_seeds": iv.n,
                        "mean": iv.mean,
                        "ci_low": iv.lo,
                        "ci_high": iv.hi,
                        "val_mean": v.mean if isinstance(v, Interval) else np.nan,
                    }
                )
    out = pd.DataFrame(recs, columns=[c for c in CSV_COLUMNS if c not in ("rank", "ranked_on")])
    if out.empty:
        return out.reindex(columns=CSV_COLUMNS)
    dup = out.duplicated([*GROUP, "arm"], keep=False)
    out.loc[dup, "arm"] = out.loc[dup, "arm"] + " [" + out.loc[dup, "setting"] + "]"
    # ranked on validation where every arm of the group records it (chosen on
    # validation, reported on test); else shown by test and nothing is chosen
    on_val = out.groupby(GROUP)["val_mean"].transform(lambda v: bool(v.notna().all()))
    out["ranked_on"] = np.where(on_val, RANKED_ON_VALIDATION, NOT_RANKED)
    key = out["val_mean"].where(on_val.astype(bool), out["mean"])
    out["rank"] = key.groupby([out[c] for c in GROUP]).rank(ascending=False, method="min")
    out["rank"] = out["rank"].astype(int)
    out["_imbalanced"] = out["imbalance"] != "none"  # balanced settings first
    out["_strong"] = out["recipe"] != "reference"  # the reference recipe's ranking first
    order = ["dataset", "_imbalanced", "imbalance", "fraction", "_strong", "recipe", "rank", "arm"]
    return out.sort_values(order).reset_index(drop=True)[CSV_COLUMNS]


def _remedy_sleep_vs_sleep(cell: pd.DataFrame, remedy_dir: str, plain_dir: str, metric: str):
    """remedy + sleep - sleep alone, paired by seed (same subset and initialisation) across
    the two directories: their sleep stages relabelled as one setting's two stages."""
    both = pd.concat(
        [
            cell[(cell["setting"] == plain_dir) & (cell["stage"] == "sleep")],
            cell[(cell["setting"] == remedy_dir) & (cell["stage"] == "sleep")].assign(
                stage="remedy_sleep"
            ),
        ]
    ).assign(setting=remedy_dir)
    return paired(both, "remedy_sleep", "sleep", metric)


def _only(effect: pd.DataFrame) -> Interval:
    """The one interval of a one-case :func:`paired` result (n = 0 when none)."""
    vals = list(effect["effect"])
    return vals[0] if vals else Interval(np.nan, np.nan, np.nan, 0)


def sleep_adds(metrics: pd.DataFrame, ranked: pd.DataFrame) -> pd.DataFrame:
    """Does sleep add to the best remedy? Paired differences per setting.

    The best remedy is the remedy-alone arm with the highest mean. Two differences, by
    seed: remedy + sleep - remedy alone (within the remedy's cells) and remedy + sleep -
    sleep alone (the remedy's run against the plain run with the same seed).

    Returns
    -------
    pandas.DataFrame
        One row per setting and comparison: ``dataset, imbalance, fraction, metric,
        best_remedy, comparison, n_seeds, mean, ci_low, ci_high, adds`` (CI above 0);
        ``best_remedy`` empty and no interval when no remedy was run there.
    """
    recs = []
    for (ds, imb, frac, recipe), g in ranked.groupby(GROUP, sort=False):
        metric = metric_for(imb)
        cell = metrics[
            (metrics["dataset"] == ds)
            & (metrics["imbalance"] == imb)
            & (metrics["fraction"] == frac)
            & metrics["setting"].isin(g["setting"])  # this recipe's directories
        ]
        remedies = g[g["kind"] == "remedy"]
        # the best remedy is chosen on validation; without it none is chosen (a best
        # chosen on test accuracy would be chosen on the test set)
        chosen = not remedies.empty and remedies["val_mean"].notna().all()
        # without validation scores nothing is chosen: sleep on top of every remedy
        shown = (
            [remedies.loc[remedies["val_mean"].idxmax()]]
            if chosen
            else [r for _, r in remedies.iterrows()] or [None]
        )
        plain = g.loc[g["kind"] == "sleep", "setting"]
        for arm in shown:
            comparisons = {"remedy + sleep - remedy": Interval(np.nan, np.nan, np.nan, 0)}
            comparisons["remedy + sleep - sleep alone"] = Interval(np.nan, np.nan, np.nan, 0)
            if arm is not None:
                own = cell[cell["setting"] == arm["setting"]]
                comparisons["remedy + sleep - remedy"] = _only(
                    paired(own, "sleep", "baseline", metric)
                )
                if not plain.empty:
                    comparisons["remedy + sleep - sleep alone"] = _only(
                        _remedy_sleep_vs_sleep(cell, arm["setting"], plain.iloc[0], metric)
                    )
            for name, iv in comparisons.items():
                recs.append(
                    {
                        "dataset": ds,
                        "imbalance": imb,
                        "fraction": frac,
                        "recipe": recipe,
                        "metric": metric,
                        "best_remedy": arm["remedy"] if chosen else "",
                        "remedy": "" if arm is None else arm["remedy"],
                        "comparison": name,
                        "n_seeds": iv.n,
                        "mean": iv.mean,
                        "ci_low": iv.lo,
                        "ci_high": iv.hi,
                        "adds": above_zero(iv),
                    }
                )
    return pd.DataFrame(recs)


def _setting_text(ds: str, imb: str, frac: float, recipe: str) -> str:
    return f"{_title(ds, imb)} at {percent(frac)}, {recipe} recipe"


def adds_sentence(rows: pd.DataFrame, ranked: pd.DataFrame) -> str:
    """One sentence for one setting: does sleep add on top of the best remedy (chosen on
    validation), or on top of each remedy where no validation score chooses one?

    Parameters
    ----------
    rows : pandas.DataFrame
        The setting's :func:`sleep_adds` rows.
    ranked : pandas.DataFrame
        The setting's :func:`ranking` rows.
    """
    first = rows.iloc[0]
    where = _setting_text(first["dataset"], first["imbalance"], first["fraction"], first["recipe"])
    metric = first["metric"].replace("_", " ")
    if not first["remedy"]:
        return f"{where}: no remedy was run, so sleep on top of a remedy is not measured."
    parts = []
    for r, own in rows.groupby("remedy", sort=False):
        by = dict(zip(own["comparison"], intervals(own), strict=True))
        alone = ranked[(ranked["kind"] == "remedy") & (ranked["remedy"] == r)].iloc[0]
        name = f"the best remedy on validation, {r}" if first["best_remedy"] else r
        parts.append(_on_top_text(r, name, by, alone, metric))
    text = f"{where}: " + "; ".join(parts)
    if not first["best_remedy"]:
        text += (
            " (no remedy is named best: these runs record no validation accuracy, and a best "
            "chosen on test accuracy would be chosen on the test set)"
        )
    strong = ranked[ranked["kind"] == "strong"]
    if len(strong):
        text += f"; the strong recipe reaches {100 * strong['mean'].iloc[0]:.1f} %"
    return text + "."


def _on_top_text(r: str, name: str, by: dict, alone: pd.Series, metric: str) -> str:
    """What sleep does on top of remedy ``r``: the paired differences, in words."""
    best = f"{name} ({100 * alone['mean']:.1f} % test {metric} alone)"
    on_top = by["remedy + sleep - remedy"]
    diff = f"{r} + sleep - {r} = {on_top.text()} points"
    if on_top.n == 0:
        text = f"sleep on top of {best} is not measured (its run has no sleep stage)"
    elif above_zero(on_top):
        text = f"sleep adds to {best}: {diff}, CI above 0"
    elif on_top.n < 2:
        text = f"sleep does not add to {best} as far as one seed tells: {diff}"
    elif on_top.hi < 0:
        text = f"sleep does not add to {best}, it costs: {diff}, CI below 0"
    else:
        text = f"sleep does not add to {best}: {diff}, CI reaches 0"
    vs = by["remedy + sleep - sleep alone"]
    if vs.n:
        text += f"; against sleep alone, {r} + sleep - sleep = {vs.text()} points"
    else:
        text += "; against sleep alone: not measured"
    if alone["mean"] < NEAR_CHANCE:
        # as in the claims report: sleep then repairs a failed training, say so
        text += (
            f" ({r} alone is near chance, < {100 * NEAR_CHANCE:.0f} %: the recipe had not "
            "learnt, so this compares repairs of a failed training)"
        )
    return text


def plot_ranking(ranked: pd.DataFrame) -> Figure:
    """Each setting's arms, best first: mean and 95 % CI over seeds, coloured by kind."""
    fig, axes, groups = _panels(ranked, GROUP, sort=False, panel_size=(5.6, 3.8))
    for ax, ((ds, imb, frac, recipe), g) in zip(axes, groups, strict=False):
        g = g.iloc[::-1]
        m = 100 * g["mean"].to_numpy(float)
        err = 100 * np.vstack(
            [
                np.nan_to_num(g["mean"].to_numpy(float) - g["ci_low"].to_numpy(float)),
                np.nan_to_num(g["ci_high"].to_numpy(float) - g["mean"].to_numpy(float)),
            ]
        )
        for i, (mean, kind) in enumerate(zip(m, g["kind"], strict=True)):
            ax.errorbar(
                mean,
                i,
                xerr=err[:, i : i + 1],
                fmt="o",
                color=KIND_COLORS.get(kind, "#000000"),
                **ERR_KW,
            )
        ax.set_yticks(range(len(g)))
        ax.set_yticklabels(g["arm"], fontsize=7)
        ax.set_xlabel(f"test {metric_for(imb).replace('_', ' ')} (%)")
        ax.set_title(_setting_text(ds, imb, frac, recipe), fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    if not groups:
        note(axes[0], "no cells")
    fig.suptitle(f"Remedies with and without sleep: mean and {100 * LEVEL:.0f} % CI over seeds")
    return fig


def remedies_markdown(
    settings: Sequence[Setting],
    ranked: pd.DataFrame,
    adds: pd.DataFrame,
    command: str,
) -> str:
    """The text of ``REMEDIES.md``."""
    lines = [
        *generated_header(
            "Remedies for little or imbalanced data, with and without sleep", command, settings
        ),
        "",
        "A remedy alone is the baseline stage of the run trained with it, remedy + sleep "
        "that run's sleep stage; sleep alone is the sleep stage of the plain run of the same "
        "recipe (each recipe has its own ranking). Arms are ranked by mean validation "
        "accuracy (balanced accuracy on imbalanced subsets; the validation split carved from "
        "the same labelled budget) and reported by test accuracy, "
        f"[{100 * LEVEL:.0f} % CI] over seeds (Student t): nothing is chosen on the test "
        "set. Where the runs record no validation score the arms are shown in test order "
        "and no best is named. The best remedy is the one with the highest mean validation "
        "score alone; *sleep adds* to it only when the paired difference remedy + sleep - "
        "remedy alone (within each seed's cell) has its CI above 0.",
        "",
        "## Does sleep add to the best remedy?",
        "",
    ]
    if adds.empty:
        lines.append("Not measured: no cells.")
    arms = dict(list(ranked.groupby(GROUP, sort=False)))
    for keys, rows in adds.groupby(GROUP, sort=False):
        lines.append(f"- {adds_sentence(rows, arms[keys])}")
    lines += ["", f"![{FIGURE}]({FIGURE})", "", "## Rankings"]
    for (ds, imb, frac, recipe), g in ranked.groupby(GROUP, sort=False):
        lines += [
            "",
            f"### {_setting_text(ds, imb, frac, recipe)} ({g['metric'].iloc[0].replace('_', ' ')})",
            "",
            f"Ranked on {g['ranked_on'].iloc[0]}.",
            "",
        ]
        table = pd.DataFrame(
            {
                "rank": g["rank"],
                "arm": g["arm"],
                "mean [CI] (%)": [iv.text(sign=False) for iv in intervals(g)],
                "validation mean (%)": [
                    "n/a" if not np.isfinite(v) else f"{100 * v:.1f}" for v in g["val_mean"]
                ],
                "seeds": g["n_seeds"],
                "directory": g["setting"],
            }
        )
        lines.append(md_table(table))
    lines += ["", "## Directories", ""]
    for s in settings:
        line = f"- `{s.name}`: remedies {remedy_of(s) or 'none'}, wall time {wall_text(s.wall_s)}"
        lines.append(f"{line}; `{s.command}` {s.unfinished_text}".rstrip())
    lines += ["", total_wall_text(settings)]
    lines += [
        "",
        "## Files",
        "",
        f"- `{REMEDIES_CSV}`: the rankings: " + ", ".join(CSV_COLUMNS) + " (accuracy 0-1).",
        f"- `{SLEEP_ADDS_CSV}`: the paired differences per setting (remedy + sleep - remedy, "
        "remedy + sleep - sleep alone) and whether the CI is above 0.",
    ]
    return "\n".join(lines) + "\n"


@fill_doc
def write_remedies_report(
    paths: Sequence[str | Path], out: str | Path, command: str | None = None, log=print
) -> Path:
    """Rank remedies with and without sleep and write ``REMEDIES.md`` and its tables.

    Parameters
    ----------
    paths : sequence of path-like
        Results directories: plain runs and runs with ``--remedy``.
    out : path-like
        Output directory (created).
    %(report_command_log)s

    Returns
    -------
    pathlib.Path
        ``out/REMEDIES.md``.

    Raises
    ------
    %(report_raises)s
    """
    settings = load_settings(paths)
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    adds = sleep_adds(metrics, ranked)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(plot_ranking(ranked), out / FIGURE)
    log(f"wrote {out / FIGURE}")
    write_csv(out / REMEDIES_CSV, ranked, log)
    write_csv(out / SLEEP_ADDS_CSV, adds, log)
    command = command or f"{ANALYSIS_COMMAND} remedies"
    return write_text(out / REMEDIES_FILE, remedies_markdown(settings, ranked, adds, command), log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m brainsleep.analysis remedies``; returns the exit status."""
    return run_command(
        "remedies",
        "Rank the remedies for little or imbalanced data, with and without sleep "
        "(studies/remedies.toml), per data set, fraction and imbalance, and say whether sleep "
        "adds to the best remedy: REMEDIES.md, remedies.csv, sleep_adds.csv, remedies.png.",
        write_remedies_report,
        argv,
        ReadmeQuote(
            "remedies",
            "Does sleep add to the best remedy?",
            "the rankings with CIs per setting, the figure, every directory",
        ),
    )
