"""Study specifications: the runs of a study as data (``--study FILE``).

Why one module of this length: reading and checking a spec needs no torch or Brian2,
and every error names the file, the run and the key before anything is trained or written.

A study spec is a TOML file holding the options of ``python -m brainsleep.experiment``::

    description = "accuracy vs training fraction"   # optional, printed at the start
    report = "report"           # optional: the analysis subcommand that answers
                                # it (report = the claims, sweep, remedies); printed at the end
    [defaults]                  # options every run shares
    dataset = ["mnist", "fashion-mnist"]
    seeds = [0, 1, 2]
    strong = true               # a flag: true gives it, false leaves it out
    [[runs]]                    # one results directory per run: <--out>/<name>
    name = "reference"
    recipe = "reference"
    [[runs]]
    name = "strong"
    recipe = "strong"

Keys are the long options without ``--`` (dashes or underscores alike), looked up in
the parser's own actions: every option of the command line is a key, nothing else is.
Each run becomes one command line: ``[defaults]`` with the run's keys on top (key by
key), then the options given next to ``--study`` (they win over the file), then
``--out <root>/<name>``. Without ``[[runs]]`` there is one run, named after the file.
``out`` is no key: the study's ``--out`` (default ``results/<file stem>``) places runs.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brainsleep.cli import ANALYSIS_COMMAND

from .config import ConfigError, ExperimentConfig

__all__ = ["Study", "StudyError", "StudyRun", "load_study", "read_study", "run_study"]

#: Top-level keys of a spec.
SPEC_KEYS = ("description", "report", "defaults", "runs")
#: Options a spec cannot set, and why.
RESERVED = {
    "out": "the study's --out decides where runs go (<out>/<name>)",
    "study": "a study cannot name another study",
    "runs": "--runs picks runs of a study on the command line",
    "help": "not an experiment option",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SCALARS = {int: ("an integer", "integers"), float: ("a number", "numbers")}
#: The subcommands of :data:`~brainsleep.cli.ANALYSIS_COMMAND` a spec's ``report`` may name,
#: and what each answers.
REPORTS = {"report": "claims report", "sweep": "sensitivity report", "remedies": "remedies report"}


class StudyError(ConfigError):
    """Bad study spec: one line naming the file, the run and the key; exit 2."""


@dataclass(frozen=True)
class StudyRun:
    """One run of a study.

    Attributes
    ----------
    name : str
        The run's name, a safe directory name.
    out : pathlib.Path
        Its results directory, ``<study out>/<name>``.
    argv : tuple of str
        The command line of ``python -m brainsleep.experiment`` that is this run
        (``--out`` included).
    """

    name: str
    out: Path
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Study:
    """A read and checked study spec.

    Attributes
    ----------
    path : pathlib.Path
        The spec file.
    out : pathlib.Path
        The directory of the runs' results directories.
    description : str or None
        The spec's ``description``.
    runs : tuple of StudyRun
        In the order of the file.
    report : str
        The ``python -m brainsleep.analysis`` subcommand that answers the study (:data:`REPORTS`;
        the spec's ``report``, default ``"report"``, the claims report).
    """

    path: Path
    out: Path
    description: str | None
    runs: tuple[StudyRun, ...]
    report: str = "report"

    @property
    def name(self) -> str:
        """The file stem."""
        return self.path.stem


def split_study_args(
    argv: Sequence[str],
) -> tuple[str | None, str | None, list[str] | None, list[str]]:
    """``(study, out, runs, rest)``: ``--study``, ``--out`` and ``--runs`` taken out of a
    command line.

    Parameters
    ----------
    argv : sequence of str
        The whole command line (without the program name), already accepted by the
        experiment's parser, so an abbreviation here means what it meant there.

    Returns
    -------
    study, out : str or None
        The values of ``--study`` and ``--out`` (the last one given), None when absent.
    runs : list of str or None
        The names given to ``--runs``, None when absent.
    rest : list of str
        Every other argument, in order: the options that override the file.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--study")
    pre.add_argument("--out")
    pre.add_argument("--runs", nargs="+", action="extend")
    ns, rest = pre.parse_known_args(list(argv))
    return ns.study, ns.out, ns.runs, rest


def option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The keys a spec may use, each with the parser's action: long options without
    ``--``, :data:`RESERVED` left out."""
    keys = {}
    for action in parser._actions:
        for s in action.option_strings:
            if s.startswith("--") and s[2:] not in RESERVED:
                keys[s[2:]] = action
    return keys


def _describe(value: Any) -> str:
    """What a TOML value is, for a message."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    return f"a {type(value).__name__} ({value})"


def _scalar_ok(action: argparse.Action, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if action.type is int:
        return isinstance(value, int)
    if action.type is float:
        return isinstance(value, int | float)
    if action.type is None:
        return isinstance(value, str)
    return isinstance(value, str | int | float)


def _token(value: str | int | float) -> str:
    """A value as typed on the command line (floats as the shortest text that reads back
    to the same number)."""
    return repr(value) if isinstance(value, float) else str(value)


def _flags(key: str, value: Any, action: argparse.Action, where: str) -> list[str]:
    """The command-line arguments of ``key = value``.

    Raises
    ------
    StudyError
        A value of the wrong type for the option, naming ``where`` and the key.
    """
    flag = f"--{key}"
    single, plural = _SCALARS.get(action.type, ("a string", "strings"))

    def wrong(expected: str) -> StudyError:
        return StudyError(f"{where}: option {key!r} takes {expected}, got {_describe(value)}")

    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return [flag] if value else []  # true: the flag is given, whatever it stores
    if not isinstance(action, argparse._StoreAction | argparse._AppendAction):
        raise StudyError(f"{where}: option {key!r} cannot be set in a study")
    many = isinstance(action, argparse._AppendAction) or action.nargs not in (None, "?")
    if many:
        values = value if isinstance(value, list) else [value]
        if not all(_scalar_ok(action, v) for v in values):
            raise wrong(f"{single} or a list of {plural}")
    else:
        if isinstance(value, list | dict) or not _scalar_ok(action, value):
            raise wrong(f"one value, {single}")
        values = [value]
    if action.choices is not None:
        bad = [v for v in values if v not in action.choices]
        if bad:
            raise StudyError(
                f"{where}: option {key!r}: {bad[0]!r} is not one of "
                f"{', '.join(map(str, action.choices))}"
            )
    tokens = [_token(v) for v in values]
    if isinstance(action, argparse._AppendAction):
        return [f"{flag}={t}" for t in tokens]  # repeated, one value each
    if not many:
        # --key=value: a value starting with "-" is not taken for an option
        return [f"{flag}={tokens[0]}"] if tokens[0].startswith("-") else [flag, tokens[0]]
    if not tokens:
        raise wrong(f"at least one value ({single} or a list of {plural})")
    dashed = [t for t in tokens if t.startswith("-") and not re.match(r"^-\d", t)]
    if dashed:
        raise StudyError(f"{where}: option {key!r}: a value cannot start with '-' ({dashed[0]!r})")
    return [flag, *tokens]


def _table_flags(
    table: Any, options: dict[str, argparse.Action], where: str
) -> dict[str, list[str]]:
    """Key (dashed) -> command-line arguments, for one table of options."""
    if not isinstance(table, dict):
        raise StudyError(f"{where}: expected a table of options, got {_describe(table)}")
    out: dict[str, list[str]] = {}
    for raw, value in table.items():
        key = raw.replace("_", "-")
        if key in RESERVED:
            raise StudyError(f"{where}: option {raw!r} cannot be in a study: {RESERVED[key]}")
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StudyError(
                f"{where}: unknown option {raw!r}{hint} (options: {', '.join(sorted(options))})"
            )
        if key in out:
            raise StudyError(f"{where}: option {key!r} is given twice (dashes and underscores)")
        out[key] = _flags(key, value, options[key], where)
    return out


def _item_key(token: str) -> str | None:
    """``KEY`` of a repeated option's ``--flag=KEY=VALUE`` token (None for other tokens)."""
    if not token.startswith("--") or token.count("=") < 2:
        return None
    return token.split("=", 2)[1]


def _keys_given(cli_args: Sequence[str], options: dict[str, argparse.Action]) -> set:
    """``(option, KEY)`` of every ``KEY=VALUE`` item of a repeated option (``--sleep-param``,
    ``--sleep-input-option``, ``--pref``) on the command line: the file's item of that
    key is dropped, so the command line wins key by key, as for every other option."""
    given = set()
    args = list(cli_args)
    for i, arg in enumerate(args):
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if key not in options or not isinstance(options[key], argparse._AppendAction):
            continue
        item = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
        if "=" in item:
            given.add((key, item.split("=", 1)[0]))
    return given


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise StudyError(f"{path}: {what}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise StudyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _run_tables(data: dict[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(name, options)`` of every run, names checked (safe, unique)."""
    if "runs" not in data:
        name = path.stem
        if not _NAME.match(name):
            raise StudyError(
                f"{path}: without [[runs]] the run is named after the file, and {name!r} is "
                "not a safe directory name; add a [[runs]] table with a name"
            )
        return [(name, {})]
    runs = data["runs"]
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise StudyError(f"{path}: 'runs' must be one or more [[runs]] tables")
    out: list[tuple[str, dict[str, Any]]] = []
    for k, run in enumerate(runs, 1):
        options = dict(run)
        name = options.pop("name", None)
        if name is None:
            raise StudyError(f'{path}: run {k} has no name; give name = "..."')
        if not isinstance(name, str) or not _NAME.match(name):
            raise StudyError(
                f"{path}: run {k}: name {name!r} is not a safe directory name (letters, "
                "digits, '.', '_', '-'; starting with a letter or digit)"
            )
        if any(name == other for other, _ in out):
            raise StudyError(f"{path}: run name {name!r} is given twice (one directory each)")
        out.append((name, options))
    return out


@contextlib.contextmanager
def _errors_raise(parser: argparse.ArgumentParser, where: str) -> Iterator[None]:
    """While inside, the parser raises StudyError instead of printing usage and exiting."""

    def error(message: str) -> None:
        raise StudyError(f"{where}: {message}")

    parser.error = error  # type: ignore[method-assign]  # the instance's, removed after
    try:
        yield
    finally:
        del parser.error


def parse_run(parser: argparse.ArgumentParser, study: Study, run: StudyRun) -> argparse.Namespace:
    """The parsed arguments of one run; argparse's errors as one-line StudyError."""
    with _errors_raise(parser, f"{study.path}: run {run.name!r}"):
        return parser.parse_args(list(run.argv))


def read_study(
    path: str | Path,
    cli_args: Sequence[str] = (),
    out: str | Path | None = None,
    *,
    parser: argparse.ArgumentParser | None = None,
) -> Study:
    """Read a study spec and turn each run into a command line; check every key.

    Parameters
    ----------
    path : str or pathlib.Path
        The TOML file.
    cli_args : sequence of str
        Options given next to ``--study`` (without ``--study`` and ``--out``); they come
        last in every run's command line, so they win over the file.
    out : str or pathlib.Path, optional
        Where the runs' directories go; default ``results/<file stem>``.
    parser : argparse.ArgumentParser, optional
        The experiment's parser (default: a new one from ``build_parser``).

    Returns
    -------
    Study
        Every run's command line parsed once by ``parser`` (types and choices checked);
        the configurations are not validated here (see :func:`run_study`).

    Raises
    ------
    StudyError
        A missing file, bad TOML, a bad or repeated run name, an unknown key or a value
        of the wrong type: one line naming the file, the run and the key.
    """
    if parser is None:
        from .cli import build_parser

        parser = build_parser()
    path = Path(path)
    data = _read_toml(path)
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise StudyError(
            f"{path}: unknown top-level key {unknown[0]!r}; a spec has description, "
            "report, [defaults] and [[runs]] (options go in [defaults] or in a run)"
        )
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise StudyError(f"{path}: description must be a string, got {_describe(description)}")
    report = data.get("report", "report")
    if report not in REPORTS:
        raise StudyError(
            f"{path}: report must be one of {', '.join(map(repr, REPORTS))} (the python -m "
            f"analysis subcommand that answers the study), got {_describe(report)}"
        )
    options = option_actions(parser)
    defaults = _table_flags(data.get("defaults", {}), options, f"{path}: [defaults]")
    root = Path(out) if out is not None else Path("results") / path.stem
    runs = []
    overridden = _keys_given(cli_args, options)
    for name, table in _run_tables(data, path):
        flags = {**defaults, **_table_flags(table, options, f"{path}: run {name!r}")}
        argv = [
            t
            for key, tokens in flags.items()
            for t in tokens
            if (key, _item_key(t)) not in overridden
        ]
        runs.append(StudyRun(name, root / name, (*argv, *cli_args, "--out", str(root / name))))
    study = Study(path, root, description, tuple(runs), report)
    for run in study.runs:
        parse_run(parser, study, run)
    return study


def select_runs(study: Study, names: Sequence[str] | None) -> Study:
    """The study with only the runs named (``--runs``), in the file's order.

    Raises
    ------
    StudyError
        A name that is not a run of the spec (the names it has are listed).
    """
    if names is None:
        return study
    known = [r.name for r in study.runs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StudyError(
            f"--runs: {unknown[0]!r} is not a run of {study.path} (runs: {', '.join(known)})"
        )
    return replace(study, runs=tuple(r for r in study.runs if r.name in set(names)))


def load_study(
    path: str | Path,
    cli_args: Sequence[str] = (),
    out: str | Path | None = None,
    *,
    parser: argparse.ArgumentParser | None = None,
) -> list[StudyRun]:
    """The runs of a study spec: :func:`read_study` (same parameters), runs only."""
    return list(read_study(path, cli_args, out, parser=parser).runs)


def _check_runs(
    study: Study,
    parser: argparse.ArgumentParser,
    configure: Callable[[argparse.Namespace], ExperimentConfig],
) -> tuple[list[ExperimentConfig], list[str]]:
    """Validate every run and its results directory; ``(configs, lines said on stderr)``.

    Raises
    ------
    StudyError
        The first run whose configuration or results directory is refused.
    """
    from .results import CONFIG_FILE, ResultsDirError, check_directory, check_out_path

    said = io.StringIO()
    configs = []
    for run in study.runs:
        args = parse_run(parser, study, run)
        try:
            with contextlib.redirect_stderr(said):  # e.g. "sleep device: ...", said once
                configs.append(configure(args))
        except ConfigError as exc:
            raise StudyError(f"{study.path}: run {run.name!r}: {exc}") from exc
    if (study.out / CONFIG_FILE).exists():
        raise StudyError(
            f"--out {study.out} holds the results of a single run; a study's --out is the "
            "directory of its runs' directories: pick another --out"
        )
    for run, cfg in zip(study.runs, configs, strict=True):
        try:
            check_out_path(run.out)
            check_directory(run.out, cfg.fingerprint(), cfg.to_dict())
        except ResultsDirError as exc:
            raise StudyError(f"{study.path}: run {run.name!r}: {exc}") from exc
    lines = list(dict.fromkeys(x for x in said.getvalue().splitlines() if x.strip()))
    return configs, lines


def run_study(
    argv: Sequence[str],
    *,
    parser: argparse.ArgumentParser,
    configure: Callable[[argparse.Namespace], ExperimentConfig],
    execute: Callable[[ExperimentConfig, list[str]], int],
) -> int:
    """Run a study: check every run first, then run them in order.

    Parameters
    ----------
    argv : sequence of str
        The command line, ``--study FILE`` included.
    parser : argparse.ArgumentParser
        The experiment's parser.
    configure : callable
        Parsed arguments -> validated configuration (raises ConfigError).
    execute : callable
        ``(config, argv) -> exit status``: one run, as the plain command line runs it.

    Returns
    -------
    int
        0 when every run finished, else the exit status of the first run that did not
        (the later runs are not started).

    Raises
    ------
    StudyError
        Bad input anywhere in the study (spec, options, a results directory), before any
        run starts: nothing is written.
    """
    path, out, names, rest = split_study_args(argv)
    if path is None:
        raise StudyError("--study: give a study spec file")
    study = select_runs(read_study(path, rest, out, parser=parser), names)
    configs, said = _check_runs(study, parser, configure)
    for line in said:
        print(line, file=sys.stderr)
    n = len(study.runs)
    if study.description:
        print(f"study {study.name}: {study.description}", flush=True)
    for k, (run, cfg) in enumerate(zip(study.runs, configs, strict=True), 1):
        print(f"study {study.name}: run {k}/{n} {run.name!r} -> {run.out}", flush=True)
        try:
            code = execute(cfg, list(run.argv))
        except KeyboardInterrupt:
            code = 130
        if code != 0:
            print(
                f"study {study.name}: stopped at run {k}/{n} {run.name!r} (exit {code}); "
                "finished runs and stages are kept, rerun the same command to resume",
                file=sys.stderr,
            )
            return code
    dirs = " ".join(str(r.out) for r in study.runs)
    if all(c.protocol == "class-incremental" for c in configs):  # no claims report there
        figures = "; ".join(f"{ANALYSIS_COMMAND} {shlex.quote(str(r.out))}" for r in study.runs)
        print(f"\nstudy {study.name}: results in {dirs}; figures: {figures}")
        return 0
    # the report goes beside the runs, not among them: a rerun's ROOT/* must match runs only
    root, out = shlex.quote(str(study.out)), shlex.quote(f"{study.out}-{study.report}")
    command = f"{ANALYSIS_COMMAND} {study.report} {root}/* --out {out}"
    print(f"\nstudy {study.name}: results in {dirs}; {REPORTS[study.report]}: {command}")
    return 0
