"""Quote a generated report's answer section in the README, verbatim, between markers.

The README's results are never typed by hand: each analysis command that takes
``--readme FILE`` rewrites its own block of FILE, which lies between

    <!-- NAME:begin (python -m brainsleep.analysis SUBCOMMAND ... --readme README.md) -->
    <!-- NAME:end -->

with the report's section quoted verbatim and the exact command that made it. A block
whose begin marker still names ``python -m analysis`` (the command before issue 33) is
found too, and rewritten with the current marker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brainsleep.atomic import atomic_write_bytes
from brainsleep.cli import ANALYSIS_COMMAND

# A Markdown link target that is a plain relative path (no scheme, anchor or leading /).
_RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")
# The analysis command as markers and reports wrote it before issue 33: still recognised.
_LEGACY_COMMAND = "python -m analysis"
# How a report's command line starts (indented: a Markdown code line), current one first.
_COMMAND_LINES = (f"    {ANALYSIS_COMMAND}", f"    {_LEGACY_COMMAND}")


def markers(name: str, subcommand: str, command: str = ANALYSIS_COMMAND) -> tuple[str, str]:
    """The (begin, end) marker lines of block ``name`` written by ``subcommand``.

    Parameters
    ----------
    name, subcommand : str
        The block's name and the analysis subcommand that writes it.
    command : str
        The analysis command the begin marker names (the current one by default).

    Returns
    -------
    begin, end : str
        ``<!-- NAME:begin (COMMAND SUBCOMMAND ... --readme README.md) -->`` and
        ``<!-- NAME:end -->``.
    """
    return (
        f"<!-- {name}:begin ({command} {subcommand} ... --readme README.md) -->",
        f"<!-- {name}:end -->",
    )


def _split(text: str, name: str, subcommand: str) -> tuple[str, str, str] | None:
    """``(before, inside, after)`` block ``name``'s markers (current or legacy begin
    marker), or None without both in order."""
    for command in (ANALYSIS_COMMAND, _LEGACY_COMMAND):
        begin, end = markers(name, subcommand, command)
        head, found, rest = text.partition(begin)
        if found and end in rest:
            inside, _, tail = rest.partition(end)
            return head, inside, tail
    return None


def missing_block(readme: str | Path, name: str, subcommand: str) -> str | None:
    """One line saying what is wrong if ``readme`` lacks the block, else None.

    Checked before any report is written, so a wrong ``--readme`` writes nothing.
    """
    begin, end = markers(name, subcommand)
    if not Path(readme).is_file():
        return f"--readme {readme}: no such file"
    if _split(Path(readme).read_text(), name, subcommand) is not None:
        return None
    return (
        f"--readme {readme}: no results block; put the lines '{begin}' and '{end}' "
        "(in that order) where it goes"
    )


def section(report_text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown report (without the heading).

    Raises
    ------
    ValueError
        The report has no such section.
    """
    lines = report_text.splitlines()
    if f"## {heading}" not in lines:
        raise ValueError(f"the report has no '## {heading}' section")
    start = lines.index(f"## {heading}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start + 1 : end]).strip()


def report_command(report_text: str) -> str:
    """The command a report states: its first indented line that starts with the analysis
    command (``python -m brainsleep.analysis``, or ``python -m analysis`` in reports made
    before issue 33).

    Raises
    ------
    ValueError
        The report states no such command.
    """
    lines = report_text.splitlines()
    command = next((x.strip() for x in lines if x.startswith(_COMMAND_LINES)), None)
    if command is None:
        raise ValueError(f"the report states no '{ANALYSIS_COMMAND}' command")
    return command


def block_text(report_text: str, link: str, heading: str, what: str) -> str:
    """The lines between a block's markers: a link, the command, the section verbatim."""
    body = section(report_text, heading)
    # the report's own relative links (its figures) are relative to the report's folder
    folder = os.path.dirname(link)
    if folder:
        body = _RELATIVE_LINK.sub(lambda m: f"]({folder}/{m.group(1)})", body)
    return (
        f"Quoted from [{link}]({link}) ({what}), made by `{report_command(report_text)}`:\n\n{body}"
    )


def read_block(readme_text: str, name: str, subcommand: str) -> str | None:
    """The text between block ``name``'s markers (stripped), or None without them."""
    parts = _split(readme_text, name, subcommand)
    return None if parts is None else parts[1].strip()


def quote_report(
    readme: str | Path, report: str | Path, name: str, subcommand: str, heading: str, what: str
) -> Path:
    """Rewrite README block ``name`` with section ``heading`` of ``report``, verbatim.

    Parameters
    ----------
    readme, report : path-like
        The README and the generated report (Markdown).
    name, subcommand : str
        The block's marker name and the analysis subcommand that writes it.
    heading : str
        The report section quoted (``## heading``).
    what : str
        What the full report adds, said in the link sentence.

    Returns
    -------
    pathlib.Path
        ``readme``.

    Raises
    ------
    ValueError
        The README lacks the markers, or the report the section or its command (the
        README is left as it was).
    """
    readme, report = Path(readme), Path(report)
    problem = missing_block(readme, name, subcommand)
    if problem is not None:
        raise ValueError(problem)
    begin, end = markers(name, subcommand)
    head, _, tail = _split(readme.read_text(), name, subcommand)
    rel = os.path.relpath(report.resolve(), readme.resolve().parent)
    block = block_text(report.read_text(), rel, heading, what)
    return atomic_write_bytes(readme, f"{head}{begin}\n{block}\n{end}{tail}".encode())
