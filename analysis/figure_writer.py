"""Writing a report's figures one by one: a figure that fails is named, not fatal.

Shared by the per-run report (:mod:`analysis.report`) and the class-incremental report
(:mod:`analysis.incremental`), below both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from .style import save_figure


@dataclass
class Report:
    """What :func:`write_report` did.

    Attributes
    ----------
    out_dir : pathlib.Path
        Figure directory.
    written : list of pathlib.Path
        Figures written.
    skipped : list of (str, str)
        ``(figure, reason)`` for figures whose data were not recorded.
    failed : list of (str, str)
        ``(figure, error)`` for figures that raised.
    summary : pathlib.Path or None
        ``summary.md``.
    """

    out_dir: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    summary: Path | None = None


def slug(text: str) -> str:
    """File-name-safe form of a dataset or imbalance spec (``[A-Za-z0-9._-]`` only)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return s or "x"


class _Writer:
    def __init__(self, out_dir: Path, log: Callable[[str], None]):
        self.report = Report(out_dir=out_dir)
        self.log = log

    def skip(self, name: str, reason: str) -> None:
        self.report.skipped.append((name, reason))
        self.log(f"skipped {name}: {reason}")

    def fail(self, name: str, message: str) -> None:
        self.report.failed.append((name, message))
        self.log(f"FAILED {name}: {message}")

    def figure(self, name: str, make: Callable[[], Figure], missing: str | None = None) -> None:
        if missing:
            self.skip(name, missing)
            return
        try:
            fig = make()
            path = save_figure(fig, self.report.out_dir / name)
        except Exception as exc:  # one broken figure must not stop the rest
            self.fail(name, f"{type(exc).__name__}: {exc}")
            return
        self.report.written.append(path)
        self.log(f"wrote {path}")
