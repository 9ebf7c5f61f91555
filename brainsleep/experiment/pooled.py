"""One sleep parameter set for every seed of a setting, chosen on validation: the pooled
optimum.

Each cell's search (:mod:`brainsleep.experiment.search`) picks its own best trial on its
own validation split. With small splits the choices disagree from seed to seed (MNIST
1 %: 60 validation images per seed, and three different best trials), so there is no one
"searched optimum" to sweep around. This module re-scores the union of every seed's top
trials on every seed's validation split, each with that cell's own baseline, and picks
the set with the highest mean validation gain over the seeds (ties: the earliest
candidate, the start first). The test set is never read.

Command line::

    python -m brainsleep.experiment.pooled RUN_DIR --setting mnist_f0.01_none --out best.json

writes ``best.json`` (a ``--sleep-params`` file), ``best.csv`` (every candidate on every
seed) and ``best.md`` (the command, the rule, the table and the versions).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brainsleep.cli import HelpFormatter
from brainsleep.formats import (
    CELLS_DIR,
    CONFIG_FILE,
    SEARCH_MARKER,
    parse_cell_id,
    stage_marker,
)

from .config import ConfigError, ExperimentConfig

TOP = 3  # best trials per seed that become candidates
_SEED_SUFFIX = re.compile(r"_s\d+$")


@dataclass(frozen=True)
class Candidate:
    """A parameter set to re-score: ``params`` as in ``models/presets.py``; ``source`` says
    where it came from (``start``, or ``<cell id> trial <k>``)."""

    params: dict
    source: str


@dataclass(frozen=True)
class PooledOptimum:
    """What :func:`pooled_optimum` found.

    Attributes
    ----------
    best : Candidate
        The chosen set (highest mean validation gain over the seeds).
    table : list of dict
        One row per candidate and seed: candidate, source, cell, seed, score_name,
        val_score, baseline_val_score, gain (points), search_score (the score the cell's
        own search recorded for it, or None), spikes_layer<k>.
    setting : str
        The setting (``<dataset>_f<fraction>_<imbalance>``).
    """

    best: Candidate
    table: list[dict]
    setting: str

    def mean_gains(self) -> list[tuple[int, float]]:
        """(candidate, mean gain in points over the seeds), in candidate order."""
        return mean_gains(self.table)


def setting_of(cell_id: str) -> str:
    """A cell id without its seed: the setting its seeds share."""
    return _SEED_SUFFIX.sub("", cell_id)


def read_run(run_dir: Path, setting: str | None) -> tuple[ExperimentConfig, str, list[str]]:
    """The run's configuration, the setting and its cells (ids), checked, reading only.

    Raises
    ------
    ConfigError
        No results directory or config.json, a run without a search, an unknown or (with
        several settings and none given) ambiguous setting, fewer than 2 seeds, or a cell
        whose baseline or search is missing or fails its checksums.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: no {CONFIG_FILE}; give a results directory")
    try:
        cfg = ExperimentConfig(**{**json.loads(config_path.read_text())["config"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{config_path}: not a brainsleep run's config ({exc})") from exc
    if not cfg.search:
        raise ConfigError(f"{run_dir}: the run has no search; run it with --search N first")
    cells = sorted(p.name for p in (run_dir / CELLS_DIR).glob("*") if p.is_dir())
    settings = sorted({setting_of(c) for c in cells})
    if setting is None:
        if len(settings) != 1:
            raise ConfigError(f"{run_dir} holds {len(settings)} settings; pick one with --setting")
        setting = settings[0]
    if setting not in settings:
        raise ConfigError(f"--setting {setting}: not in {run_dir}; it has {', '.join(settings)}")
    chosen = [c for c in cells if setting_of(c) == setting]
    if len(chosen) < 2:
        raise ConfigError(f"{setting}: one seed only; a pooled optimum needs 2 or more")
    from .results import verify_marker

    fingerprint = cfg.fingerprint()
    for cell in chosen:
        for step in (stage_marker("baseline"), SEARCH_MARKER):
            body, problems = verify_marker(run_dir / CELLS_DIR / cell / step)
            if not problems and body.get("fingerprint") != fingerprint:
                problems = [f"{step} was written by another configuration"]
            if problems:
                raise ConfigError(f"{run_dir}/{CELLS_DIR}/{cell}: {problems[0]}; rerun the run")
    return cfg, setting, chosen


def candidates(run_dir: Path, cells: Sequence[str], start: dict, space, top: int = TOP):
    """The start, then each cell's ``top`` best completed trials (highest score, then
    lowest trial), without repeats."""
    from .results import read_marker

    out = [Candidate(space.start_values(start), "start")]
    seen = {_key(out[0].params)}
    for cell in cells:
        history = read_marker(Path(run_dir) / CELLS_DIR / cell / SEARCH_MARKER)["history"]
        done = [r for r in history if r["state"] == "COMPLETE"]
        for row in sorted(done, key=lambda r: (-r["score"], r["trial"]))[:top]:
            params = space.from_columns(start, row)
            if (key := _key(params)) not in seen:
                seen.add(key)
                out.append(Candidate(params, f"{cell} trial {row['trial']}"))
    return out


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def pooled_optimum(
    run_dir: str | Path, setting: str | None = None, top: int = TOP, progress: bool = True
) -> PooledOptimum:
    """Re-score every seed's best trials on every seed's validation split; pick one set.

    Parameters
    ----------
    run_dir : str or Path
        A results directory of ``python -m brainsleep.experiment ... --search N``
        (its cells' baselines and searches are read, never changed).
    setting : str, optional
        ``<dataset>_f<fraction>_<imbalance>`` (a cell id without ``_s<seed>``); needed
        when the directory holds more than one.
    top : int
        Best trials per seed that become candidates (with the start).
    progress : bool
        A tqdm bar over the sleeps.

    Returns
    -------
    PooledOptimum

    Raises
    ------
    ConfigError
        See :func:`read_run`; raised before anything is computed.
    """
    from tqdm.auto import tqdm

    from brainsleep import ann

    from .config import start_params
    from .pipeline import Cell, CellRunner, load_data
    from .search import SearchSpace

    run_dir = Path(run_dir)
    cfg, setting, cells = read_run(run_dir, setting)
    cfg = ExperimentConfig(**{**cfg.to_dict(), "progress": False})
    dataset = parse_cell_id(cells[0]).dataset
    space = SearchSpace.for_model(cfg.model, len(cfg.hidden) + 1)
    cands = candidates(run_dir, cells, start_params(cfg, dataset), space, top)
    data = load_data(cfg)
    rows = []
    with tqdm(total=len(cands) * len(cells), desc="pooled optimum", disable=not progress) as bar:
        for cell_id in cells:
            key = parse_cell_id(cell_id)
            cell = Cell(key.dataset, key.fraction, key.imbalance, key.seed)
            runner = CellRunner(cfg, cell, data[cell.dataset], run_dir)
            balanced = cell.imbalance != "none"
            model = runner.baseline_model()
            base = ann.score(model, runner.xv, runner.yv, balanced=balanced)
            recorded = _recorded_scores(run_dir / CELLS_DIR / cell_id, space, cfg, dataset)
            for index, cand in enumerate(cands):
                result = runner.trial(model, cand.params)
                rows.append(
                    {
                        "candidate": index,
                        "source": cand.source,
                        "cell": cell_id,
                        "seed": cell.seed,
                        "score_name": "val_balanced_accuracy" if balanced else "val_accuracy",
                        "val_score": result.score,
                        "baseline_val_score": base,
                        "gain": 100 * (result.score - base),
                        "search_score": recorded.get(_key(cand.params)),
                        **{f"spikes_layer{k}": v for k, v in sorted(result.spikes.items())},
                    }
                )
                bar.update()
    return PooledOptimum(cands[choose(mean_gains(rows))], rows, setting)


def mean_gains(table: Sequence[dict]) -> list[tuple[int, float]]:
    """(candidate, mean gain in points over the seeds), in candidate order."""
    by: dict[int, list[float]] = {}
    for row in table:
        by.setdefault(row["candidate"], []).append(row["gain"])
    return [(k, sum(v) / len(v)) for k, v in sorted(by.items())]


def choose(means: Sequence[tuple[int, float]]) -> int:
    """The candidate with the highest mean gain; on ties the earliest (the start first)."""
    return max(means, key=lambda kv: (kv[1], -kv[0]))[0]


def _recorded_scores(cell_dir: Path, space, cfg: ExperimentConfig, dataset: str) -> dict:
    """The cell's own search scores by parameter set (a re-score must reproduce them)."""
    from .config import start_params
    from .results import read_marker

    start = start_params(cfg, dataset)
    history = read_marker(cell_dir / SEARCH_MARKER)["history"]
    return {
        _key(space.from_columns(start, r)): r["score"] for r in history if r["state"] == "COMPLETE"
    }


def write_outputs(result: PooledOptimum, out: Path, command: str, run_dir: Path) -> None:
    """``out`` (the chosen set, a ``--sleep-params`` file), ``out.csv`` and ``out.md``."""
    import pandas as pd

    from brainsleep.atomic import atomic_write_json, atomic_write_with

    from .pipeline import versions

    table = pd.DataFrame(result.table)
    means = dict(result.mean_gains())
    best = choose(result.mean_gains())
    drift = (table["val_score"] - table["search_score"]).abs().max()
    lines = [
        f"# Pooled optimum of {result.setting}",
        "",
        "Made by",
        "",
        f"    {command}",
        "",
        f"from `{run_dir}` ({table['cell'].nunique()} seeds); versions: "
        + ", ".join(f"{k} {v}" for k, v in versions().items())
        + ". Do not edit by hand: rerun the command.",
        "",
        "Candidates: the start and each seed's best search trials, re-scored on every "
        "seed's validation split with that seed's baseline; the gain is the slept network's "
        f"{table['score_name'].iloc[0]} minus the baseline's, in points. Chosen: the highest "
        "mean gain over the seeds (ties: the earliest candidate). The test set is not read.",
        "",
        f"Chosen: candidate {best} ({result.best.source}), mean gain {means[best]:+.1f} points.",
        "",
        *_silent_note(table, best),
        "Re-scoring a cell's own trials reproduces its search's scores to "
        + (f"{drift:.2g}" if pd.notna(drift) else "- (none re-scored)")
        + " (largest absolute difference).",
        "",
        "| candidate | source | "
        + " | ".join(f"seed {s}" for s in sorted(table.seed.unique()))
        + " | mean |",
        "|---|---|" + "---|" * (table["seed"].nunique() + 1),
    ]
    for k, group in table.groupby("candidate", sort=True):
        gains = " | ".join(f"{g:+.1f}" for g in group.sort_values("seed")["gain"])
        lines.append(f"| {k} | {group['source'].iloc[0]} | {gains} | {means[k]:+.1f} |")
    lines += ["", "Chosen parameters:", "", "```json", json.dumps(result.best.params, indent=2)]
    lines += ["```", ""]
    atomic_write_json(out, result.best.params)
    atomic_write_with(out.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_with(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text("\n".join(lines)))


def _silent_note(table, best: int) -> list[str]:
    """A paragraph when the chosen set makes no hidden-layer spike on some seeds: there
    sleep leaves the baseline unchanged, the search's way of switching sleep off."""
    spikes = [c for c in table.columns if c.startswith("spikes_layer")]
    chosen = table[table["candidate"] == best]
    silent = int((chosen[spikes].fillna(0).sum(axis=1) == 0).sum()) if spikes else 0
    if not silent:
        return []
    return [
        f"The chosen set makes no spike in any layer on {silent} of {len(chosen)} seeds: "
        "there sleep leaves the baseline unchanged. No candidate that changes these "
        "networks does better on validation, on average, than leaving them as they are.",
        "",
    ]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m brainsleep.experiment.pooled`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m brainsleep.experiment.pooled",
        description=(
            "Pick one sleep parameter set for every seed of a setting: re-score each seed's "
            "best search trials on every seed's validation split; the highest mean gain wins."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", type=Path, help="a results directory of a run with --search N")
    p.add_argument(
        "--setting",
        default=None,
        help="<dataset>_f<fraction>_<imbalance>, e.g. mnist_f0.01_none (needed when the "
        "directory holds several)",
    )
    p.add_argument("--top", type=int, default=TOP, help="best trials per seed to re-score")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the chosen set as a --sleep-params JSON file (a .csv and a .md go beside it)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.suffix != ".json":
        print(f"error: --out {args.out}: give a .json file name", file=sys.stderr)
        return 2
    if args.top < 1:
        print(f"error: --top {args.top}: give 1 or more", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"error: --out {args.out}: no folder {args.out.parent}", file=sys.stderr)
        return 2
    try:
        read_run(args.run_dir, args.setting)  # every check before any computing
        result = pooled_optimum(args.run_dir, args.setting, args.top, not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m brainsleep.experiment.pooled " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    write_outputs(result, args.out, command, args.run_dir)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
