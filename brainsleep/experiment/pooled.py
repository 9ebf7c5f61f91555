"""One sleep parameter set for every seed of a setting, chosen on validation: the pooled
optimum.

Why one file of this length: choosing the pooled optimum, re-scoring bit for bit and
writing its record are one command under one invariant.

Each cell's search (:mod:`brainsleep.experiment.search`) picks its own best trial on its
own validation split. With small splits the choices disagree from seed to seed (MNIST
1 %: 60 validation images per seed, and three different best trials), so there is no one
"searched optimum" to sweep around. This module re-scores the union of every seed's top
trials on every seed's validation split, each against that cell's recorded baseline
weights (scored again on the split), and
picks the set with the highest mean validation gain over the seeds (ties: the earliest
candidate, the start first). The test set is never used to choose.

The re-scores must reproduce what each search recorded for its own trials, bit for bit:
otherwise the split, the baseline or the engine changed since the search, and nothing is
written. The source run is only read.

Command line::

    python -m brainsleep.experiment.pooled RUN_DIR --setting mnist_f0.01_none --out best.json

writes ``best.csv`` (every candidate on every seed), ``best.md`` (the command, the rule,
the table and the versions) and, last, ``best.json`` (a ``--sleep-params`` file).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from brainsleep.cli import HelpFormatter

from .config import ConfigError, ExperimentConfig

# brainsleep.formats (which imports xarray) is imported where used: --help and argument
# errors stay light.

TOP = 3  # best trials per seed that become candidates
DIGITS = 9  # mean gains are compared rounded: equal image counts are equal gains
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Candidate:
    """A parameter set to re-score.

    Attributes
    ----------
    params : dict
        The full parameter set, as in ``models/presets.py``.
    source : str
        Where it came from: ``start``, or ``<cell id> trial <k>``.
    proposed_by : tuple of int
        The seeds whose searches ranked it among their best (empty for the start, which
        no split chose).
    """

    params: dict
    source: str
    proposed_by: tuple[int, ...] = ()


@dataclass(frozen=True)
class SearchedCell:
    """A cell of the source run, checked: its key, its search history and its subset.

    Attributes
    ----------
    cell_id : str
    row : dict
        The baseline marker's metrics row (dataset, fraction, imbalance, seed, n_val).
    history : list of dict
        The search's trials (``search.json``'s history).
    subset_sha256 : str or None
        The digest of its train/validation indices, from ``done.json`` when finished.
    """

    cell_id: str
    row: dict
    history: list
    subset_sha256: str | None


@dataclass(frozen=True)
class PooledOptimum:
    """What :func:`pooled_optimum` found.

    Attributes
    ----------
    best : int
        Index of the chosen candidate (highest mean validation gain over the seeds).
    candidates : list of Candidate
        Every candidate, the start first.
    table : list of dict
        One row per candidate and seed: candidate, source, cell, seed, score_name, n_val,
        val_score, baseline_val_score, gain (points), search_score (what the cell's own
        search recorded for this set, or None), proposed_by (the seeds whose searches
        ranked it among their best, space-separated; empty for the start),
        spikes_layer<k> (None when the parameters broke the network).
    setting : str
        The setting (``<dataset>_f<fraction>_<imbalance>``).
    """

    best: int
    candidates: list[Candidate]
    table: list[dict]
    setting: str

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.best]


def setting_of(cell_id: str) -> str:
    """A cell id without its seed: the setting its seeds share.

    Raises
    ------
    ValueError
        ``cell_id`` is not a cell id (:func:`brainsleep.formats.parse_cell_id`).
    """
    from brainsleep.formats import parse_cell_id

    parse_cell_id(cell_id)  # the format's one reader checks it
    return cell_id.rsplit("_s", 1)[0]


def read_run(
    run_dir: str | Path, setting: str | None
) -> tuple[ExperimentConfig, str, list[SearchedCell]]:
    """The run's configuration, the setting and its cells, checked, reading only.

    Parameters
    ----------
    run_dir : str or Path
        A results directory of ``python -m brainsleep.experiment ... --search N``.
    setting : str or None
        ``<dataset>_f<fraction>_<imbalance>``; None when the directory holds one.

    Returns
    -------
    cfg : ExperimentConfig
        The run's configuration, validated (no progress bars).
    setting : str
    cells : list of SearchedCell
        In seed order.

    Raises
    ------
    ConfigError
        No results directory or config.json, a config this version cannot read, a run of
        another protocol or without a search, an unknown or (with several settings and
        none given) ambiguous setting, fewer than 2 seeds, a cell whose baseline or search
        is missing, fails its checksums or was written by another configuration, or a
        search over other parameters than the model now declares; also everything
        :func:`~brainsleep.experiment.config.validate` refuses (device, build root).
    """
    from brainsleep.formats import (
        CELLS_DIR,
        CONFIG_FILE,
        DONE_MARKER,
        SEARCH_MARKER,
        parse_cell_id,
        stage_marker,
    )

    from .config import validate
    from .results import verify_marker

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: no {CONFIG_FILE}; give a results directory")
    try:
        stored = json.loads(config_path.read_text())["config"]
        if isinstance(stored.get("imbalance"), list):
            # A directory grown by --imbalance lists its specs; each cell carries its own,
            # so the configuration is validated with the setting's (or the first).
            stored = {**stored, "imbalance": _imbalance_of(setting, stored["imbalance"])}
        cfg = ExperimentConfig(**{**stored, "progress": False})
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{config_path}: not a brainsleep run's config ({exc})") from exc
    except TypeError as exc:  # a field this version does not know
        raise ConfigError(
            f"{config_path}: written by another brainsleep version ({exc}); rerun the run"
        ) from exc
    if cfg.protocol != "limited":
        raise ConfigError(
            f"{run_dir}: a {cfg.protocol} run; the pooled optimum is for the limited-data "
            "protocol's searches"
        )
    if not cfg.search:
        raise ConfigError(f"{run_dir}: the run has no search; run it with --search N first")
    cfg = validate(cfg)
    names = sorted(p.name for p in (run_dir / CELLS_DIR).glob("*") if p.is_dir())
    try:
        keyed = sorted((parse_cell_id(n).seed, n) for n in names)
    except ValueError as exc:
        raise ConfigError(f"{run_dir}/{CELLS_DIR}: {exc}") from exc
    settings = sorted({setting_of(n) for n in names})
    if setting is None:
        if len(settings) != 1:
            raise ConfigError(f"{run_dir} holds {len(settings)} settings; pick one with --setting")
        setting = settings[0]
    if setting not in settings:
        raise ConfigError(f"--setting {setting}: not in {run_dir}; it has {', '.join(settings)}")
    chosen = [n for _, n in keyed if setting_of(n) == setting]
    if len(chosen) < 2:
        raise ConfigError(f"{setting}: one seed only; a pooled optimum needs 2 or more")
    fingerprint = cfg.fingerprint()
    expected = _space(cfg).names
    cells = []
    for name in chosen:
        bodies = {}
        for step in (stage_marker("baseline"), SEARCH_MARKER):
            body, problems = verify_marker(run_dir / CELLS_DIR / name / step)
            if not problems and body.get("fingerprint") != fingerprint:
                problems = [f"{step} was written by another configuration"]
            if problems:
                raise ConfigError(f"{run_dir}/{CELLS_DIR}/{name}: {problems[0]}; rerun the run")
            bodies[step] = body
        history = bodies[SEARCH_MARKER]["history"]
        searched = [r for r in history if r["state"] == "COMPLETE"]
        if not searched or any(set(expected) - set(r) for r in searched):
            raise ConfigError(
                f"{run_dir}/{CELLS_DIR}/{name}: its search did not vary "
                f"{', '.join(expected)} (the model's searched parameters now); rerun it"
            )
        done = run_dir / CELLS_DIR / name / DONE_MARKER
        subset = json.loads(done.read_text()).get("subset", {}) if done.is_file() else {}
        cells.append(
            SearchedCell(
                name, bodies[stage_marker("baseline")]["row"], history, subset.get("indices_sha256")
            )
        )
    return cfg, setting, cells


def _imbalance_of(setting: str | None, specs: list) -> str:
    """The imbalance spec of ``setting`` when it is one of ``specs``, else the first."""
    from brainsleep.formats import parse_cell_id

    try:
        wanted = parse_cell_id(f"{setting}_s0").imbalance if setting else None
    except ValueError:
        wanted = None  # an unknown setting is reported with the run's settings below
    return wanted if wanted in specs else specs[0]


def _space(cfg: ExperimentConfig):
    from .search import SearchSpace

    return SearchSpace.for_model(cfg.model, len(cfg.hidden) + 1, cfg.search_ranges)


def _key(params: dict) -> str:
    """A parameter set's identity: numbers as floats (a start may hold ints)."""

    def as_float(v):
        return [float(x) for x in v] if isinstance(v, list) else float(v)

    return json.dumps({k: as_float(v) for k, v in params.items()}, sort_keys=True)


