"""The on-disk cache of compiled standalone builds: list it, prune it, clean leftovers.

Why one file of this length: listing, pruning and leftover cleaning all read the same
on-disk layout and locks (brainsleep.build_layout); about a third is the CLI's help.

Command line::

    python -m brainsleep.cache list                  # table of builds, sizes, last use
    python -m brainsleep.cache prune --older-than 30 # builds not used for 30 days
    python -m brainsleep.cache prune --all           # every build and unknown entry
    python -m brainsleep.cache prune --baselines --older-than 30  # trained baselines too
    python -m brainsleep.cache path                  # where the cache is

The cache root is ``brainsleep.paths.default_build_root()``
(``$BRAINSLEEP_BUILD_DIR``, else ``<cache root>/builds``, else
``~/.cache/brainsleep/builds``) unless a root is given. Its layout (published builds,
their locks, builds in progress, run directories, trash) is declared in
:mod:`brainsleep.build_layout`.

Trained baselines (:mod:`brainsleep.experiment.baselines`) live elsewhere,
``brainsleep.paths.baseline_cache_root()``, their names also in the layout module;
``list`` summarises them; ``prune --baselines`` applies the same rule to them.

Lock files of leftovers are unlinked while the lock is held. That is safe with the
``filelock`` installed with this project (4.x): its Unix lock checks after ``flock`` that
the file it locked is still linked, and retries otherwise.

Nothing heavy is imported here (no Brian2, torch or numpy), so the command starts fast;
the default root comes from :mod:`brainsleep.paths`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from brainsleep.build_layout import (
    BASELINE_LOCK_RE,
    BASELINE_RE,
    BASELINE_TMP_RE,
    BUILD_DEVICES,
    BUILD_LOCK_RE,
    BUILD_RE,
    BUILDING_RE,
    LAST_USED,
    LOCK_SUFFIX,
    MANIFEST,
    RUNS,
    TRASH_RE,
    lock_file,
    move_to_trash,
    read_manifest,
)
from brainsleep.locks import is_locked, try_lock

__all__ = [
    "BUILD_DEVICES",
    "LAST_USED",
    "MANIFEST",
    "BaselineInfo",
    "BuildInfo",
    "build_root",
    "list_baselines",
    "clean_leftovers",
    "list_builds",
    "main",
    "prune",
    "prune_baselines",
]


_MB = 1024 * 1024


@dataclass
class BuildInfo:
    """One entry of the build cache.

    Attributes
    ----------
    path : pathlib.Path
        The directory (or file, for an unknown entry).
    device : str
        ``cpp_standalone`` / ``cuda_standalone``, or ``""`` when the name says nothing.
    key : str
        The 20-hex-digit build key, or ``""``.
    size_bytes : int
        Total size of the files under `path` (symlinks not followed).
    created : datetime.datetime or None
        Creation time from the manifest (aware, local time zone); ``None`` if unknown.
    last_used : datetime.datetime or None
        mtime of ``.last_used`` (else of the manifest, else of the directory).
    model : str
        The manifest's short model label, or ``""``.
    complete : bool
        Whether this is a published build with a readable manifest.
    status : str
        ``"ok"`` (complete build), ``"building"`` (in progress, lock held), ``"leftover"``
        (killed build or run, or interrupted removal: :func:`clean_leftovers` removes it),
        ``"running"`` (a run directory in use) or ``"unknown"``.
    kind : str
        ``"build"`` (``<device>-<key>/``), ``"building"``, ``"run"``, ``"trash"`` or
        ``"unknown"``.
    manifest : dict
        The parsed manifest (empty when there is none).
    """

    path: Path
    device: str
    key: str
    size_bytes: int
    created: dt.datetime | None
    last_used: dt.datetime | None
    model: str
    complete: bool
    status: str
    kind: str = "build"
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The entry's name relative to the root (``runs/<name>`` for runs)."""
        return f"{RUNS}/{self.path.name}" if self.kind == "run" else self.path.name


@dataclass(frozen=True)
class _Removal:
    path: Path
    size_bytes: int
    reason: str


# --------------------------------------------------------------------------- helpers


