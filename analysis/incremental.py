"""Class-incremental results (``--protocol class-incremental``): forgetting and sleep.

The protocol of Tadros et al., *Nature Communications* 13, 7742 (2022) (the reference's
``run_class_task_summary.m``; :mod:`brainsleep.experiment.incremental`): tasks of a few
classes learnt in sequence by one network, with variants ``sequential``, ``sleep``,
``sleep_finetune`` and ``joint``. A run writes ``incremental.csv``
(:data:`brainsleep.formats.INCREMENTAL_COLUMNS`), not ``metrics.csv``; this module reads
it and draws:

- :func:`plot_task_accuracy`: the accuracy on each task after every task of the
  sequence, one panel per variant, mean and 95 % CI over seeds;
- :func:`plot_overall_accuracy`: the accuracy on all tasks seen so far, the variants
  side by side;
- :func:`final_table`: the accuracy on all tasks after the last one and the mean
  forgetting per variant, with 95 % CIs (``summary.md``).

``python -m brainsleep.analysis DIR`` calls :func:`write_incremental_report` when ``DIR`` is
a class-incremental results directory (:func:`is_incremental_dir`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from brainsleep.formats import (
    CELLS_DIR,
    DONE_MARKER,
    INCREMENTAL_COLUMNS,
    INCREMENTAL_CSV,
    INCREMENTAL_VARIANTS,
    OVERALL_TASK,
)

from .claims import LEVEL, Interval, mean_ci
from .figure_writer import _Writer, slug
from .markdown import rows_table, write_text
from .results import ResultsError, check_one_configuration, read_config, versions_text
from .style import hide_unused, new_figure, note

__all__ = [
    "VARIANT_COLORS",
    "final_markdown",
    "final_table",
    "is_incremental_dir",
    "plot_overall_accuracy",
    "plot_task_accuracy",
    "read_incremental",
    "task_curves",
    "write_incremental_report",
]

#: One colour per variant (sleep variants in the stage colours of sleep).
VARIANT_COLORS: dict[str, str] = {
    "sequential": "#555555",
    "sleep": "#1f77b4",
    "sleep_finetune": "#17becf",
    "joint": "#9467bd",
}
#: Legend names of the variants.
VARIANT_LABELS: dict[str, str] = {
    "sequential": "sequential (no sleep)",
    "sleep": "sleep after each task",
    "sleep_finetune": "sleep + fine-tune",
    "joint": "joint (all tasks so far)",
}
_KEY = ["dataset", "seed", "variant", "after_task", "task"]


def is_incremental_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a class-incremental run: an ``incremental.csv``, or a
    ``config.json`` whose configuration has ``protocol = "class-incremental"``."""
    root = Path(path)
    if (root / INCREMENTAL_CSV).is_file():
        return True
    config = read_config(root)
    return isinstance(config, dict) and (config.get("config") or {}).get("protocol") == (
        "class-incremental"
    )


