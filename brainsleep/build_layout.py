"""The on-disk layout of the build cache, declared once.

The compiled engine (:mod:`brainsleep.sleep.standalone`) writes this layout and the cache
tool (:mod:`brainsleep.cache`) lists, prunes and cleans it; both take every name and
pattern from here. Under the root (:func:`brainsleep.paths.default_build_root`):

``<device>-<key>/``
    A published build (``device`` one of :data:`BUILD_DEVICES`, ``key`` 20 lowercase hex
    digits): the compiled project, the manifest :data:`MANIFEST` (JSON: ``key``,
    ``device``, ``created`` (ISO time), ``model``, ``spec``, ``compiler``, ``arch``,
    ``brian2``, ``engine``) and :data:`LAST_USED`, a file whose mtime the engine touches on
    every use. Only a directory with a readable manifest is a complete build; one without
    (e.g. from an older engine version) is "unknown".
``<device>-<key>.lock``
    The build's :class:`filelock.FileLock`, held while the key is being built.
``.building-<device>-<key>-<random>/``
    A build in progress. The engine takes the key's lock *before* creating it and keeps
    it until the directory is renamed to ``<device>-<key>/``, so such a directory whose
    lock can be acquired at once is the leftover of a killed build.
``runs/<name>/`` and ``runs/<name>.lock``
    One run's working directory; its lock is taken *before* the directory is created and
    held for the whole run, so a run directory whose lock is free is a leftover.
``.trash-<name>-<random>/``
    A directory being deleted (renamed first, so that no reader ever sees a half-deleted
    build under its real name); a leftover when its lock is free.

Anything else is "unknown": listed, and removed only by ``prune --all``. Imports only the
standard library.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

#: Devices whose builds are cached.
BUILD_DEVICES: tuple[str, ...] = ("cpp_standalone", "cuda_standalone")
#: Name of a build's manifest; a build directory is complete only with a readable one.
MANIFEST = "brainsleep-build.json"
#: File in a build directory whose mtime records the build's last use.
LAST_USED = ".last_used"
#: Sub-directory of the root holding one directory (and one lock) per run.
RUNS = "runs"
#: Ending of a lock file: ``<name>.lock`` guards the entry ``<name>`` next to it.
LOCK_SUFFIX = ".lock"

_DEVICE_KEY = rf"(?P<device>{'|'.join(BUILD_DEVICES)})-(?P<key>[0-9a-f]{{20}})"
#: ``<device>-<key>``: a published build's directory name.
BUILD_RE = re.compile(rf"^{_DEVICE_KEY}$")
#: ``<device>-<key>.lock``: a build's lock.
BUILD_LOCK_RE = re.compile(rf"^{_DEVICE_KEY}\.lock$")
#: ``.building-<device>-<key>-<random>``: a build in progress.
BUILDING_RE = re.compile(rf"^\.building-{_DEVICE_KEY}-(?P<rest>.+)$")
#: ``.trash-<name>-<random>``: a directory being deleted.
TRASH_RE = re.compile(r"^\.trash-(?P<name>.+)-(?P<rest>[0-9a-f]+)$")

# The trained-baseline cache (brainsleep.experiment.baselines), pruned by the same tool:
#: ``<key>.npz``: a trained baseline (40 hex digits; its mtime is its last use).
BASELINE_RE = re.compile(r"^(?P<key>[0-9a-f]{40})\.npz$")
#: ``<key>.lock``: held while the entry is trained and written.
BASELINE_LOCK_RE = re.compile(r"^(?P<key>[0-9a-f]{40})\.lock$")
#: ``.<key>.npz.*.tmp``: a killed write when the key's lock is free.
BASELINE_TMP_RE = re.compile(r"^\.(?P<key>[0-9a-f]{40})\.npz\..+\.tmp$")


def lock_file(directory: Path, name: str) -> Path:
    """``<directory>/<name>.lock``: the lock guarding the build or run ``name`` there."""
    return directory / f"{name}{LOCK_SUFFIX}"


def building_dir(root: Path, name: str) -> Path:
    """A fresh ``<root>/.building-<name>-<random>``: where build ``name`` is compiled."""
    return root / f".building-{name}-{uuid.uuid4().hex[:8]}"


def move_to_trash(path: Path, directory: Path) -> Path | None:
    """Rename ``path`` to a fresh ``<directory>/.trash-<name>-<random>`` before deleting it,
    so no reader sees it half-deleted; the new path, or None when ``path`` is gone."""
    trash = directory / f".trash-{path.name}-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None
    return trash


def read_manifest(directory: Path) -> dict | None:
    """A build directory's :data:`MANIFEST`, or None when missing, unreadable or not an
    object."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
