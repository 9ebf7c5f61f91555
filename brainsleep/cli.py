"""What the command lines share: the help layout and the environment variables read.

``python -m brainsleep.experiment``, ``python -m brainsleep.cache`` and ``python -m
brainsleep.analysis`` format their ``--help`` with :class:`HelpFormatter` (each default
given once, none for flags without one) and list the environment variables they read
from :data:`ENVIRONMENT`, the one place that names them. :data:`ANALYSIS_COMMAND` is how
every message and document writes the analysis command.

Imports nothing beyond the standard library, so ``--help`` starts fast.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ANALYSIS_COMMAND",
    "ANALYSIS_SCRIPT",
    "CACHE_ENVIRONMENT",
    "ENVIRONMENT",
    "HelpFormatter",
    "add_options",
    "environment_epilog",
    "one_of",
]

#: The analysis command as every message, report and document gives it. It runs the same
#: code in a checkout (the editable install maps ``analysis/`` to ``brainsleep.analysis``)
#: and after ``pip install`` anywhere; ``python -m analysis`` works in a checkout only.
ANALYSIS_COMMAND = "python -m brainsleep.analysis"
#: The same command as a console script (``[project.scripts]`` in pyproject.toml).
ANALYSIS_SCRIPT = "brainsleep-analysis"

#: Every environment variable brainsleep reads, with what it sets (one line each).
ENVIRONMENT: dict[str, str] = {
    "BRAINSLEEP_CACHE": (
        "cache root for data sets, compiled builds and cuRAND links "
        "(default: $XDG_CACHE_HOME/brainsleep)"
    ),
    "XDG_CACHE_HOME": "parent of the cache root when BRAINSLEEP_CACHE is unset (default: ~/.cache)",
    "BRAINSLEEP_BUILD_DIR": (
        "where compiled standalone projects are cached (default: <cache root>/builds)"
    ),
    "BRAINSLEEP_BASELINE_CACHE": (
        "where trained baselines are cached, or off (default: <cache root>/baselines)"
    ),
    "CXX": "the C++ compiler looked for and recorded in each build's key (default: g++)",
    "CUDA_PATH": "CUDA toolkit searched first for nvcc and cuRAND (cuda_standalone)",
    "BRAINSLEEP_TIE_TO_PARENT": (
        "set by brainsleep for the binaries it starts (the pid they die with); not for users"
    ),
}

#: The variables that place the cache (all that ``python -m brainsleep.cache`` reads).
CACHE_ENVIRONMENT: tuple[str, ...] = (
    "BRAINSLEEP_CACHE",
    "XDG_CACHE_HOME",
    "BRAINSLEEP_BUILD_DIR",
    "BRAINSLEEP_BASELINE_CACHE",
)

_TABLE_ROW = re.compile(r"^  (\S+)  +(.*)$")


def add_options(
    parser: argparse._ActionsContainer, options: Iterable[tuple[str, dict[str, Any], str]]
) -> None:
    """``parser.add_argument(flag, help=help, **keywords)`` for each ``(flag, keywords,
    help)`` row of ``options``, in order (``parser``: a parser or an argument group)."""
    for flag, keywords, text in options:
        parser.add_argument(flag, help=text, **keywords)


def one_of(names: Iterable[str], many: bool = False) -> str:
    """``"one of: a, b, c"`` for a help text listing the accepted names.

    Parameters
    ----------
    names : iterable of str
        The names, in the order they are declared.
    many : bool, optional
        Say ``"one or more of"`` (an option that takes several).

    Returns
    -------
    str
        The phrase, with ``%`` escaped for argparse.
    """
    lead = "one or more of" if many else "one of"
    return f"{lead}: " + ", ".join(names).replace("%", "%%")


def environment_epilog(names: Iterable[str] | None = None) -> str:
    """An ``environment variables:`` section for an argparse epilog, one line each.

    Parameters
    ----------
    names : iterable of str, optional
        Keys of :data:`ENVIRONMENT` to list, in that order (default: all of them).

    Returns
    -------
    str
        A heading and one ``  NAME  meaning`` row per variable; :class:`HelpFormatter`
        wraps each row under its meaning column.
    """
    names = list(ENVIRONMENT if names is None else names)
    width = max(len(n) for n in names) + 2
    rows = [f"  {name.ljust(width)}{ENVIRONMENT[name]}" for name in names]
    return "\n".join(["environment variables:", *rows])


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with each default given once and tables kept as rows.

    An option's help gets `` (default: VALUE)`` appended unless its text already says
    ``(default...`` or there is no default worth printing (None, False, an empty
    list); a list default is shown space-separated, as it is typed. In the description
    and the epilog, paragraphs (separated by a blank line) are filled to the terminal
    width, except ``  NAME  text`` rows, which stay one row each (wrapped under their
    text column).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or "%(default)" in text:
            return text
        if default is None or default is False or default == argparse.SUPPRESS:
            return text
        if isinstance(default, list | tuple) and not default:
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, "*"):
            return text
        if isinstance(default, list | tuple):
            shown = " ".join(str(v) for v in default)
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(_TABLE_ROW.match(line) for line in lines):
                paragraphs.append("\n".join(self._table_line(x, width, indent) for x in lines))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)

    @staticmethod
    def _table_line(line: str, width: int, indent: str) -> str:
        row = _TABLE_ROW.match(line)
        if row is None:
            return indent + line
        head = indent + line[: row.start(2)]
        return textwrap.fill(
            row.group(2),
            width=max(width, len(head) + 20),
            initial_indent=head,
            subsequent_indent=" " * len(head),
            break_on_hyphens=False,
        )