def candidates(cells: Sequence[SearchedCell], start: dict, space, top: int = TOP):
    """The start, then each cell's ``top`` best completed trials (highest score, then
    lowest trial), without repeats.

    Parameters
    ----------
    cells : sequence of SearchedCell
    start : dict
        The run's starting parameter set (preset, then ``--sleep-params``).
    space : SearchSpace
    top : int

    Returns
    -------
    list of Candidate
    """
    out = [Candidate(space.start_values(start), "start")]
    index = {_key(out[0].params): 0}
    for cell in cells:
        done = [r for r in cell.history if r["state"] == "COMPLETE"]
        seed = cell.row["seed"]
        for row in sorted(done, key=lambda r: (-r["score"], r["trial"]))[:top]:
            params = space.from_columns(start, row)
            key = _key(params)
            if key not in index:
                index[key] = len(out)
                out.append(Candidate(params, f"{cell.cell_id} trial {row['trial']}", (seed,)))
            elif (k := index[key]) and seed not in out[k].proposed_by:
                # another seed's search found the same set: it was selected there too
                out[k] = replace(out[k], proposed_by=(*out[k].proposed_by, seed))
    return out


def pooled_optimum(
    run_dir: str | Path, setting: str | None = None, top: int = TOP, progress: bool = True
) -> PooledOptimum:
    """Re-score every seed's best trials on every seed's validation split; pick one set.

    Parameters
    ----------
    run_dir : str or Path
        A results directory of ``python -m brainsleep.experiment ... --search N`` (its
        cells' baselines and searches are read, never changed).
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
        See :func:`read_run` (raised before anything is computed); and when a re-score
        of a cell's own trial differs from what its search recorded, or a cell's subset
        differs from the one its run drew.
    """
    from tqdm.auto import tqdm

    from brainsleep import ann

    from .config import start_params
    from .pipeline import CellKey, CellRunner, load_data

    run_dir = Path(run_dir)
    cfg, setting, cells = read_run(run_dir, setting)
    space = _space(cfg)
    start = start_params(cfg, cells[0].row["dataset"])
    cands = candidates(cells, start, space, top)
    data = load_data(cfg)
    rows = []
    with tqdm(total=len(cands) * len(cells), desc="pooled optimum", disable=not progress) as bar:
        for sc in cells:
            r = sc.row
            cell = CellKey(r["dataset"], r["fraction"], r["imbalance"], r["seed"])
            runner = CellRunner(cfg, cell, data[cell.dataset], run_dir)
            drawn = runner.subset.to_dict()["indices_sha256"]
            if sc.subset_sha256 is not None and drawn != sc.subset_sha256:
                raise ConfigError(
                    f"{sc.cell_id}: the subset drawn now differs from its run's; the subset "
                    "code or the data changed since, rerun the run"
                )
            recorded = {
                _key(space.from_columns(start, h)): h["score"]
                for h in sc.history
                if h["state"] == "COMPLETE"
            }
            balanced = cell.imbalance != "none"
            try:
                model = runner.baseline_model()
                base = ann.score(model, runner.xv, runner.yv, balanced=balanced)
                for index, cand in enumerate(cands):
                    result = runner.trial(model, cand.params)
                    own = recorded.get(_key(cand.params))
                    if own is not None and own != result.score:
                        raise ConfigError(
                            f"{sc.cell_id}: {cand.source} re-scored {result.score!r}, its "
                            f"search recorded {own!r}; the split, baseline or engine changed "
                            "since the search, rerun it"
                        )
                    rows.append(
                        {
                            "candidate": index,
                            "source": cand.source,
                            "cell": sc.cell_id,
                            "seed": cell.seed,
                            "score_name": "val_balanced_accuracy" if balanced else "val_accuracy",
                            "n_val": len(runner.yv),
                            "val_score": result.score,
                            "baseline_val_score": base,
                            "gain": 100 * (result.score - base),
                            "search_score": own,
                            "proposed_by": " ".join(map(str, cand.proposed_by)),
                            **_spikes(result.spikes, len(cfg.hidden) + 1),
                        }
                    )
                    bar.update()
            finally:
                runner.close()
    return PooledOptimum(choose(mean_gains(rows)), cands, rows, setting)