def build_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the cache root: `root`, else the engine's default build root.

    Parameters
    ----------
    root : path-like, optional
        Explicit root.

    Returns
    -------
    pathlib.Path
        The root (it need not exist).

    Raises
    ------
    NotADirectoryError
        If the root exists and is not a directory.
    """
    if root is None:
        from brainsleep.paths import default_build_root

        path = Path(default_build_root())
    else:
        path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"build root {path} is not a directory")
    return path


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _remove_tree(path: Path) -> None:
    """Remove a directory tree (or a file/symlink); already-vanished parts are fine."""
    if path.is_symlink() or not path.is_dir():
        _unlink(path)
        return

    def onerror(func, name, exc_info) -> None:  # shutil.rmtree's signature (3.11)
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=onerror)


def _tree_size(path: Path) -> int:
    """Bytes in the files under `path` (lstat; vanished files count 0)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _local(timestamp: float | None) -> dt.datetime | None:
    return None if timestamp is None else dt.datetime.fromtimestamp(timestamp).astimezone()


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone()  # naive: taken as local time


def _last_used_ts(directory: Path) -> float | None:
    for candidate in (directory / LAST_USED, directory / MANIFEST, directory):
        ts = _mtime(candidate)
        if ts is not None:
            return ts
    return None


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _trash_lock(root: Path, name: str) -> Path | None:
    """Lock guarding a ``.trash-<name>-<random>`` directory, when `name` is a build."""
    match = TRASH_RE.match(name)
    if match and BUILD_RE.match(match["name"]):
        return lock_file(root, match["name"])
    return None


# --------------------------------------------------------------------------- listing


def _build_info(root: Path, entry: os.DirEntry[str]) -> BuildInfo:
    """Describe one entry of the root (or of ``runs/``)."""
    path = Path(entry.path)
    name = entry.name
    is_dir = _is_dir(entry)
    in_runs = path.parent.name == RUNS and path.parent.parent == root
    device = key = model = ""
    manifest: dict = {}
    created: dt.datetime | None = None
    complete = False
    if in_runs and is_dir:
        kind = "run"
        status = "running" if is_locked(lock_file(path.parent, name)) else "leftover"
    elif is_dir and (m := BUILD_RE.match(name)):
        kind = "build"
        device, key = m["device"], m["key"]
        found = read_manifest(path)
        if found is not None:
            manifest = found
            complete = True
            status = "ok"
            created = _parse_time(manifest.get("created"))
            model = str(manifest.get("model", ""))
        else:
            status = "unknown"
    elif is_dir and (m := BUILDING_RE.match(name)):
        kind = "building"
        device, key = m["device"], m["key"]
        locked = is_locked(lock_file(root, f"{device}-{key}"))
        status = "building" if locked else "leftover"
    elif is_dir and TRASH_RE.match(name):
        kind = "trash"
        lock = _trash_lock(root, name)
        status = "removing" if lock is not None and is_locked(lock) else "leftover"
    else:
        kind = "unknown"
        status = "unknown"
    if complete:
        last_used = _local(_last_used_ts(path))
    else:
        last_used = _local(_mtime(path))
    return BuildInfo(
        path=path,
        device=device,
        key=key,
        size_bytes=_tree_size(path),
        created=created,
        last_used=last_used,
        model=model,
        complete=complete,
        status=status,
        kind=kind,
        manifest=manifest,
    )


def _is_known_file(root: Path, entry: os.DirEntry[str]) -> bool:
    """Lock files the layout explains (a build's or a run's lock)."""
    name = entry.name
    if Path(entry.path).parent == root:
        return bool(BUILD_LOCK_RE.match(name))
    return name.endswith(LOCK_SUFFIX)  # runs/<name>.lock


