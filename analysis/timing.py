"""How long a results directory took to make: its runs' wall time, from ``log.txt``.

Every invocation of ``python -m brainsleep.experiment`` on a directory logs
``starting DIR (config ...)`` or ``resuming DIR (config ...)`` first
(``brainsleep/experiment/__main__.py``), then a timestamped line per stage, search trial
and failure. An invocation lasts from that line to the last line before the next one;
the directory's wall time is the sum over its invocations (a run stopped and resumed
counts only the time it ran). The compact copy (``python -m brainsleep.analysis export``)
keeps no log, so it carries the same numbers in ``timing.json`` (:data:`TIMING_FILE`), and
the reports read either.

Reports state these times so that a figure's cost is regenerated with it, never typed
by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path

from brainsleep.formats import LOG_FILE, TIMING_FILE

__all__ = [
    "invocations",
    "run_timing",
    "timing_of_log",
    "wall_seconds",
    "wall_sum_text",
    "wall_text",
]

# "2026-12-01 08:14:56,197 INFO brainsleep.experiment: starting results/x (config ab12)"
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_START = re.compile(r" brainsleep\.experiment: (starting|resuming) .* \(config \w+\)$")


def _stamp(line: str) -> dt.datetime | None:
    m = _LINE.match(line)
    if m is None:
        return None
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S") + dt.timedelta(
        milliseconds=int(m.group(2))
    )


def invocations(log_text: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) of every invocation recorded in a ``log.txt``'s text, in order.

    Lines without a timestamp (a traceback's continuation) are skipped; lines before the
    first ``starting``/``resuming`` line belong to no invocation.
    """
    out: list[list[dt.datetime]] = []
    for line in log_text.splitlines():
        t = _stamp(line)
        if t is None:
            continue
        if _START.search(line):
            out.append([t, t])
        elif out:
            out[-1][1] = max(out[-1][1], t)
    return [(a, b) for a, b in out]


def timing_of_log(log_text: str) -> dict:
    """The :data:`TIMING_FILE` record of a log: ``invocations`` (ISO start and end, wall
    seconds each) and their total ``wall_s``."""
    spans = invocations(log_text)
    rows = [
        {"start": a.isoformat(), "end": b.isoformat(), "wall_s": (b - a).total_seconds()}
        for a, b in spans
    ]
    return {"invocations": rows, "wall_s": sum(r["wall_s"] for r in rows)}


def run_timing(path: str | Path) -> dict | None:
    """A results directory's timing: its ``timing.json`` (a compact copy) or, else, what
    its ``log.txt`` records; None when it has neither (or no invocation in it).

    Raises
    ------
    analysis.results.ResultsError
        ``timing.json`` exists but is not a timing record (it is never silently ignored).
    """
    from .results import ResultsError

    path = Path(path)
    recorded = path / TIMING_FILE
    if recorded.is_file():
        try:
            body = json.loads(recorded.read_text())
            float(body["wall_s"])
            list(body["invocations"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultsError(
                f"{recorded} is not a timing record ({type(exc).__name__}: {exc}); export the "
                "directory again"
            ) from None
        return body if body["invocations"] else None
    log = path / LOG_FILE
    if not log.is_file():
        return None
    timing = timing_of_log(log.read_text(errors="replace"))
    return timing if timing["invocations"] else None


def wall_seconds(path: str | Path) -> float | None:
    """A results directory's total wall seconds (:func:`run_timing`), None if unrecorded.

    Raises
    ------
    analysis.results.ResultsError
        See :func:`run_timing`.
    """
    timing = run_timing(path)
    return None if timing is None else float(timing["wall_s"])


def wall_sum_text(walls: Mapping[str, float | None]) -> str:
    """One sentence: the summed wall time of directories (name -> seconds, None when not
    recorded), naming those without one."""
    missing = [name for name, w in walls.items() if w is None]
    n = len(walls) - len(missing)
    if n == 0:
        return "Wall time: not recorded (no directory has a log or a timing.json)."
    total = sum(w for w in walls.values() if w is not None)
    text = (
        f"Wall time: {wall_text(total)} in all, the sum of the runs that made the "
        f"{n} director{'y' if n == 1 else 'ies'} (from their logs)"
    )
    if missing:
        text += f"; not recorded for {', '.join(missing)}"
    return text + "."


def wall_text(seconds: float | None) -> str:
    """``"1 h 26 min"``, ``"28 min"``, ``"45 s"``; ``"-"`` when unknown."""
    if seconds is None:
        return "-"
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