def _spikes(counts: dict, n_layers: int) -> dict:
    """Spike counts per layer; None for every layer when the trial recorded none (its
    parameters broke the network)."""
    return {f"spikes_layer{k}": counts.get(k) if counts else None for k in range(1, n_layers + 1)}


def mean_gains(table: Sequence[dict], exclude_proposers: bool = False) -> list[tuple[int, float]]:
    """(candidate, mean gain in points over the seeds), in candidate order.

    Means are rounded to :data:`DIGITS` decimals, so gains of equal image counts tie
    exactly. With ``exclude_proposers`` a candidate's mean leaves out the seeds whose
    searches ranked it among their best (the splits it was selected on).
    """
    by: dict[int, list[float]] = {}
    for row in table:
        if exclude_proposers and row["seed"] in _seeds(row["proposed_by"]):
            continue
        by.setdefault(row["candidate"], []).append(row["gain"])
    return [(k, round(sum(v) / len(v), DIGITS)) for k, v in sorted(by.items())]


def _seeds(proposed_by) -> set[int]:
    """The seeds of a ``proposed_by`` field (a table read back may hold NaN or a number)."""
    if proposed_by is None or (isinstance(proposed_by, float) and proposed_by != proposed_by):
        return set()
    return {int(x) for x in str(proposed_by).split()}