def list_builds(
    root: str | os.PathLike[str] | None = None, *, include_other: bool = False
) -> list[BuildInfo]:
    """Describe the builds under the cache root, least recently used first.

    Parameters
    ----------
    root : path-like, optional
        Cache root (default: :func:`brainsleep.paths.default_build_root`).
    include_other : bool, optional
        Also describe builds in progress, run directories, interrupted removals and unknown
        entries (``kind`` says which). Default ``False``: only ``<device>-<key>/``
        directories, complete or not.

    Returns
    -------
    list of BuildInfo
        Sorted by last use (oldest first; entries without a time first), then by name.

    Raises
    ------
    NotADirectoryError
        If the root is a file.
    """
    base = build_root(root)
    infos: list[BuildInfo] = []
    for entry in _scandir(base):
        if entry.name == RUNS and _is_dir(entry):
            if include_other:
                for run in _scandir(Path(entry.path)):
                    if _is_dir(run) or not _is_known_file(base, run):
                        infos.append(_build_info(base, run))
            continue
        if not _is_dir(entry) and _is_known_file(base, entry):
            continue
        info = _build_info(base, entry)
        if info.kind == "build" or include_other:
            infos.append(info)

    def order(info: BuildInfo) -> tuple[float, str]:
        ts = info.last_used.timestamp() if info.last_used is not None else -math.inf
        return (ts, info.name)

    return sorted(infos, key=order)


# --------------------------------------------------------------------------- leftovers


def _leftovers(base: Path, *, remove: bool) -> list[_Removal]:
    """Find (and with `remove`, delete) leftovers; see :func:`clean_leftovers`."""
    found: list[_Removal] = []

    def handle(path: Path, lock_path: Path | None, reason: str, unlink_lock: bool) -> None:
        if not os.path.lexists(path):  # removed meanwhile (with an entry handled before)
            return
        if lock_path is None:  # nothing guards it (an unparsable trash name)
            size = _tree_size(path)
            if remove:
                _remove_tree(path)
            found.append(_Removal(path, size, reason))
            return
        if not lock_path.exists() and not remove:
            found.append(_Removal(path, _tree_size(path), reason))
            return
        with try_lock(lock_path) as acquired:
            if not acquired:
                return
            if not os.path.lexists(path):  # gone meanwhile (removed by another cleaner)
                return
            size = _tree_size(path)
            if remove:
                _remove_tree(path)
                if unlink_lock:
                    _unlink(lock_path)
            found.append(_Removal(path, size, reason))

    entries = _scandir(base)
    dir_names = {e.name for e in entries if _is_dir(e)}
    building_keys = set()
    for entry in entries:
        if not _is_dir(entry):
            continue
        if m := BUILDING_RE.match(entry.name):
            building_keys.add(f"{m['device']}-{m['key']}")
    for entry in entries:
        path = Path(entry.path)
        if _is_dir(entry) and (m := BUILDING_RE.match(entry.name)):
            name = f"{m['device']}-{m['key']}"
            # the lock file also guards the published build: keep it when that exists
            handle(path, lock_file(base, name), "killed build", name not in dir_names)
        elif _is_dir(entry) and TRASH_RE.match(entry.name):
            lock = _trash_lock(base, entry.name)
            keep_lock = lock is None or lock.stem in dir_names or lock.stem in building_keys
            handle(path, lock, "interrupted removal", not keep_lock)
        elif not _is_dir(entry) and (m := BUILD_LOCK_RE.match(entry.name)):
            name = f"{m['device']}-{m['key']}"
            if name not in dir_names and name not in building_keys:
                handle(path, path, "unused lock", False)  # the lock file is the path
    runs = base / RUNS
    if RUNS in dir_names:
        run_entries = _scandir(runs)
        run_dirs = {e.name for e in run_entries if _is_dir(e)}
        for entry in run_entries:
            path = Path(entry.path)
            if _is_dir(entry):
                handle(path, lock_file(runs, entry.name), "killed run", True)
            elif (
                entry.name.endswith(LOCK_SUFFIX) and entry.name[: -len(LOCK_SUFFIX)] not in run_dirs
            ):
                handle(path, path, "unused lock", False)
    return found


