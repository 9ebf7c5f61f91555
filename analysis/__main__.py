"""``python -m brainsleep.analysis RESULTS_DIR [RESULTS_DIR ...]``: write every supported
figure and a summary. Several directories are merged cell by cell into one report (``--out``
required). The same command is installed as ``brainsleep-analysis``; in a checkout
``python -m analysis`` runs it too.

``python -m brainsleep.analysis report RESULTS_DIR [...] --out DIR``: test the paper's
claims, one setting per directory, and write ``REPORT.md`` (:mod:`analysis.claims_report`).

``python -m brainsleep.analysis sweep RESULTS_DIR [...] --out DIR``: the gain of sleep
against the factors a one-factor-at-a-time sweep varies, ``SWEEP.md``
(:mod:`analysis.sweep_report`).

``python -m brainsleep.analysis remedies RESULTS_DIR [...] --out DIR``: remedies with and
without sleep, ranked, ``REMEDIES.md`` (:mod:`analysis.remedies`).

``python -m brainsleep.analysis export RESULTS_DIR [...] --out DIR``: compact copies (no
weights, no spikes) that every report can be rerun from, small enough to commit
(:mod:`analysis.export`).

Exit status: 0 all figures written or skipped for lack of data, 1 some figure failed,
2 unusable results directory (missing, empty, no metrics.csv) or bad arguments.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from brainsleep.cli import ANALYSIS_COMMAND, HelpFormatter

from .report_command import started_as
from .results import ResultsError, load_results_many


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m brainsleep.analysis``.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its ``prog`` is how the command was started
        (:func:`analysis.report_command.started_as`).
    """
    p = argparse.ArgumentParser(
        prog=started_as(),
        formatter_class=HelpFormatter,
        epilog=(
            f"the claims report: {ANALYSIS_COMMAND} report RESULTS_DIR [...] --out DIR "
            f"(--help for its options); the input sweep: {ANALYSIS_COMMAND} sweep ...; the "
            f"remedies: {ANALYSIS_COMMAND} remedies ...; compact copies to commit: "
            f"{ANALYSIS_COMMAND} export RESULTS_DIR [...] --out DIR.\n\n"
            "exit status: 0 all figures written or skipped for lack of data, 1 some figure "
            "failed, 2 unusable results directory or bad arguments."
        ),
        description=(
            "Write figures (PNG) and summary.md for a brainsleep results directory "
            "(python -m brainsleep.experiment --out DIR). Several directories are merged "
            "into one report: the union of their cells (a cell in two directories must "
            "have identical metrics rows). Figures whose data were not recorded are "
            "skipped and listed."
        ),
    )
    p.add_argument(
        "results_dirs",
        metavar="RESULTS_DIR",
        nargs="+",
        help="experiment output directory; several are merged into one report",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="figure directory (default: RESULTS_DIR/figures; required with several RESULTS_DIR)",
    )
    p.add_argument(
        "--all-cells",
        action="store_true",
        help="per-cell figures for every finished cell (default: lowest seed per "
        "dataset, imbalance and fraction)",
    )
    p.add_argument(
        "--max-neurons",
        type=int,
        default=None,
        metavar="N",
        help="rasters draw at most N neurons per layer, the most active (default: every neuron)",
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
        choices=("s", "ms", "step"),
        default="s",
        help="time axis of spike figures: simulated time (step * dt) or sleep step",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only skipped/failed lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (see the module docstring).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the claims report (a results directory named "report": ./report)
        from .claims_report import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["sweep"]:  # the input / sleep-parameter sweep (analysis.sweep_report)
        from .sweep_report import main as sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["export"]:  # compact copies to commit (analysis.export)
        from .export import main as export_main

        return export_main(argv[1:])
    if argv[:1] == ["remedies"]:  # remedies with and without sleep (analysis.remedies)
        from .remedies import main as remedies_main

        return remedies_main(argv[1:])
    args = build_parser().parse_args(argv)
    if len(args.results_dirs) > 1 and args.out is None:
        print(
            "analysis: error: --out DIR is required when more than one RESULTS_DIR is given",
            file=sys.stderr,
        )
        return 2

    def log(line: str) -> None:
        if not args.quiet or not line.startswith("wrote "):
            print(line, flush=True)

    from .incremental import is_incremental_dir

    incremental = [is_incremental_dir(d) for d in args.results_dirs]
    try:
        if any(incremental):  # --protocol class-incremental: incremental.csv, its figures
            if not all(incremental):
                raise ResultsError(
                    "class-incremental and other results directories cannot be merged"
                )
            from .incremental import write_incremental_report

            command = f"{ANALYSIS_COMMAND} {shlex.join(argv)}"
            report = write_incremental_report(args.results_dirs, args.out, log=log, command=command)
        else:
            results = load_results_many(args.results_dirs)
    except ResultsError as exc:
        print(f"analysis: error: {exc}", file=sys.stderr)
        return 2

    if not any(incremental):
        from .report import write_report

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
