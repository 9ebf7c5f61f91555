"""The command line that every report subcommand of ``python -m brainsleep.analysis``
shares: ``python -m brainsleep.analysis NAME RESULTS_DIR [...] --out DIR [-q] [--readme FILE
[--readme-block NAME]]`` (``report``, ``sweep``, ``remedies``), and :func:`started_as`, the
name of the command in every ``usage:`` line.

One parser, one error path (a one-line error, exit status 2, nothing written), and the
README quoting of :mod:`analysis.readme_block`, so the subcommands differ only in the
report they write.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brainsleep.cli import ANALYSIS_COMMAND, ANALYSIS_SCRIPT, HelpFormatter

from .readme_block import missing_block, quote_report
from .results import ResultsError


def started_as() -> str:
    """How the analysis command was started, for its ``usage:`` line.

    Returns
    -------
    str
        ``brainsleep-analysis`` (the console script), ``python -m analysis`` (a checkout's
        top-level package) or ``python -m brainsleep.analysis``. What a report records as
        the command that made it is always :data:`brainsleep.cli.ANALYSIS_COMMAND`, which
        works everywhere.
    """
    if Path(sys.argv[0]).name == ANALYSIS_SCRIPT:
        return ANALYSIS_SCRIPT
    return f"python -m {__package__ or 'brainsleep.analysis'}"


@dataclass(frozen=True)
class ReadmeQuote:
    """Which README block a subcommand rewrites (``--readme``), with which report section."""

    block: str  #: marker name, analysis.readme_block.markers
    heading: str  #: the report's ``## heading`` quoted
    what: str  #: what the full report adds, in the link sentence


def run_command(
    name: str,
    description: str,
    write: Callable[..., Path],
    argv: Sequence[str] | None = None,
    readme: ReadmeQuote | None = None,
) -> int:
    """Parse ``NAME RESULTS_DIR [...] --out DIR [-q]`` and call ``write``.

    Parameters
    ----------
    name : str
        The subcommand.
    description : str
        Its ``--help`` description.
    write : callable
        ``write(paths, out, command, log=...)`` returning the report's path.
    argv : sequence of str, optional
        Arguments after the subcommand (default ``sys.argv[2:]``).
    readme : ReadmeQuote, optional
        Adds ``--readme FILE``: quote this section of the report in FILE's block.

    Returns
    -------
    int
        0 written, 2 an unusable results directory (one line on stderr, nothing written).
    """
    argv = list(sys.argv[2:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog=f"{started_as()} {name}",
        formatter_class=HelpFormatter,
        description=description,
        epilog="exit status: 0 written, 2 unusable results directory or bad arguments.",
    )
    p.add_argument("results_dirs", metavar="RESULTS_DIR", nargs="+", help="results directory")
    p.add_argument("--out", metavar="DIR", required=True, help="where the report goes")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the files written")
    if readme is not None:
        p.add_argument(
            "--readme",
            metavar="FILE",
            help=f"also rewrite FILE's {readme.block!r} block with the report's "
            f"{readme.heading!r} section and its command, verbatim",
        )
        p.add_argument(
            "--readme-block",
            metavar="NAME",
            default=readme.block,
            help="the block of FILE to rewrite instead, for a second report of this kind "
            "(e.g. another data set's)",
        )
    args = p.parse_args(argv)
    if readme is not None and args.readme_block != readme.block and args.readme is None:
        p.error("--readme-block needs --readme FILE")
    command = f"{ANALYSIS_COMMAND} {name} " + " ".join(shlex.quote(a) for a in argv)
    if getattr(args, "readme", None) is not None:
        problem = missing_block(args.readme, args.readme_block, name)
        if problem is not None:
            print(f"analysis {name}: error: {problem}", file=sys.stderr)
            return 2
    try:
        report = write(
            args.results_dirs, args.out, command, log=(lambda _: None) if args.quiet else print
        )
    except ResultsError as exc:
        print(f"analysis {name}: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "readme", None) is not None:
        try:
            quote_report(args.readme, report, args.readme_block, name, readme.heading, readme.what)
        except (ValueError, OSError) as exc:
            print(f"analysis {name}: error: {exc} (the report is written)", file=sys.stderr)
            return 2
        print(f"updated the {args.readme_block!r} block of {args.readme}")
    print(f"{name}: {report}")
    return 0