def read_incremental(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """``incremental.csv`` of one or more results directories, merged row by row.

    Parameters
    ----------
    paths : sequence of path
        Class-incremental results directories.

    Returns
    -------
    pandas.DataFrame
        :data:`~brainsleep.formats.INCREMENTAL_COLUMNS`; ``task`` as str. Only cells
        that finished (``cells/<cell>/done.json``): the rows of a cell still running (a
        study in progress) are left out, and their cell ids listed, sorted, in
        ``df.attrs["unfinished"]``, so no table mixes seeds that reached different steps.

    Raises
    ------
    ResultsError
        A directory without a readable ``incremental.csv``, one without rows, directories
        of different configurations, or two directories with different values for one
        (dataset, seed, variant, after_task, task) (the message names it).
    """
    roots = list(dict.fromkeys(Path(x) for x in paths))
    check_one_configuration(roots, [read_config(r) for r in roots])
    frames, unfinished = [], set()
    for p in roots:
        path = p / INCREMENTAL_CSV
        try:
            df = pd.read_csv(path, dtype={"task": str, "dataset": str, "variant": str})
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise ResultsError(f"cannot read {path}: {exc}") from exc
        missing = [c for c in (*_KEY, "cell", "task_index", "accuracy") if c not in df.columns]
        if missing:
            raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
        if df.empty:
            raise ResultsError(f"{path} has no rows (no task finished yet?)")
        done = {c for c in df["cell"].unique() if (p / CELLS_DIR / c / DONE_MARKER).is_file()}
        running = set(df["cell"].unique()) - done
        unfinished |= running
        df = df[~df["cell"].isin(running)]
        if df.empty:
            raise ResultsError(f"{path}: no cell has finished yet ({', '.join(sorted(running))})")
        frames.append(df)
    if not frames:
        raise ResultsError("no results directory given")
    df = pd.concat(frames, ignore_index=True).drop_duplicates()
    twice = df[df.duplicated(_KEY, keep=False)]
    if not twice.empty:
        row = twice.iloc[0]
        raise ResultsError(
            f"{row['dataset']} seed {row['seed']} {row['variant']} after task "
            f"{row['after_task']}, task {row['task']}: different rows in two directories; "
            "cannot merge them"
        )
    df = df.reindex(columns=[c for c in INCREMENTAL_COLUMNS if c in df.columns])
    df.attrs["unfinished"] = sorted(unfinished)
    return df


def _variants(df: pd.DataFrame) -> list[str]:
    present = set(df["variant"])
    return [v for v in INCREMENTAL_VARIANTS if v in present] + sorted(
        present - set(INCREMENTAL_VARIANTS)
    )


def task_curves(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Mean and 95 % CI over seeds of ``value`` per (dataset, variant, after_task, task).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, variant, after_task, task, task_index, mean, lo, hi, n``
        (``lo``/``hi`` NaN with one seed).
    """
    rows = []
    keys = ["dataset", "variant", "after_task", "task", "task_index"]
    for key, g in df.groupby(keys, sort=True):
        iv = mean_ci(g[value].to_numpy(dtype=float))
        rows.append(dict(zip(keys, key, strict=True)) | _iv(iv))
    return pd.DataFrame(rows, columns=[*keys, "mean", "lo", "hi", "n"])


def _iv(iv: Interval) -> dict:
    return {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n}


def _task_names(df: pd.DataFrame) -> list[tuple[int, str]]:
    tasks = df[df["task_index"] > 0][["task_index", "task"]].drop_duplicates()
    return sorted((int(i), str(t)) for i, t in tasks.itertuples(index=False))


def _band(ax, x, curve: pd.DataFrame, color: str, label: str, **kw) -> None:
    ax.plot(x, curve["mean"], marker="o", ms=3, color=color, label=label, **kw)
    if curve["n"].max() >= 2:
        ax.fill_between(x, curve["lo"], curve["hi"], color=color, alpha=0.15, lw=0)


def _axis(ax, tasks: list[tuple[int, str]]) -> None:
    ax.set_xticks([i for i, _ in tasks], [f"{i}\n{t}" for i, t in tasks])
    ax.set_xlabel("after task (classes)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def plot_task_accuracy(df: pd.DataFrame, dataset: str) -> Figure:
    """Test accuracy on each task after every task of the sequence, one panel per variant.

    Each line is one task (its test images), mean over seeds with a 95 % CI band; the
    dashed black line is the accuracy on the test images of every task seen so far.
    """
    sub = df[df["dataset"] == dataset]
    if sub.empty:
        raise ValueError(f"no rows for data set {dataset!r}")
    curves = task_curves(sub)
    tasks = _task_names(sub)
    variants = _variants(sub)
    fig, axes = new_figure(1, len(variants), panel_size=(3.6, 3.4), sharey=True)
    colors = [f"C{k % 10}" for k in range(len(tasks))]
    for ax, variant in zip(axes, variants, strict=False):
        cv = curves[curves["variant"] == variant]
        for (index, name), color in zip(tasks, colors, strict=True):
            c = cv[cv["task_index"] == index].sort_values("after_task")
            _band(ax, c["after_task"], c, color, f"task {name}")
        c = cv[cv["task"] == OVERALL_TASK].sort_values("after_task")
        _band(ax, c["after_task"], c, "black", "tasks seen so far", ls="--", lw=2)
        ax.set_title(VARIANT_LABELS.get(variant, variant), fontsize=10)
        _axis(ax, tasks)
        if cv.empty:
            note(ax, "no rows")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7, loc="best")
    hide_unused(axes, len(variants))
    n = sub["seed"].nunique()
    fig.suptitle(
        f"{dataset}, class-incremental: accuracy on each task after each task "
        f"(mean, {100 * LEVEL:.0f} % CI over {n} seed{'s' if n != 1 else ''})",
        fontsize=11,
    )
    return fig


def plot_overall_accuracy(df: pd.DataFrame, dataset: str) -> Figure:
    """Accuracy on the test images of every task seen so far, the variants side by side
    (mean, 95 % CI over seeds)."""
    sub = df[(df["dataset"] == dataset) & (df["task"] == OVERALL_TASK)]
    if sub.empty:
        raise ValueError(f"no overall rows for data set {dataset!r}")
    curves = task_curves(sub)
    fig, (ax,) = new_figure(1, 1, panel_size=(5.2, 3.6))
    for variant in _variants(sub):
        c = curves[curves["variant"] == variant].sort_values("after_task")
        color = VARIANT_COLORS.get(variant, "#000000")
        _band(ax, c["after_task"], c, color, VARIANT_LABELS.get(variant, variant))
    _axis(ax, _task_names(df[df["dataset"] == dataset]))
    ax.set_ylabel("test accuracy, tasks seen so far")
    ax.legend(fontsize=8)
    ax.set_title(f"{dataset}, class-incremental (mean, {100 * LEVEL:.0f} % CI)", fontsize=10)
    return fig


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy after the last task and mean forgetting, per data set and variant.

    Parameters
    ----------
    df : pandas.DataFrame
        ``incremental.csv`` rows (:func:`read_incremental`).

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, variant) in variant order: ``n`` (seeds), ``after_task``
        (the last task), ``accuracy`` with ``accuracy_lo``/``accuracy_hi`` (the overall
        row after the last task: all tasks' test images), and ``forgetting`` with
        ``forgetting_lo``/``forgetting_hi`` (mean over the earlier tasks of their best
        earlier accuracy minus their last); Student-t 95 % CIs over seeds, NaN bounds
        with one seed.
    """
    cols = ["dataset", "variant", "n", "after_task"] + [
        f"{v}{s}" for v in ("accuracy", "forgetting") for s in ("", "_lo", "_hi")
    ]
    overall = df[df["task"] == OVERALL_TASK]
    if overall.empty:
        return pd.DataFrame(columns=cols)
    last = overall.groupby("dataset")["after_task"].transform("max")
    final = overall[overall["after_task"] == last]
    rows = []
    for dataset in sorted(final["dataset"].unique()):
        fd = final[final["dataset"] == dataset]
        for variant in _variants(fd):
            g = fd[fd["variant"] == variant]
            acc = mean_ci(g["accuracy"].to_numpy(dtype=float))
            forgetting = mean_ci(g["forgetting"].to_numpy(dtype=float) if "forgetting" in g else [])
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "n": int(g["seed"].nunique()),
                    "after_task": int(g["after_task"].iloc[0]),
                    "accuracy": acc.mean,
                    "accuracy_lo": acc.lo,
                    "accuracy_hi": acc.hi,
                    "forgetting": forgetting.mean,
                    "forgetting_lo": forgetting.lo,
                    "forgetting_hi": forgetting.hi,
                }
            )
    return pd.DataFrame(rows, columns=cols)