def choose(means: Sequence[tuple[int, float]]) -> int:
    """The candidate with the highest mean gain; on ties the earliest (the start first)."""
    return max(means, key=lambda kv: (kv[1], -kv[0]))[0]


def summary_lines(result: PooledOptimum, command: str, run_dir: Path) -> list[str]:
    """The ``.md`` summary: command, versions, rule, the table, the chosen set."""
    import pandas as pd

    from .pipeline import versions

    table = pd.DataFrame(result.table)
    means = dict(mean_gains(result.table))
    others = dict(mean_gains(result.table, exclude_proposers=True))
    seeds = sorted(table["seed"].unique())
    base = table.drop_duplicates("seed").set_index("seed")
    best = result.best
    lines = [
        f"# Pooled optimum of {result.setting}",
        "",
        "Made by",
        "",
        f"    {command}",
        "",
        f"from `{run_dir}` ({len(seeds)} seeds); versions: "
        + ", ".join(f"{k} {v}" for k, v in versions().items())
        + ". Do not edit by hand: rerun the command.",
        "",
        "Candidates: the start and each seed's best search trials, re-scored on every "
        "seed's validation split with that seed's baseline; the gain is the slept network's "
        f"{table['score_name'].iloc[0]} minus the baseline's, in points. Chosen: the highest "
        "mean gain over the seeds (ties: the earliest candidate). The test set is not used. "
        "Every re-score of a seed's own trials reproduced its search's score exactly.",
        "",
        "Validation splits: "
        + "; ".join(
            f"seed {s}: {int(base.loc[s, 'n_val'])} images, baseline "
            f"{100 * base.loc[s, 'baseline_val_score']:.1f} %"
            for s in seeds
        )
        + ".",
        "",
        f"Chosen: candidate {best} ({result.chosen.source}), mean gain {means[best]:+.1f} "
        "points. The mean is optimistic: the candidates were proposed by searches on these "
        "same splits and the best of them was taken. The mean over the seeds whose searches "
        f"did not rank it among their best: {_signed(others.get(best))} points.",
        "",
        *_silent_note(table, best),
        "| candidate | source | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean | mean, other seeds |",
        "|---|---|" + "---|" * (len(seeds) + 2),
    ]
    for k, group in table.groupby("candidate", sort=True):
        gains = " | ".join(f"{g:+.1f}" for g in group.sort_values("seed")["gain"])
        lines.append(
            f"| {k} | {group['source'].iloc[0]} | {gains} | {_signed(means[k])} "
            f"| {_signed(others.get(k))} |"
        )
    lines += ["", "Chosen parameters:", "", "```json", json.dumps(result.chosen.params, indent=2)]
    return [*lines, "```", ""]


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _silent_note(table, best: int) -> list[str]:
    """A paragraph when the chosen set makes no spike on some seeds (recorded counts, all
    0, and the network unchanged): there sleep leaves the baseline as it is."""
    spikes = [c for c in table.columns if c.startswith("spikes_layer")]
    chosen = table[table["candidate"] == best]
    counted = chosen[spikes].notna().all(axis=1)
    silent = counted & (chosen[spikes].fillna(1).sum(axis=1) == 0) & (chosen["gain"] == 0)
    n = int(silent.sum())
    if not n:
        return []
    text = (
        f"The chosen set makes no spike in any layer on {n} of {len(chosen)} seeds: there "
        "sleep leaves the baseline unchanged."
    )
    if n == len(chosen):
        text += (
            " None of the re-scored candidates that do spike beats, on mean validation "
            "gain, leaving these networks as they are."
        )
    return [text, ""]


