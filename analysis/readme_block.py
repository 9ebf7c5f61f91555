"""Quote a generated report's answer section in the README, verbatim, between markers.

The README's results are never typed by hand: each analysis command that takes
``--readme FILE`` rewrites its own block of FILE, which lies between

    <!-- NAME:begin (python -m analysis SUBCOMMAND ... --readme README.md) -->
    <!-- NAME:end -->

with the report's section quoted verbatim and the exact command that made it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brainsleep.atomic import atomic_write_bytes

# A Markdown link target that is a plain relative path (no scheme, anchor or leading /).
_RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")


def markers(name: str, subcommand: str) -> tuple[str, str]:
    """The (begin, end) marker lines of block ``name`` written by ``subcommand``."""
    return (
        f"<!-- {name}:begin (python -m analysis {subcommand} ... --readme README.md) -->",
        f"<!-- {name}:end -->",
    )


def _split(text: str, name: str, subcommand: str) -> tuple[str, str, str] | None:
    """``(before, inside, after)`` block ``name``'s markers, or None without both in order."""
    begin, end = markers(name, subcommand)
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        return None
    inside, _, tail = rest.partition(end)
    return head, inside, tail


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
    """The command a report states (its first indented ``python -m analysis`` line)."""
    lines = report_text.splitlines()
    command = next((x.strip() for x in lines if x.startswith("    python -m analysis")), None)
    if command is None:
        raise ValueError("the report states no 'python -m analysis' command")
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
        The block's marker name and the ``python -m analysis`` subcommand that writes it.
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
