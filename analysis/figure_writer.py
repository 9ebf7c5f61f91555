"""Writing a report's figures one by one: a figure that fails is named, not fatal.

Shared by the per-run report (:mod:`analysis.report`) and the class-incremental report
(:mod:`analysis.incremental`), below both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from matplotlib.figure import Figure

from .style import save_figure

T = TypeVar("T")


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

    def skip(self, name: str | Sequence[str], reason: str) -> None:
        for n in [name] if isinstance(name, str) else name:
            self.report.skipped.append((n, reason))
            self.log(f"skipped {n}: {reason}")

    def fail(self, name: str | Sequence[str], message: str) -> None:
        for n in [name] if isinstance(name, str) else name:
            self.report.failed.append((n, message))
            self.log(f"FAILED {n}: {message}")

    def load(
        self, names: Sequence[str], missing: str | None, what: str, read: Callable[[], T]
    ) -> T | None:
        """``read()`` for the figures ``names``; None after skipping them (``missing``: why
        there is nothing to read) or failing them (``read`` raised: cannot read ``what``)."""
        if missing:
            self.skip(names, missing)
            return None
        try:
            return read()
        except Exception as exc:  # a corrupt file fails its figures, not the run
            self.fail(names, f"cannot read {what}: {type(exc).__name__}: {exc}")
            return None

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
