"""Command line of the experiment: runs what :mod:`.cli` parses; the work is in pipeline.py.

Imports at start-up are cheap (no torch, Brian2, xarray): ``--help`` and argument
errors return at once; the pipeline is imported once the arguments are valid.
"""

from __future__ import annotations

import logging
import shlex
import socket
import sys
from pathlib import Path

from brainsleep.cli import ANALYSIS_COMMAND

from .cli import build_parser, config_from_args
from .config import ConfigError, ExperimentConfig, UnavailableError

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_FAILED = 1  # a cell failed while running (the message names it)
D = ExperimentConfig()


class _LogFileHandler(logging.FileHandler):
    """log.txt; a failed log write (disk full) is dropped, not printed as a traceback.

    The results writes fail on the same disk and end the run with one clear line.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        return None


def _close_logging() -> None:
    """Detach (and close) the handlers a run attached, so none outlives its run."""
    logger = logging.getLogger("brainsleep")
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def _setup_logging(out: Path) -> None:
    logger = logging.getLogger("brainsleep")
    logger.setLevel(logging.INFO)
    _close_logging()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    from brainsleep.formats import LOG_FILE

    fh = _LogFileHandler(out / LOG_FILE)
    fh.setFormatter(fmt)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(fh)
    logger.addHandler(sh)


def _cannot_write(exc: OSError, out: Path) -> str:
    """``error: cannot write <path>: <reason>``, one line, for an OSError about results."""
    path = exc.filename if exc.filename is not None else out
    return f"error: cannot write {path}: {exc.strerror or exc}"


def _refused(exc: ConfigError) -> int:
    """Print a refused configuration's one line; its exit status: 3 when a device it
    names cannot work here (:class:`~.config.UnavailableError`, also as the cause of a
    study's error), else 2 (bad input). Nothing was written either way."""
    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, UnavailableError) or isinstance(exc.__cause__, UnavailableError):
        return EXIT_UNAVAILABLE
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the results directory was claimed: nothing written
        print("\ninterrupted before any result was written", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs is not None and args.study is None:
        print("error: --runs picks runs of a study: give --study FILE too", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.study is not None:
        from .study import run_study

        try:
            return run_study(
                sys.argv[1:] if argv is None else argv,
                parser=parser,
                configure=config_from_args,
                execute=_run_config,
            )
        except ConfigError as exc:
            return _refused(exc)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        return _refused(exc)
    return _run_config(cfg, argv)


def _run_config(cfg: ExperimentConfig, argv: list[str] | None) -> int:
    """Run a validated configuration; the exit status (``argv`` is recorded)."""
    from brainsleep.data import DataUnavailableError
    from brainsleep.sleep.devices import DeviceUnavailableError

    from .pipeline import load_data, run_experiment, versions
    from .results import (
        ResultsDirError,
        check_directory,
        check_out_path,
        probe_writable,
        remove_stale_temp_files,
        take_directory,
    )
    from .scheduler import CellError, ClusterError, connect, uses_dask

    out = Path(cfg.out)
    fingerprint = cfg.fingerprint()
    # Cheap and read-only, before any work: is --out usable, and is it ours?
    try:
        check_out_path(out)
        check_directory(out, fingerprint, cfg.to_dict())
    except ResultsDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        probe_writable(out)
    except OSError as exc:
        print(_cannot_write(exc, out), file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        data = load_data(cfg)
    except (DataUnavailableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    record = {
        "config": cfg.to_dict(),
        "versions": versions(),
        "device": cfg.device,
        "host": socket.gethostname(),
        "argv": sys.argv if argv is None else argv,
    }
    # The cluster before the directory: an unreachable scheduler, or one whose workers
    # run several threads, is refused with nothing written.
    try:
        connection = connect(cfg) if uses_dask(cfg) else None
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    # Lock first, then check and claim under the lock: of two configurations started
    # together only one can claim the directory (the other gets exit 2, nothing left).
    try:
        lock, resumed = take_directory(out, record, fingerprint)
    except (ResultsDirError, OSError) as exc:
        if connection is not None:
            connection.close()
        if isinstance(exc, ResultsDirError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(_cannot_write(exc, out), file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        _setup_logging(out)
        log = logging.getLogger("brainsleep.experiment")
        log.info("%s %s (config %s)", "resuming" if resumed else "starting", out, fingerprint)
        if resumed and (n := remove_stale_temp_files(out)):
            log.info("removed %d temporary file(s) left by an interrupted run", n)
        table = run_experiment(cfg, out, data, connection)
    except DeviceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except CellError as exc:
        print(
            f"error: {exc}\nfinished stages are kept in {out}; fix the cause and rerun the "
            "same command to resume",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except OSError as exc:
        print(_cannot_write(exc, out), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt as exc:
        why = f"\n{exc}" if str(exc) else ""  # e.g. what was being compiled
        print(
            f"{why}\ninterrupted: finished stages are kept; rerun the same command to resume "
            f"in {out}",
            file=sys.stderr,
        )
        return 130
    finally:
        try:
            if connection is not None:
                connection.close()
        finally:
            lock.release()
            _close_logging()
    print(table)
    print(f"\nresults: {out}  (figures: {ANALYSIS_COMMAND} {shlex.quote(str(out))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