def write_outputs(result: PooledOptimum, out: Path, command: str, run_dir: Path) -> None:
    """``out.csv``, ``out.md`` and last ``out`` (the chosen set, a ``--sleep-params``
    file): a failure leaves no parameter file without its record.

    Parameters
    ----------
    result : PooledOptimum
    out : Path
        The ``.json`` file; the others go beside it.
    command : str
        The command line, for the summary.
    run_dir : Path
        The source run, for the summary.
    """
    import pandas as pd

    from brainsleep.atomic import atomic_write_json, atomic_write_with

    table = pd.DataFrame(result.table)
    text = "\n".join(summary_lines(result, command, run_dir))
    atomic_write_with(out.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_with(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text(text))
    atomic_write_json(out, result.chosen.params)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m brainsleep.experiment.pooled`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m brainsleep.experiment.pooled",
        description=(
            "Pick one sleep parameter set for every seed of a setting: re-score each seed's "
            "best search trials on every seed's validation split; the highest mean gain wins."
        ),
        epilog="exit status: 0 done, 2 bad input or a run that no longer reproduces "
        "(nothing written).",
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


def _check_out(out: Path, run_dir: Path) -> str | None:
    """What is wrong with ``--out``, or None."""
    if out.suffix != ".json":
        return f"--out {out}: give a .json file name"
    if not out.parent.is_dir():
        return f"--out {out}: no folder {out.parent}"
    if out.resolve().is_relative_to(run_dir.resolve()):
        return f"--out {out}: inside the run it reads ({run_dir}); write elsewhere"
    # all three files are checked before the (long) re-scoring: a folder in the way
    # used to fail with a traceback after it, leaving the .csv and .md without the .json
    for path in (out, out.with_suffix(".csv"), out.with_suffix(".md")):
        if path.exists() and not path.is_file():
            return f"--out {out}: {path} exists and is not a file; choose another name"
    if not os.access(out.parent, os.W_OK):
        return f"--out {out}: cannot write in {out.parent}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status.

    Every check (arguments, the run, the device) comes before any computing; a run that
    no longer reproduces its searches stops it; nothing is written then.
    """
    args = build_parser().parse_args(argv)
    problem = _check_out(args.out, args.run_dir)
    if problem is None and args.top < 1:
        problem = f"--top {args.top}: give 1 or more"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = pooled_optimum(args.run_dir, args.setting, args.top, not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = "python -m brainsleep.experiment.pooled " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    write_outputs(result, args.out, command, args.run_dir)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
