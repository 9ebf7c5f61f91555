"""``python -m analysis RESULTS_DIR``: write every supported figure and a summary.

Exit status: 0 all figures written or skipped for lack of data, 1 some figure failed,
2 unusable results directory (missing, empty, no metrics.csv) or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from brainsleep.cli import HelpFormatter

from .results import ResultsError, load_results


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m analysis``.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its ``prog`` is the name this package was started under
        (``analysis`` in a checkout, ``brainsleep.analysis`` installed).
    """
    p = argparse.ArgumentParser(
        prog=f"python -m {__package__ or 'brainsleep.analysis'}",
        formatter_class=HelpFormatter,
        epilog=(
            "exit status: 0 all figures written or skipped for lack of data, 1 some figure "
            "failed, 2 unusable results directory or bad arguments."
        ),
        description=(
            "Write figures (PNG) and summary.md for a brainsleep results directory "
            "(python -m brainsleep.experiment --out DIR). Figures whose data were not "
            "recorded are skipped and listed."
        ),
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="experiment output directory")
    p.add_argument(
        "--out", metavar="DIR", default=None, help="figure directory (default: RESULTS_DIR/figures)"
    )
    p.add_argument(
        "--all-cells",
        action="store_true",
        help="per-cell figures for every finished cell (default: lowest seed per "
        "dataset, imbalance and fraction)",
    )
    p.add_argument(
        "--max-neurons", type=int, default=200, metavar="N", help="neurons per layer in rasters"
    )
    p.add_argument(
        "--raster-steps",
        type=int,
        default=None,
        metavar="N",
        help="rasters show only the first N sleep steps (default: the whole run)",
    )
    p.add_argument(
        "--x-unit",
        choices=("step", "ms", "s"),
        default="step",
        help="time axis of spike figures: sleep step or simulated time",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only skipped/failed lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        results = load_results(args.results_dir)
    except ResultsError as exc:
        print(f"analysis: error: {exc}", file=sys.stderr)
        return 2

    from .report import write_report

    def log(line: str) -> None:
        if not args.quiet or not line.startswith("wrote "):
            print(line, flush=True)

    report = write_report(
        results,
        args.out,
        all_cells=args.all_cells,
        max_neurons=args.max_neurons,
        raster_steps=args.raster_steps,
        x_unit=args.x_unit,
        log=log,
    )
    print(
        f"{len(report.written)} figures written, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed -> {report.out_dir}"
    )
    if report.failed:
        print(f"analysis: {len(report.failed)} figure(s) failed, see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