def _pct(mean: float, lo: float, hi: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{100 * mean:.1f} [-]"
    return f"{100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def final_markdown(table: pd.DataFrame) -> str:
    """:func:`final_table` as a Markdown table (percent, 95 % CI in brackets)."""
    header = ["data set", "variant", "seeds", "accuracy after the last task, %"]
    rows = [
        [r.dataset, r.variant, r.n, _pct(r.accuracy, r.accuracy_lo, r.accuracy_hi)]
        + [_pct(r.forgetting, r.forgetting_lo, r.forgetting_hi)]
        for r in table.itertuples(index=False)
    ]
    return rows_table([*header, "mean forgetting, %"], rows)


# What the original code reports, said once: the report states it next to what we measure.
REFERENCE_STATEMENT = (
    "What the reference reported: the authors' MATLAB code (tmtadros/SleepReplayConsolidation, "
    "MNIST/run_class_task_summary.m and FashionMNIST/run_class_task_summary.m) computes the "
    "accuracy of the control (sequential), ideal (joint) and sleep networks on every task "
    "after each task and commits no numbers; the published figures (Tadros et al., Nature "
    "Communications 2022) show sleep recovering part of the earlier tasks that sequential "
    "training forgets, below the joint upper bound. The numbers below are ours."
)


def answer_sentences(df: pd.DataFrame) -> list[str]:
    """Per data set: sleep and sleep + fine-tune against sequential training, paired by seed.

    The accuracy after the last task on all tasks' test images; the difference of each
    variant from ``sequential`` within each seed, with a Student-t CI over seeds.
    """
    overall = df[df["task"] == OVERALL_TASK]
    out = []
    for dataset in sorted(overall["dataset"].unique()):
        d = overall[overall["dataset"] == dataset]
        final = d[d["after_task"] == d["after_task"].max()]
        acc = final.pivot_table(index="seed", columns="variant", values="accuracy")
        if "sequential" not in acc:
            continue
        parts = []
        for variant in ("sleep", "sleep_finetune"):
            if variant not in acc:
                continue
            diff = mean_ci((acc[variant] - acc["sequential"]).dropna().to_numpy(dtype=float))
            if diff.n < 2:  # no interval, so no verdict either way
                verdict = "one seed: no interval"
            else:
                verdict = (
                    "a gain"
                    if diff.above_zero
                    else ("a loss" if diff.hi < 0 else "no measurable change")
                )
            parts.append(
                f"{variant.replace('_', ' + ')} changes it by "
                f"{_pct(diff.mean, diff.lo, diff.hi)} points, {verdict} "
                f"({diff.n} seed{'s' if diff.n != 1 else ''})"
            )
        seq = mean_ci(acc["sequential"].to_numpy(dtype=float))
        joint = mean_ci(acc["joint"].to_numpy(dtype=float)) if "joint" in acc else None
        out.append(
            f"**{dataset}**: after the last task, sequential training reaches "
            f"{_pct(seq.mean, seq.lo, seq.hi)} % on all tasks; "
            + ("; ".join(parts) or "no sleep variant was run")
            + "; the joint upper bound reaches "
            + (f"{_pct(joint.mean, joint.lo, joint.hi)} %." if joint else "n/a (not run).")
        )
    return out


def search_sentence(paths: Sequence[str | os.PathLike]) -> str:
    """What the runs' sleep-parameter searches scored on, said plainly: the current task's
    validation images (all sequential training has), or those of every task seen so far
    (an upper bound: earlier tasks' labels, which sequential training never sees). A run
    from before ``--search-val`` existed searched on every seen task."""
    kinds = set()
    for p in paths:
        cfg = (read_config(p) or {}).get("config", {})
        if cfg.get("search"):
            kinds.add(cfg.get("search_val") or "seen")
    if not kinds:
        return ""
    if kinds == {"task"}:
        return (
            "Sleep parameters were searched on the validation images of the task just "
            "learnt: what the protocol has at that point."
        )
    return (
        "**Upper bound:** sleep parameters were searched on the validation images of every "
        "task seen so far, labels that sequential training never sees; the protocol's own "
        "variant searches on the task just learnt (--search-val task)."
    )


def _wall_sentence(paths: Sequence[str | os.PathLike]) -> str:
    """The wall time of the runs that made the directories (from their logs)."""
    from .timing import wall_seconds, wall_sum_text

    return wall_sum_text({str(p): wall_seconds(p) for p in paths})


def _made_by(command: str, paths: Sequence[str | os.PathLike]) -> str:
    """The date, command and versions line (versions as the runs' config.json record)."""
    import time

    configs = [read_config(p) for p in paths]
    return (
        f"Generated on {time.strftime('%Y-%m-%d')} by\n\n    {command}\n\n"
        f"versions: {versions_text(configs)}. Do not edit by hand: rerun the command."
    )


def write_incremental_report(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    log: Callable[[str], None] = print,
    command: str | None = None,
):
    """Figures and ``summary.md`` of class-incremental results directories.

    Parameters
    ----------
    paths : sequence of path
        One or more class-incremental results directories (merged row by row).
    out_dir : path, optional
        Figure directory (default ``<first directory>/figures``; required with several).
    log : callable
        Receives one line per written, skipped or failed figure.
    command : str, optional
        The command line that made the report, stated in ``summary.md`` with the date and
        the versions the runs recorded (their ``config.json``).

    Returns
    -------
    analysis.report.Report
        What was written (``incremental_tasks_<dataset>.png``,
        ``incremental_overall_<dataset>.png``, ``summary.md``).

    Raises
    ------
    ResultsError
        See :func:`read_incremental`.
    ValueError
        Several directories and no ``out_dir``.
    """
    paths = list(paths)
    if out_dir is None and len(paths) > 1:
        raise ValueError("out_dir is required for results merged from several directories")
    df = read_incremental(paths)
    out = Path(out_dir) if out_dir is not None else Path(paths[0]) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out, log)
    for dataset in sorted(df["dataset"].unique()):
        w.figure(
            f"incremental_tasks_{slug(dataset)}.png",
            lambda d=dataset: plot_task_accuracy(df, d),
        )
        w.figure(
            f"incremental_overall_{slug(dataset)}.png",
            lambda d=dataset: plot_overall_accuracy(df, d),
        )
    table = final_table(df)
    n_tasks = int(df["after_task"].max())
    text = "\n\n".join(
        [
            "# Class-incremental learning (the original SRC protocol)",
            *([_made_by(command, paths)] if command else []),
            f"Results: {', '.join(str(p) for p in paths)}. {n_tasks} task(s) in sequence; "
            "each variant evaluated on every task's test images after each task "
            "(incremental.csv). Forgetting of a task: its best accuracy at an earlier step "
            f"minus its accuracy after the last task. Mean and Student-t "
            f"{100 * LEVEL:.0f} % CI over seeds.",
            *(
                [f"Not finished, left out: {', '.join(df.attrs['unfinished'])}."]
                if df.attrs.get("unfinished")
                else []
            ),
            _wall_sentence(paths),
            *([sentence] if (sentence := search_sentence(paths)) else []),
            REFERENCE_STATEMENT,
            *answer_sentences(df),
            final_markdown(table),
            "Figures: " + ", ".join(p.name for p in w.report.written)
            if w.report.written
            else "No figure written.",
        ]
    )
    if w.report.failed:
        text += "\n\nFailed: " + "; ".join(f"{n}: {m}" for n, m in w.report.failed)
    w.report.summary = write_text(out / "summary.md", text + "\n", log)
    return w.report
