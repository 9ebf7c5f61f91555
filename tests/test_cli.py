"""The command lines start cheap and say clearly what they take (issue 15).

``--help`` and argument errors import neither Brian2 nor torch (checked on the modules a
fresh process imported, never on wall-clock time); every ``--help`` gives each default
once, shows no ``%%``, lists the choices of names declared elsewhere (presets, recipes,
data sets, devices) and the environment variables the program reads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Modules that take seconds to import (or pull in ones that do); none is needed to parse
# arguments or to print help.
HEAVY = ("torch", "brian2", "brian2cuda", "xarray", "pandas", "optuna", "dask", "distributed")
# A source line that reads an environment variable: os.environ.get("X"), os.environ["X"],
# os.getenv("X").
BRAINSLEEP_LITERAL = re.compile(r"""["'](BRAINSLEEP_[A-Z0-9_]+)["']""")
ENV_READ = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*["']([A-Z][A-Z0-9_]*)["']""")


def _probe(module: str, argv: list[str], tmp_path: Path, cwd: Path = REPO):
    """Run ``python -m module *argv`` in a fresh process; return (process, heavy modules
    that were imported when it exited)."""
    report = tmp_path / "modules.json"
    code = textwrap.dedent(
        f"""
        import atexit, json, runpy, sys

        def _report():
            with open({str(report)!r}, "w") as f:
                json.dump(sorted(m for m in {HEAVY!r} if m in sys.modules), f)

        atexit.register(_report)
        sys.argv = [{module!r}, *{argv!r}]
        runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "100"},
    )
    return proc, json.loads(report.read_text())


def _parser(name: str):
    """The argument parser of ``name``: a command line, or ``cache <sub-command>``."""
    command, _, sub = name.partition(" ")
    if command == "experiment":
        from brainsleep.experiment.__main__ import build_parser
    elif command == "analysis":
        from analysis.__main__ import build_parser
    elif command == "pooled":
        from brainsleep.experiment.pooled import build_parser
    else:
        from brainsleep.cache import build_parser
    parser = build_parser()
    if not sub:
        return parser
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[sub]


def _help(parser, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: names are never wrapped
    return parser.format_help()


def _option_help(text: str, option: str) -> str:
    """The lines of ``--help`` text that describe ``option`` (invocation and help)."""
    lines = text.splitlines()
    (start,) = [k for k, x in enumerate(lines) if x.strip().startswith(option + " ")]
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.strip() or line.strip().startswith("-"):
            break
        block.append(line)
    return " ".join(block)


def _env_vars_read() -> set[str]:
    """Names of the environment variables read anywhere in brainsleep/ and analysis/."""
    names = set()
    for folder in ("brainsleep", "analysis"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            names.update(ENV_READ.findall(text))
            # A variable read through a constant (ENV = "BRAINSLEEP_X"; environ.get(ENV))
            # escapes ENV_READ; every BRAINSLEEP_ string literal names one.
            names.update(BRAINSLEEP_LITERAL.findall(text))
    return names


# ------------------------------------------------------------------------- start-up


def test_help_imports_neither_brian2_nor_torch(tmp_path):
    proc, heavy = _probe("brainsleep.experiment", ["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--sleep-preset" in proc.stdout
    assert heavy == [], f"--help imported {heavy}"


def test_bad_argument_is_one_line_without_brian2_or_torch(tmp_path):
    """``--fraction 7`` (argparse's unique prefix of --fractions), default device: exit 2,
    one ``error:`` line, nothing written, and no heavy import on the way."""
    out = tmp_path / "never"
    proc, heavy = _probe("brainsleep.experiment", ["--fraction", "7", "--out", str(out)], tmp_path)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "7" in lines[0], proc.stderr
    assert not out.exists()
    assert heavy == [], f"an argument error imported {heavy}"


def test_pooled_help_and_bad_out_import_nothing_heavy(tmp_path):
    proc, heavy = _probe("brainsleep.experiment.pooled", ["--help"], tmp_path)
    assert proc.returncode == 0 and "--setting" in proc.stdout, proc.stderr
    assert heavy == [], f"--help imported {heavy}"
    args = [str(tmp_path), "--out", str(tmp_path / "best.txt")]
    proc, heavy = _probe("brainsleep.experiment.pooled", args, tmp_path)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and ".json" in lines[0], proc.stderr
    assert heavy == [], f"an argument error imported {heavy}"


def test_cache_help_imports_nothing_heavy(tmp_path):
    proc, heavy = _probe("brainsleep.cache", ["prune", "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert heavy == [], f"--help imported {heavy}"


# --------------------------------------------------------------------- help content


@pytest.mark.parametrize(
    "name",
    ["experiment", "analysis", "pooled", "cache", "cache list", "cache prune", "cache path"],
)
def test_help_gives_each_default_once_and_no_escaped_percent(name, monkeypatch):
    text = _help(_parser(name), monkeypatch)
    assert "%%" not in text
    for line in text.splitlines():
        assert not re.search(r"\(default\b[^()]*\)\s*\(default\b", line), line
        assert not re.search(r"\(default [^:]", line), f"not '(default: ...)': {line}"
        # Nothing to say is not a default worth printing.
        for empty in ("(default: None)", "(default: False)", "(default: [])"):
            assert empty not in line, line


def test_experiment_help_lists_presets_recipes_datasets_devices(monkeypatch):
    from brainsleep.ann import RECIPES
    from brainsleep.data import KNOWN_DATASETS
    from brainsleep.experiment.__main__ import build_parser
    from brainsleep.models.presets import PRESETS
    from brainsleep.sleep import DEVICES

    text = _help(build_parser(), monkeypatch)
    for section, names in [
        ("--sleep-preset", PRESETS),
        ("--recipe", RECIPES),
        ("--dataset", KNOWN_DATASETS),
        ("--device", DEVICES),
    ]:
        block = _option_help(text, section)
        missing = [n for n in names if n not in block]
        assert not missing, f"{section} does not list {missing}: {block}"


def test_experiment_help_lists_every_environment_variable(monkeypatch):
    from brainsleep.experiment.__main__ import build_parser

    read = _env_vars_read()
    assert {"BRAINSLEEP_CACHE", "XDG_CACHE_HOME", "BRAINSLEEP_BUILD_DIR"} <= read
    text = _help(build_parser(), monkeypatch)
    described = {x.split()[0] for x in text.splitlines() if x.strip()}
    assert read <= described, f"not described, one line each: {sorted(read - described)}"


def test_cache_help_lists_the_variables_that_place_the_cache(monkeypatch):
    from brainsleep.cache import build_parser

    text = _help(build_parser(), monkeypatch)
    described = {x.split()[0] for x in text.splitlines() if x.strip()}
    assert {"BRAINSLEEP_CACHE", "XDG_CACHE_HOME", "BRAINSLEEP_BUILD_DIR"} <= described


def test_analysis_help_names_the_module_it_runs_as(tmp_path):
    """``python -m analysis`` in a checkout, ``python -m brainsleep.analysis`` installed:
    each ``usage:`` line says how it was started."""
    for module in ("analysis", "brainsleep.analysis"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: python -m {module} "), proc.stdout[:200]