def clean_leftovers(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove what killed builds, runs and removals left behind; never anything in use.

    A ``.building-<device>-<key>-*`` directory is removed when the lock
    ``<device>-<key>.lock`` can be acquired at once (nobody builds that key), a
    ``runs/<name>/`` directory when ``runs/<name>.lock`` can, a ``.trash-*`` directory when
    its build's lock can; lock files with nothing left to guard are removed too. Each is
    removed while its lock is held, the lock file last. Cheap when there is nothing to do
    (one directory listing of the root and of ``runs/``): the engine calls it once per
    process before building.

    Parameters
    ----------
    root : path-like, optional
        Cache root (default: :func:`brainsleep.paths.default_build_root`).

    Returns
    -------
    list of pathlib.Path
        What was removed (directories and unused lock files).

    Raises
    ------
    NotADirectoryError
        If the root is a file.
    """
    base = build_root(root)
    return [r.path for r in _leftovers(base, remove=True)]


# --------------------------------------------------------------------------- prune


def _cutoff(older_than: dt.timedelta | None) -> float | None:
    """The time before which a last use is stale (None: no age rule)."""
    if older_than is None:
        return None
    if older_than < dt.timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    return time.time() - older_than.total_seconds()


def _prune(
    base: Path,
    older_than: dt.timedelta | None,
    dry_run: bool,
    everything: bool,
    log: Callable[[str], None],
) -> list[_Removal]:
    cutoff = _cutoff(older_than)
    removed = _leftovers(base, remove=not dry_run)
    if older_than is None and not everything:
        return removed

    def stale(path: Path) -> bool:
        if cutoff is None:
            return True
        ts = _last_used_ts(path)
        return ts is None or ts < cutoff

    for info in list_builds(base, include_other=everything):
        if info.kind == "build" and info.complete:
            if not stale(info.path):
                continue
            reason = "not used since " + _fmt_time(info.last_used)
        elif everything and info.kind in ("build", "unknown"):
            reason = "unknown entry"
        else:
            continue
        lock_path = lock_file(base, info.path.name) if info.kind == "build" else None
        if dry_run:
            if lock_path is not None and is_locked(lock_path):
                log(f"skipped {info.name}: it is being built (its lock is held)")
                continue
            removed.append(_Removal(info.path, info.size_bytes, reason))
            continue
        if lock_path is None:
            size = _tree_size(info.path)
            if (trash := move_to_trash(info.path, base)) is not None:
                _remove_tree(trash)
                removed.append(_Removal(info.path, size, reason))
            continue
        with try_lock(lock_path) as acquired:
            if not acquired:
                log(f"skipped {info.name}: it is being built (its lock is held)")
                continue
            if info.complete and not stale(info.path):  # used since it was listed
                log(f"skipped {info.name}: used just now")
                continue
            size = _tree_size(info.path)
            if (trash := move_to_trash(info.path, base)) is None:
                continue  # removed meanwhile by another prune
            _remove_tree(trash)
            _unlink(lock_path)
            removed.append(_Removal(info.path, size, reason))
    return removed


def prune(
    root: str | os.PathLike[str] | None = None,
    older_than: dt.timedelta | None = None,
    dry_run: bool = False,
    everything: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Remove complete builds not used recently, and the leftovers.

    Each build is removed while holding its lock (acquired without waiting: a build being
    built is skipped, with a message); its directory is first renamed to
    ``.trash-<name>-<random>`` and then deleted, so no reader ever sees a half-deleted
    build under its real name. A run that uses a build removed under it fails loudly
    (never silently); pruning is safe while nothing runs.

    Parameters
    ----------
    root : path-like, optional
        Cache root (default: :func:`brainsleep.paths.default_build_root`).
    older_than : datetime.timedelta, optional
        Remove complete builds whose last use (``.last_used`` mtime) is older than this.
    dry_run : bool, optional
        Only report what would be removed.
    everything : bool, optional
        With `older_than` ``None``: remove every complete build. In any case also remove
        unknown entries (anything the layout does not explain, such as a build directory
        without a manifest from an older engine version; an old-style build whose lock is
        held is skipped). With neither `older_than` nor `everything`, only leftovers are
        removed.
    log : callable, optional
        Receives one-line messages about skipped builds (default: print to stderr).

    Returns
    -------
    list of pathlib.Path
        The removed paths (or those that would be removed), leftovers first; builds under
        their original names.

    Raises
    ------
    ValueError
        If `older_than` is negative.
    NotADirectoryError
        If the root is a file.
    """
    base = build_root(root)
    removals = _prune(base, older_than, dry_run, everything, log or _log_stderr)
    return [r.path for r in removals]


# --------------------------------------------------------------------------- trained baselines


@dataclass(frozen=True)
class BaselineInfo:
    """One trained baseline in the baseline cache.

    Attributes
    ----------
    path : pathlib.Path
        The entry, ``<key>.npz``.
    key : str
        Its 40-hex-digit key (:func:`brainsleep.experiment.baselines.baseline_key`).
    size_bytes : int
        File size.
    last_used : datetime.datetime or None
        The file's mtime (written, or last loaded by a run).
    """

    path: Path
    key: str
    size_bytes: int
    last_used: dt.datetime | None


def _baseline_root(root: str | os.PathLike[str] | None) -> Path | None:
    if root is not None:
        return Path(root).expanduser()
    from brainsleep.paths import baseline_cache_root

    return baseline_cache_root()


def list_baselines(root: str | os.PathLike[str] | None = None) -> list[BaselineInfo]:
    """The trained baselines in the cache, least recently used first.

    Parameters
    ----------
    root : path-like, optional
        The baseline cache (default: ``brainsleep.paths.baseline_cache_root()``; none
        when ``$BRAINSLEEP_BASELINE_CACHE`` is ``off``).

    Returns
    -------
    list of BaselineInfo
        Empty when the cache is off or does not exist.
    """
    base = _baseline_root(root)
    if base is None or not base.is_dir():
        return []
    infos = []
    for entry in _scandir(base):
        if (m := BASELINE_RE.match(entry.name)) is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        infos.append(BaselineInfo(Path(entry.path), m["key"], st.st_size, _local(st.st_mtime)))
    return sorted(infos, key=lambda i: (i.last_used or _local(0.0), i.key))


def _prune_baselines(
    base: Path,
    older_than: dt.timedelta | None,
    dry_run: bool,
    everything: bool,
    log: Callable[[str], None],
) -> list[_Removal]:
    cutoff = _cutoff(older_than)
    removed: list[_Removal] = []
    if not base.is_dir():
        return removed

    @contextmanager
    def free(lock_path: Path) -> Iterator[bool]:
        """Whether nobody holds the key's lock; held until the block ends (a dry run
        only looks, creating no lock file)."""
        if dry_run:
            yield not is_locked(lock_path)
            return
        with try_lock(lock_path) as acquired:
            yield acquired

    # Leftovers: a killed write's temporary file, and a lock with no entry and no write
    # (a run killed while training, or an entry removed with its lock by another prune),
    # each when its key's lock is free.
    for entry in _scandir(base):
        if m := BASELINE_TMP_RE.match(entry.name):
            path, lock_path = Path(entry.path), lock_file(base, m["key"])
            reason = "leftover of a killed write"
        elif (m := BASELINE_LOCK_RE.match(entry.name)) and not (base / f"{m['key']}.npz").exists():
            path = lock_path = Path(entry.path)
            reason = "unused lock"
        else:
            continue
        with free(lock_path) as acquired:
            if not acquired or not os.path.lexists(path):  # in use, or gone meanwhile
                continue
            if path == lock_path and (base / f"{m['key']}.npz").exists():
                continue  # an entry was written meanwhile
            size = _tree_size(path)
            if not dry_run:
                _unlink(path)
                if not (base / f"{m['key']}.npz").exists():
                    _unlink(lock_path)  # held: no entry to guard (else a new orphan)
            removed.append(_Removal(path, size, reason))
    if older_than is None and not everything:
        return removed

    def stale(path: Path) -> bool:
        ts = _mtime(path)
        return ts is not None and (cutoff is None or ts < cutoff)

    for info in list_baselines(base):
        if not stale(info.path):
            continue
        reason = "not used since " + _fmt_time(info.last_used)
        lock_path = lock_file(base, info.key)
        with free(lock_path) as acquired:
            if not acquired:
                log(f"skipped baseline {info.key}: a run holds it (its lock is held)")
                continue
            if not stale(info.path):  # loaded (or removed) since it was listed
                continue
            if not dry_run:
                _unlink(info.path)
                _unlink(lock_path)
            removed.append(_Removal(info.path, info.size_bytes, reason))
    return removed


def prune_baselines(
    root: str | os.PathLike[str] | None = None,
    older_than: dt.timedelta | None = None,
    dry_run: bool = False,
    everything: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Remove trained baselines not used recently, and leftovers of killed writes.

    The same rule as :func:`prune`, for the baseline cache: each entry is removed while
    holding its key's lock (acquired without waiting; an entry a run is training or
    loading is skipped, with a message). A later run that needs a removed baseline
    trains it again, with the same result.

    Parameters
    ----------
    root : path-like, optional
        The baseline cache (default: ``brainsleep.paths.baseline_cache_root()``).
    older_than : datetime.timedelta, optional
        Remove entries whose last use (their mtime) is older than this.
    dry_run : bool, optional
        Only report what would be removed.
    everything : bool, optional
        With `older_than` ``None``: remove every entry. With neither, only leftovers go.
    log : callable, optional
        Receives one-line messages about skipped entries (default: print to stderr).

    Returns
    -------
    list of pathlib.Path
        The removed (or, with `dry_run`, removable) files, leftovers first.

    Raises
    ------
    ValueError
        If `older_than` is negative.
    """
    base = _baseline_root(root)
    if base is None:
        _cutoff(older_than)  # a negative age is an error even with the cache off
        return []
    removals = _prune_baselines(base, older_than, dry_run, everything, log or _log_stderr)
    return [r.path for r in removals]


# --------------------------------------------------------------------------- command line


def _fmt_time(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _fmt_mb(size_bytes: int) -> str:
    return f"{size_bytes / _MB:.1f}"


def _table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _baselines_line(baseline_root: Path | None) -> str:
    base = _baseline_root(baseline_root)
    if base is None:
        return "baseline cache: off ($BRAINSLEEP_BASELINE_CACHE)"
    infos = list_baselines(base)
    if not infos:
        return f"baseline cache: {base}: empty"
    size = sum(i.size_bytes for i in infos)
    span = f"last used {_fmt_time(infos[0].last_used)} .. {_fmt_time(infos[-1].last_used)}"
    return f"baseline cache: {base}: {len(infos)} trained baseline(s), {_fmt_mb(size)} MB, {span}"


def _cmd_list(root: Path, baseline_root: Path | None = None) -> int:
    if not root.is_dir():
        print(f"no build cache at {root}")
        print(_baselines_line(baseline_root))
        return 0
    infos = list_builds(root, include_other=True)
    builds = [i for i in infos if i.kind in ("build", "building")]
    others = [i for i in infos if i.kind not in ("build", "building")]
    print(f"build cache: {root}")
    if builds:
        rows = [("device", "key", "model", "MB", "created", "last used", "status")]
        for info in builds:
            rows.append(
                (
                    info.device,
                    info.key,
                    info.model or "-",
                    _fmt_mb(info.size_bytes),
                    _fmt_time(info.created),
                    _fmt_time(info.last_used),
                    info.status,
                )
            )
        print(_table(rows, right=(3,)))
    else:
        print("no builds")
    if others:
        print("other entries:")
        rows = [("name", "MB", "modified", "status")]
        for info in others:
            rows.append(
                (info.name, _fmt_mb(info.size_bytes), _fmt_time(info.last_used), info.status)
            )
        print(_table(rows, right=(1,)))
    complete = sum(1 for i in infos if i.complete)
    total = sum(i.size_bytes for i in infos)
    print(f"total: {complete} complete build(s), {_fmt_mb(total)} MB")
    print(_baselines_line(baseline_root))
    return 0


def _cmd_prune(
    root: Path,
    days: float | None,
    everything: bool,
    dry_run: bool,
    baselines: bool,
    baseline_root: Path | None = None,
) -> int:
    # More days than a timedelta holds (about 2.7 million years) is "nothing that old":
    # clamped, not an OverflowError.
    older_than = None if days is None else dt.timedelta(days=min(days, dt.timedelta.max.days))
    removals: list[_Removal] = []
    shown: list[str] = []
    if root.is_dir():
        removals = _prune(root, older_than, dry_run, everything, _log_stderr)
        shown = [_relative(r.path, root) for r in removals]
    else:
        print(f"no build cache at {root}: no builds to remove")
    if baselines:
        base = _baseline_root(baseline_root)
        if base is None:
            print("the baseline cache is off ($BRAINSLEEP_BASELINE_CACHE): no baselines to remove")
        else:
            more = _prune_baselines(base, older_than, dry_run, everything, _log_stderr)
            removals += more
            shown += [f"baseline {r.path}" for r in more]
    verb = "would remove" if dry_run else "removed"
    for r, name in zip(removals, shown, strict=True):
        print(f"{verb} {name} ({_fmt_mb(r.size_bytes)} MB, {r.reason})")
    freed = sum(r.size_bytes for r in removals)
    if dry_run:
        print(f"dry run: would free {_fmt_mb(freed)} MB ({len(removals)} entries)")
    else:
        print(f"freed {_fmt_mb(freed)} MB ({len(removals)} entries)")
    if days is None and not everything:
        print("only leftovers were looked for; use --older-than DAYS or --all to remove builds")
    if not baselines:
        print("trained baselines were not looked at; add --baselines to prune them too")
    return 0


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"days must be a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m brainsleep.cache`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        Parser with the ``list``, ``prune`` and ``path`` sub-commands.
    """
    from brainsleep.cli import CACHE_ENVIRONMENT, HelpFormatter, add_options, environment_epilog

    # Every parser (sub-commands too) lists the variables that place the cache.
    look = {"formatter_class": HelpFormatter, "epilog": environment_epilog(CACHE_ENVIRONMENT)}
    parser = _Parser(
        prog="python -m brainsleep.cache",
        description=(
            "Inspect and prune the cache of compiled standalone builds (and of trained baselines)."
        ),
        **look,
    )
    where = dict(type=Path, metavar="DIR")
    root = (
        "--root",
        where,
        "cache root (default: $BRAINSLEEP_BUILD_DIR, else <cache root>/builds)",
    )
    baseline_root = (
        "--baseline-root",
        where,
        "trained-baseline cache (default: $BRAINSLEEP_BASELINE_CACHE, else "
        "<cache root>/baselines; --root does not move it)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,prune,path}")
    p_list = sub.add_parser(
        "list", help="table of the cached builds", description="Table of the cached builds.", **look
    )
    add_options(p_list, [root, baseline_root])
    p_prune = sub.add_parser(
        "prune",
        help="remove old builds and leftovers",
        description=(
            "Remove complete builds not used for DAYS days (--older-than), or all of them "
            "(--all), plus what killed builds and runs left behind. A build that is being "
            "built is skipped. A run that uses a pruned build fails loudly, never silently; "
            "pruning is safe while nothing runs. Without --older-than or --all, only "
            "leftovers are removed."
        ),
        **look,
    )
    p_prune.add_argument(
        "--older-than",
        type=_days,
        metavar="DAYS",
        help="remove builds whose last use is older than DAYS days (may be fractional)",
    )
    p_prune.add_argument(
        "--all",
        action="store_true",
        dest="everything",
        help=(
            "also remove unknown entries (e.g. build directories of older versions); "
            "without --older-than, remove every build"
        ),
    )
    p_prune.add_argument(
        "--baselines",
        action="store_true",
        help=(
            "also prune the trained-baseline cache (--baseline-root) by the same rule, "
            "with unused locks and killed writes; a run then trains them again"
        ),
    )
    p_prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    add_options(p_prune, [root, baseline_root])
    p_path = sub.add_parser(
        "path", help="print the cache root", description="Print the root.", **look
    )
    add_options(p_path, [root])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad arguments (one line on stderr).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        root = build_root(args.root)
    except NotADirectoryError as err:
        parser.error(str(err))
    if args.command == "path":
        print(root)
        return 0
    if args.command == "list":
        return _cmd_list(root, args.baseline_root)
    return _cmd_prune(
        root, args.older_than, args.everything, args.dry_run, args.baselines, args.baseline_root
    )


if __name__ == "__main__":
    sys.exit(main())
